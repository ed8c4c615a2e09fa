// A raw socket over descriptor-style calls (`ops.call(handle, ...)` returning a result or
// -errno), shared by the kernel stack (file descriptors, watched with uv_poll) and the user
// stack (engine socket descriptors, readiness pushed by the engine). Subclasses only say how
// readiness is watched.
import { EventEmitter } from 'events';
import { constants as osConstants } from 'os';

import { codedError, systemError } from '../errors';
import type { NativeAddr, NativeKernel } from '../native';
import {
  AF_INET6, SOCK_STREAM,
  type Datagram, type RawSocket, type SockAddr, type SockOpt, type Stack,
} from '../raw';

const E = osConstants.errno;

/** the calls a handle-based socket needs; the kernel's and the user stack's have this shape */
export type SocketOps = Pick<NativeKernel,
  'bind' | 'listen' | 'accept' | 'connect' | 'getsockname' | 'getpeername' | 'send' | 'sendv' |
  'sendto' | 'recv' | 'recvfrom' | 'shutdown' | 'close' | 'abort' | 'setsockopt' | 'getsockopt' |
  'membership' | 'multicastInterface'>;

/** [level, optname] for each option, Linux values (the user stack uses the same numbers) */
export const OPTIONS: Record<SockOpt, [number, number]> = {
  SO_REUSEADDR: [1, 2], SO_TYPE: [1, 3], SO_ERROR: [1, 4], SO_BROADCAST: [1, 6],
  SO_SNDBUF: [1, 7], SO_RCVBUF: [1, 8], SO_KEEPALIVE: [1, 9], SO_REUSEPORT: [1, 15],
  TCP_NODELAY: [6, 1], TCP_MAXSEG: [6, 2], TCP_KEEPIDLE: [6, 4], TCP_KEEPINTVL: [6, 5], TCP_KEEPCNT: [6, 6],
  IP_TTL: [0, 2], IP_MULTICAST_TTL: [0, 33], IP_MULTICAST_LOOP: [0, 34],
  IPV6_UNICAST_HOPS: [41, 16], IPV6_MULTICAST_HOPS: [41, 18], IPV6_MULTICAST_LOOP: [41, 19], IPV6_V6ONLY: [41, 26],
};

export function familyName(domain: number): 'IPv4' | 'IPv6' {
  return domain === AF_INET6 ? 'IPv6' : 'IPv4';
}

function toSockAddr(a: NativeAddr): SockAddr {
  return { address: a[0], port: a[1], family: familyName(a[2]) };
}

export const READABLE = 1;
export const WRITABLE = 2;

// bits of HandleRawSocket.flags
const F_READ = 1;     // watched for reading
const F_WRITE = 2;    // watched for writing
const F_UNREF = 4;    // does not keep the event loop alive
/** the first bit subclasses may use */
export const F_SUBCLASS = 8;

/**
 * The prototype of a raw socket's listener table. EventEmitter keeps its listeners in
 * `_events`, an object without Object.prototype in its chain; Node makes it with
 * `{ __proto__: null }`, which V8 holds as a dictionary (~180 bytes even empty). An object
 * made by Object.create() of this empty, prototype-less object behaves the same for every
 * EventEmitter method (no inherited names, own keys are the event names) and stays in V8's
 * fast mode (~60 bytes with a listener).
 */
const LISTENERS: object = Object.create(null);

/**
 * A socket behind a numeric handle. A process may hold tens of thousands of idle ones, so an
 * instance carries few fields: the handle, one word for domain/type/protocol, one for the
 * flags; the stack and the calls come from the subclass (a getter on its prototype where it
 * can), not from a field per socket.
 */
export abstract class HandleRawSocket extends EventEmitter implements RawSocket {
  protected _fd: number;
  /** domain | type << 8 | protocol << 16 */
  private readonly kind: number;
  protected flags = 0;
  protected connectWaiter: { resolve: () => void; reject: (e: Error) => void; address: string; port: number } | null = null;

  constructor(fd: number, domain: number, type: number, protocol: number) {
    super();
    (this as unknown as { _events: object })._events = Object.create(LISTENERS);
    this._fd = fd;
    this.kind = (domain & 0xff) | ((type & 0xff) << 8) | ((protocol & 0xffff) << 16);
  }

  abstract readonly stack: Stack;
  /** the descriptor calls of this socket's stack */
  protected abstract readonly k: SocketOps;
  get domain(): number { return this.kind & 0xff; }
  get type(): number { return (this.kind >> 8) & 0xff; }
  get protocol(): number { return this.kind >>> 16; }
  protected get wantRead(): boolean { return (this.flags & F_READ) !== 0; }
  protected get wantWrite(): boolean { return (this.flags & F_WRITE) !== 0; }
  protected get refed(): boolean { return (this.flags & F_UNREF) === 0; }

