// Node-20-compatible `dgram`, written once over the raw-socket interface (raw.ts), so that it
// runs on every kind of stack: the kernel, another network namespace, or a user-space stack.
//
// Two ways in:
//   createDgram(stack)               a module object shaped like require('dgram'), bound to
//                                    `stack`: m.createSocket('udp4'), new m.Socket({ type: 'udp6' })
//   new Socket({ type, stack })      the base class, given the stack through the `stack` option
//                                    (a Stack). Every m.Socket is also an instance of it.
//
// Extensions to Node's API, both on bind():
//   bind({ raw })   use an existing SOCK_DGRAM RawSocket of the same stack and family. Already
//                   bound: it is adopted as it is and 'listening' is emitted before bind()
//                   returns, as Node does for { fd }. Not yet bound: it is bound to the given
//                   port/address like a fresh socket.
//   bind({ fd })    only on a kernel stack that provides adoptFd() (see AdoptsDescriptors);
//                   any other stack throws ERR_INVALID_ARG_VALUE saying why.
//
// Behaviour follows Node 20's dgram as observed by experiment: argument validation and its
// error codes and messages, the implicit bind on first send()/connect(), the queue of calls
// made while a bind is in progress, 'listening'/'connect'/'close' emitted asynchronously,
// send errors given to the callback (and, as in Node, dropped when there is none; name
// resolution errors without a callback are emitted as 'error'). Where Node's own behaviour is a
// crash or a TypeError from its internals, this file throws the error Node meant instead; the
// differences are listed where they happen ("Node:" comments).
import { EventEmitter } from 'events';
import { isIP } from 'net';
import { getSystemErrorMap } from 'util';
import type { NonSharedBuffer } from 'buffer';
import type { AddressInfo } from 'net';
import type { BindOptions, RemoteInfo, SocketOptions, SocketType } from 'dgram';

import {
  codedError, describeReceived, invalidArgType, outOfRange, systemError, validatePort,
  type NodeError, type SystemError,
} from './errors';
import {
  AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM,
  RECVMMSG_MAX, type Datagram, type RawSocket, type SockOpt, type Stack,
} from './raw';

// ---- optional capabilities, beyond the raw.ts contract

/** A raw socket that can join source-specific multicast groups (IGMPv3 / MLDv2). */
export interface SourceSpecificMulticast {
  addSourceSpecificMembership(source: string, group: string, iface?: string): void;
  dropSourceSpecificMembership(source: string, group: string, iface?: string): void;
}

/**
 * A stack that can wrap a kernel file descriptor it did not create as a RawSocket. adoptFd
 * throws ERR_INVALID_FD_TYPE when fd is not a datagram socket, and takes ownership of fd.
 */
export interface AdoptsDescriptors {
  adoptFd(fd: number): RawSocket;
}

// ---- public types

export interface DgramSocketOptions extends SocketOptions {
  /** the stack the socket lives on; m.Socket / m.createSocket of createDgram(stack) supply it */
  stack?: Stack;
}

export interface DgramBindOptions extends BindOptions {
  /** an existing SOCK_DGRAM raw socket of the same stack and family to use */
  raw?: RawSocket;
}

export type SendCallback = (error: Error | null, bytes: number) => void;
type MessageListener = (msg: NonSharedBuffer, rinfo: RemoteInfo) => void;
type Lookup = NonNullable<SocketOptions['lookup']>;

// ---- limits

/** datagrams read per 'readable' event; the rest is read on the next loop turn (readiness is level-triggered) */
const MAX_READS_PER_TURN = 256;
/** the send queue (datagrams waiting for the raw socket to be writable) holds at most this many... */
const MAX_QUEUED_DATAGRAMS = 1024;
/** ...and at most this many bytes; beyond, send() fails with ENOBUFS */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

// ---- state

const UNBOUND = 0;
const BINDING = 1;
const BOUND = 2;
const DISCONNECTED = 0;
const CONNECTING = 1;
const CONNECTED = 2;

/** where createDgram's classes keep their stack: new.target[kStack] */
const kStack: unique symbol = Symbol('msockets.dgram.stack');

interface QueuedSend {
  data: Buffer;
  /** destination; null for a send to the connected peer */
  ip: string | null;
  /** the host as the caller named it, for error messages */
  host: string | undefined;
  port: number | undefined;
  callback: SendCallback | undefined;
}

// ---- errors with Node's codes and messages

const notRunning = (): NodeError => codedError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
const alreadyConnected = (): NodeError => codedError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
const notConnected = (): NodeError => codedError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
const alreadyBound = (): NodeError => codedError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
const badType = (): NodeError =>
  codedError('ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6', TypeError);
const badBufferSize = (): NodeError =>
  codedError('ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer', TypeError);
const outOfBounds = (name: string): NodeError =>
  codedError('ERR_BUFFER_OUT_OF_BOUNDS', `"${name}" is outside of buffer bounds`, RangeError);
const missingArgs = (name: string): NodeError =>
  codedError('ERR_MISSING_ARGS', `The "${name}" argument must be specified`, TypeError);

const BUFFER_TYPES = ['string', 'Buffer', 'TypedArray', 'DataView'];

function isSystemError(err: unknown): err is SystemError {
  const e = err as Partial<SystemError> | null;
  return err instanceof Error && typeof e?.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) && typeof e.errno === 'number';
}

