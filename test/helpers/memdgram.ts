// An in-memory datagram network for tests: a pure-JS Stack whose SOCK_DGRAM raw sockets
// honour the raw.ts contract (Berkeley semantics, non-blocking, level-triggered readiness
// once per event-loop turn through setImmediate), without touching the kernel.
//
// What it models, as Linux does it for UDP on loopback:
// - addresses: the wildcard, 127.0.0.0/8 and ::1 are local; binding anything else is
//   EADDRNOTAVAIL. IPv4 and IPv6 sockets are separate worlds (no v4-mapped traffic).
// - ports: 0 picks an ephemeral one (49152-65535); a port in use is EADDRINUSE unless both
//   sockets set SO_REUSEADDR. Sending from an unbound socket binds it implicitly.
// - sizes: EMSGSIZE above 65507 bytes (IPv4) or 65527 (IPv6); zero-length datagrams work.
// - receive queues are bounded by SO_RCVBUF (bytes); what does not fit is dropped.
// - a connected socket only receives from its peer; sending to a port nobody has bound
//   makes the next recvfrom() of a connected sender throw ECONNREFUSED (the ICMP error).
// - multicast: members of a group (addMembership) bound to the destination port receive it;
//   the sender too when IP_MULTICAST_LOOP is on (the default).
// - back-pressure, for tests: MemNetwork.congest(true) makes every send would-block (0)
//   until congest(false), which makes watched sockets writable again.
// No stream sockets: socket(_, SOCK_STREAM) throws EPROTONOSUPPORT.
import { EventEmitter } from 'events';
import { isIP, isIPv4, isIPv6 } from 'net';

import { systemError } from '../../lib/errors';
import {
  AF_INET, AF_INET6, SOCK_DGRAM,
  type Datagram, type LookupCallback, type RawSocket, type SockAddr, type SockOpt, type Stack,
} from '../../lib/raw';

const MAX_PAYLOAD_V4 = 65507;
const MAX_PAYLOAD_V6 = 65527;
const DEFAULT_BUFFER = 212992;
const EPHEMERAL_LOW = 49152;
const EPHEMERAL_HIGH = 65535;

function familyOf(domain: number): 'IPv4' | 'IPv6' {
  return domain === AF_INET6 ? 'IPv6' : 'IPv4';
}

