// An in-memory stack for fast unit tests of lib/net.ts: pure-JS stream sockets that honour the
// raw-socket contract of lib/raw.ts without touching the kernel.
//
// What it models
// - Hosts: every MemStack is one host with loopback (127.0.0.0/8, ::1) plus the addresses it
//   is given; stacks that share a MemNetwork reach each other's addresses. A destination that
//   nobody owns is a black hole: connect() stays pending until the socket is closed.
// - Ports: bind conflicts as Linux has them without SO_REUSEPORT (a wildcard covers its
//   family, and an IPv6 wildcard without IPV6_V6ONLY covers IPv4 too), ephemeral ports from
//   32768, ECONNREFUSED when nothing listens, a backlog after which connects wait.
// - Data: bytes are copied straight into the peer's bounded receive buffer, so send() takes
//   what fits (0 when full) and the writer waits for 'writable'. recv() returns everything
//   queued, an empty Buffer at end of stream, null when nothing is there.
// - Teardown: shutdown(SHUT_WR) is a FIN; close() is a FIN, or an RST when unread data is left
//   (as Linux does); abort() is an RST. The peer of an RST reads what it had queued, then
//   ECONNRESET once (syscall 'read'), then end of stream; send() fails with ECONNRESET
//   then EPIPE (syscall 'write'). Sending to a peer that has closed is answered with an RST.
// - Readiness: level-triggered; a watched socket that is ready gets one 'readable' and/or
//   'writable' per event-loop turn (setImmediate) until it stops being ready or watched.
//   Watched, ref'd sockets keep the event loop alive like real handles do.
import { EventEmitter } from 'events';
import { isIP, isIPv4 } from 'net';
import {
  AF_INET, AF_INET6, SOCK_STREAM, SHUT_RD, SHUT_WR, SHUT_RDWR,
  type Datagram, type LookupCallback, type RawSocket, type SockAddr, type SockOpt, type Stack,
} from '../../lib/raw';
import { systemError, type SystemError } from '../../lib/errors';
import { createNet } from '../../lib/net';

export interface MemStackOptions {
  name?: string;
  /** addresses of this host besides loopback, e.g. ['10.0.0.1', 'fd00::1'] */
  addresses?: string[];
  /** the network shared with other stacks (default: a private one) */
  network?: MemNetwork;
  /** receive buffer of each connected socket in bytes (default 64 KiB) */
  receiveBuffer?: number;
  /** names for lookup(); 'localhost' is always 127.0.0.1 and ::1 */
  hosts?: Record<string, string[]>;
  /** which families exist on this host (default both) */
  families?: number[];
}

/** A set of stacks that reach each other by address. */
export class MemNetwork {
  readonly hosts = new Map<string, MemStack>();
}

// ---------------------------------------------------------------------------------------------
// The readiness scheduler: one setImmediate per loop turn for all sockets with something to say.

const dirty = new Set<MemRawSocket>();
let tickScheduled = false;

function markDirty(s: MemRawSocket): void {
  dirty.add(s);
  if (!tickScheduled) {
    tickScheduled = true;
    setImmediate(runTick);
  }
}

function runTick(): void {
  tickScheduled = false;
  const batch = [...dirty];
  dirty.clear();
  for (const s of batch) s.dispatch();
}

// Watched, ref'd sockets hold the loop open through one long interval, as libuv handles would.
let activeHandles = 0;
let keepAlive: NodeJS.Timeout | null = null;

/** how many memstack sockets hold the event loop open now */
export function activeMemHandles(): number {
  return activeHandles;
}

function changeActive(delta: number): void {
  activeHandles += delta;
  if (activeHandles > 0 && keepAlive === null) {
    keepAlive = setInterval(() => { /* keeps the loop alive */ }, 1 << 30);
  } else if (activeHandles === 0 && keepAlive !== null) {
    clearInterval(keepAlive);
    keepAlive = null;
  }
}

// ---------------------------------------------------------------------------------------------

type Family = 4 | 6;

function familyName(f: Family): 'IPv4' | 'IPv6' {
  return f === 4 ? 'IPv4' : 'IPv6';
}