  /** the handle: a kernel fd, or the engine's descriptor (fd reports -1 for those) */
  get handle(): number { return this._fd; }
  get fd(): number { return this._fd; }
  get closed(): boolean { return this._fd < 0; }

  protected check(syscall: string): number {
    if (this._fd < 0) throw systemError('EBADF', syscall);
    return this._fd;
  }

  bind(address: string, port: number): void {
    const fd = this.check('bind');
    const r = this.k.bind(fd, this.domain, address, port);
    if (r < 0) throw systemError(r, 'bind', address || (this.domain === AF_INET6 ? '::' : '0.0.0.0'), port);
  }

  listen(backlog = 511): void {
    const fd = this.check('listen');
    const r = this.k.listen(fd, backlog);
    if (r < 0) {
      const a = this.localAddress();
      throw systemError(r, 'listen', a.address, a.port);
    }
  }

  accept(): RawSocket | null {
    const fd = this.check('accept');
    const r = this.k.accept(fd);
    if (r === -E.EAGAIN) return null;
    if (r < 0) {
      // errors of the new connection (ECONNABORTED...) are not the listener's: try again later
      if (r === -E.ECONNABORTED || r === -E.EPROTO || r === -E.EINTR) return null;
      throw systemError(r, 'accept');
    }
    return this.adopt(r);
  }

  connect(address: string, port: number): Promise<void> {
    let fd: number;
    try { fd = this.check('connect'); } catch (e) { return Promise.reject(e); }
    const r = this.k.connect(fd, this.domain, address, port);
    if (r === 0) return Promise.resolve();
    if (r !== -E.EINPROGRESS || this.type !== SOCK_STREAM) return Promise.reject(systemError(r, 'connect', address, port));
    return new Promise<void>((resolve, reject) => {
      this.connectWaiter = { resolve, reject, address, port };
      this.updatePoller();
    });
  }

  disconnect(): void {
    const fd = this.check('connect');
    const r = this.k.connect(fd, 0, '', 0);
    if (r < 0 && r !== -E.EAFNOSUPPORT) throw systemError(r, 'connect');
  }

  send(data: Uint8Array): number {
    const fd = this.check(this.type === SOCK_STREAM ? 'write' : 'send');
    const r = this.k.send(fd, data);
    if (r >= 0) return r;
    if (r === -E.EAGAIN) return this.type === SOCK_STREAM ? 0 : -1;
    throw systemError(r, this.type === SOCK_STREAM ? 'write' : 'send');
  }

  /** stream only: several buffers in one system call; bytes taken */
  sendv(chunks: Uint8Array[]): number {
    const fd = this.check('write');
    const r = this.k.sendv(fd, chunks);
    if (r >= 0) return r;
    if (r === -E.EAGAIN) return 0;
    throw systemError(r, 'write');
  }

  sendto(data: Uint8Array, address: string, port: number): number {
    const fd = this.check('send');
    const r = this.k.sendto(fd, data, this.domain, address, port);
    if (r >= 0) return r;
    if (r === -E.EAGAIN) return -1;
    throw systemError(r, 'send', address, port);
  }

  recv(): Buffer | null {
    const fd = this.check('read');
    const r = this.k.recv(fd);
    if (typeof r !== 'number') return r;
    if (r === 0) return Buffer.alloc(0);  // end of stream
    if (r === -E.EAGAIN) return null;
    throw systemError(r, 'read');
  }

  recvfrom(): Datagram | null {
    const fd = this.check('recvmsg');
    const r = this.k.recvfrom(fd);
    if (typeof r === 'number') {
      if (r === -E.EAGAIN) return null;
      throw systemError(r, 'recvmsg');
    }
    const d: Datagram = { data: r[0], address: r[1], port: r[2], family: familyName(r[3]) };
    if (r[4]) d.truncated = true;
    return d;
  }

  shutdown(how: number): void {
    const fd = this.check('shutdown');
    const r = this.k.shutdown(fd, how);
    if (r < 0 && r !== -E.ENOTCONN) throw systemError(r, 'shutdown');
  }

  protected release(): number {
    const fd = this._fd;
    this._fd = -1;
    this.stopWatching();
    if (this.connectWaiter) {
      const w = this.connectWaiter;
      this.connectWaiter = null;
      w.reject(systemError('ECANCELED', 'connect', w.address, w.port));
    }
    return fd;
  }