function wildcardOf(domain: number): string {
  return domain === AF_INET6 ? '::' : '0.0.0.0';
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

function isLocal(domain: number, address: string): boolean {
  if (domain === AF_INET) return isWildcard(address) || /^127\./.test(address);
  return address === '::' || address === '::1';
}

function isMulticast(domain: number, address: string): boolean {
  if (domain === AF_INET) {
    if (!isIPv4(address)) return false;
    const first = Number(address.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return isIPv6(address) && /^ff/i.test(address);
}

/** valid IP literal of the socket's domain, else EINVAL for `syscall` */
function checkAddress(domain: number, address: string, syscall: string, port?: number): void {
  const ok = domain === AF_INET ? isIPv4(address) : isIPv6(address);
  if (!ok) throw systemError('EINVAL', syscall, address, port);
}

/** An in-memory network: the sockets of every MemStack attached to it can reach each other. */
export class MemNetwork {
  readonly sockets = new Set<MemDgramSocket>();
  private congested = false;

  /** make every send would-block (true), or release the pressure (false) */
  congest(on: boolean): void {
    this.congested = on;
    if (!on) for (const s of this.sockets) s.poke();
  }

  get isCongested(): boolean { return this.congested; }

  /** the sockets bound on `port` of `domain` that accept traffic to `address` */
  receivers(domain: number, address: string, port: number): MemDgramSocket[] {
    const out: MemDgramSocket[] = [];
    const multicast = isMulticast(domain, address);
    for (const s of this.sockets) {
      const b = s.boundAddress;
      if (!b || s.domain !== domain || b.port !== port) continue;
      if (multicast) {
        if (s.isMember(address) && (isWildcard(b.address) || b.address === address)) out.push(s);
      } else if (isWildcard(b.address) || b.address === address) {
        out.push(s);
      }
    }
    return out;
  }

  portInUse(domain: number, address: string, port: number, by: MemDgramSocket): boolean {
    for (const s of this.sockets) {
      const b = s.boundAddress;
      if (s === by || !b || s.domain !== domain || b.port !== port) continue;
      const overlap = isWildcard(b.address) || isWildcard(address) || b.address === address;
      if (!overlap) continue;
      if (s.getOption('SO_REUSEADDR') && by.getOption('SO_REUSEADDR')) continue;
      return true;
    }
    return false;
  }

  ephemeralPort(domain: number, address: string, by: MemDgramSocket): number {
    const span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1;
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = EPHEMERAL_LOW + ((start + i) % span);
      if (!this.portInUse(domain, address, port, by)) return port;
    }
    throw systemError('EADDRINUSE', 'bind', address, 0);
  }
}

export class MemDgramSocket extends EventEmitter implements RawSocket {
  readonly stack: Stack;
  readonly domain: number;
  readonly type = SOCK_DGRAM;
  readonly protocol = 0;
  readonly fd = -1;
  private readonly net: MemNetwork;
  private isClosed = false;
  private bound: SockAddr | null = null;
  private peer: SockAddr | null = null;
  private readonly queue: Datagram[] = [];
  private queuedBytes = 0;
  private pendingError: Error | null = null;
  private readonly options = new Map<SockOpt, number>();
  private readonly groups = new Set<string>();
  private wantRead = false;
  private wantWrite = false;
  private scheduled = false;
  private refed = true;
  /** keeps the event loop alive while watched and ref'd, like a kernel poll handle */
  private keepAlive: NodeJS.Timeout | null = null;

  constructor(stack: Stack, net: MemNetwork, domain: number) {
    super();
    this.stack = stack;
    this.net = net;
    this.domain = domain;
    this.options.set('SO_RCVBUF', DEFAULT_BUFFER);
    this.options.set('SO_SNDBUF', DEFAULT_BUFFER);
    this.options.set('IP_TTL', 64);
    this.options.set('IPV6_UNICAST_HOPS', 64);
    this.options.set('IP_MULTICAST_TTL', 1);
    this.options.set('IPV6_MULTICAST_HOPS', 1);
    this.options.set('IP_MULTICAST_LOOP', 1);
    this.options.set('IPV6_MULTICAST_LOOP', 1);
    this.options.set('SO_TYPE', SOCK_DGRAM);
    net.sockets.add(this);
  }

  get closed(): boolean { return this.isClosed; }
  get boundAddress(): SockAddr | null { return this.bound; }
  isMember(group: string): boolean { return this.groups.has(group); }

  private check(syscall: string): void {
    if (this.isClosed) throw systemError('EBADF', syscall);
  }

  bind(address: string, port: number): void {
    this.check('bind');
    const addr = address === '' ? wildcardOf(this.domain) : address;
    checkAddress(this.domain, addr, 'bind', port);
    if (this.bound) throw systemError('EINVAL', 'bind', addr, port);
    if (!isLocal(this.domain, addr)) throw systemError('EADDRNOTAVAIL', 'bind', addr, port);
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw systemError('EINVAL', 'bind', addr, port);
    if (port !== 0 && this.net.portInUse(this.domain, addr, port, this)) throw systemError('EADDRINUSE', 'bind', addr, port);
    const p = port === 0 ? this.net.ephemeralPort(this.domain, addr, this) : port;
    this.bound = { address: addr, port: p, family: familyOf(this.domain) };
  }

  private autobind(): void {
    if (!this.bound) this.bind('', 0);
  }

  listen(): void {
    this.check('listen');
    throw systemError('EOPNOTSUPP', 'listen');
  }

  accept(): RawSocket | null {
    this.check('accept');
    throw systemError('EOPNOTSUPP', 'accept');
  }

  connect(address: string, port: number): Promise<void> {
    try {
      this.check('connect');
      checkAddress(this.domain, address, 'connect', port);
      if (!Number.isInteger(port) || port <= 0 || port > 0xffff) throw systemError('EINVAL', 'connect', address, port);
      this.autobind();
      // like Linux: connecting to the wildcard means this host; a wildcard-bound socket gets
      // the source address of the route to the peer (always loopback here)
      const loopback = this.domain === AF_INET ? '127.0.0.1' : '::1';
      const to = isWildcard(address) ? loopback : address;
      const b = this.bound as SockAddr;
      if (isWildcard(b.address)) this.bound = { ...b, address: loopback };
      this.peer = { address: to, port, family: familyOf(this.domain) };
      // datagrams already queued from others are dropped, as the kernel filters on connect
      this.dropQueuedExcept(this.peer);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  disconnect(): void {
    this.check('connect');
    this.peer = null;
  }

  /** an ICMP error waiting for a connected socket is reported by its next send too */
  private takeSendError(): void {
    if (!this.pendingError || !this.peer) return;
    const err = this.pendingError as Error & { code: string };
    this.pendingError = null;
    throw systemError(err.code, 'send');
  }

  send(data: Uint8Array): number {
    this.check('send');
    if (!this.peer) throw systemError('EDESTADDRREQ', 'send');
    this.takeSendError();
    return this.transmit(data, this.peer.address, this.peer.port, true);
  }

  sendto(data: Uint8Array, address: string, port: number): number {
    this.check('send');
    checkAddress(this.domain, address, 'send', port);
    if (!Number.isInteger(port) || port <= 0 || port > 0xffff) throw systemError('EINVAL', 'send', address, port);
    this.takeSendError();
    return this.transmit(data, address, port, false);
  }

  private transmit(data: Uint8Array, address: string, port: number, connected: boolean): number {
    const max = this.domain === AF_INET ? MAX_PAYLOAD_V4 : MAX_PAYLOAD_V6;
    const fail = (code: string) => (connected ? systemError(code, 'send') : systemError(code, 'send', address, port));
    if (data.length > max) throw fail('EMSGSIZE');
    if (this.domain === AF_INET && address === '255.255.255.255' && !this.getOption('SO_BROADCAST')) throw fail('EACCES');
    if (this.net.isCongested) return -1;
    this.autobind();
    const to = isWildcard(address) ? (this.domain === AF_INET ? '127.0.0.1' : '::1') : address;
    const from = this.bound as SockAddr;
    const source = isWildcard(from.address) ? (this.domain === AF_INET ? '127.0.0.1' : '::1') : from.address;
    const multicast = isMulticast(this.domain, to);
    let receivers = this.net.receivers(this.domain, to, port);
    if (multicast && !this.getOption(this.domain === AF_INET ? 'IP_MULTICAST_LOOP' : 'IPV6_MULTICAST_LOOP')) {
      receivers = receivers.filter((r) => r !== this);
    }
    if (receivers.length === 0 && !multicast && this.peer) {
      // ICMP port unreachable comes back to a connected sender
      this.pendingError = systemError('ECONNREFUSED', 'recvmsg');
      this.poke();
    }
    for (const r of receivers) r.deliver(Buffer.from(data), source, from.port);
    return data.length;
  }

  /** a datagram arrives from address:port */
  deliver(data: Buffer, address: string, port: number): void {
    if (this.isClosed) return;
    if (this.peer && (this.peer.address !== address || this.peer.port !== port)) return;
    if (this.queuedBytes + data.length > this.getOption('SO_RCVBUF')) return; // receive buffer full: dropped
    this.queue.push({ data, address, port, family: familyOf(this.domain) });
    this.queuedBytes += data.length;
    this.poke();
  }

  private dropQueuedExcept(peer: SockAddr): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const d = this.queue[i];
      if (d.address !== peer.address || d.port !== peer.port) {
        this.queuedBytes -= d.data.length;
        this.queue.splice(i, 1);
      }
    }
  }

  recv(): Buffer | null {
    const d = this.recvfrom();
    return d ? d.data : null;
  }

  recvfrom(): Datagram | null {
    this.check('recvmsg');
    if (this.pendingError) {
      const err = this.pendingError;
      this.pendingError = null;
      throw err;
    }
    const d = this.queue.shift();
    if (!d) return null;
    this.queuedBytes -= d.data.length;
    return d;
  }

  shutdown(): void {
    this.check('shutdown');
    throw systemError('ENOTCONN', 'shutdown');
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.net.sockets.delete(this);
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.wantRead = this.wantWrite = false;
    this.updateKeepAlive();
  }

  abort(): void {
    this.close();
  }

  localAddress(): SockAddr {
    this.check('getsockname');
    return this.bound ? { ...this.bound } : { address: wildcardOf(this.domain), port: 0, family: familyOf(this.domain) };
  }

  remoteAddress(): SockAddr | null {
    this.check('getpeername');
    return this.peer ? { ...this.peer } : null;
  }

  setOption(name: SockOpt, value: number | boolean): void {
    this.check('setsockopt');
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    switch (name) {
      case 'IP_TTL': case 'IPV6_UNICAST_HOPS':
        if (v !== -1 && (v < 1 || v > 255)) throw systemError('EINVAL', 'setsockopt');
        break;
      case 'IP_MULTICAST_TTL': case 'IPV6_MULTICAST_HOPS':
        if (v < -1 || v > 255) throw systemError('EINVAL', 'setsockopt');
        break;
      case 'SO_RCVBUF': case 'SO_SNDBUF':
        // Linux doubles the value for bookkeeping overhead, with a floor
        this.options.set(name, Math.max(2304, v * 2));
        return;
      case 'SO_TYPE': case 'SO_ERROR':
        throw systemError('ENOPROTOOPT', 'setsockopt');
      case 'IPV6_V6ONLY':
        if (this.domain !== AF_INET6) throw systemError('ENOPROTOOPT', 'setsockopt');
        break;
      case 'TCP_NODELAY': case 'TCP_KEEPIDLE': case 'TCP_KEEPINTVL': case 'TCP_KEEPCNT': case 'TCP_MAXSEG':
        throw systemError('EOPNOTSUPP', 'setsockopt');
      default:
        break;
    }
    this.options.set(name, v);
  }

  getOption(name: SockOpt): number {
    this.check('getsockopt');
    if (name === 'SO_ERROR') {
      const e = this.pendingError as (Error & { errno?: number }) | null;
      this.pendingError = null;
      return e && typeof e.errno === 'number' ? -e.errno : 0;
    }
    return this.options.get(name) ?? 0;
  }

  setKeepAlive(): void {
    this.check('setsockopt');
    throw systemError('EOPNOTSUPP', 'setsockopt');
  }

  setNoDelay(): void {
    this.check('setsockopt');
    throw systemError('EOPNOTSUPP', 'setsockopt');
  }

  private checkInterface(iface: string | undefined, syscall: string): void {
    if (iface === undefined) return;
    if (isIP(iface) === 0) throw systemError('EINVAL', syscall);
    if (this.domain === AF_INET && !isIPv4(iface)) throw systemError('EINVAL', syscall);
    if (!isLocal(this.domain, iface) && iface !== '0.0.0.0') throw systemError('ENODEV', syscall);
  }

  addMembership(group: string, iface?: string): void {
    this.check('addMembership');
    if (!isMulticast(this.domain, group)) throw systemError('EINVAL', 'addMembership');
    this.checkInterface(iface, 'addMembership');
    if (this.groups.has(group)) throw systemError('EADDRINUSE', 'addMembership');
    this.groups.add(group);
  }

  dropMembership(group: string, iface?: string): void {
    this.check('dropMembership');
    if (!isMulticast(this.domain, group)) throw systemError('EINVAL', 'dropMembership');
    this.checkInterface(iface, 'dropMembership');
    if (!this.groups.delete(group)) throw systemError('EADDRNOTAVAIL', 'dropMembership');
  }

  setMulticastInterface(iface: string): void {
    this.check('setMulticastInterface');
    const scoped = iface.split('%')[0];
    if (this.domain === AF_INET ? !isIPv4(iface) : !isIPv6(scoped)) throw systemError('EINVAL', 'setMulticastInterface');
    if (!isLocal(this.domain, scoped)) throw systemError('EADDRNOTAVAIL', 'setMulticastInterface');
  }

  watch(readable: boolean, writable: boolean): void {
    if (this.isClosed) return;
    this.wantRead = readable;
    this.wantWrite = writable;
    this.updateKeepAlive();
    this.poke();
  }

  ref(): void {
    this.refed = true;
    if (this.keepAlive) this.keepAlive.ref();
  }

  unref(): void {
    this.refed = false;
    if (this.keepAlive) this.keepAlive.unref();
  }

  private updateKeepAlive(): void {
    const want = !this.isClosed && (this.wantRead || this.wantWrite);
    if (want && !this.keepAlive) {
      this.keepAlive = setInterval(() => { /* holds the loop open, as a poll handle would */ }, 1 << 30);
      if (!this.refed) this.keepAlive.unref();
    } else if (!want && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = null;
    }
  }

  private readableNow(): boolean {
    return this.wantRead && (this.queue.length > 0 || this.pendingError !== null);
  }

  private writableNow(): boolean {
    return this.wantWrite && !this.net.isCongested;
  }

  /** schedule one readiness check on the next loop turn, if anything could be reported */
  poke(): void {
    if (this.scheduled || this.isClosed) return;
    if (!this.readableNow() && !this.writableNow()) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.isClosed) return;
      if (this.readableNow()) this.emit('readable');
      if (!this.isClosed && this.writableNow()) this.emit('writable');
      // level-triggered: still ready after the consumer ran means another event next turn
      this.poke();
    });
  }
}

