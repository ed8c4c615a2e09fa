// A DNS resolver that belongs to a stack: its queries leave through that stack's own UDP (and
// TCP when an answer comes back truncated), to that stack's servers, with that stack's search
// domains and static host entries. Never the host's resolver. The surface follows Node's dns:
// lookup(hostname, options, cb), resolve4/resolve6/resolve(hostname, [options], cb), promises.
import { randomInt } from 'crypto';
import { isIP } from 'net';

import { ipv6Text } from './addr';
import { codedError, invalidArgType, invalidArgValue } from './errors';
import type { Stack } from './raw';

export interface ResolverOptions {
  /** name servers, 'ADDR' or 'ADDR:PORT' / '[ADDR6]:PORT' (port 53 by default) */
  servers?: string[];
  /** search domains for names with fewer dots than ndots (lookup only, as getaddrinfo) */
  search?: string[];
  ndots?: number;
  /** static entries, checked before DNS: name -> address(es) */
  hosts?: Record<string, string | string[]>;
  /** per-try timeout, ms (default 2000) */
  timeout?: number;
  /** tries per server (default 2) */
  tries?: number;
}

export interface RecordWithTtl { address: string; ttl: number }
type Family = 0 | 4 | 6;
type LookupAddress = { address: string; family: number };
type LookupCallback = (err: NodeJS.ErrnoException | null, address?: string | LookupAddress[], family?: number) => void;

const TYPE_A = 1, TYPE_CNAME = 5, TYPE_AAAA = 28;
const RCODE_NXDOMAIN = 3;


// ---- messages

/** the question, encoded (RFC 1035 4.1); throws ERR_INVALID_ARG_VALUE for a name DNS cannot carry */
export function encodeQuery(id: number, name: string, type: number): Buffer {
  const labels = name.replace(/\.$/, '').split('.');
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  parts.push(header);
  let total = 1;
  for (const l of labels) {
    const b = Buffer.from(l, 'utf8');
    if (b.length === 0 || b.length > 63) throw invalidArgValue('hostname', name, 'has an empty label or one longer than 63 bytes');
    total += 1 + b.length;
    parts.push(Buffer.from([b.length]), b);
  }
  if (total > 255) throw invalidArgValue('hostname', name, 'is longer than 255 bytes');
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(1, 3); // IN
  parts.push(tail);
  return Buffer.concat(parts);
}

export interface DnsRecord { name: string; type: number; ttl: number; data: Buffer; offset: number }
export interface DnsMessage { id: number; response: boolean; truncated: boolean; rcode: number; question: { name: string; type: number } | null; answers: DnsRecord[] }

/** what parseMessage throws for bytes that are not a well-formed DNS message */
export class DnsFormatError extends Error {}
const Malformed = DnsFormatError;

/** a domain name at off (with compression, bounded); returns the name (lower case) and the offset after it */
function readName(buf: Buffer, off: number): [string, number] {
  const labels: string[] = [];
  let end = -1;
  let jumps = 0;
  let length = 0;
  for (;;) {
    if (off >= buf.length) throw new Malformed('name past the end');
    const len = buf[off];
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new Malformed('pointer past the end');
      if (end < 0) end = off + 2;
      if (++jumps > 64) throw new Malformed('compression loop');
      off = ((len & 0x3f) << 8) | buf[off + 1];
      continue;
    }
    if (len & 0xc0) throw new Malformed('reserved label type');
    if (len === 0) { off++; break; }
    if (off + 1 + len > buf.length) throw new Malformed('label past the end');
    length += len + 1;
    if (length > 255) throw new Malformed('name too long');
    labels.push(buf.toString('latin1', off + 1, off + 1 + len).toLowerCase());
    off += 1 + len;
  }
  return [labels.join('.'), end < 0 ? off : end];
}