  close(): void {
    if (this._fd < 0) return;
    this.k.close(this.release());
  }

  abort(): void {
    if (this._fd < 0) return;
    this.k.abort(this.release());
  }

  localAddress(): SockAddr {
    const fd = this.check('getsockname');
    const r = this.k.getsockname(fd);
    if (typeof r === 'number') throw systemError(r, 'getsockname');
    return toSockAddr(r);
  }

  remoteAddress(): SockAddr | null {
    const fd = this.check('getpeername');
    const r = this.k.getpeername(fd);
    if (typeof r === 'number') {
      if (r === -E.ENOTCONN) return null;
      throw systemError(r, 'getpeername');
    }
    return toSockAddr(r);
  }

  setOption(name: SockOpt, value: number | boolean): void {
    const fd = this.check('setsockopt');
    const o = OPTIONS[name];
    if (!o) throw codedError('ERR_INVALID_ARG_VALUE', `The argument 'name' is invalid. Received '${name}'`, TypeError);
    const r = this.k.setsockopt(fd, o[0], o[1], typeof value === 'boolean' ? (value ? 1 : 0) : value);
    if (r < 0) throw systemError(r, 'setsockopt');
  }

  getOption(name: SockOpt): number {
    const fd = this.check('getsockopt');
    const o = OPTIONS[name];
    if (!o) throw codedError('ERR_INVALID_ARG_VALUE', `The argument 'name' is invalid. Received '${name}'`, TypeError);
    const r = this.k.getsockopt(fd, o[0], o[1]);
    if (typeof r === 'number') throw systemError(r, 'getsockopt');
    return r[0];
  }

  /** SO_KEEPALIVE, and the idle time before the first probe (whole seconds, at least 1) */
  setKeepAlive(enable: boolean, initialDelayMs = 0): void {
    this.setOption('SO_KEEPALIVE', enable);
    if (enable && initialDelayMs > 0) this.setOption('TCP_KEEPIDLE', Math.max(1, Math.floor(initialDelayMs / 1000)));
  }

  setNoDelay(enable: boolean): void {
    this.setOption('TCP_NODELAY', enable);
  }

  addMembership(group: string, iface?: string): void {
    const r = this.k.membership(this.check('setsockopt'), this.domain, true, group, iface);
    if (r < 0) throw systemError(r, 'addMembership');
  }

  dropMembership(group: string, iface?: string): void {
    const r = this.k.membership(this.check('setsockopt'), this.domain, false, group, iface);
    if (r < 0) throw systemError(r, 'dropMembership');
  }

  setMulticastInterface(iface: string): void {
    const r = this.k.multicastInterface(this.check('setsockopt'), this.domain, iface);
    if (r < 0) throw systemError(r, 'setMulticastInterface');
  }

  watch(readable: boolean, writable: boolean): void {
    this.flags = (this.flags & ~(F_READ | F_WRITE)) | (readable ? F_READ : 0) | (writable ? F_WRITE : 0);
    this.updatePoller();
  }

  ref(): void {
    this.flags &= ~F_UNREF;
    this.applyRef();
  }

  unref(): void {
    this.flags |= F_UNREF;
    this.applyRef();
  }

  /** a connected socket accepted from this one, of the same kind */
  protected abstract adopt(handle: number): RawSocket;
  /** start or change watching: bits READABLE | WRITABLE (0: none) */
  protected abstract updatePoller(): void;
  /** stop watching for good (the socket is closing) */
  protected abstract stopWatching(): void;
  protected abstract applyRef(): void;

  /** bits the watcher should report now */
  protected wanted(): number {
    return (this.wantRead ? READABLE : 0) | (this.wantWrite || this.connectWaiter ? WRITABLE : 0);
  }

  /** readiness arrived from the watcher (status < 0: an error is pending) */
  protected onReady(status: number, events: number): void {
    if (status < 0) events = READABLE | WRITABLE;
    if (this.connectWaiter && (events & WRITABLE)) {
      const w = this.connectWaiter;
      this.connectWaiter = null;
      let err = 0;
      try { err = this.getOption('SO_ERROR'); } catch (e) { w.reject(e as Error); return; }
      this.updatePoller();
      if (err) w.reject(systemError(err, 'connect', w.address, w.port));
      else w.resolve();
      if (this._fd < 0) return;
    }
    if ((events & READABLE) && this.wantRead) this.emit('readable');
    if (this._fd >= 0 && (events & WRITABLE) && this.wantWrite) this.emit('writable');
  }
}