function isLoopback(address: string): boolean {
  return address === '::1' || (isIPv4(address) && address.startsWith('127.'));
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** '::ffff:1.2.3.4' → '1.2.3.4'; anything else unchanged */
function unmap(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

function eaiNotFound(hostname: string): SystemError {
  const err = systemError('ENOTFOUND', 'getaddrinfo', hostname);
  err.errno = -3008; // EAI_NONAME as Node reports it
  (err as SystemError & { hostname: string }).hostname = hostname;
  return err;
}

export class MemStack implements Stack {
  readonly kind = 'user' as const;
  readonly name: string;
  readonly network: MemNetwork;
  readonly receiveBuffer: number;
  readonly addresses: string[];
  private readonly families: number[];
  private readonly hostTable: Map<string, string[]>;
  private readonly sockets = new Set<MemRawSocket>();
  /** bound sockets by port */
  private readonly ports = new Map<number, MemRawSocket[]>();
  private nextEphemeral = 32768;
  private netModule: typeof import('net') | null = null;
  private isClosed = false;

  constructor(options: MemStackOptions = {}) {
    this.name = options.name ?? 'mem';
    this.network = options.network ?? new MemNetwork();
    this.receiveBuffer = options.receiveBuffer ?? 64 * 1024;
    this.addresses = [...(options.addresses ?? [])];
    this.families = options.families ?? [AF_INET, AF_INET6];
    this.hostTable = new Map(Object.entries(options.hosts ?? {}));
    for (const a of this.addresses) this.network.hosts.set(a, this);
  }

  get net(): typeof import('net') {
    if (this.netModule === null) this.netModule = createNet(this);
    return this.netModule;
  }

  get dgram(): typeof import('dgram') {
    throw new Error('the in-memory test stack has no datagram sockets');
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** raw sockets of this stack not closed yet (leak checks) */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** every raw socket of this stack not closed yet */
  get rawSockets(): MemRawSocket[] {
    return [...this.sockets];
  }

  supports(domain: number): boolean {
    return this.families.includes(domain);
  }

  socket(domain: number, type: number, protocol = 0): RawSocket {
    if (this.isClosed) throw systemError('ENETDOWN', 'socket');
    if (domain !== AF_INET && domain !== AF_INET6) throw systemError('EAFNOSUPPORT', 'socket');
    if (!this.supports(domain)) throw systemError('EAFNOSUPPORT', 'socket');
    if (type !== SOCK_STREAM) throw systemError('ESOCKTNOSUPPORT', 'socket');
    const s = new MemRawSocket(this, domain, protocol);
    this.sockets.add(s);
    return s;
  }

  lookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void {
    const family = options.family ?? 0;
    let candidates: string[];
    if (isIP(hostname)) candidates = [hostname];
    else if (hostname === 'localhost') candidates = ['127.0.0.1', '::1'];
    else candidates = this.hostTable.get(hostname) ?? [];
    const found = candidates
      .map((address) => ({ address, family: isIP(address) }))
      .filter((a) => family === 0 || a.family === family);
    setImmediate(() => {
      if (found.length === 0) callback(eaiNotFound(hostname), options.all ? [] : '', undefined);
      else if (options.all) callback(null, found);
      else callback(null, found[0].address, found[0].family);
    });
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const s of [...this.sockets]) s.abort();
    for (const [a, owner] of this.network.hosts) if (owner === this) this.network.hosts.delete(a);
  }

  // --- used by MemRawSocket -------------------------------------------------------------------

  /** @internal */ adopt(s: MemRawSocket): void {
    this.sockets.add(s);
  }

  /** @internal */ forget(s: MemRawSocket): void {
    this.sockets.delete(s);
    this.unbind(s);
  }

  /** @internal */ ownsAddress(address: string): boolean {
    const a = unmap(address);
    return isLoopback(a) || isWildcard(a) || this.addresses.includes(a);
  }

  /** @internal */ route(address: string): MemStack | null {
    const a = unmap(address);
    if (this.ownsAddress(a)) return this;
    const host = this.network.hosts.get(a);
    return host && !host.isClosed ? host : null;
  }

  /** @internal the source address this host uses toward `dest` */
  sourceFor(dest: string, family: Family): string {
    const d = unmap(dest);
    if (this.ownsAddress(d)) return isWildcard(d) ? (family === 4 ? '127.0.0.1' : '::1') : d;
    const own = this.addresses.find((a) => isIP(a) === isIP(d));
    return own ?? (isIP(d) === 4 ? '127.0.0.1' : '::1');
  }

  /** @internal */ bindPort(s: MemRawSocket, address: string, port: number): number {
    const candidate = { family: s.family, address, v6only: s.v6only };
    const clashes = (p: number) => (this.ports.get(p) ?? []).some((o) => overlaps(candidate, { family: o.family, address: o.boundAddress, v6only: o.v6only }));
    if (port === 0) {
      for (let i = 0; i < 28232; i++) {
        const p = this.nextEphemeral;
        this.nextEphemeral = p >= 60999 ? 32768 : p + 1;
        if (!clashes(p)) { port = p; break; }
      }
      if (port === 0) throw systemError('EADDRINUSE', 'bind', address);
    } else if (clashes(port)) {
      throw systemError('EADDRINUSE', 'bind', address, port);
    }
    const list = this.ports.get(port);
    if (list) list.push(s);
    else this.ports.set(port, [s]);
    return port;
  }

  /** @internal */ unbind(s: MemRawSocket): void {
    if (s.boundPort === 0) return;
    const list = this.ports.get(s.boundPort);
    if (!list) return;
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.ports.delete(s.boundPort);
  }

  /** @internal the listener that takes a connection to address:port, exact address first */
  findListener(address: string, port: number): MemRawSocket | null {
    const list = this.ports.get(port);
    if (!list) return null;
    const a = unmap(address);
    const fam: Family = isIP(a) === 6 ? 6 : 4;
    let wildcard: MemRawSocket | null = null;
    for (const s of list) {
      if (!s.isListening || s.closed) continue;
      if (s.family === fam) {
        if (s.boundAddress === a) return s;
        if (isWildcard(s.boundAddress)) wildcard ??= s;
      } else if (fam === 4 && s.family === 6 && s.boundAddress === '::' && !s.v6only) {
        wildcard ??= s;
      } else if (fam === 4 && s.family === 6 && unmap(s.boundAddress) === a) {
        return s;
      }
    }
    return wildcard;
  }
}

interface Binding { family: Family; address: string; v6only: boolean }

function overlaps(x: Binding, y: Binding): boolean {
  if (x.family === y.family) return isWildcard(x.address) || isWildcard(y.address) || unmap(x.address) === unmap(y.address);
  const v4 = x.family === 4 ? x : y;
  const v6 = x.family === 6 ? x : y;
  if (v6.address === '::') return !v6.v6only;
  return unmap(v6.address) === v4.address || (isWildcard(v4.address) && unmap(v6.address) !== v6.address);
}

type State = 'idle' | 'listening' | 'connecting' | 'connected';

let nextId = 1;

export class MemRawSocket extends EventEmitter implements RawSocket {
  readonly stack: MemStack;
  readonly domain: number;
  readonly type = SOCK_STREAM;
  readonly protocol: number;
  readonly fd = -1;
  readonly id = nextId++;

  /** @internal */ family: Family;
  /** @internal */ boundAddress = '';
  /** @internal */ boundPort = 0;
  /** @internal */ v6only = false;

  private state: State = 'idle';
  private isClosed = false;
  private backlog = 0;
  private readonly acceptQueue: MemRawSocket[] = [];
  /** connects waiting for room in the backlog */
  private readonly synQueue: Array<() => void> = [];
  private peer: MemRawSocket | null = null;
  private remote: SockAddr | null = null;

  private readonly rcv: Buffer[] = [];
  private rcvBytes = 0;
  private readonly rcvCapacity: number;
  /** the peer sent FIN: end of stream after the queued bytes */
  private finReceived = false;
  private rdShut = false;
  private wrShut = false;
  /** an RST arrived: reported once by recv() and by send() */
  private resetPending = false;
  private readErrorReported = false;
  private writeErrorReported = false;
  private connectReject: ((err: Error) => void) | null = null;
  private connectTarget: { address: string; port: number } | null = null;

  private watchR = false;
  private watchW = false;
  private refed = true;
  private countedActive = false;
  private readonly options = new Map<SockOpt, number>();

  // what tests look at
  noDelay = false;
  keepAlive = false;
  keepAliveDelay = 0;
  sendCalls = 0;
  bytesSent = 0;

  constructor(stack: MemStack, domain: number, protocol: number) {
    super();
    this.stack = stack;
    this.domain = domain;
    this.protocol = protocol;
    this.family = domain === AF_INET6 ? 6 : 4;
    this.rcvCapacity = stack.receiveBuffer;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** @internal */ get isListening(): boolean {
    return this.state === 'listening';
  }

  private checkOpen(syscall: string): void {
    if (this.isClosed) throw systemError('EBADF', syscall);
  }

  private checkFamily(address: string, syscall: string, port?: number): void {
    const f = isIP(address);
    if (f === 0) throw systemError('EINVAL', syscall, address, port);
    if (this.family === 4 && f === 6) throw systemError('EAFNOSUPPORT', syscall, address, port);
    if (this.family === 6 && f === 4) throw systemError('EAFNOSUPPORT', syscall, address, port);
  }

  bind(address: string, port: number): void {
    this.checkOpen('bind');
    if (address === '') address = this.family === 4 ? '0.0.0.0' : '::';
    this.checkFamily(address, 'bind', port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw systemError('EINVAL', 'bind', address, port);
    if (this.boundPort !== 0) throw systemError('EINVAL', 'bind', address, port);
    if (!this.stack.ownsAddress(address)) throw systemError('EADDRNOTAVAIL', 'bind', address, port);
    this.boundAddress = address;
    this.boundPort = this.stack.bindPort(this, address, port);
  }

  listen(backlog = 511): void {
    this.checkOpen('listen');
    if (this.state === 'connecting' || this.state === 'connected') throw systemError('EINVAL', 'listen');
    if (this.boundPort === 0) this.bind('', 0);
    this.backlog = Math.max(1, backlog | 0);
    this.state = 'listening';
    this.admitWaiting();
    this.poke();
  }

  accept(): RawSocket | null {
    this.checkOpen('accept');
    if (this.state !== 'listening') throw systemError('EINVAL', 'accept');
    const s = this.acceptQueue.shift() ?? null;
    this.admitWaiting();
    return s;
  }

  private admitWaiting(): void {
    while (this.synQueue.length > 0 && this.acceptQueue.length < this.backlog) {
      const admit = this.synQueue.shift();
      if (admit) admit();
    }
  }

  connect(address: string, port: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        this.checkOpen('connect');
        if (this.state === 'connected') throw systemError('EISCONN', 'connect', address, port);
        if (this.state === 'connecting') throw systemError('EALREADY', 'connect', address, port);
        if (this.state === 'listening') throw systemError('EINVAL', 'connect', address, port);
        this.checkFamily(address, 'connect', port);
        if (!Number.isInteger(port) || port <= 0 || port > 65535) throw systemError('ECONNREFUSED', 'connect', address, port);
      } catch (err) {
        reject(err);
        return;
      }
      const source = this.stack.sourceFor(address, this.family);
      if (this.boundPort === 0) {
        try {
          this.bind(this.family === 4 ? '0.0.0.0' : '::', 0);
        } catch (err) {
          reject(err);
          return;
        }
      }
      if (isWildcard(this.boundAddress)) this.boundAddress = source;
      this.state = 'connecting';
      this.connectTarget = { address, port };
      this.connectReject = reject;
      this.updateActive();
      setImmediate(() => this.handshake(address, port, resolve, reject));
    });
  }

  private handshake(address: string, port: number, resolve: () => void, reject: (e: Error) => void): void {
    if (this.isClosed || this.state !== 'connecting') return;
    const host = this.stack.route(address);
    if (host === null) return; // black hole: wait until closed
    const listener = host.findListener(address, port);
    if (listener === null) {
      this.failConnect(systemError('ECONNREFUSED', 'connect', address, port), reject);
      return;
    }
    const admit = () => {
      if (this.isClosed || this.state !== 'connecting') return;
      if (listener.closed || !listener.isListening) {
        this.failConnect(systemError('ECONNREFUSED', 'connect', address, port), reject);
        return;
      }
      const server = new MemRawSocket(host, listener.domain, listener.protocol);
      host.adopt(server);
      // the accepted socket's view: its local address is the destination; v4 over v6 is mapped
      const mapped = listener.family === 6 && isIP(unmap(address)) === 4;
      const here = mapped ? `::ffff:${unmap(address)}` : address;
      const there = mapped ? `::ffff:${this.boundAddress}` : this.boundAddress;
      server.boundAddress = here;
      server.boundPort = port;
      server.state = 'connected';
      server.peer = this;
      server.remote = { address: there, port: this.boundPort, family: familyName(listener.family) };
      this.peer = server;
      this.remote = { address, port, family: familyName(this.family) };
      this.state = 'connected';
      this.connectReject = null;
      this.updateActive();
      listener.acceptQueue.push(server);
      listener.poke();
      this.poke();
      resolve();
    };
    if (listener.acceptQueue.length < listener.backlog) admit();
    else listener.synQueue.push(admit);
  }

  private failConnect(err: Error, reject: (e: Error) => void): void {
    this.state = 'idle';
    this.connectReject = null;
    this.updateActive();
    reject(err);
  }

  disconnect(): void {
    throw systemError('EOPNOTSUPP', 'connect');
  }

  send(data: Uint8Array): number {
    this.checkOpen('write');
    this.sendCalls++;
    if (this.resetPending) {
      const first = !this.writeErrorReported;
      this.writeErrorReported = true;
      throw systemError(first ? 'ECONNRESET' : 'EPIPE', 'write');
    }
    if (this.state === 'connecting') return 0;
    if (this.state !== 'connected') throw systemError('ENOTCONN', 'write');
    if (this.wrShut) throw systemError('EPIPE', 'write');
    const peer = this.peer;
    if (peer === null || peer.closed) {
      // the peer is gone: its host answers with an RST
      this.receiveReset();
      return data.length;
    }
    const room = peer.rcvCapacity - peer.rcvBytes;
    const n = Math.min(room, data.length);
    if (n <= 0) return 0;
    peer.rcv.push(Buffer.from(data.subarray(0, n))); // copies, like the kernel
    peer.rcvBytes += n;
    this.bytesSent += n;
    peer.poke();
    return n;
  }

  sendto(): number {
    throw systemError('EOPNOTSUPP', 'sendto');
  }

  recv(): Buffer | null {
    this.checkOpen('read');
    if (this.rcvBytes > 0) {
      const out = this.rcv.length === 1 ? this.rcv[0] : Buffer.concat(this.rcv, this.rcvBytes);
      this.rcv.length = 0;
      this.rcvBytes = 0;
      if (this.peer && !this.peer.closed) this.peer.poke(); // room again
      return out;
    }
    if (this.resetPending && !this.readErrorReported) {
      this.readErrorReported = true;
      throw systemError('ECONNRESET', 'read');
    }
    if (this.finReceived || this.rdShut || this.resetPending) return Buffer.alloc(0);
    if (this.state === 'connecting') return null;
    if (this.state !== 'connected') throw systemError('ENOTCONN', 'read');
    return null;
  }

  recvfrom(): Datagram | null {
    throw systemError('EOPNOTSUPP', 'recvfrom');
  }

  shutdown(how: number): void {
    this.checkOpen('shutdown');
    if (this.state !== 'connected') throw systemError('ENOTCONN', 'shutdown');
    if (how === SHUT_RD || how === SHUT_RDWR) {
      this.rdShut = true;
      this.poke();
    }
    if ((how === SHUT_WR || how === SHUT_RDWR) && !this.wrShut) {
      this.wrShut = true;
      const peer = this.peer;
      if (peer && !peer.closed) {
        peer.finReceived = true;
        peer.poke();
      }
    }
  }

  close(): void {
    if (this.isClosed) return;
    this.teardown(this.rcvBytes > 0);
  }

  abort(): void {
    if (this.isClosed) return;
    this.teardown(true);
  }

  private teardown(reset: boolean): void {
    this.isClosed = true;
    this.watchR = this.watchW = false;
    this.updateActive();
    dirty.delete(this);
    this.stack.forget(this);
    const peer = this.peer;
    if (this.state === 'connected' && peer && !peer.closed) {
      if (reset) peer.receiveReset();
      else if (!this.wrShut) {
        peer.finReceived = true;
        peer.poke();
      }
    }
    if (this.state === 'listening') {
      for (const s of this.acceptQueue.splice(0)) s.abort();
      const waiting = this.synQueue.splice(0);
      for (const admit of waiting) admit(); // they see the listener gone: ECONNREFUSED
    }
    if (this.state === 'connecting' && this.connectReject && this.connectTarget) {
      const reject = this.connectReject;
      this.connectReject = null;
      reject(systemError('ECONNABORTED', 'connect', this.connectTarget.address, this.connectTarget.port));
    }
    this.rcv.length = 0;
    this.rcvBytes = 0;
    this.peer = null;
    this.removeAllListeners();
  }

  /** @internal */ receiveReset(): void {
    if (this.isClosed) return;
    this.resetPending = true;
    this.poke();
  }

  localAddress(): SockAddr {
    this.checkOpen('getsockname');
    const address = this.boundAddress || (this.family === 4 ? '0.0.0.0' : '::');
    return { address, port: this.boundPort, family: familyName(this.family) };
  }

  remoteAddress(): SockAddr | null {
    this.checkOpen('getpeername');
    return this.state === 'connected' && this.remote ? { ...this.remote } : null;
  }

  setOption(name: SockOpt, value: number | boolean): void {
    this.checkOpen('setsockopt');
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    if (name === 'IPV6_V6ONLY') {
      if (this.family !== 6) throw systemError('ENOPROTOOPT', 'setsockopt');
      this.v6only = v !== 0;
    }
    if (name === 'TCP_NODELAY') this.noDelay = v !== 0;
    if (name === 'SO_KEEPALIVE') this.keepAlive = v !== 0;
    this.options.set(name, v);
  }

  getOption(name: SockOpt): number {
    this.checkOpen('getsockopt');
    if (name === 'SO_TYPE') return SOCK_STREAM;
    if (name === 'SO_ERROR') return 0;
    if (name === 'SO_RCVBUF') return this.rcvCapacity;
    return this.options.get(name) ?? 0;
  }

  setKeepAlive(enable: boolean, initialDelayMs = 0): void {
    this.checkOpen('setsockopt');
    this.keepAlive = enable;
    if (initialDelayMs > 0) this.keepAliveDelay = initialDelayMs;
  }

  setNoDelay(enable: boolean): void {
    this.checkOpen('setsockopt');
    this.noDelay = enable;
  }

  addMembership(): void {
    throw systemError('EOPNOTSUPP', 'setsockopt');
  }

  dropMembership(): void {
    throw systemError('EOPNOTSUPP', 'setsockopt');
  }

  setMulticastInterface(): void {
    throw systemError('EOPNOTSUPP', 'setsockopt');
  }

  watch(readable: boolean, writable: boolean): void {
    if (this.isClosed) return;
    this.watchR = readable;
    this.watchW = writable;
    this.updateActive();
    if (readable || writable) markDirty(this);
  }

  /** whether the socket is watched for reading / writing (for tests) */
  get watching(): { readable: boolean; writable: boolean } {
    return { readable: this.watchR, writable: this.watchW };
  }

  ref(): void {
    this.refed = true;
    this.updateActive();
  }

  unref(): void {
    this.refed = false;
    this.updateActive();
  }

  private updateActive(): void {
    const active = !this.isClosed && this.refed && (this.watchR || this.watchW || this.state === 'connecting');
    if (active !== this.countedActive) {
      this.countedActive = active;
      changeActive(active ? 1 : -1);
    }
  }

  /** something changed: look at readiness next turn */
  private poke(): void {
    if (!this.isClosed && (this.watchR || this.watchW)) markDirty(this);
  }

  private readableNow(): boolean {
    if (this.state === 'listening') return this.acceptQueue.length > 0;
    if (this.state !== 'connected') return false;
    return this.rcvBytes > 0 || this.finReceived || this.rdShut || this.resetPending;
  }

  private writableNow(): boolean {
    if (this.state !== 'connected') return false;
    if (this.resetPending) return true;
    if (this.wrShut) return false;
    const peer = this.peer;
    if (peer === null || peer.closed) return true;
    return peer.rcvBytes < peer.rcvCapacity;
  }

  /** @internal called by the scheduler once per turn */
  dispatch(): void {
    if (this.isClosed) return;
    if (this.watchR && this.readableNow()) this.emit('readable');
    if (this.isClosed) return;
    if (this.watchW && this.writableNow()) this.emit('writable');
    if (this.isClosed) return;
    // level-triggered: still ready and watched → again next turn
    if ((this.watchR && this.readableNow()) || (this.watchW && this.writableNow())) markDirty(this);
  }

  /** bytes queued for the application to read (for tests) */
  get queued(): number {
    return this.rcvBytes;
  }
}
