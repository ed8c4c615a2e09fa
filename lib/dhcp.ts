// A DHCPv4 client (RFC 2131, options of RFC 2132) for a user stack: it speaks through the
// stack's own UDP (port 68, broadcasts leave from 0.0.0.0 until an address is bound), applies
// the lease (address and prefix, default route, DNS servers, search domain) to the stack, renews
// at T1 (unicast to the server), rebinds at T2 (broadcast), and takes the lease back at expiry.
import { randomInt } from 'crypto';
import { EventEmitter } from 'events';
import { isIPv4 } from 'net';

import { codedError, invalidArgType, invalidArgValue, systemError } from './errors';
import type { UserStack } from './stacks/user';

const BOOTREQUEST = 1, BOOTREPLY = 2;
const DISCOVER = 1, OFFER = 2, REQUEST = 3, ACK = 5, NAK = 6, RELEASE = 7;
const MAGIC = 0x63825363;
const OPT = { PAD: 0, MASK: 1, ROUTER: 3, DNS: 6, HOSTNAME: 12, DOMAIN: 15, REQ_IP: 50, LEASE: 51, OVERLOAD: 52, TYPE: 53, SERVER: 54, PARAMS: 55, T1: 58, T2: 59, CLIENT_ID: 61, SEARCH: 119, END: 255 };

export interface DhcpLease {
  address: string;
  prefix: number;
  server: string;
  routers: string[];
  dns: string[];
  domain?: string;
  /** seconds, from the server */
  leaseTime: number;
  renewTime: number;
  rebindTime: number;
  /** Date.now() when the lease was granted or last renewed */
  obtained: number;
}

export interface DhcpOptions {
  /** the interface (name or index; default the first) */
  iface?: string | number;
  /** sent as option 12 */
  hostname?: string;
  /** first retransmission timeout, ms (RFC 2131: 4 s, doubling up to 64 s, ±1 s) */
  retransmit?: number;
  /** give up a DISCOVER/REQUEST round after this many tries (then start again after a pause) */
  tries?: number;
  /** apply the lease to the stack (address, route, DNS); default true */
  apply?: boolean;
}

export interface DhcpMessage {
  op: number; xid: number; secs: number; flags: number;
  ciaddr: string; yiaddr: string; siaddr: string; giaddr: string; chaddr: Buffer;
  options: Map<number, Buffer>;
}

/** what parseDhcp throws for bytes that are not a well-formed DHCP message */
export class DhcpFormatError extends Error {}

const ip4 = (b: Buffer, off: number) => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
function ipBytes(a: string): Buffer { return Buffer.from(a.split('.').map(Number)); }

/** the options area at [off, end): code -> value (repeated codes concatenate, RFC 3396); bounded */
function readOptions(b: Buffer, off: number, end: number, into: Map<number, Buffer>): void {
  while (off < end) {
    const code = b[off++];
    if (code === OPT.PAD) continue;
    if (code === OPT.END) return;
    if (off >= end) throw new DhcpFormatError('option length past the end');
    const len = b[off++];
    if (off + len > end) throw new DhcpFormatError(`option ${code} past the end`);
    const v = b.subarray(off, off + len);
    const prev = into.get(code);
    into.set(code, prev ? Buffer.concat([prev, v]) : Buffer.from(v));
    off += len;
  }
}

export function parseDhcp(b: Buffer): DhcpMessage {
  if (b.length < 240) throw new DhcpFormatError('shorter than a BOOTP header with the magic cookie');
  if (b.readUInt32BE(236) !== MAGIC) throw new DhcpFormatError('no DHCP magic cookie');
  const hlen = b[2];
  if (b[1] !== 1 || hlen !== 6) throw new DhcpFormatError('not ethernet');
  const options = new Map<number, Buffer>();
  readOptions(b, 240, b.length, options);
  const overload = options.get(OPT.OVERLOAD);
  if (overload && overload.length === 1) {
    if (overload[0] & 1) readOptions(b, 108, 236, options);  // file
    if (overload[0] & 2) readOptions(b, 44, 108, options);   // sname
  }
  return {
    op: b[0], xid: b.readUInt32BE(4), secs: b.readUInt16BE(8), flags: b.readUInt16BE(10),
    ciaddr: ip4(b, 12), yiaddr: ip4(b, 16), siaddr: ip4(b, 20), giaddr: ip4(b, 24),
    chaddr: Buffer.from(b.subarray(28, 34)), options,
  };
}