export interface MemStackOptions {
  name?: string;
  network?: MemNetwork;
  /** families this stack has; both by default */
  families?: number[];
}

let counter = 0;

/** A Stack whose datagram sockets live on a MemNetwork. `net` is not provided. */
export class MemStack implements Stack {
  readonly kind = 'user' as const;
  readonly name: string;
  readonly network: MemNetwork;
  private readonly families: number[];
  private isClosed = false;
  private dgramModule: typeof import('dgram') | undefined;

  constructor(options: MemStackOptions = {}) {
    this.name = options.name ?? `mem${++counter}`;
    this.network = options.network ?? new MemNetwork();
    this.families = options.families ?? [AF_INET, AF_INET6];
  }

  get closed(): boolean { return this.isClosed; }

  get net(): typeof import('net') {
    throw new Error(`the in-memory test stack '${this.name}' has no stream sockets`);
  }

  get dgram(): typeof import('dgram') {
    if (!this.dgramModule) {
      // loaded late, like the real stacks do: dgram.ts only needs this stack's raw sockets
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const { createDgram } = require('../../lib/dgram') as typeof import('../../lib/dgram');
      this.dgramModule = createDgram(this);
    }
    return this.dgramModule;
  }

  supports(domain: number): boolean {
    return this.families.includes(domain);
  }

  socket(domain: number, type: number): RawSocket {
    if (this.isClosed) throw systemError('ENONET', 'socket');
    if (!this.supports(domain)) throw systemError('EAFNOSUPPORT', 'socket');
    if (type !== SOCK_DGRAM) throw systemError('EPROTONOSUPPORT', 'socket');
    return new MemDgramSocket(this, this.network, domain);
  }

  lookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void {
    const family = options.family ?? 0;
    const answers: { address: string; family: number }[] = [];
    const literal = isIP(hostname);
    if (literal !== 0) answers.push({ address: hostname, family: literal });
    else if (hostname === 'localhost') {
      if (family !== 6) answers.push({ address: '127.0.0.1', family: 4 });
      if (family !== 4) answers.push({ address: '::1', family: 6 });
    }
    setImmediate(() => {
      if (answers.length === 0) {
        // shaped like dns.lookup's: errno is libuv's UV_EAI_NONAME, the name in `hostname`
        const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
          errno: -3008, code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname,
        });
        callback(err, '', undefined);
      } else if (options.all) {
        callback(null, answers);
      } else {
        callback(null, answers[0].address, answers[0].family);
      }
    });
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const s of [...this.network.sockets]) if (s.stack === this) s.close();
  }
}