/** the same system error, named after the call Node would name (syscall, address:port) */
function relabel(err: unknown, syscall: string, address?: string, port?: number): Error {
  if (!isSystemError(err)) return err instanceof Error ? err : new Error(String(err));
  const out = systemError(err.code, syscall, address, port);
  if (err.errno !== 0) out.errno = err.errno;
  return out;
}

interface BufferSizeError extends NodeError {
  info: { errno: number; code: string; message: string; syscall: string };
  errno: number;
  syscall: string;
}

/** ERR_SOCKET_BUFFER_SIZE, a SystemError carrying the underlying failure as Node's does */
function bufferSizeError(cause: unknown, syscall: string): Error {
  if (!isSystemError(cause)) return cause instanceof Error ? cause : new Error(String(cause));
  const errno = cause.errno;
  const description = getSystemErrorMap().get(errno)?.[1] ?? cause.code;
  const message = `Could not get or set buffer size: ${syscall} returned ${cause.code} (${description})`;
  const err = new Error(message) as BufferSizeError;
  Object.defineProperty(err, 'name', { value: 'SystemError', enumerable: false, writable: true, configurable: true });
  Object.defineProperty(err, 'toString', {
    value() { return `SystemError [ERR_SOCKET_BUFFER_SIZE]: ${message}`; },
    enumerable: false, writable: true, configurable: true,
  });
  err.code = 'ERR_SOCKET_BUFFER_SIZE';
  err.info = { errno, code: cause.code, message: description, syscall };
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

function validateUint32(value: unknown, name: string): void {
  if (typeof value !== 'number') throw invalidArgType(name, 'number', value);
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
  if (value < 0 || value > 0xffffffff) throw outOfRange(name, '>= 0 && <= 4294967295', value);
}

function isInt32(value: unknown): value is number {
  return typeof value === 'number' && value === (value | 0);
}

// ---- message buffers

/** a Buffer over the same memory as any ArrayBufferView */
function asBuffer(view: ArrayBufferView): Buffer {
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** msg[offset, offset + length), bytes of the view (or of the string's UTF-8), without copying */
function sliceBuffer(msg: unknown, offset: unknown, length: unknown): Buffer {
  let buf: Buffer;
  if (typeof msg === 'string') buf = Buffer.from(msg);
  else if (ArrayBuffer.isView(msg)) buf = asBuffer(msg);
  else throw invalidArgType('buffer', BUFFER_TYPES, msg);
  // as Node: both are coerced with ToUint32, so 'a' or undefined mean 0
  const off = (offset as number) >>> 0;
  const len = (length as number) >>> 0;
  if (off > buf.byteLength) throw outOfBounds('offset');
  if (off + len > buf.byteLength) throw outOfBounds('length');
  return buf.subarray(off, off + len);
}

/** the datagram's pieces: a string, a view, or an array of those */
function bufferList(msg: unknown): Buffer[] {
  if (Array.isArray(msg)) {
    const list: Buffer[] = [];
    for (const piece of msg) {
      if (typeof piece === 'string') list.push(Buffer.from(piece));
      else if (ArrayBuffer.isView(piece)) list.push(asBuffer(piece));
      else throw invalidArgType('buffer list arguments', BUFFER_TYPES, msg);
    }
    return list;
  }
  if (typeof msg === 'string') return [Buffer.from(msg)];
  if (ArrayBuffer.isView(msg)) return [asBuffer(msg)];
  throw invalidArgType('buffer', BUFFER_TYPES, msg);
}

/**
 * The port bind() uses. Node does not validate it: the binding converts it with ToUint32 and
 * keeps the low 16 bits, so 'x' binds an ephemeral port and -1 binds 65535. Kept for
 * compatibility; connect() and send() do validate (ERR_SOCKET_BAD_PORT).
 */
function bindPort(port: unknown): number {
  let n: number;
  if (typeof port === 'number') n = port;
  else if (typeof port === 'string') n = Number(port);
  else if (typeof port === 'boolean') n = port ? 1 : 0;
  else n = 0;
  return (n >>> 0) & 0xffff;
}

function isStack(value: unknown): value is Stack {
  const s = value as Partial<Stack> | null;
  return s !== null && typeof s === 'object' && typeof s.socket === 'function' && typeof s.lookup === 'function';
}

function isBound(raw: RawSocket): boolean {
  try {
    return raw.localAddress().port !== 0;
  } catch {
    return false;
  }
}

// ---- the socket

export class Socket extends EventEmitter {
  /** 'udp4' or 'udp6', as Node's */
  type: SocketType;

  static [kStack]?: Stack;

  readonly #stack: Stack;
  readonly #lookup: Lookup | undefined;
  readonly #reuseAddr: boolean;
  readonly #ipv6Only: boolean;
  readonly #recvBufferSize: number;
  readonly #sendBufferSize: number;

  #raw: RawSocket | null = null;
  #bindState = UNBOUND;
  #connectState = DISCONNECTED;
  #receiving = false;
  #closed = false;
  /** close() was called while a bind was in progress: it runs after the calls queued before it */
  #closing = false;
  #refed = true;
  /** calls made while the bind is in progress, run once it is done */
  #pending: (() => void)[] | undefined;
  #sendQueue: QueuedSend[] = [];
  #sendQueueBytes = 0;
  #abortCleanup: (() => void) | undefined;

  constructor(type?: SocketType | DgramSocketOptions, listener?: MessageListener) {
    super();
    let options: DgramSocketOptions | undefined;
    let kind: unknown = type;
    if (type !== null && typeof type === 'object') {
      options = type;
      kind = type.type;
      // validated only when given a truthy value, as Node does
      if (options.recvBufferSize) validateUint32(options.recvBufferSize, 'options.recvBufferSize');
      if (options.sendBufferSize) validateUint32(options.sendBufferSize, 'options.sendBufferSize');
    }
    const lookup = options?.lookup;
    if (lookup !== undefined && typeof lookup !== 'function') throw invalidArgType('lookup', 'function', lookup);
    if (kind !== 'udp4' && kind !== 'udp6') throw badType();
    const signal = options?.signal;
    if (signal !== undefined && (signal === null || typeof signal !== 'object' || !('aborted' in signal))) {
      throw invalidArgType('options.signal', 'AbortSignal', signal);
    }
    const stack = options?.stack ?? (new.target as typeof Socket)[kStack];
    if (!isStack(stack)) throw invalidArgType('options.stack', 'Stack', stack);

    this.type = kind;
    this.#stack = stack;
    this.#lookup = lookup;
    this.#reuseAddr = !!options?.reuseAddr;
    this.#ipv6Only = !!options?.ipv6Only;
    this.#recvBufferSize = options?.recvBufferSize || 0;
    this.#sendBufferSize = options?.sendBufferSize || 0;

    if (typeof listener === 'function') this.on('message', listener);

    if (signal !== undefined) {
      const onAbort = (): void => {
        if (!this.#closed && !this.#closing) this.close();
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.#abortCleanup = () => signal.removeEventListener('abort', onAbort);
      }
    }
  }

  // ---- helpers

  get #domain(): number { return this.type === 'udp4' ? AF_INET : AF_INET6; }
  get #loopback(): string { return this.type === 'udp4' ? '127.0.0.1' : '::1'; }
  get #wildcard(): string { return this.type === 'udp4' ? '0.0.0.0' : '::'; }

  #familyOk(ip: string): boolean {
    return isIP(ip) === (this.type === 'udp4' ? 4 : 6);
  }

  #healthCheck(): void {
    if (this.#closed) throw notRunning();
  }

  /**
   * A call that would wait for the bind (queued behind a close() already waiting there) would
   * only run on a closed socket. Node: it throws then, from inside its queue; here, now.
   */
  #checkNotClosing(): void {
    if (this.#closing && this.#bindState !== BOUND) throw notRunning();
  }

  /** the raw socket for an option call: NOT_RUNNING once closed, EBADF before bind (as Node) */
  #rawFor(syscall: string): RawSocket {
    this.#healthCheck();
    if (!this.#raw) throw systemError('EBADF', syscall);
    return this.#raw;
  }

  #setOption(syscall: string, name: SockOpt, value: number): void {
    const raw = this.#rawFor(syscall);
    try {
      raw.setOption(name, value);
    } catch (err) {
      throw relabel(err, syscall);
    }
  }

  /**
   * Name resolution for bind/connect/send: the `lookup` option when given (called for every
   * address, with the family number, as Node calls it), else the stack's resolver, skipped for
   * IP literals. The callback is always asynchronous.
   */
  #resolve(host: string, done: (err: Error | null, ip: string) => void): void {
    const family = this.type === 'udp4' ? 4 : 6;
    let sync = true;
    const finish = (err: Error | null, ip: string): void => {
      if (sync) process.nextTick(done, err, ip);
      else done(err, ip);
    };
    const onResult = (err: NodeJS.ErrnoException | null, address?: unknown): void => {
      if (err) return finish(err, '');
      // an `all`-style answer (Node would abort on one): take the first address
      const ip = Array.isArray(address) ? (address[0] as { address?: unknown } | undefined)?.address : address;
      if (typeof ip !== 'string' || ip === '') return finish(systemError('ENOTFOUND', 'getaddrinfo', host), '');
      finish(null, ip);
    };
    if (this.#lookup) {
      (this.#lookup as unknown as (h: string, f: number, cb: typeof onResult) => void)(host, family, onResult);
    } else if (isIP(host) !== 0) {
      finish(null, host);
    } else {
      this.#stack.lookup(host, { family }, onResult);
    }
    sync = false;
  }

  #attach(raw: RawSocket): void {
    this.#raw = raw;
    if (!this.#refed) raw.unref();
  }

  #applyBufferSizes(raw: RawSocket): void {
    if (this.#recvBufferSize) {
      try { raw.setOption('SO_RCVBUF', this.#recvBufferSize); } catch (err) { throw bufferSizeError(err, 'uv_recv_buffer_size'); }
    }
    if (this.#sendBufferSize) {
      try { raw.setOption('SO_SNDBUF', this.#sendBufferSize); } catch (err) { throw bufferSizeError(err, 'uv_send_buffer_size'); }
    }
  }

  // ---- calls made while binding

  #enqueue(op: () => void): void {
    if (!this.#pending) {
      this.#pending = [];
      this.once(EventEmitter.errorMonitor, this.#onListenError);
      this.once('listening', this.#onListenSuccess);
    }
    this.#pending.push(op);
  }

  #onListenSuccess = (): void => {
    this.removeListener(EventEmitter.errorMonitor, this.#onListenError);
    const ops = this.#pending ?? [];
    this.#pending = undefined;
    for (const op of ops) op();
  };

  // The bind failed: the queued sends and connects are dropped, as Node drops them.
  // Node: a close() queued behind them is dropped too and the socket stays open; here it runs.
  #onListenError = (): void => {
    this.removeListener('listening', this.#onListenSuccess);
    this.#pending = undefined;
    if (this.#closing) this.#destroy();
  };

  // ---- bind

  bind(port?: number, address?: string, callback?: () => void): this;
  bind(port?: number, callback?: () => void): this;
  bind(callback?: () => void): this;
  bind(options: DgramBindOptions, callback?: () => void): this;
  bind(...args: unknown[]): this {
    this.#healthCheck();
    if (this.#bindState !== UNBOUND) throw alreadyBound();

    let port: unknown = args[0];
    let address: unknown;
    let adopted: RawSocket | null = null;
    let viaFd = false;
    if (port !== null && typeof port === 'object') {
      const options = port as DgramBindOptions;
      if (options.raw !== undefined) adopted = this.#checkRaw(options.raw);
      else if (isInt32(options.fd) && options.fd > 0) viaFd = true;
      address = options.address || '';
      port = options.port;
    } else {
      address = typeof args[1] === 'function' ? '' : args[1];
    }
    if (!address) address = this.#wildcard;
    // Node: checked by the lookup after the state changed, leaving the socket stuck 'binding'
    if (typeof address !== 'string') throw invalidArgType('hostname', 'string', address);
    if (viaFd) adopted = this.#adoptFd((args[0] as BindOptions).fd as number);
    // an open descriptor or a bound raw socket is listening at once, as Node does for { fd }
    const immediate = adopted !== null && (viaFd || isBound(adopted));
    if (immediate) this.#applyBufferSizes(adopted as RawSocket);

    this.#bindState = BINDING;
    const callback = args.length > 0 ? args[args.length - 1] : undefined;
    if (typeof callback === 'function') {
      // as Node: the callback waits for 'listening'; a bind error removes it (and, being an
      // 'error' listener meanwhile, keeps that error from being thrown)
      const removeListeners = (): void => {
        this.removeListener('error', removeListeners);
        this.removeListener('listening', onListening);
      };
      const onListening = (): void => {
        removeListeners();
        (callback as () => void).call(this);
      };
      this.on('error', removeListeners);
      this.on('listening', onListening);
    }

    if (adopted && this.#raw !== adopted) {
      if (this.#raw) this.#raw.close();
      this.#attach(adopted);
    }
    if (immediate) {
      this.#startListening();
      return this;
    }
    const host = address;
    const portNumber = bindPort(port);
    this.#resolve(host, (err, ip) => this.#finishBind(err, ip, portNumber));
    return this;
  }

  #checkRaw(raw: unknown): RawSocket {
    const r = raw as Partial<RawSocket> | null;
    const ok = r !== null && typeof r === 'object' && typeof r.recvfrom === 'function' &&
      r.stack === this.#stack && r.type === SOCK_DGRAM && r.domain === this.#domain && !r.closed;
    if (!ok) {
      const family = this.type === 'udp4' ? 'AF_INET' : 'AF_INET6';
      throw codedError('ERR_INVALID_ARG_VALUE',
        `The property 'options.raw' must be an open SOCK_DGRAM ${family} raw socket of stack '${this.#stack.name}'.${describeReceived(raw)}`,
        TypeError);
    }
    return raw as RawSocket;
  }

  #adoptFd(fd: number): RawSocket {
    const stack = this.#stack as Stack & Partial<AdoptsDescriptors>;
    if (stack.kind !== 'kernel') {
      const what = stack.kind === 'user' ? 'a user-space stack' : 'a network-namespace stack';
      throw codedError('ERR_INVALID_ARG_VALUE',
        `The property 'options.fd' cannot be used here: '${stack.name}' is ${what}, and only the kernel stack of this namespace adopts file descriptors. Received ${fd}`,
        TypeError);
    }
    if (typeof stack.adoptFd !== 'function') {
      throw codedError('ERR_INVALID_ARG_VALUE',
        `The property 'options.fd' cannot be used here: stack '${stack.name}' cannot adopt file descriptors. Received ${fd}`,
        TypeError);
    }
    const raw = stack.adoptFd(fd);
    if (raw.type !== SOCK_DGRAM) {
      throw codedError('ERR_INVALID_FD_TYPE', `Unsupported fd type: ${raw.type === SOCK_STREAM ? 'TCP' : 'UNKNOWN'}`, TypeError);
    }
    if (raw.domain !== this.#domain) {
      throw codedError('ERR_INVALID_ARG_VALUE',
        `The property 'options.fd' must be a socket of the ${this.type === 'udp4' ? 'AF_INET' : 'AF_INET6'} family for a ${this.type} socket. Received ${fd}`,
        TypeError);
    }
    return raw;
  }

  #finishBind(lookupError: Error | null, ip: string, port: number): void {
    if (this.#closed) return;
    if (lookupError) {
      this.#bindState = UNBOUND;
      this.emit('error', lookupError);
      return;
    }
    let raw = this.#raw;
    const created = raw === null;
    try {
      if (!this.#familyOk(ip)) throw systemError('EINVAL', 'bind', ip, port);
      if (!raw) {
        raw = this.#stack.socket(this.#domain, SOCK_DGRAM);
        this.#attach(raw);
        try {
          if (this.#reuseAddr) raw.setOption('SO_REUSEADDR', 1);
          if (this.#ipv6Only && this.type === 'udp6') raw.setOption('IPV6_V6ONLY', 1);
        } catch (err) {
          throw relabel(err, 'bind', ip, port);
        }
      }
      this.#applyBufferSizes(raw);
      try {
        raw.bind(ip, port);
      } catch (err) {
        throw relabel(err, 'bind', ip, port);
      }
    } catch (err) {
      if (created && raw) {
        this.#raw = null;
        raw.close();
      }
      this.#bindState = UNBOUND;
      this.emit('error', err);
      return;
    }
    this.#startListening();
  }

  #startListening(): void {
    const raw = this.#raw as RawSocket;
    raw.on('readable', this.#onReadable);
    raw.on('writable', this.#onWritable);
    this.#receiving = true;
    this.#bindState = BOUND;
    raw.watch(true, this.#sendQueue.length > 0);
    this.emit('listening');
  }

  // ---- receiving

  #onReadable = (): void => {
    for (let n = 0; n < MAX_READS_PER_TURN;) {
      const raw = this.#raw;
      if (!raw || !this.#receiving) return;
      let batch: Datagram[] | null;
      // with recvmmsg, a batch shorter than asked for means the queue is empty for now (what
      // arrives while the handlers run is reported again, readiness being level-triggered)
      const want = raw.recvmmsg ? Math.min(MAX_READS_PER_TURN - n, RECVMMSG_MAX) : 0;
      try {
        if (want) batch = raw.recvmmsg!(want);
        else {
          const d = raw.recvfrom();
          batch = d ? [d] : null;
        }
      } catch (err) {
        // e.g. ECONNREFUSED after an ICMP port unreachable, as Node reports it
        this.emit('error', relabel(err, 'recvmsg'));
        return;
      }
      if (batch === null) return;
      n += batch.length;
      const drained = batch.length < want;
      for (const d of batch) {
        // a handler may close the socket: what is left of the batch goes with it
        if (this.#raw !== raw || !this.#receiving) return;
        if (d.truncated) {
          this.emit('error', systemError('EMSGSIZE', 'recvmsg', d.address, d.port,
            `a datagram larger than the receive buffer (${d.data.length} bytes) was dropped`));
          continue;
        }
        const rinfo: RemoteInfo = { address: d.address, family: d.family, port: d.port, size: d.data.length };
        this.emit('message', d.data, rinfo);
      }
      if (drained) return;
    }
  };

  // ---- connect

  connect(port: number, address?: string, callback?: () => void): void;
  connect(port: number, callback: () => void): void;
  connect(port: unknown, address?: unknown, callback?: unknown): void {
    const portNumber = validatePort(port, 'Port', false);
    if (typeof address === 'function') {
      callback = address;
      address = '';
    } else if (address === undefined) {
      address = '';
    }
    if (typeof address !== 'string') throw invalidArgType('address', 'string', address);
    // Node: a truthy non-function fails later, from inside once(); here it fails now
    if (callback && typeof callback !== 'function') throw invalidArgType('listener', 'function', callback);
    this.#healthCheck();
    this.#checkNotClosing();
    if (this.#connectState !== DISCONNECTED) throw alreadyConnected();
    this.#connectState = CONNECTING;
    if (this.#bindState === UNBOUND) this.bind({ port: 0, exclusive: true }, null as never);
    const cb = typeof callback === 'function' ? callback as (err?: Error) => void : undefined;
    const host = address;
    const start = (): void => this.#startConnect(portNumber, host, cb);
    if (this.#bindState !== BOUND) {
      this.#enqueue(start);
      return;
    }
    start();
  }

  #startConnect(port: number, address: string, callback: ((err?: Error) => void) | undefined): void {
    if (callback) this.once('connect', callback);
    const host = address || this.#loopback;
    this.#resolve(host, (err, ip) => this.#finishConnect(err, ip, host, port, callback));
  }

  #finishConnect(lookupError: Error | null, ip: string, host: string, port: number,
    callback: ((err?: Error) => void) | undefined): void {
    const raw = this.#raw;
    if (this.#closed || !raw) return;
    let failure = lookupError;
    let attempt: Promise<void> | undefined;
    if (!failure && !this.#familyOk(ip)) failure = systemError('EINVAL', 'connect', host, port);
    if (!failure) {
      try {
        attempt = raw.connect(ip, port);
      } catch (err) {
        failure = relabel(err, 'connect', host, port);
      }
    }
    if (failure || !attempt) {
      this.#connectFailed(failure ?? systemError('EINVAL', 'connect', host, port), callback);
      return;
    }
    // A datagram connect is done when connect() returns: when the peer is set already, the
    // socket is connected now, as Node's is, so that calls made before the promise settles
    // see it connected (Node: a send to an address then fails with EISCONN).
    let peerSet = false;
    try {
      peerSet = raw.remoteAddress() !== null;
    } catch {
      peerSet = false;
    }
    if (peerSet) {
      attempt.catch(() => { /* settles as resolved: the peer is set */ });
      this.#connectState = CONNECTED;
      process.nextTick(() => this.emit('connect'));
      return;
    }
    attempt.then(() => {
      if (this.#closed || this.#raw !== raw) return;
      this.#connectState = CONNECTED;
      process.nextTick(() => this.emit('connect'));
    }, (err: unknown) => {
      if (this.#closed || this.#raw !== raw) return;
      this.#connectFailed(relabel(err, 'connect', host, port), callback);
    });
  }

  #connectFailed(err: Error, callback: ((err?: Error) => void) | undefined): void {
    this.#connectState = DISCONNECTED;
    process.nextTick(() => {
      if (callback) {
        this.removeListener('connect', callback);
        callback.call(this, err);
      } else {
        this.emit('error', err);
      }
    });
  }

  disconnect(): void {
    if (this.#connectState !== CONNECTED || !this.#raw) throw notConnected();
    try {
      this.#raw.disconnect();
    } catch (err) {
      throw relabel(err, 'connect');
    }
    this.#connectState = DISCONNECTED;
  }

  // ---- send

  send(msg: string | NodeJS.ArrayBufferView | readonly unknown[], port?: number, address?: string, callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView | readonly unknown[], port?: number, callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView | readonly unknown[], callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, port?: number, callback?: SendCallback): void;
  send(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, callback?: SendCallback): void;
  send(...args: unknown[]): void {
    let [buffer, offset, length, port, address, callback] = args;
    const connected = this.#connectState === CONNECTED;
    // Which overload: Node decides it from the arguments' truthiness and types, like this.
    if (!connected) {
      if (address || (port && typeof port !== 'function')) {
        buffer = sliceBuffer(buffer, offset, length);
      } else {
        callback = port;
        port = offset;
        address = length;
      }
    } else {
      if (typeof length === 'number') {
        buffer = sliceBuffer(buffer, offset, length);
        if (typeof port === 'function') {
          callback = port;
          port = null;
        }
      } else {
        callback = offset;
      }
      if (port || address) throw alreadyConnected();
    }
    const list = bufferList(buffer);
    const portNumber = connected ? undefined : validatePort(port, 'Port', false);
    if (typeof callback !== 'function') callback = undefined;
    if (typeof address === 'function') {
      callback = address;
      address = undefined;
    } else if (address !== undefined && address !== null && typeof address !== 'string') {
      throw invalidArgType('address', 'string', address);
    }
    this.#healthCheck();
    this.#checkNotClosing();

    if (this.#bindState === UNBOUND) this.bind({ port: 0, exclusive: true }, null as never);
    if (list.length === 0) list.push(Buffer.alloc(0));
    const host = (address as string | null | undefined) || undefined;
    const cb = callback as SendCallback | undefined;
    const go = (): void => this.#dispatch(list, portNumber, host, cb);
    if (this.#bindState !== BOUND) {
      this.#enqueue(go);
      return;
    }
    go();
  }

  /**
   * Node's deprecated sendto(): send() with every argument required and typed.
   */
  sendto(msg: string | NodeJS.ArrayBufferView, offset: number, length: number, port: number, address: string, callback?: SendCallback): void {
    if (typeof offset !== 'number') throw invalidArgType('offset', 'number', offset);
    if (typeof length !== 'number') throw invalidArgType('length', 'number', length);
    if (typeof port !== 'number') throw invalidArgType('port', 'number', port);
    if (typeof address !== 'string') throw invalidArgType('address', 'string', address);
    this.send(msg, offset, length, port, address, callback);
  }

  /** port undefined: to the connected peer; else resolve the host (default: loopback) first */
  #dispatch(list: Buffer[], port: number | undefined, address: string | undefined, callback: SendCallback | undefined): void {
    if (port === undefined) {
      this.#transmit(null, null, list, undefined, undefined, callback);
      return;
    }
    // Node: the error of a send without address names the host 'undefined'; here, the loopback
    const host = address ?? this.#loopback;
    if (!this.#lookup && isIP(host) !== 0) {
      // an address already: no lookup, but still sent on the next tick, as Node's lookup of a
      // literal answers then (a close() right after send() drops the datagram, as there)
      process.nextTick(Socket.#transmitLiteral, this, list, host, port, callback);
      return;
    }
    this.#resolve(host, (err, ip) => this.#transmit(err, ip, list, host, port, callback));
  }

  static #transmitLiteral(self: Socket, list: Buffer[], host: string, port: number, callback: SendCallback | undefined): void {
    self.#transmit(null, host, list, host, port, callback);
  }

  #transmit(lookupError: Error | null, ip: string | null, list: Buffer[], host: string | undefined,
    port: number | undefined, callback: SendCallback | undefined): void {
    if (lookupError) {
      // name resolution failures: to the callback, else as 'error' (as Node)
      if (callback) process.nextTick(callback, lookupError);
      else process.nextTick(() => this.emit('error', lookupError));
      return;
    }
    if (this.#closed || !this.#raw) return;
    const data = list.length === 1 ? list[0] : Buffer.concat(list);
    const req: QueuedSend = { data, ip, host, port, callback };
    if (ip !== null && !this.#familyOk(ip)) {
      this.#sendFailed(req, systemError('EINVAL', 'send', host, port));
      return;
    }
    if (this.#sendQueue.length > 0 || !this.#attempt(req)) this.#queueSend(req);
  }

  /** one try at sending req: true when it is done with (sent or failed), false when it would block */
  #attempt(req: QueuedSend): boolean {
    const raw = this.#raw as RawSocket;
    let sent: number;
    try {
      if (req.ip === null) {
        if (this.#connectState !== CONNECTED) throw systemError('EDESTADDRREQ', 'send');
        sent = raw.send(req.data);
      } else {
        // as libuv: a destination on a connected socket is an error, not an override
        if (this.#connectState === CONNECTED) throw systemError('EISCONN', 'send', req.host, req.port);
        sent = raw.sendto(req.data, req.ip, req.port as number);
      }
    } catch (err) {
      this.#sendFailed(req, relabel(err, 'send', req.host, req.port));
      return true;
    }
    // -1: would block (raw.ts), try again on 'writable'
    if (sent < 0) return false;
    if (sent !== req.data.length) {
      this.#sendFailed(req, systemError('EMSGSIZE', 'send', req.host, req.port,
        `the stack sent ${sent} of ${req.data.length} bytes of a datagram`));
      return true;
    }
    if (req.callback) process.nextTick(req.callback, null, sent);
    return true;
  }

  /** send errors go to the callback; without one they are dropped, as Node drops them */
  #sendFailed(req: QueuedSend, err: Error): void {
    if (req.callback) process.nextTick(req.callback, err);
  }

  #queueSend(req: QueuedSend): void {
    const queue = this.#sendQueue;
    if (queue.length >= MAX_QUEUED_DATAGRAMS ||
        (queue.length > 0 && this.#sendQueueBytes + req.data.length > MAX_QUEUED_BYTES)) {
      this.#sendFailed(req, systemError('ENOBUFS', 'send', req.host, req.port,
        `the send queue is full (${queue.length} datagrams, ${this.#sendQueueBytes} bytes)`));
      return;
    }
    queue.push(req);
    this.#sendQueueBytes += req.data.length;
    if (queue.length === 1) this.#raw?.watch(this.#receiving, true);
  }

  #onWritable = (): void => {
    const queue = this.#sendQueue;
    while (queue.length > 0) {
      if (this.#closed || !this.#raw) return;
      const req = queue[0];
      if (!this.#attempt(req)) return;
      queue.shift();
      this.#sendQueueBytes -= req.data.length;
    }
    this.#raw?.watch(this.#receiving, false);
  };

  getSendQueueSize(): number {
    return this.#sendQueueBytes;
  }

  getSendQueueCount(): number {
    return this.#sendQueue.length;
  }

  // ---- close

  close(callback?: () => void): this {
    if (this.#closed || this.#closing) throw notRunning();
    if (typeof callback === 'function') this.on('close', callback);
    if (this.#pending) {
      // as Node: the calls made while binding run first
      this.#closing = true;
      this.#pending.push(() => this.#destroy());
      return this;
    }
    this.#destroy();
    return this;
  }

  #destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = false;
    this.#receiving = false;
    this.#connectState = DISCONNECTED;
    const canceled = this.#sendQueue;
    this.#sendQueue = [];
    this.#sendQueueBytes = 0;
    if (this.#abortCleanup) {
      this.#abortCleanup();
      this.#abortCleanup = undefined;
    }
    const raw = this.#raw;
    this.#raw = null;
    if (raw) {
      raw.off('readable', this.#onReadable);
      raw.off('writable', this.#onWritable);
      raw.close();
    }
    process.nextTick(() => {
      this.emit('close');
      // datagrams still waiting for the raw socket: canceled, as libuv cancels its queue
      for (const req of canceled) {
        if (req.callback) (req.callback as (err: Error) => void)(systemError('ECANCELED', 'send', req.host, req.port));
      }
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) return;
    await new Promise<void>((resolve) => {
      // a close() already waiting for the bind: wait for it
      if (this.#closing) this.once('close', () => resolve());
      else this.close(() => resolve());
    });
  }

  // ---- addresses

  address(): AddressInfo {
    this.#healthCheck();
    const raw = this.#raw;
    if (!raw || this.#bindState !== BOUND) throw systemError('EBADF', 'getsockname');
    let a;
    try {
      a = raw.localAddress();
    } catch (err) {
      throw relabel(err, 'getsockname');
    }
    return { address: a.address, family: a.family, port: a.port };
  }

  remoteAddress(): AddressInfo {
    this.#healthCheck();
    const raw = this.#raw;
    if (this.#connectState !== CONNECTED || !raw) throw notConnected();
    let a;
    try {
      a = raw.remoteAddress();
    } catch (err) {
      throw relabel(err, 'getpeername');
    }
    if (!a) throw notConnected();
    return { address: a.address, family: a.family, port: a.port };
  }

  // ---- options
  // Node: after close() these fail with a TypeError from its internals; here ERR_SOCKET_DGRAM_NOT_RUNNING.

  setBroadcast(flag: boolean): void {
    this.#setOption('setBroadcast', 'SO_BROADCAST', flag ? 1 : 0);
  }

  setTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw invalidArgType('ttl', 'number', ttl);
    this.#healthCheck();
    const hops = ttl | 0;
    if (hops < 1 || hops > 255) throw systemError('EINVAL', 'setTTL');
    this.#setOption('setTTL', this.type === 'udp4' ? 'IP_TTL' : 'IPV6_UNICAST_HOPS', hops);
    return ttl;
  }

  setMulticastTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw invalidArgType('ttl', 'number', ttl);
    this.#healthCheck();
    const hops = ttl | 0;
    if (hops < 0 || hops > 255) throw systemError('EINVAL', 'setMulticastTTL');
    this.#setOption('setMulticastTTL', this.type === 'udp4' ? 'IP_MULTICAST_TTL' : 'IPV6_MULTICAST_HOPS', hops);
    return ttl;
  }

  setMulticastLoopback(flag: boolean): boolean {
    this.#setOption('setMulticastLoopback', this.type === 'udp4' ? 'IP_MULTICAST_LOOP' : 'IPV6_MULTICAST_LOOP', flag ? 1 : 0);
    return flag;
  }

  setMulticastInterface(interfaceAddress: string): void {
    if (typeof interfaceAddress !== 'string') throw invalidArgType('interfaceAddress', 'string', interfaceAddress);
    const raw = this.#rawFor('setMulticastInterface');
    try {
      raw.setMulticastInterface(interfaceAddress);
    } catch (err) {
      throw relabel(err, 'setMulticastInterface');
    }
  }

  // Node: on a socket not yet bound, libuv binds it to the wildcard on the quiet (no
  // 'listening', no receiving, and a later bind() fails with EINVAL); here it is EBADF, like
  // the other option calls.
  addMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#membership('addMembership', multicastAddress, interfaceAddress);
  }

  dropMembership(multicastAddress: string, interfaceAddress?: string): void {
    this.#membership('dropMembership', multicastAddress, interfaceAddress);
  }

  #membership(syscall: 'addMembership' | 'dropMembership', group: unknown, iface: unknown): void {
    this.#healthCheck();
    if (!group) throw missingArgs('multicastAddress');
    const raw = this.#rawFor(syscall);
    try {
      raw[syscall](String(group), iface === undefined || iface === null ? undefined : String(iface));
    } catch (err) {
      throw relabel(err, syscall);
    }
  }

  addSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceMembership('addSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress);
  }

  dropSourceSpecificMembership(sourceAddress: string, groupAddress: string, interfaceAddress?: string): void {
    this.#sourceMembership('dropSourceSpecificMembership', sourceAddress, groupAddress, interfaceAddress);
  }

  #sourceMembership(syscall: keyof SourceSpecificMulticast, source: unknown, group: unknown, iface: unknown): void {
    this.#healthCheck();
    if (typeof source !== 'string') throw invalidArgType('sourceAddress', 'string', source);
    if (typeof group !== 'string') throw invalidArgType('groupAddress', 'string', group);
    const raw = this.#rawFor(syscall) as RawSocket & Partial<SourceSpecificMulticast>;
    const call = raw[syscall];
    if (typeof call !== 'function') {
      throw systemError('ENOSYS', syscall, undefined, undefined,
        `the raw sockets of stack '${this.#stack.name}' have no source-specific multicast`);
    }
    try {
      call.call(raw, source, group, iface === undefined || iface === null ? undefined : String(iface));
    } catch (err) {
      throw relabel(err, syscall);
    }
  }

  // ---- buffer sizes: Node's checks (a uint32, 0 meaning "read it"), its ERR_SOCKET_BUFFER_SIZE

  setRecvBufferSize(size: number): void {
    this.#bufferSize('recv', size);
  }

  setSendBufferSize(size: number): void {
    this.#bufferSize('send', size);
  }

  getRecvBufferSize(): number {
    return this.#bufferSize('recv', 0);
  }

  getSendBufferSize(): number {
    return this.#bufferSize('send', 0);
  }

  #bufferSize(which: 'recv' | 'send', size: unknown): number {
    if (typeof size !== 'number' || size >>> 0 !== size) throw badBufferSize();
    this.#healthCheck();
    const syscall = which === 'recv' ? 'uv_recv_buffer_size' : 'uv_send_buffer_size';
    const option: SockOpt = which === 'recv' ? 'SO_RCVBUF' : 'SO_SNDBUF';
    const raw = this.#raw;
    try {
      if (!raw) throw systemError('EBADF', syscall);
      if (size === 0) return raw.getOption(option);
      // the value is a C int for setsockopt
      if (size > 0x7fffffff) throw systemError('EINVAL', syscall);
      raw.setOption(option, size);
      return size;
    } catch (err) {
      throw bufferSizeError(err, syscall);
    }
  }

  // ---- event loop

  ref(): this {
    this.#refed = true;
    this.#raw?.ref();
    return this;
  }

  unref(): this {
    this.#refed = false;
    this.#raw?.unref();
    return this;
  }
}

// ---- the module

type DgramModule = typeof import('dgram');

/** the class above, under a name the module's own `Socket` class does not shadow */
const BaseSocket = Socket;

/** A module object like require('dgram') whose sockets live on `stack`. */
export function createDgram(stack: Stack): DgramModule {
  if (!isStack(stack)) throw invalidArgType('stack', 'Stack', stack);

  const StackSocket = class Socket extends BaseSocket {
    static override [kStack]: Stack = stack;
  };

  function createSocket(type: SocketType, callback?: MessageListener): InstanceType<typeof StackSocket>;
  function createSocket(options: SocketOptions, callback?: MessageListener): InstanceType<typeof StackSocket>;
  function createSocket(type: SocketType | SocketOptions, callback?: MessageListener): InstanceType<typeof StackSocket> {
    return new StackSocket(type, callback);
  }

  // @types/node gives dgram.Socket no constructor of its own (it inherits EventEmitter's), so
  // no class taking (type, listener) matches it; the instances are checked just below.
  return { Socket: StackSocket as unknown as DgramModule['Socket'], createSocket };
}

/** compile-time check: a Socket of this file is usable wherever Node's dgram.Socket is */
type Assert<T extends true> = T;
type InstanceCompatible = Assert<Socket extends import('dgram').Socket ? true : false>;