function encode(type: number, xid: number, mac: Buffer, o: { ciaddr?: string; broadcast?: boolean; options: [number, Buffer][]; secs?: number }): Buffer {
  const head = Buffer.alloc(240);
  head[0] = BOOTREQUEST; head[1] = 1; head[2] = 6;
  head.writeUInt32BE(xid, 4);
  head.writeUInt16BE(Math.min(o.secs ?? 0, 0xffff), 8);
  if (o.broadcast) head.writeUInt16BE(0x8000, 10);
  if (o.ciaddr) ipBytes(o.ciaddr).copy(head, 12);
  mac.copy(head, 28);
  head.writeUInt32BE(MAGIC, 236);
  const parts: Buffer[] = [head, Buffer.from([OPT.TYPE, 1, type])];
  for (const [code, v] of o.options) {
    for (let i = 0; i < v.length || i === 0; i += 255) {
      const chunk = v.subarray(i, i + 255);
      parts.push(Buffer.from([code, chunk.length]), chunk);
      if (v.length === 0) break;
    }
  }
  parts.push(Buffer.from([OPT.END]));
  const msg = Buffer.concat(parts);
  // BOOTP relays expect at least 300 bytes
  return msg.length < 300 ? Buffer.concat([msg, Buffer.alloc(300 - msg.length)]) : msg;
}

/** RFC 1035 names in option 119 (with compression inside the option), bounded */
function readSearch(v: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  while (off < v.length && out.length < 16) {
    const labels: string[] = [];
    let p = off, jumps = 0, end = -1;
    for (;;) {
      if (p >= v.length) return out;
      const len = v[p];
      if ((len & 0xc0) === 0xc0) {
        if (p + 1 >= v.length || ++jumps > 16) return out;
        if (end < 0) end = p + 2;
        p = ((len & 0x3f) << 8) | v[p + 1];
        continue;
      }
      if (len === 0) { p++; break; }
      if (p + 1 + len > v.length) return out;
      labels.push(v.toString('latin1', p + 1, p + 1 + len));
      p += 1 + len;
    }
    out.push(labels.join('.'));
    off = end < 0 ? p : end;
  }
  return out;
}

function prefixOf(mask: Buffer | undefined, yiaddr: string): number {
  if (!mask || mask.length !== 4) {
    const first = Number(yiaddr.split('.')[0]);
    return first < 128 ? 8 : first < 192 ? 16 : 24;
  }
  const n = mask.readUInt32BE(0);
  let p = 0;
  while (p < 32 && (n & (0x80000000 >>> p))) p++;
  return p;
}

function addrs(v: Buffer | undefined): string[] {
  const out: string[] = [];
  if (!v) return out;
  for (let i = 0; i + 4 <= v.length; i += 4) out.push(ip4(v, i));
  return out;
}

type State = 'init' | 'selecting' | 'requesting' | 'bound' | 'renewing' | 'rebinding' | 'stopped';

/**
 * Events: 'lease' (a lease was obtained), 'renew' (extended), 'expire' (lost: address removed),
 * 'nak' (the server refused), 'error'.
 */
export class DhcpClient extends EventEmitter {
  readonly stack: UserStack;
  state: State = 'init';
  lease: DhcpLease | null = null;
  /** replies ignored: malformed, not ours, unexpected */
  stats = { sent: 0, received: 0, ignored: 0, naks: 0 };
  readonly ifindex: number;
  private readonly mac: Buffer;
  private readonly opts: Required<Pick<DhcpOptions, 'retransmit' | 'tries' | 'apply'>> & DhcpOptions;
  private sock: import('dgram').Socket | null = null;
  private xid = 0;
  private started = 0;
  private timer: NodeJS.Timeout | null = null;
  private leaseTimers: NodeJS.Timeout[] = [];
  private waiting: ((m: DhcpMessage) => boolean) | null = null;
  private applied: { address: string; prefix: number; routes: string[] } | null = null;