/** parse a message; throws on any malformation (never reads out of bounds) */
export function parseMessage(buf: Buffer): DnsMessage {
  if (buf.length < 12) throw new Malformed('shorter than a header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4), an = buf.readUInt16BE(6);
  let off = 12;
  let question: DnsMessage['question'] = null;
  for (let i = 0; i < qd; i++) {
    const [name, o] = readName(buf, off);
    if (o + 4 > buf.length) throw new Malformed('question past the end');
    if (i === 0) question = { name, type: buf.readUInt16BE(o) };
    off = o + 4;
  }
  const answers: DnsRecord[] = [];
  const truncated = (flags & 0x0200) !== 0;
  for (let i = 0; i < an; i++) {
    if (truncated && off >= buf.length) break;
    const [name, o] = readName(buf, off);
    if (o + 10 > buf.length) throw new Malformed('record past the end');
    const type = buf.readUInt16BE(o);
    const ttl = buf.readUInt32BE(o + 4);
    const rdlen = buf.readUInt16BE(o + 8);
    if (o + 10 + rdlen > buf.length) throw new Malformed('record data past the end');
    answers.push({ name, type, ttl, data: buf.subarray(o + 10, o + 10 + rdlen), offset: o + 10 });
    off = o + 10 + rdlen;
  }
  return { id, response: (flags & 0x8000) !== 0, truncated, rcode: flags & 0xf, question, answers };
}

function addressOf(r: DnsRecord): string | null {
  if (r.type === TYPE_A && r.data.length === 4) return Array.from(r.data).join('.');
  if (r.type === TYPE_AAAA && r.data.length === 16) return ipv6Text(r.data);
  return null;
}

/** the addresses of type for name in a message's answers, following CNAMEs (bounded) */
function extract(buf: Buffer, msg: DnsMessage, name: string, type: number): RecordWithTtl[] {
  const names = new Set([name.toLowerCase().replace(/\.$/, '')]);
  for (let round = 0; round < 16; round++) {
    let grew = false;
    for (const r of msg.answers) {
      if (r.type !== TYPE_CNAME || !names.has(r.name)) continue;
      const [target] = readName(buf, r.offset);
      if (!names.has(target)) { names.add(target); grew = true; }
    }
    if (!grew) break;
  }
  const out: RecordWithTtl[] = [];
  for (const r of msg.answers) {
    if (r.type !== type || !names.has(r.name)) continue;
    const a = addressOf(r);
    if (a) out.push({ address: a, ttl: r.ttl });
  }
  return out;
}

// ---- errors shaped like Node's

function dnsError(code: string, syscall: string, hostname: string): NodeJS.ErrnoException & { hostname: string } {
  const e = new Error(`${syscall} ${code} ${hostname}`) as NodeJS.ErrnoException & { hostname: string };
  e.code = code;
  e.errno = undefined;
  e.syscall = syscall;
  e.hostname = hostname;
  return e;
}

function parseServer(s: string): { address: string; port: number; family: 4 | 6 } {
  if (typeof s !== 'string') throw invalidArgType('servers[]', 'string', s);
  let address = s, port = 53;
  const b = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (b) { address = b[1]; if (b[2]) port = Number(b[2]); }
  else if (isIP(s) !== 6) {
    const m = /^([^:]+):(\d+)$/.exec(s);
    if (m) { address = m[1]; port = Number(m[2]); }
  }
  const f = isIP(address);
  if (!f || !(port > 0 && port < 65536)) throw codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${s}`, TypeError);
  return { address, port, family: f as 4 | 6 };
}

// ---- the resolver

export class StackResolver {
  readonly stack: Stack;
  private servers: { address: string; port: number; family: 4 | 6 }[] = [];
  private search: string[];
  private ndots: number;
  private hosts = new Map<string, string[]>();
  private timeout: number;
  private tries: number;
  private inflight = new Set<() => void>();
  /** responses dropped: malformed, wrong id or question, from another address */
  stats = { queries: 0, udpQueries: 0, tcpQueries: 0, badResponses: 0, timeouts: 0 };

  constructor(stack: Stack, options: ResolverOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'Object', options);
    this.stack = stack;
    this.setServers(options.servers ?? []);
    this.search = [];
    this.setSearch(options.search ?? []);
    this.ndots = options.ndots ?? 1;
    this.timeout = options.timeout ?? 2000;
    this.tries = options.tries ?? 2;
    if (!Number.isInteger(this.timeout) || this.timeout <= 0) throw invalidArgValue('timeout', options.timeout, 'must be a positive integer (ms)');
    if (!Number.isInteger(this.tries) || this.tries <= 0) throw invalidArgValue('tries', options.tries, 'must be a positive integer');
    if (!Number.isInteger(this.ndots) || this.ndots < 0) throw invalidArgValue('ndots', options.ndots, 'must be a non-negative integer');
    for (const [name, v] of Object.entries(options.hosts ?? {})) this.addHost(name, v);
  }

  getServers(): string[] {
    return this.servers.map((s) => s.port === 53 ? s.address : s.family === 6 ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`);
  }

  setServers(servers: string[]): void {
    if (!Array.isArray(servers)) throw invalidArgType('servers', 'Array', servers);
    this.servers = servers.map(parseServer);
  }

  getSearch(): string[] { return [...this.search]; }

  /** the search domains (as resolv.conf's search line) */
  setSearch(domains: string[]): void {
    if (!Array.isArray(domains)) throw invalidArgType('domains', 'Array', domains);
    this.search = domains.map((d) => {
      if (typeof d !== 'string' || !d) throw invalidArgValue('search[]', d, 'must be a domain name');
      return d.replace(/^\.|\.$/g, '').toLowerCase();
    });
  }

  /** a static entry (as /etc/hosts): checked before DNS by lookup and resolve4/6 */
  addHost(name: string, addresses: string | string[]): void {
    if (typeof name !== 'string' || !name) throw invalidArgType('name', 'string', name);
    const list = Array.isArray(addresses) ? addresses : [addresses];
    for (const a of list) if (!isIP(a)) throw codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${a}`, TypeError);
    this.hosts.set(name.toLowerCase().replace(/\.$/, ''), [...list]);
  }

  /** abandon every query in flight: their callbacks get ECANCELLED */
  cancel(): void {
    for (const c of [...this.inflight]) c();
  }

  // -- Node's dns.lookup

  lookup(hostname: string, options: number | { family?: number | string; all?: boolean; order?: string } | LookupCallback, callback?: LookupCallback): void {
    if (typeof options === 'function') { callback = options; options = {}; }
    if (typeof callback !== 'function') throw invalidArgType('callback', 'Function', callback);
    if (hostname && typeof hostname !== 'string') throw invalidArgType('hostname', 'string', hostname);
    const o = typeof options === 'number' ? { family: options } : (options ?? {});
    let family: Family = 0;
    if (o.family === 4 || o.family === 'IPv4') family = 4;
    else if (o.family === 6 || o.family === 'IPv6') family = 6;
    else if (o.family !== undefined && o.family !== 0) throw invalidArgValue('options.family', o.family, 'must be one of: 0, 4, 6');
    const all = o.all === true;
    const cb = callback;
    const finish = (err: NodeJS.ErrnoException | null, list: LookupAddress[]) => {
      process.nextTick(() => {
        if (err) cb(err);
        else if (all) cb(null, list);
        else cb(null, list[0].address, list[0].family);
      });
    };
    if (!hostname) { finish(null, [{ address: family === 6 ? '::1' : '127.0.0.1', family: family || 4 }]); return; }
    const lit = isIP(hostname);
    if (lit) {
      if (family && lit !== family) finish(dnsError('ENOTFOUND', 'getaddrinfo', hostname), []);
      else finish(null, [{ address: hostname, family: lit }]);
      return;
    }
    const order = o.order === 'ipv6first' ? 6 : 4;
    this.addresses(hostname, family, true).then((list) => {
      if (list.length === 0) { finish(dnsError('ENOTFOUND', 'getaddrinfo', hostname), []); return; }
      list.sort((a, b) => (a.family === order ? 0 : 1) - (b.family === order ? 0 : 1));
      finish(null, list);
    }, (err: NodeJS.ErrnoException) => {
      // getaddrinfo reports a name server that does not answer as EAI_AGAIN
      const code = err.code === 'ETIMEOUT' || err.code === 'ECONNREFUSED' ? 'EAI_AGAIN' : err.code === 'ENODATA' ? 'ENOTFOUND' : err.code!;
      finish(dnsError(code, 'getaddrinfo', hostname), []);
    });
  }

  /** every address of hostname (static entries, then DNS with the search list when search) */
  private async addresses(hostname: string, family: Family, search: boolean): Promise<LookupAddress[]> {
    const key = hostname.toLowerCase().replace(/\.$/, '');
    const fixed = this.hosts.get(key) ?? (key === 'localhost' ? ['127.0.0.1', '::1'] : undefined);
    if (fixed) return fixed.map((a) => ({ address: a, family: isIP(a) })).filter((a) => !family || a.family === family);
    const names = search ? this.candidates(hostname) : [hostname];
    // a name the servers say does not exist under some candidate is ENOTFOUND even when another
    // candidate met a server error; only when every candidate failed on the servers is it theirs
    let serverErr: NodeJS.ErrnoException | null = null;
    let notFound = false;
    for (const name of names) {
      const types = family === 4 ? [TYPE_A] : family === 6 ? [TYPE_AAAA] : [TYPE_A, TYPE_AAAA];
      const results = await Promise.allSettled(types.map((t) => this.query(name, t, 'getaddrinfo')));
      const out: LookupAddress[] = [];
      for (const [i, r] of results.entries()) {
        if (r.status === 'fulfilled') {
          for (const a of r.value) out.push({ address: a.address, family: types[i] === TYPE_A ? 4 : 6 });
          continue;
        }
        const e = r.reason as NodeJS.ErrnoException;
        if (e.code === 'ENOTFOUND' || e.code === 'ENODATA') notFound = true;
        else if (e.code === 'ECANCELLED') throw e;
        else serverErr = e;
      }
      if (out.length) return out;
    }
    if (serverErr && !notFound) throw serverErr;
    return [];
  }

  private candidates(hostname: string): string[] {
    if (hostname.endsWith('.')) return [hostname.slice(0, -1)];
    const dots = hostname.split('.').length - 1;
    const withSearch = this.search.map((d) => `${hostname}.${d}`);
    return dots >= this.ndots ? [hostname, ...withSearch] : [...withSearch, hostname];
  }

  // -- Node's Resolver methods

  resolve4(hostname: string, options: { ttl?: boolean } | ((err: NodeJS.ErrnoException | null, a: string[] | RecordWithTtl[]) => void), callback?: (err: NodeJS.ErrnoException | null, a: string[] | RecordWithTtl[]) => void): void {
    this.resolveType(hostname, TYPE_A, 'queryA', options, callback);
  }

  resolve6(hostname: string, options: { ttl?: boolean } | ((err: NodeJS.ErrnoException | null, a: string[] | RecordWithTtl[]) => void), callback?: (err: NodeJS.ErrnoException | null, a: string[] | RecordWithTtl[]) => void): void {
    this.resolveType(hostname, TYPE_AAAA, 'queryAaaa', options, callback);
  }

  resolve(hostname: string, rrtype: string | ((err: NodeJS.ErrnoException | null, a: string[]) => void), callback?: (err: NodeJS.ErrnoException | null, a: string[]) => void): void {
    if (typeof rrtype === 'function') { callback = rrtype; rrtype = 'A'; }
    if (rrtype === 'A') this.resolve4(hostname, {}, callback as never);
    else if (rrtype === 'AAAA') this.resolve6(hostname, {}, callback as never);
    else throw invalidArgValue('rrtype', rrtype, 'is not supported by this resolver (A and AAAA are)');
  }

  private resolveType(hostname: string, type: number, syscall: string, options: unknown, callback: unknown): void {
    if (typeof options === 'function') { callback = options; options = {}; }
    if (typeof hostname !== 'string') throw invalidArgType('name', 'string', hostname);
    if (typeof callback !== 'function') throw invalidArgType('callback', 'Function', callback);
    const ttl = (options as { ttl?: boolean } | undefined)?.ttl === true;
    const cb = callback as (err: NodeJS.ErrnoException | null, a?: unknown) => void;
    const key = hostname.toLowerCase().replace(/\.$/, '');
    const fixed = this.hosts.get(key);
    const want = type === TYPE_A ? 4 : 6;
    let p: Promise<RecordWithTtl[]>;
    if (fixed) {
      const list = fixed.filter((a) => isIP(a) === want).map((a) => ({ address: a, ttl: 0 }));
      p = list.length ? Promise.resolve(list) : Promise.reject(dnsError('ENODATA', syscall, hostname));
    } else p = this.query(hostname, type, syscall);
    p.then((list) => process.nextTick(() => cb(null, ttl ? list : list.map((r) => r.address))),
      (err) => process.nextTick(() => cb(err)));
  }

  get promises() {
    return {
      lookup: (hostname: string, options: { family?: number; all?: boolean } = {}) => new Promise((resolve, reject) => {
        this.lookup(hostname, options, (err, address, family) => err ? reject(err) : resolve(options.all ? address : { address, family }));
      }),
      resolve4: (hostname: string, options: { ttl?: boolean } = {}) => new Promise((resolve, reject) => this.resolve4(hostname, options, (e, a) => e ? reject(e) : resolve(a))),
      resolve6: (hostname: string, options: { ttl?: boolean } = {}) => new Promise((resolve, reject) => this.resolve6(hostname, options, (e, a) => e ? reject(e) : resolve(a))),
    };
  }

  // -- the wire

  /** ask the servers in turn; resolves to the records, rejects with a Node-style error */
  private async query(name: string, type: number, syscall: string): Promise<RecordWithTtl[]> {
    if (this.servers.length === 0) throw dnsError('ENOTFOUND', syscall, name);
    this.stats.queries++;
    let lastCode = 'ETIMEOUT';
    for (let attempt = 0; attempt < this.tries; attempt++) {
      for (const server of this.servers) {
        const id = randomInt(65536);
        const q = encodeQuery(id, name, type);
        let answer: { buf: Buffer; msg: DnsMessage } | null;
        try {
          answer = await this.udpExchange(server, q, id, name, type);
          if (answer && answer.msg.truncated) answer = await this.tcpExchange(server, q, id, name, type);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ECANCELLED') throw dnsError('ECANCELLED', syscall, name);
          lastCode = code === 'ECONNREFUSED' ? 'ECONNREFUSED' : 'ETIMEOUT';
          continue;
        }
        if (!answer) { this.stats.timeouts++; continue; }
        const { buf, msg } = answer;
        if (msg.rcode === RCODE_NXDOMAIN) throw dnsError('ENOTFOUND', syscall, name);
        if (msg.rcode === 2) { lastCode = 'ESERVFAIL'; continue; }
        if (msg.rcode === 5) { lastCode = 'EREFUSED'; continue; }
        if (msg.rcode !== 0) { lastCode = 'EBADRESP'; continue; }
        const list = extract(buf, msg, name, type);
        if (list.length === 0) throw dnsError('ENODATA', syscall, name);
        return list;
      }
    }
    throw dnsError(lastCode, syscall, name);
  }

  private matches(msg: DnsMessage, id: number, name: string, type: number): boolean {
    return msg.response && msg.id === id && msg.question !== null &&
      msg.question.name === name.toLowerCase().replace(/\.$/, '') && msg.question.type === type;
  }

  /** one UDP exchange through the stack's dgram; null on timeout */
  private udpExchange(server: { address: string; port: number; family: 4 | 6 }, q: Buffer, id: number, name: string, type: number): Promise<{ buf: Buffer; msg: DnsMessage } | null> {
    this.stats.udpQueries++;
    return new Promise((resolve, reject) => {
      const sock = this.stack.dgram.createSocket(server.family === 6 ? 'udp6' : 'udp4');
      let done = false;
      const end = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.inflight.delete(cancel);
        try { sock.close(); } catch { /* already closed */ }
        fn();
      };
      const cancel = () => end(() => reject(Object.assign(new Error('cancelled'), { code: 'ECANCELLED' })));
      this.inflight.add(cancel);
      const timer = setTimeout(() => end(() => resolve(null)), this.timeout);
      sock.on('error', (err: NodeJS.ErrnoException) => end(() => reject(err)));
      sock.on('message', (buf: Buffer, rinfo: { address: string; port: number }) => {
        if (rinfo.address !== server.address || rinfo.port !== server.port) { this.stats.badResponses++; return; }
        let msg: DnsMessage;
        try { msg = parseMessage(buf); } catch { this.stats.badResponses++; return; }
        if (!this.matches(msg, id, name, type)) { this.stats.badResponses++; return; }
        end(() => resolve({ buf, msg }));
      });
      sock.send(q, server.port, server.address, (err) => { if (err) end(() => reject(err)); });
    });
  }

  /** the same question over TCP (RFC 1035 4.2.2: two-byte length before each message) */
  private tcpExchange(server: { address: string; port: number }, q: Buffer, id: number, name: string, type: number): Promise<{ buf: Buffer; msg: DnsMessage } | null> {
    this.stats.tcpQueries++;
    return new Promise((resolve, reject) => {
      const sock = this.stack.net.connect({ host: server.address, port: server.port });
      let done = false;
      let got = Buffer.alloc(0);
      const end = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.inflight.delete(cancel);
        sock.destroy();
        fn();
      };
      const cancel = () => end(() => reject(Object.assign(new Error('cancelled'), { code: 'ECANCELLED' })));
      this.inflight.add(cancel);
      const timer = setTimeout(() => end(() => resolve(null)), this.timeout);
      sock.on('error', (err: NodeJS.ErrnoException) => end(() => reject(err)));
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(q.length);
        sock.write(Buffer.concat([len, q]));
      });
      sock.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length > 2 + 65535) { end(() => reject(Object.assign(new Error('oversized'), { code: 'EBADRESP' }))); return; }
        if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
        const buf = got.subarray(2, 2 + got.readUInt16BE(0));
        let msg: DnsMessage;
        try { msg = parseMessage(buf); } catch { this.stats.badResponses++; end(() => resolve(null)); return; }
        if (!this.matches(msg, id, name, type)) { this.stats.badResponses++; end(() => resolve(null)); return; }
        end(() => resolve({ buf, msg }));
      });
      sock.on('end', () => end(() => resolve(null)));
    });
  }
}