  constructor(stack: UserStack, options: DhcpOptions = {}) {
    super();
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'Object', options);
    this.stack = stack;
    const ifs = stack.interfaces;
    const ifo = options.iface === undefined ? ifs[0] : ifs.find((i) => i.name === options.iface || i.index === options.iface);
    if (!ifo) throw systemError('ENODEV', 'dhcp', String(options.iface ?? 'eth0'));
    this.ifindex = ifo.index;
    this.mac = Buffer.from(ifo.mac.split(':').map((x) => parseInt(x, 16)));
    if (options.hostname !== undefined && (typeof options.hostname !== 'string' || options.hostname.length > 255)) throw invalidArgValue('options.hostname', options.hostname, 'must be a string of at most 255 bytes');
    const retransmit = options.retransmit ?? 4000;
    const tries = options.tries ?? 4;
    if (!Number.isInteger(retransmit) || retransmit <= 0) throw invalidArgValue('options.retransmit', retransmit, 'must be a positive integer (ms)');
    if (!Number.isInteger(tries) || tries <= 0) throw invalidArgValue('options.tries', tries, 'must be a positive integer');
    this.opts = { ...options, retransmit, tries, apply: options.apply ?? true };
  }

  /** start (or restart) from INIT; resolves with the first lease, rejects when no server answers */
  async start(): Promise<DhcpLease> {
    if (this.state === 'stopped') throw codedError('ERR_DHCP_STOPPED', 'the DHCP client was stopped');
    await this.open();
    return new Promise((resolve, reject) => {
      const onLease = (l: DhcpLease) => { this.off('error', onError); resolve(l); };
      const onError = (e: Error) => { this.off('lease', onLease); reject(e); };
      this.once('lease', onLease);
      this.once('error', onError);
      this.discover();
    });
  }

  /** ask the server that granted the lease to extend it now (what T1 does) */
  renew(): Promise<DhcpLease> { return this.extend('renewing'); }
  /** ask any server to extend the lease now, by broadcast (what T2 does) */
  rebind(): Promise<DhcpLease> { return this.extend('rebinding'); }

  /** give the lease back (DHCPRELEASE, sent from the leased address) and then remove it from the stack */
  async release(): Promise<void> {
    const lease = this.lease;
    this.clearLeaseTimers();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.waiting = null;
    if (lease && this.sock) {
      const msg = encode(RELEASE, randomInt(2 ** 32), this.mac, { ciaddr: lease.address, options: [[OPT.SERVER, ipBytes(lease.server)], ...this.clientId()] });
      this.stats.sent++;
      await new Promise<void>((resolve) => this.sock!.send(msg, 67, lease.server, (err) => { if (err) this.fail(err); resolve(); }));
    }
    this.unapply();
    this.lease = null;
    if (this.state !== 'stopped') this.state = 'init';
  }

  /** stop everything (no release: the lease stays on the stack until it expires or is released) */
  stop(): void {
    this.state = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clearLeaseTimers();
    this.waiting = null;
    if (this.sock) { try { this.sock.close(); } catch { /* closed with the stack */ } }
    this.sock = null;
  }

  // -- internals

  private clientId(): [number, Buffer][] {
    const o: [number, Buffer][] = [[OPT.CLIENT_ID, Buffer.concat([Buffer.from([1]), this.mac])]];
    if (this.opts.hostname) o.push([OPT.HOSTNAME, Buffer.from(this.opts.hostname)]);
    return o;
  }

  private open(): Promise<void> {
    if (this.sock) return Promise.resolve();
    const s = this.stack.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    this.sock = s;
    s.on('message', (buf: Buffer, rinfo) => this.onMessage(buf, rinfo.port));
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind(68, () => {
        s.off('error', reject);
        s.on('error', (e) => this.fail(e));
        s.setBroadcast(true);
        s.unref();
        resolve();
      });
    });
  }

  /** 'error' for whoever listens (start() does); a client running on its own just retries */
  private fail(e: Error): void {
    if (this.state !== 'stopped' && this.listenerCount('error') > 0) this.emit('error', e);
  }

  private send(msg: Buffer, to = '255.255.255.255'): void {
    if (!this.sock) return;
    this.stats.sent++;
    this.sock.send(msg, 67, to, (err) => { if (err) this.fail(err); });
  }

  private onMessage(buf: Buffer, port: number): void {
    this.stats.received++;
    let m: DhcpMessage;
    try { m = parseDhcp(buf); } catch { this.stats.ignored++; return; }
    if (port !== 67 || m.op !== BOOTREPLY || m.xid !== this.xid || !m.chaddr.equals(this.mac) || !this.waiting || !this.waiting(m)) this.stats.ignored++;
  }

  /** send msg now and again with RFC 2131 backoff until accept() takes a reply or tries run out */
  private exchange(make: () => Buffer, to: string | undefined, accept: (m: DhcpMessage) => boolean, onGiveUp: () => void): void {
    let attempt = 0;
    const shoot = () => {
      if (this.state === 'stopped') return;
      if (attempt >= this.opts.tries) { this.waiting = null; onGiveUp(); return; }
      const base = Math.min(this.opts.retransmit * 2 ** attempt, 64000);
      attempt++;
      this.send(make(), to);
      this.timer = setTimeout(shoot, Math.max(1, base + randomInt(-Math.floor(base / 4), Math.floor(base / 4) + 1)));
      this.timer.unref();
    };
    this.waiting = (m) => {
      if (!accept(m)) return false;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      return true;
    };
    shoot();
  }

  private params(): [number, Buffer] {
    return [OPT.PARAMS, Buffer.from([OPT.MASK, OPT.ROUTER, OPT.DNS, OPT.DOMAIN, OPT.LEASE, OPT.T1, OPT.T2, OPT.SEARCH])];
  }

  private discover(): void {
    this.state = 'selecting';
    this.xid = randomInt(2 ** 32);
    this.started = Date.now();
    const secs = () => Math.floor((Date.now() - this.started) / 1000);
    this.exchange(() => encode(DISCOVER, this.xid, this.mac, { broadcast: true, secs: secs(), options: [this.params(), ...this.clientId()] }), undefined, (m) => {
      if (m.options.get(OPT.TYPE)?.[0] !== OFFER || !isIPv4(m.yiaddr) || m.yiaddr === '0.0.0.0') return false;
      const server = m.options.get(OPT.SERVER);
      if (!server || server.length !== 4) return false;
      this.request(m.yiaddr, ip4(server, 0));
      return true;
    }, () => this.retryLater());
  }

  private request(address: string, server: string): void {
    this.state = 'requesting';
    const secs = () => Math.floor((Date.now() - this.started) / 1000);
    this.exchange(() => encode(REQUEST, this.xid, this.mac, {
      broadcast: true, secs: secs(), options: [[OPT.REQ_IP, ipBytes(address)], [OPT.SERVER, ipBytes(server)], this.params(), ...this.clientId()],
    }), undefined, (m) => this.onAckOrNak(m, 'lease'), () => this.retryLater());
  }

  private extend(state: 'renewing' | 'rebinding'): Promise<DhcpLease> {
    const lease = this.lease;
    if (!lease || this.state === 'stopped') return Promise.reject(codedError('ERR_DHCP_NO_LEASE', 'there is no lease to extend'));
    this.state = state;
    this.xid = randomInt(2 ** 32);
    this.started = Date.now();
    return new Promise((resolve, reject) => {
      const onRenew = (l: DhcpLease) => { this.off('nak', onNak); resolve(l); };
      const onNak = () => { this.off('renew', onRenew); reject(codedError('ERR_DHCP_NAK', 'the server refused to extend the lease')); };
      this.once('renew', onRenew);
      this.once('nak', onNak);
      // RFC 2131 4.3.2: RENEWING/REBINDING requests carry ciaddr, no requested address or server id
      this.exchange(() => encode(REQUEST, this.xid, this.mac, { ciaddr: lease.address, options: [this.params(), ...this.clientId()] }),
        state === 'renewing' ? lease.server : undefined, (m) => this.onAckOrNak(m, 'renew'), () => {
          this.off('renew', onRenew);
          this.off('nak', onNak);
          this.state = 'bound';
          reject(systemError('ETIMEDOUT', 'dhcp', state === 'renewing' ? lease.server : '255.255.255.255', 67, `no answer to the ${state === 'renewing' ? 'renewal' : 'rebinding'} request`));
        });
    });
  }

  private onAckOrNak(m: DhcpMessage, event: 'lease' | 'renew'): boolean {
    const type = m.options.get(OPT.TYPE)?.[0];
    if (type === NAK) {
      this.stats.naks++;
      this.unapply();
      this.lease = null;
      this.clearLeaseTimers();
      this.emit('nak', m);
      this.state = 'init';
      this.timer = setTimeout(() => this.discover(), 1000);
      this.timer.unref();
      return true;
    }
    if (type !== ACK || m.yiaddr === '0.0.0.0') return false;
    const o = m.options;
    const leaseTime = o.get(OPT.LEASE)?.length === 4 ? o.get(OPT.LEASE)!.readUInt32BE(0) : 0xffffffff;
    const t1 = o.get(OPT.T1)?.length === 4 ? o.get(OPT.T1)!.readUInt32BE(0) : Math.floor(leaseTime * 0.5);
    const t2 = o.get(OPT.T2)?.length === 4 ? o.get(OPT.T2)!.readUInt32BE(0) : Math.floor(leaseTime * 0.875);
    const server = o.get(OPT.SERVER)?.length === 4 ? ip4(o.get(OPT.SERVER)!, 0) : (this.lease?.server ?? m.siaddr);
    const domain = o.get(OPT.DOMAIN)?.toString('latin1').replace(/\0+$/, '');
    const lease: DhcpLease = {
      address: m.yiaddr, prefix: prefixOf(o.get(OPT.MASK), m.yiaddr), server,
      routers: addrs(o.get(OPT.ROUTER)), dns: addrs(o.get(OPT.DNS)), domain: domain || undefined,
      leaseTime, renewTime: t1, rebindTime: t2, obtained: Date.now(),
    };
    const search = o.get(OPT.SEARCH) ? readSearch(o.get(OPT.SEARCH)!) : [];
    this.lease = lease;
    this.state = 'bound';
    if (this.opts.apply) this.apply(lease, search);
    this.armLeaseTimers(lease);
    this.emit(event, lease);
    return true;
  }

  private apply(lease: DhcpLease, search: string[]): void {
    if (this.applied && (this.applied.address !== lease.address || this.applied.prefix !== lease.prefix)) this.unapply();
    if (!this.applied) {
      this.stack.addAddress(`${lease.address}/${lease.prefix}`, this.ifindex);
      const routes: string[] = [];
      if (lease.routers[0]) {
        try { this.stack.addRoute({ to: 'default', via: lease.routers[0] }); routes.push('default'); } catch { /* a default route is there already */ }
      }
      this.applied = { address: lease.address, prefix: lease.prefix, routes };
    }
    if (lease.dns.length) this.stack.dns.setServers(lease.dns);
    const domains = [...(lease.domain ? [lease.domain] : []), ...search];
    if (domains.length) this.stack.dns.setSearch(domains);
  }

  private unapply(): void {
    if (!this.applied || this.stack.closed) { this.applied = null; return; }
    for (const r of this.applied.routes) { try { this.stack.removeRoute(r); } catch { /* gone */ } }
    try { this.stack.removeAddress(this.applied.address, this.ifindex); } catch { /* gone */ }
    this.applied = null;
  }

  private armLeaseTimers(lease: DhcpLease): void {
    this.clearLeaseTimers();
    if (lease.leaseTime === 0xffffffff) return;
    const at = (s: number, fn: () => void) => {
      // timers beyond 2^31-1 ms are not kept by Node; such leases are renewed when the clock gets there
      const t = setTimeout(fn, Math.min(s * 1000, 2 ** 31 - 1));
      t.unref();
      this.leaseTimers.push(t);
    };
    at(lease.renewTime, () => { if (this.state === 'bound') this.renew().catch(() => { /* T2 will try */ }); });
    at(lease.rebindTime, () => { if (this.state === 'bound' || this.state === 'renewing') this.rebind().catch(() => { /* expiry follows */ }); });
    at(lease.leaseTime, () => {
      this.unapply();
      const l = this.lease;
      this.lease = null;
      this.emit('expire', l);
      this.discover();
    });
  }

  private clearLeaseTimers(): void {
    for (const t of this.leaseTimers) clearTimeout(t);
    this.leaseTimers = [];
  }

  private retryLater(): void {
    this.state = 'init';
    this.fail(systemError('ETIMEDOUT', 'dhcp', '255.255.255.255', 67, 'no DHCP server answered'));
    // a listener may have stopped the client
    if ((this.state as State) === 'stopped') return;
    this.timer = setTimeout(() => this.discover(), 10000);
    this.timer.unref();
  }
}

