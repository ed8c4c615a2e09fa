// Node-20-compatible `net` classes, written once over the raw-socket interface (lib/raw.ts), so
// that every kind of stack (kernel, another namespace, the user-space engine) gets the same
// Socket and Server.
//
// Exported API
//   createNet(stack: Stack): typeof import('net')
//       The `net` module of one stack: Socket/Stream, Server, createServer, createConnection,
//       connect, plus Node's stack-independent helpers (isIP, BlockList, SocketAddress, the
//       autoSelectFamily defaults, _normalizeArgs). `new mod.Socket()` and `new mod.Server()`
//       create sockets on `stack`. One module per stack (cached).
//   Socket(options?: SocketOptions)     (with or without `new`, or Socket.call(this, ...))
//   Server(options?: ServerOptions, connectionListener?)     (likewise)
//       The base classes, stack-neutral: they take the stack through `options.stack`
//       (or, for a Socket, from `options.raw.stack`). Like Node's own constructors they can be
//       called without `new` and applied to an object that inherits from their prototype,
//       which is how Node's http.Server and similar subclasses initialise their base.
//   NetSocket, NetServer
//       The same prototypes as ES classes, for `extends` and for types.
//
// Socket options beyond Node's: `stack` (the stack to create raw sockets on) and `raw` (an
// already-connected SOCK_STREAM RawSocket to wrap: how servers build accepted sockets).
// `server.listen(raw)` takes a bound or listening RawSocket.
//
// What differs from Node, on purpose (see also the notes at each place):
// - No IPC: `connect(path)`, `listen(path)`, `{ fd }` and foreign handles throw
//   ERR_INVALID_ARG_VALUE synchronously; a stack has no local sockets and no file descriptors
//   to adopt. `listen(raw)` and `new Socket({ raw })` are the ways to bring a socket in.
// - `localPort` outside 0..65535 throws ERR_SOCKET_BAD_PORT instead of failing in bind().
// - Nothing is emitted after destroy(): a lookup that completes after it emits no 'lookup'.
// - A custom `lookup` that answers with no addresses destroys the socket with ENOTFOUND
//   instead of throwing inside Node's internals.
// - connect() on a socket that is connecting or connected fails with EALREADY / EISCONN.
// - `exclusive` is accepted and ignored (there is no cluster); `_handle` is not exposed.
import { Duplex, getDefaultHighWaterMark, type DuplexOptions } from 'stream';
import { EventEmitter, captureRejectionSymbol } from 'events';
import * as nodeNet from 'net';
import * as dns from 'dns';
import { constants as osConstants } from 'os';
import { getSystemErrorMap, inspect } from 'util';
import { isUint8Array } from 'util/types';
import { AF_INET, AF_INET6, SOCK_STREAM, SHUT_WR, type RawSocket, type SockAddr, type Stack } from './raw';
import {
  codedError, describeReceived, invalidArgType, invalidArgValue, invalidIpAddress, systemError,
  validatePort, type NodeError, type SystemError,
} from './errors';

type Dict = Record<PropertyKey, unknown>;
type Callback = (err?: Error | null) => void;
type AddressInfo = { address: string; family: string; port: number };
type LookupFn = (hostname: string, options: Dict, callback: (...args: unknown[]) => void) => void;

// ---------------------------------------------------------------------------------------------
// Errors not in errors.ts, with Node's codes and messages

function errMissingArgs(): NodeError {
  return codedError('ERR_MISSING_ARGS', 'The "options" or "port" or "path" argument must be specified', TypeError);
}

function errSocketClosed(): NodeError {
  return codedError('ERR_SOCKET_CLOSED', 'Socket is closed');
}

function errClosedBeforeConnection(): NodeError {
  return codedError('ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'Socket closed before the connection was established');
}

function errAlreadyListen(): NodeError {
  return codedError('ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
}

function errNotRunning(): NodeError {
  return codedError('ERR_SERVER_NOT_RUNNING', 'Server is not running.');
}

function errConnectionTimeout(): NodeError {
  return codedError('ERR_SOCKET_CONNECTION_TIMEOUT', 'Socket connection timeout');
}

function errInvalidAddressFamily(family: unknown, host: string, port: number): NodeError {
  const err = codedError('ERR_INVALID_ADDRESS_FAMILY', `Invalid address family: ${String(family)} ${host}:${port}`, RangeError);
  Object.assign(err, { host, port });
  return err;
}

function errMissingStack(): NodeError {
  return codedError('ERR_MISSING_OPTION', 'options.stack is required', TypeError);
}

/** ERR_INVALID_ARG_TYPE where errors.ts words the expectation differently from Node */
function argTypeError(name: string, expected: string, value: unknown): NodeError {
  const what = name.includes('.') ? `"${name}" property` : `"${name}" argument`;
  return codedError('ERR_INVALID_ARG_TYPE', `The ${what} must be ${expected}.${describeReceived(value)}`, TypeError);
}

/** ERR_OUT_OF_RANGE formatted as Node does (large integers with separators) */
function outOfRangeError(name: string, range: string, value: unknown): NodeError {
  let shown: string;
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) > 2 ** 32) {
    shown = String(value).replace(/\B(?=(\d{3})+(?!\d))/g, '_');
  } else {
    shown = inspect(value);
  }
  return codedError('ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${shown}`, RangeError);
}

function unsupported(name: string, value: unknown, why: string): NodeError {
  return invalidArgValue(name, value, `is not supported: ${why}`);
}

const NO_IPC = 'msockets stacks have no local (IPC) sockets; use a TCP port';

function abortError(cause: unknown): Error {
  const err = new Error('The operation was aborted', { cause });
  Object.defineProperty(err, 'name', { value: 'AbortError', writable: true, configurable: true, enumerable: false });
  (err as NodeError).code = 'ABORT_ERR';
  return err;
}

const errnoByName = osConstants.errno as Record<string, number>;
let systemErrorMap: Map<number, [string, string]> | null = null;

function errnoOf(err: SystemError): number {
  if (typeof err.errno === 'number' && err.errno !== 0) return -Math.abs(err.errno);
  return -(errnoByName[err.code] ?? 0);
}

function isSystemError(err: unknown): err is SystemError {
  return err instanceof Error && typeof (err as SystemError).code === 'string' && /^E[A-Z0-9]+$/.test((err as SystemError).code);
}

/** A raw socket's failure re-worded the way Node words that call: `${syscall} ${code} ${address}:${port}` */
function reshape(err: unknown, syscall: string, address: string, port: number, extra?: string): Error {
  if (!isSystemError(err)) return err instanceof Error ? err : new Error(String(err));
  const ex = systemError(err.code, syscall, address, port, extra);
  ex.errno = errnoOf(err);
  return ex;
}

/** Node's listen failure (uvExceptionWithHostPort): `listen EADDRINUSE: address already in use ::1:80` */
function listenError(err: unknown, address: string | null, port: number): Error {
  if (!isSystemError(err)) return err instanceof Error ? err : new Error(String(err));
  const errno = errnoOf(err);
  systemErrorMap ??= getSystemErrorMap() as Map<number, [string, string]>;
  const text = systemErrorMap.get(errno)?.[1] ?? err.code;
  let details = '';
  if (port > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  const ex = new Error(`listen ${err.code}: ${text}${details}`) as SystemError;
  ex.code = err.code;
  ex.errno = errno;
  ex.syscall = 'listen';
  if (address) ex.address = address;
  if (port > 0) ex.port = port;
  return ex;
}

// ---------------------------------------------------------------------------------------------
// Validation, as Node's internal validators do it

function validateNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number') throw invalidArgType(name, 'number', value);
}

function validateBoolean(value: unknown, name: string): asserts value is boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'boolean', value);
}

function validateFunction(value: unknown, name: string): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') throw invalidArgType(name, 'function', value);
}

function validateInt32(value: unknown, name: string, min = -2147483648, max = 2147483647): asserts value is number {
  if (typeof value !== 'number') throw invalidArgType(name, 'number', value);
  if (!Number.isInteger(value)) throw outOfRangeError(name, 'an integer', value);
  if (value < min || value > max) throw outOfRangeError(name, `>= ${min} && <= ${max}`, value);
}

function validateAbortSignal(value: unknown, name: string): asserts value is AbortSignal {
  if (value === null || typeof value !== 'object' || !('aborted' in value)) throw invalidArgType(name, 'AbortSignal', value);
}

const TIMEOUT_MAX = 2 ** 31 - 1;

function timerDuration(msecs: unknown, name: string): number {
  validateNumber(msecs, name);
  if (msecs < 0 || !Number.isFinite(msecs)) throw outOfRangeError(name, 'a non-negative finite number', msecs);
  if (msecs > TIMEOUT_MAX) {
    process.emitWarning(`${msecs} does not fit into a 32-bit signed integer.\nTimer duration was truncated to ${TIMEOUT_MAX}.`, 'TimeoutOverflowWarning');
    return TIMEOUT_MAX;
  }
  return msecs;
}

function isRawSocket(value: unknown): value is RawSocket {
  if (value === null || typeof value !== 'object') return false;
  const r = value as Dict;
  return typeof r.recv === 'function' && typeof r.send === 'function' && typeof r.watch === 'function' &&
    typeof r.accept === 'function' && typeof r.connect === 'function' && typeof r.close === 'function';
}

function describeRaw(raw: RawSocket): string {
  return `[RawSocket domain=${raw.domain} type=${raw.type}]`;
}

function toAddressInfo(a: SockAddr): AddressInfo {
  return { address: a.address, family: a.family, port: a.port };
}

function toNumber(x: unknown): number | false {
  const n = Number(x);
  return n >= 0 ? n : false;
}

function isPipeName(s: unknown): s is string {
  return typeof s === 'string' && toNumber(s) === false;
}

const kNormalized = Symbol('msockets.normalizedArgs');
type Normalized = [Dict, ((...args: unknown[]) => void) | null] & { [kNormalized]?: true };

/**
 * Node's net._normalizeArgs: (options[, cb]) | (path[, cb]) | ([port][, host][, ...][, cb])
 * → [options, cb | null]
 */
export function normalizeArgs(args: unknown[]): Normalized {
  let arr: Normalized;
  if (args.length === 0) {
    arr = [{}, null];
    arr[kNormalized] = true;
    return arr;
  }
  const arg0 = args[0];
  let options: Dict = {};
  if (typeof arg0 === 'object' && arg0 !== null) {
    options = arg0 as Dict;
  } else if (isPipeName(arg0)) {
    options.path = arg0;
  } else {
    options.port = arg0;
    if (args.length > 1 && typeof args[1] === 'string') options.host = args[1];
  }
  const cb = args[args.length - 1];
  arr = [options, typeof cb === 'function' ? cb as (...a: unknown[]) => void : null];
  arr[kNormalized] = true;
  return arr;
}

function isNormalized(x: unknown): x is Normalized {
  return Array.isArray(x) && (x as Normalized)[kNormalized] === true;
}

// ---------------------------------------------------------------------------------------------
// Socket

export interface SocketOptions {
  /** the stack raw sockets are created on (required unless `raw` is given) */
  stack?: Stack;
  /** a connected SOCK_STREAM raw socket to wrap */
  raw?: RawSocket;
  allowHalfOpen?: boolean;
  readable?: boolean;
  writable?: boolean;
  /** do not start reading a wrapped raw socket; the stream starts paused */
  pauseOnCreate?: boolean;
  /** do not start reading a wrapped raw socket until read() or resume() */
  manualStart?: boolean;
  signal?: AbortSignal;
  onread?: nodeNet.OnReadOpts;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
  encoding?: BufferEncoding;
  defaultEncoding?: BufferEncoding;
  /** not supported: there is no file descriptor to adopt */
  fd?: number;
  /** accepted only when it is a RawSocket (same as `raw`) */
  handle?: unknown;
}

export interface SocketConstructor {
  new (options?: SocketOptions | number): NetSocket;
  (options?: SocketOptions | number): NetSocket;
  readonly prototype: NetSocket;
}

interface ConnectWrite {
  writev: boolean;
  data: unknown;
  encoding: string;
  cb: Callback;
}

interface OnRead {
  buf: Uint8Array | null;
  gen: (() => Uint8Array) | null;
  cb: (bytesWritten: number, buf: Uint8Array) => unknown;
}

interface Attempt { address: string; family: 4 | 6 }

interface MultiConnect {
  gen: number;
  addresses: Attempt[];
  current: number;
  port: number;
  localPort: number;
  timeout: number;
  errors: Error[];
  timer: NodeJS.Timeout | null;
}

interface ConnectPlan {
  host: string;
  port: number;
  addressType: number;
  localAddress: string | undefined;
  localPort: number;
  lookup: LookupFn | null;
  dnsopts: Dict;
  multi: boolean;
  attemptTimeout: number;
}

/** Everything a socket keeps for itself */
class SocketInternals {
  stack: Stack;
  raw: RawSocket | null = null;
  /** connect() was called or a raw socket wrapped, and not destroyed since (Node: `_handle`) */
  hasHandle = false;
  /** bumped by connect() and destroy(): callbacks of older attempts find it changed */
  gen = 0;
  reading = false;
  /** _read() asked for data before there was a connection */
  readWanted = false;
  /** end of stream seen */
  eof = false;
  watchedR = false;
  watchedW = false;
  /** the write in progress: buffers, index of the head, offset in the head, callback */
  wq: Buffer[] | null = null;
  wqi = 0;
  wqo = 0;
  wcb: Callback | null = null;
  connectWrite: ConnectWrite | null = null;
  connectFinal: Callback | null = null;
  bytesRead = 0;
  bytesDispatched = 0;
  timer: NodeJS.Timeout | null = null;
  sockname: AddressInfo | null = null;
  peername: AddressInfo | null = null;
  noDelay = false;
  keepAlive = false;
  keepAliveDelaySec = 0;
  refed = true;
  multi: MultiConnect | null = null;
  onread: OnRead | null = null;
  onreadLeftover: Buffer | null = null;
  resetOnClose = false;
  readonly onRawReadable: () => void;
  readonly onRawWritable: () => void;

  constructor(stack: Stack, socket: NetSocket) {
    this.stack = stack;
    this.onRawReadable = () => onReadable(socket);
    this.onRawWritable = () => onWritable(socket);
  }
}

const kSocket = Symbol('msockets.socket');
const kServer = Symbol('msockets.server');
const kSocketCtor = Symbol('msockets.socketConstructor');

/** the options a Socket takes, checked and copied (Node's checks, in Node's order) */
function checkSocketOptions(options: unknown): SocketOptions & { stack: Stack } {
  let opts: Dict;
  if (typeof options === 'number') opts = { fd: options };
  else if (options !== null && typeof options === 'object') opts = { ...(options as Dict) };
  else opts = {};
  if (opts.objectMode) throw invalidArgValue('options.objectMode', opts.objectMode, 'is not supported');
  if (opts.readableObjectMode || opts.writableObjectMode) {
    const name = opts.readableObjectMode ? 'readableObjectMode' : 'writableObjectMode';
    throw invalidArgValue(`options.${name}`, opts[name], 'is not supported');
  }
  if (opts.keepAliveInitialDelay !== undefined) {
    validateNumber(opts.keepAliveInitialDelay, 'options.keepAliveInitialDelay');
    if (opts.keepAliveInitialDelay < 0) opts.keepAliveInitialDelay = 0;
  }
  if (opts.fd !== undefined) {
    validateInt32(opts.fd, 'fd', 0);
    throw unsupported('options.fd', opts.fd, 'a msockets stack cannot adopt a file descriptor; wrap a RawSocket with options.raw');
  }
  let raw = opts.raw;
  if (raw === undefined && opts.handle !== undefined) {
    if (!isRawSocket(opts.handle)) throw unsupported('options.handle', opts.handle, 'only a RawSocket can be wrapped (options.raw)');
    raw = opts.handle;
  }
  if (raw !== undefined && raw !== null) {
    if (!isRawSocket(raw)) throw argTypeError('options.raw', 'a RawSocket', raw);
    if (raw.type !== SOCK_STREAM) throw invalidArgValue('options.raw', describeRaw(raw), 'must be a SOCK_STREAM socket');
    opts.raw = raw;
    opts.stack = raw.stack;
  } else {
    opts.raw = undefined;
  }
  if (opts.stack === undefined || opts.stack === null) throw errMissingStack();
  return opts as unknown as SocketOptions & { stack: Stack };
}

/** Duplex options, with the two that Node's Duplex reads but @types/node does not list */
type DuplexInitOptions = DuplexOptions & { readable?: boolean; writable?: boolean };

function duplexOptions(opts: SocketOptions): DuplexInitOptions {
  const d: DuplexInitOptions = {
    // Node's socket choices: strings written as they are, 'close' emitted by the socket itself
    // with hadError, destroyed once both sides are done, no half-open unless asked for.
    allowHalfOpen: Boolean(opts.allowHalfOpen),
    emitClose: false,
    autoDestroy: true,
    decodeStrings: false,
  };
  if (opts.highWaterMark !== undefined) d.highWaterMark = opts.highWaterMark;
  if (opts.readableHighWaterMark !== undefined) d.readableHighWaterMark = opts.readableHighWaterMark;
  if (opts.writableHighWaterMark !== undefined) d.writableHighWaterMark = opts.writableHighWaterMark;
  if (opts.readable !== undefined) d.readable = opts.readable;
  if (opts.writable !== undefined) d.writable = opts.writable;
  if (opts.encoding !== undefined) d.encoding = opts.encoding;
  if (opts.defaultEncoding !== undefined) d.defaultEncoding = opts.defaultEncoding;
  return d;
}

function initSocket(self: NetSocket, opts: SocketOptions & { stack: Stack }): void {
  const st = new SocketInternals(opts.stack, self);
  self[kSocket] = st;
  self.connecting = false;
  self._host = null;
  self.server = null;
  self._server = null;

  const onread = opts.onread as unknown;
  if (onread !== null && typeof onread === 'object') {
    const { buffer, callback } = onread as Dict;
    if ((isUint8Array(buffer) || typeof buffer === 'function') && typeof callback === 'function') {
      st.onread = {
        buf: isUint8Array(buffer) ? buffer : null,
        gen: typeof buffer === 'function' ? buffer as () => Uint8Array : null,
        cb: callback as OnRead['cb'],
      };
    }
  }

  st.noDelay = Boolean(opts.noDelay);
  st.keepAlive = Boolean(opts.keepAlive);
  st.keepAliveDelaySec = ~~(Number(opts.keepAliveInitialDelay) / 1000);

  self.on('end', onReadableStreamEnd);

  if (opts.raw) {
    attachRaw(self, opts.raw);
    if (opts.readable !== false) {
      if (opts.pauseOnCreate) {
        (self as unknown as { readableFlowing: boolean | null }).readableFlowing = false;
      } else if (!opts.manualStart) {
        self.read(0);
      }
    }
  }

  if (opts.signal !== undefined) {
    const signal: unknown = opts.signal;
    validateAbortSignal(signal, 'signal');
    const onAbort = () => self.destroy(abortError(signal.reason));
    if (signal.aborted) {
      process.nextTick(onAbort);
    } else {
      signal.addEventListener('abort', onAbort, { once: true });
      self.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }
}

function attachRaw(self: NetSocket, raw: RawSocket): void {
  const st = self[kSocket];
  st.raw = raw;
  st.hasHandle = true;
  st.watchedR = st.watchedW = false;
  raw.on('readable', st.onRawReadable);
  raw.on('writable', st.onRawWritable);
  if (!st.refed) raw.unref();
}

/** forget the raw socket and close it (gracefully, or with RST) */
function releaseRaw(self: NetSocket, reset: boolean): void {
  const st = self[kSocket];
  const raw = st.raw;
  if (raw === null) return;
  st.raw = null;
  st.reading = false;
  st.watchedR = st.watchedW = false;
  raw.off('readable', st.onRawReadable);
  raw.off('writable', st.onRawWritable);
  if (reset) {
    try {
      raw.abort();
    } catch (err) {
      raw.close();
      process.nextTick(() => self.emit('error', reshape(err, 'reset', '', 0)));
    }
  } else {
    raw.close();
  }
}

/** tell the raw socket what we wait for, when that changed */
function updateWatch(st: SocketInternals): void {
  const raw = st.raw;
  if (raw === null) return;
  const r = st.reading;
  const w = st.wcb !== null;
  if (r !== st.watchedR || w !== st.watchedW) {
    st.watchedR = r;
    st.watchedW = w;
    raw.watch(r, w);
  }
}

function startReading(self: NetSocket): void {
  const st = self[kSocket];
  if (st.reading || st.eof || st.raw === null || self.connecting) return;
  st.reading = true;
  updateWatch(st);
  if (st.onreadLeftover !== null) process.nextTick(flushOnreadLeftover, self);
}

function stopReading(self: NetSocket): void {
  const st = self[kSocket];
  if (!st.reading) return;
  st.reading = false;
  updateWatch(st);
}

/** the raw socket has bytes (or EOF, or an error): drain it into the stream */
function onReadable(self: NetSocket): void {
  const st = self[kSocket];
  const raw = st.raw;
  if (raw === null || !st.reading) return;
  let got = false;
  for (;;) {
    let chunk: Buffer | null;
    try {
      chunk = raw.recv();
    } catch (err) {
      self.destroy(err as Error);
      return;
    }
    if (chunk === null) break;
    if (chunk.length === 0) {
      onEof(self);
      break;
    }
    st.bytesRead += chunk.length;
    got = true;
    const more = st.onread === null ? self.push(chunk) : deliverOnread(self, chunk);
    if (st.raw !== raw) return; // destroyed by a listener
    if (!more) {
      stopReading(self);
      break;
    }
    if (!st.reading) break;
  }
  if (got) self._unrefTimer();
}

function onEof(self: NetSocket): void {
  const st = self[kSocket];
  stopReading(self);
  st.eof = true;
  self.push(null);
  // like Node: with nothing buffered this ends the readable side even while paused
  self.read(0);
}

/** onread mode: copy into the user's buffer and call back; false when the callback pauses */
function deliverOnread(self: NetSocket, chunk: Buffer): boolean {
  const st = self[kSocket];
  const onread = st.onread as OnRead;
  const raw = st.raw;
  let off = 0;
  while (off < chunk.length) {
    let buf = onread.buf;
    if (buf === null) {
      buf = nextOnreadBuffer(self, onread);
      if (buf === null) return false;
    }
    const n = Math.min(buf.byteLength, chunk.length - off);
    buf.set(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
    off += n;
    const ret = onread.cb(n, buf);
    if (onread.gen !== null) onread.buf = null; // a fresh buffer for the next call
    if (st.raw !== raw || self.destroyed) return false;
    if (ret === false) {
      if (off < chunk.length) st.onreadLeftover = chunk.subarray(off);
      return false;
    }
  }
  return true;
}

function nextOnreadBuffer(self: NetSocket, onread: OnRead): Uint8Array | null {
  const buf = onread.gen !== null ? onread.gen() : null;
  if (!isUint8Array(buf) || buf.byteLength === 0) {
    self.destroy(codedError('ERR_INVALID_RETURN_VALUE',
      `Expected a non-empty Uint8Array to be returned from the "onread.buffer" function but got ${buf === null ? 'null' : typeof buf}.`, TypeError));
    return null;
  }
  onread.buf = buf;
  return buf;
}

function flushOnreadLeftover(self: NetSocket): void {
  const st = self[kSocket];
  const left = st.onreadLeftover;
  if (left === null || !st.reading || st.raw === null) return;
  st.onreadLeftover = null;
  if (!deliverOnread(self, left) && st.raw !== null) stopReading(self);
}

function toBuffer(data: unknown, encoding: string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, (encoding || 'utf8') as BufferEncoding);
  return data as Buffer;
}

const SMALL_CHUNK = 16 * 1024;
const COALESCE_MAX = 64 * 1024;

/**
 * The chunks of a writev as few buffers: runs of small chunks are copied into one buffer of at
 * most COALESCE_MAX bytes (strings encoded straight into it), large chunks go as they are.
 */
function gather(chunks: Array<{ chunk: unknown; encoding: string }>): { bufs: Buffer[]; total: number } {
  const n = chunks.length;
  const lens = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const { chunk, encoding } = chunks[i];
    lens[i] = typeof chunk === 'string' ? Buffer.byteLength(chunk, (encoding || 'utf8') as BufferEncoding) : (chunk as Buffer).length;
  }
  const bufs: Buffer[] = [];
  let total = 0;
  let i = 0;
  while (i < n) {
    if (lens[i] >= SMALL_CHUNK) {
      bufs.push(toBuffer(chunks[i].chunk, chunks[i].encoding));
      total += lens[i++];
      continue;
    }
    let j = i;
    let run = 0;
    while (j < n && lens[j] < SMALL_CHUNK && (j === i || run + lens[j] <= COALESCE_MAX)) run += lens[j++];
    if (j - i === 1) {
      bufs.push(toBuffer(chunks[i].chunk, chunks[i].encoding));
    } else {
      const merged = Buffer.allocUnsafe(run);
      let off = 0;
      for (let k = i; k < j; k++) {
        const { chunk, encoding } = chunks[k];
        if (typeof chunk === 'string') off += merged.write(chunk, off, lens[k], (encoding || 'utf8') as BufferEncoding);
        else {
          merged.set(chunk as Buffer, off);
          off += lens[k];
        }
      }
      bufs.push(merged);
    }
    total += run;
    i = j;
  }
  return { bufs, total };
}

function writeGeneric(self: NetSocket, writev: boolean, data: unknown, encoding: string, cb: Callback): void {
  const st = self[kSocket];
  if (self.connecting) {
    // held until connected (the stream sends nothing else meanwhile)
    st.connectWrite = { writev, data, encoding, cb };
    return;
  }
  const raw = st.raw;
  if (raw === null) {
    cb(errSocketClosed());
    return;
  }
  self._unrefTimer();
  if (!writev) {
    const buf = toBuffer(data, encoding);
    st.bytesDispatched += buf.length;
    let n: number;
    try {
      n = raw.send(buf);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (n >= buf.length) {
      cb();
      return;
    }
    st.wq = [buf];
    st.wqi = 0;
    st.wqo = n;
    st.wcb = cb;
    updateWatch(st);
    return;
  }
  const { bufs, total } = gather(data as Array<{ chunk: unknown; encoding: string }>);
  st.bytesDispatched += total;
  st.wq = bufs;
  st.wqi = 0;
  st.wqo = 0;
  st.wcb = cb;
  flushWrites(self);
}

/** send what is queued; the callback once all of it was taken */
function flushWrites(self: NetSocket): void {
  const st = self[kSocket];
  const raw = st.raw as RawSocket;
  const q = st.wq as Buffer[];
  let progressed = false;
  try {
    while (st.wqi < q.length) {
      const head = q[st.wqi];
      const rest = head.length - st.wqo;
      const n = raw.send(st.wqo === 0 ? head : head.subarray(st.wqo));
      if (n > 0) progressed = true;
      if (n >= rest) {
        st.wqi++;
        st.wqo = 0;
        continue;
      }
      st.wqo += n;
      if (progressed) self._unrefTimer();
      updateWatch(st);
      return;
    }
  } catch (err) {
    const cb = st.wcb as Callback;
    st.wcb = null;
    st.wq = null;
    updateWatch(st);
    cb(err as Error);
    return;
  }
  const cb = st.wcb as Callback;
  st.wcb = null;
  st.wq = null;
  st.wqi = st.wqo = 0;
  updateWatch(st);
  if (progressed) self._unrefTimer();
  cb();
}

function onWritable(self: NetSocket): void {
  const st = self[kSocket];
  if (st.raw === null) return;
  if (st.wcb === null) {
    updateWatch(st);
    return;
  }
  flushWrites(self);
}

function onReadableStreamEnd(this: NetSocket): void {
  if (!this.allowHalfOpen) (this as unknown as { write: unknown }).write = writeAfterFIN;
}

function writeAfterFIN(this: NetSocket, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  if (!this.writableEnded) {
    return (Duplex.prototype.write as (this: Duplex, ...a: unknown[]) => boolean).call(this, chunk, encoding, cb);
  }
  if (typeof encoding === 'function') cb = encoding;
  const er = new Error('This socket has been ended by the other party') as NodeError;
  er.code = 'EPIPE';
  if (typeof cb === 'function') process.nextTick(cb as Callback, er);
  this.destroy(er);
  return false;
}

function socketToDnsFamily(family: unknown): unknown {
  if (family === 'IPv4') return 4;
  if (family === 'IPv6') return 6;
  return family;
}

/** Node's checks for connect(), before anything changes; the plan for the rest */
function planConnect(st: SocketInternals, options: Dict): ConnectPlan {
  const localAddress = options.localAddress;
  const localPort = options.localPort;
  const host = (options.host || 'localhost') as string;

  if (localAddress && !nodeNet.isIP(localAddress as string)) throw invalidIpAddress(localAddress);
  if (localPort) {
    validateNumber(localPort, 'options.localPort');
    validatePort(localPort, 'options.localPort');
  }
  let port = options.port;
  if (port !== undefined) {
    if (typeof port !== 'number' && typeof port !== 'string') throw argTypeError('options.port', 'one of type number or string', port);
    port = validatePort(port);
  }
  const portNum = ((port as number | undefined) ?? 0) | 0;

  let autoSelectFamily = options.autoSelectFamily;
  if (autoSelectFamily != null) validateBoolean(autoSelectFamily, 'options.autoSelectFamily');
  else autoSelectFamily = nodeNet.getDefaultAutoSelectFamily();

  let attemptTimeout = options.autoSelectFamilyAttemptTimeout;
  if (attemptTimeout != null) {
    validateInt32(attemptTimeout, 'options.autoSelectFamilyAttemptTimeout', 1);
    if (attemptTimeout < 10) attemptTimeout = 10;
  } else {
    attemptTimeout = nodeNet.getDefaultAutoSelectFamilyAttemptTimeout();
  }

  const plan: ConnectPlan = {
    host, port: portNum, addressType: nodeNet.isIP(host),
    localAddress: localAddress ? localAddress as string : undefined,
    localPort: localPort ? localPort as number : 0,
    lookup: null, dnsopts: {}, multi: false, attemptTimeout: attemptTimeout as number,
  };
  if (plan.addressType) return plan;

  if (options.lookup != null) validateFunction(options.lookup, 'options.lookup');
  const dnsopts: Dict = { family: socketToDnsFamily(options.family), hints: options.hints || 0 };
  if (dnsopts.family !== 4 && dnsopts.family !== 6 && dnsopts.hints === 0) dnsopts.hints = dns.ADDRCONFIG;
  if (options.lookup != null) {
    plan.lookup = options.lookup as LookupFn;
  } else {
    // the checks dns.lookup would make, made before the socket changes state
    checkLookupArgs(host, dnsopts);
    plan.lookup = stackLookup(st.stack);
  }
  plan.dnsopts = dnsopts;
  plan.multi = dnsopts.family !== 4 && dnsopts.family !== 6 && !plan.localAddress && autoSelectFamily === true;
  return plan;
}

function checkLookupArgs(hostname: unknown, options: Dict): void {
  if (typeof hostname !== 'string') throw invalidArgType('hostname', 'string', hostname);
  const family = options.family ?? 0;
  if (family !== 0 && family !== 4 && family !== 6) throw invalidArgValue('options.family', family, 'must be one of: 0, 4, 6');
  const hints = options.hints;
  if (hints !== undefined) {
    validateNumber(hints, 'options.hints');
    if ((hints & ~(dns.ADDRCONFIG | dns.ALL | dns.V4MAPPED)) !== 0) throw invalidArgValue('hints', hints);
  }
}

/** name resolution through the stack, called the way dns.lookup is */
function stackLookup(stack: Stack): LookupFn {
  return (hostname, options, callback) => {
    checkLookupArgs(hostname, options);
    stack.lookup(hostname, { family: (options.family as number | undefined) ?? 0, all: options.all === true }, callback);
  };
}

function staleConnect(self: NetSocket, gen: number): boolean {
  return self[kSocket].gen !== gen || !self.connecting;
}

function startConnect(self: NetSocket, plan: ConnectPlan, gen: number): void {
  const { host, port } = plan;
  if (plan.addressType) {
    process.nextTick(() => {
      if (!staleConnect(self, gen)) internalConnect(self, gen, host, port, plan.addressType as 4 | 6, plan.localAddress, plan.localPort);
    });
    return;
  }
  self._host = host;
  const lookup = plan.lookup as LookupFn;
  let answered = false;
  if (plan.multi) {
    plan.dnsopts.all = true;
    lookup(host, plan.dnsopts, (err, addresses, family) => {
      if (answered) return;
      answered = true;
      onLookupAll(self, gen, plan, err as Error | null, addresses, family);
    });
    return;
  }
  lookup(host, plan.dnsopts, (err, ip, addressType) => {
    if (answered || staleConnect(self, gen)) return;
    answered = true;
    self.emit('lookup', err, ip, addressType, host);
    if (staleConnect(self, gen)) return;
    if (err) {
      process.nextTick(destroyIfCurrent, self, gen, err as Error);
    } else if (typeof ip !== 'string' || !nodeNet.isIP(ip)) {
      process.nextTick(destroyIfCurrent, self, gen, invalidIpAddress(ip));
    } else if (addressType !== 4 && addressType !== 6) {
      process.nextTick(destroyIfCurrent, self, gen, errInvalidAddressFamily(addressType, host, port));
    } else {
      self._unrefTimer();
      internalConnect(self, gen, ip, port, addressType, plan.localAddress, plan.localPort);
    }
  });
}

function destroyIfCurrent(self: NetSocket, gen: number, err: Error): void {
  if (!staleConnect(self, gen)) self.destroy(err);
}

function onLookupAll(self: NetSocket, gen: number, plan: ConnectPlan, err: Error | null, addresses: unknown, family: unknown): void {
  const { host, port } = plan;
  if (staleConnect(self, gen)) return;
  if (err) {
    self.emit('lookup', err, undefined, undefined, host);
    process.nextTick(destroyIfCurrent, self, gen, err);
    return;
  }
  let list: Array<{ address: unknown; family: unknown }>;
  if (Array.isArray(addresses)) list = addresses as Array<{ address: unknown; family: unknown }>;
  else if (typeof addresses === 'string') list = [{ address: addresses, family }];
  else list = [];

  // keep IPv4 and IPv6 apart, each address once; the first valid one says which goes first
  const groups: Attempt[][] = [[], []];
  const seen: Array<Set<string>> = [new Set(), new Set()];
  let order: { 4: number; 6: number } | null = null;
  for (const entry of list) {
    const ip = entry?.address;
    const type = entry?.family;
    self.emit('lookup', null, ip, type, host);
    if (staleConnect(self, gen)) return;
    if (typeof ip === 'string' && nodeNet.isIP(ip) && (type === 4 || type === 6)) {
      order ??= type === 6 ? { 6: 0, 4: 1 } : { 4: 0, 6: 1 };
      const g = order[type];
      if (!seen[g].has(ip)) {
        seen[g].add(ip);
        groups[g].push({ address: ip, family: type });
      }
    }
  }
  if (groups[0].length === 0 && groups[1].length === 0) {
    let e: Error;
    if (list.length === 0) {
      const nf = systemError('ENOTFOUND', 'getaddrinfo', host);
      nf.errno = -3008;
      Object.assign(nf, { hostname: host });
      e = nf;
    } else if (typeof list[0]?.address !== 'string' || !nodeNet.isIP(list[0].address as string)) {
      e = invalidIpAddress(list[0]?.address);
    } else {
      e = errInvalidAddressFamily(list[0].family, host, port);
    }
    process.nextTick(destroyIfCurrent, self, gen, e);
    return;
  }
  // alternate the families
  const toAttempt: Attempt[] = [];
  for (let i = 0, l = Math.max(groups[0].length, groups[1].length); i < l; i++) {
    if (i < groups[0].length) toAttempt.push(groups[0][i]);
    if (i < groups[1].length) toAttempt.push(groups[1][i]);
  }
  self._unrefTimer();
  if (toAttempt.length === 1) {
    internalConnect(self, gen, toAttempt[0].address, port, toAttempt[0].family, undefined, plan.localPort);
    return;
  }
  self.autoSelectFamilyAttemptedAddresses = [];
  const ctx: MultiConnect = {
    gen, addresses: toAttempt, current: 0, port, localPort: plan.localPort,
    timeout: plan.attemptTimeout, errors: [], timer: null,
  };
  self[kSocket].multi = ctx;
  connectNext(self, ctx);
}

/** a connect failure as Node reports it, with ` - Local (addr:port)` when a local port was asked for */
function connectError(err: unknown, address: string, port: number, localAddress: string | undefined, localPort: number): Error {
  if (localAddress && localPort) {
    const ex = reshape(err, 'connect', address, port, `Local (${localAddress}:${localPort})`);
    Object.assign(ex, { localAddress, localPort });
    return ex;
  }
  return reshape(err, 'connect', address, port);
}

/** a raw socket for one connection attempt, bound when asked; an Error when that fails */
function openAttempt(self: NetSocket, family: 4 | 6, localAddress: string | undefined, localPort: number): RawSocket | Error {
  const st = self[kSocket];
  let raw: RawSocket;
  try {
    raw = st.stack.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM);
  } catch (err) {
    return err as Error;
  }
  attachRaw(self, raw);
  if (localAddress || localPort) {
    try {
      raw.bind(localAddress ?? '', localPort);
    } catch (err) {
      releaseRaw(self, false);
      return reshape(err, 'bind', localAddress || (family === 4 ? '0.0.0.0' : '::'), localPort);
    }
  }
  if (st.noDelay) quietly(() => raw.setNoDelay(true));
  return raw;
}

function internalConnect(self: NetSocket, gen: number, address: string, port: number, family: 4 | 6, localAddress: string | undefined, localPort: number): void {
  const raw = openAttempt(self, family, localAddress, localPort);
  if (raw instanceof Error) {
    self.destroy(raw);
    return;
  }
  self.emit('connectionAttempt', address, port, family);
  if (staleConnect(self, gen)) return;
  const la = localAddress || (localPort ? (family === 4 ? '0.0.0.0' : '::') : undefined);
  raw.connect(address, port).then(
    () => afterConnect(self, gen, raw),
    (err: unknown) => {
      if (staleConnect(self, gen) || self[kSocket].raw !== raw) return;
      const ex = connectError(err, address, port, la, localPort);
      self.emit('connectionAttemptFailed', address, port, family, ex);
      if (!staleConnect(self, gen)) self.destroy(ex);
    },
  );
}

function connectNext(self: NetSocket, ctx: MultiConnect): void {
  const st = self[kSocket];
  if (staleConnect(self, ctx.gen)) return;
  if (ctx.timer !== null) {
    clearTimeout(ctx.timer);
    ctx.timer = null;
  }
  if (ctx.current >= ctx.addresses.length) {
    st.multi = null;
    if (ctx.errors.length === 0) {
      self.destroy(errConnectionTimeout());
    } else {
      const agg = new AggregateError(ctx.errors, '');
      (agg as AggregateError & { code?: unknown }).code = (ctx.errors[0] as NodeError).code;
      self.destroy(agg);
    }
    return;
  }
  const { address, family } = ctx.addresses[ctx.current++];
  const { port, localPort } = ctx;
  const la = localPort ? (family === 4 ? '0.0.0.0' : '::') : undefined;
  const raw = openAttempt(self, family, undefined, localPort);
  if (raw instanceof Error) {
    ctx.errors.push(raw);
    self.emit('connectionAttemptFailed', address, port, family, raw);
    connectNext(self, ctx);
    return;
  }
  (self.autoSelectFamilyAttemptedAddresses as string[]).push(`${address}:${port}`);
  self.emit('connectionAttempt', address, port, family);
  if (staleConnect(self, ctx.gen)) return;
  raw.connect(address, port).then(
    () => afterConnect(self, ctx.gen, raw),
    (err: unknown) => {
      if (staleConnect(self, ctx.gen) || st.raw !== raw) return;
      const ex = connectError(err, address, port, la, localPort);
      ctx.errors.push(ex);
      self.emit('connectionAttemptFailed', address, port, family, ex);
      if (staleConnect(self, ctx.gen) || st.raw !== raw) return;
      releaseRaw(self, false);
      connectNext(self, ctx);
    },
  );
  if (ctx.current < ctx.addresses.length) {
    ctx.timer = setTimeout(() => {
      ctx.timer = null;
      if (staleConnect(self, ctx.gen) || st.raw !== raw) return;
      self.emit('connectionAttemptTimeout', address, port, family);
      ctx.errors.push(systemError('ETIMEDOUT', 'connect', address, port));
      if (staleConnect(self, ctx.gen) || st.raw !== raw) return;
      releaseRaw(self, false);
      connectNext(self, ctx);
    }, ctx.timeout);
    if (!st.refed) ctx.timer.unref();
  }
}

function afterConnect(self: NetSocket, gen: number, raw: RawSocket): void {
  const st = self[kSocket];
  if (self.destroyed || st.gen !== gen || st.raw !== raw) return;
  if (st.multi !== null) {
    if (st.multi.timer !== null) clearTimeout(st.multi.timer);
    st.multi = null;
  }
  self.connecting = false;
  st.sockname = null;
  self._unrefTimer();
  if (st.noDelay) quietly(() => raw.setNoDelay(true));
  if (st.keepAlive) quietly(() => raw.setKeepAlive(true, st.keepAliveDelaySec * 1000));
  self.emit('connect');
  if (st.raw !== raw) return;
  // what the stream handed over while connecting goes first
  const w = st.connectWrite;
  if (w !== null) {
    st.connectWrite = null;
    writeGeneric(self, w.writev, w.data, w.encoding, w.cb);
    if (st.raw !== raw) return;
  }
  const f = st.connectFinal;
  if (f !== null && st.wcb === null) {
    st.connectFinal = null;
    self._final(f);
    if (st.raw !== raw) return;
  }
  self.emit('ready');
  if (st.raw !== raw) return;
  if (st.readWanted) {
    st.readWanted = false;
    startReading(self);
  }
  if (!self.isPaused()) self.read(0);
}

/** option setters on a raw socket: failures are ignored, as Node ignores them */
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // setsockopt on a socket the peer already reset, or an option the stack lacks
  }
}

function emitClose(self: NetSocket, hadError: boolean | undefined, pendingWrite: ConnectWrite | null): void {
  if (pendingWrite !== null) pendingWrite.cb(errClosedBeforeConnection());
  if (hadError === undefined) self.emit('close');
  else self.emit('close', hadError);
}

/**
 * A TCP socket on a msockets stack: Node 20's net.Socket over a RawSocket. See the top of
 * the file for the options it adds (stack, raw).
 */
export class NetSocket extends Duplex {
  declare connecting: boolean;
  declare server: NetServer | null;
  declare _server: NetServer | null;
  declare _host: string | null;
  /** the value given to setTimeout() */
  declare timeout?: number;
  /** addresses tried by the last connect() with autoSelectFamily, as `ip:port` */
  declare autoSelectFamilyAttemptedAddresses?: string[];
  declare [kSocket]: SocketInternals;

  constructor(options?: SocketOptions | number) {
    const opts = checkSocketOptions(options);
    super(duplexOptions(opts));
    initSocket(this, opts);
  }

  connect(options: nodeNet.SocketConnectOpts, connectionListener?: () => void): this;
  connect(port: number, host: string, connectionListener?: () => void): this;
  connect(port: number, connectionListener?: () => void): this;
  connect(path: string, connectionListener?: () => void): this;
  connect(...args: unknown[]): this {
    const normalized = isNormalized(args[0]) ? args[0] : normalizeArgs(args);
    const options = normalized[0];
    const cb = normalized[1];
    if (cb !== null) this.once('connect', cb);
    if (options.port === undefined && options.path == null) throw errMissingArgs();
    const path = options.path;
    if (path) {
      if (typeof path !== 'string') throw invalidArgType('options.path', 'string', path);
      throw unsupported('options.path', path, NO_IPC);
    }
    const st = this[kSocket];
    const plan = planConnect(st, options);

    if (this.connecting || (st.raw !== null && !this.destroyed)) {
      const code = this.connecting ? 'EALREADY' : 'EISCONN';
      process.nextTick(() => this.destroy(systemError(code, 'connect', plan.host, plan.port)));
      return this;
    }
    if ((this as unknown as { write: unknown }).write === writeAfterFIN) {
      delete (this as unknown as { write?: unknown }).write;
    }
    if (this.destroyed) {
      // a destroyed socket can connect again, as a new connection
      // Readable's own reset of the destroyed state (what Node's net.Socket uses here too)
      (this as unknown as { _undestroy(): void })._undestroy();
      st.peername = null;
      st.sockname = null;
      st.eof = false;
      st.readWanted = false;
      st.connectWrite = null;
      st.connectFinal = null;
      st.onreadLeftover = null;
      st.bytesRead = 0;
      st.bytesDispatched = 0;
    }
    st.hasHandle = true;
    this._unrefTimer();
    this.connecting = true;
    const gen = ++st.gen;
    startConnect(this, plan, gen);
    return this;
  }

  setTimeout(timeout: number, callback?: () => void): this {
    if (this.destroyed) return this;
    const st = this[kSocket];
    this.timeout = timeout;
    const msecs = timerDuration(timeout, 'msecs');
    if (st.timer !== null) {
      clearTimeout(st.timer);
      st.timer = null;
    }
    if (msecs === 0) {
      if (callback !== undefined) {
        validateFunction(callback, 'callback');
        this.removeListener('timeout', callback);
      }
    } else {
      st.timer = setTimeout(() => this._onTimeout(), msecs);
      st.timer.unref();
      if (callback !== undefined) {
        validateFunction(callback, 'callback');
        this.once('timeout', callback);
      }
    }
    return this;
  }

  /** the idle timer fired */
  _onTimeout(): void {
    this.emit('timeout');
  }

  /** activity: restart the idle timer (Node's name) */
  _unrefTimer(): void {
    const t = this[kSocket].timer;
    if (t !== null) t.refresh();
  }

  setNoDelay(noDelay?: boolean): this {
    const enable = Boolean(noDelay === undefined ? true : noDelay);
    const st = this[kSocket];
    if (st.raw === null) {
      st.noDelay = enable;
      return this;
    }
    if (enable !== st.noDelay) {
      st.noDelay = enable;
      const raw = st.raw;
      quietly(() => raw.setNoDelay(enable));
    }
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    const on = Boolean(enable);
    const delaySec = ~~(Number(initialDelay) / 1000);
    const st = this[kSocket];
    if (st.raw === null) {
      st.keepAlive = on;
      st.keepAliveDelaySec = delaySec;
      return this;
    }
    if (on !== st.keepAlive || (on && st.keepAliveDelaySec !== delaySec)) {
      st.keepAlive = on;
      st.keepAliveDelaySec = delaySec;
      const raw = st.raw;
      quietly(() => raw.setKeepAlive(on, delaySec * 1000));
    }
    return this;
  }

  address(): AddressInfo | Record<string, never> {
    return this._getsockname();
  }

  _getsockname(): AddressInfo | Record<string, never> {
    const st = this[kSocket];
    if (st.raw === null || this.connecting) return st.sockname ?? {};
    if (st.sockname === null) {
      try {
        st.sockname = toAddressInfo(st.raw.localAddress());
      } catch {
        return {};
      }
    }
    return st.sockname;
  }

  _getpeername(): AddressInfo | Record<string, never> {
    const st = this[kSocket];
    if (st.raw === null || this.connecting) return st.peername ?? {};
    if (st.peername === null) {
      let peer: SockAddr | null;
      try {
        peer = st.raw.remoteAddress();
      } catch {
        return {};
      }
      if (peer === null) return {};
      st.peername = toAddressInfo(peer);
    }
    return st.peername;
  }

  get _connecting(): boolean {
    return this.connecting;
  }

  get pending(): boolean {
    return !this[kSocket].hasHandle || this.connecting;
  }

  get readyState(): nodeNet.SocketReadyState {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable && !this.writable) return 'readOnly';
    if (!this.readable && this.writable) return 'writeOnly';
    return 'closed';
  }

  get bufferSize(): number | undefined {
    return this[kSocket].hasHandle ? this.writableLength : undefined;
  }

  get bytesRead(): number {
    return this[kSocket].bytesRead;
  }

  get _bytesDispatched(): number {
    return this[kSocket].bytesDispatched;
  }

  /** bytes given to write(): sent, being sent, or still queued (Node counts them all) */
  get bytesWritten(): number {
    const st = this[kSocket];
    let bytes = st.bytesDispatched;
    const buffered = (this as unknown as { writableBuffer: Array<{ chunk: unknown; encoding: string }> }).writableBuffer;
    for (const el of buffered) {
      bytes += Buffer.isBuffer(el.chunk) ? el.chunk.length : Buffer.byteLength(el.chunk as string, el.encoding as BufferEncoding);
    }
    const w = st.connectWrite;
    if (w !== null) {
      if (w.writev) {
        for (const el of w.data as Array<{ chunk: unknown; encoding: string }>) {
          bytes += Buffer.isBuffer(el.chunk) ? el.chunk.length : Buffer.byteLength(el.chunk as string, el.encoding as BufferEncoding);
        }
      } else {
        bytes += typeof w.data === 'string' ? Buffer.byteLength(w.data, (w.encoding || 'utf8') as BufferEncoding) : (w.data as Buffer).length;
      }
    }
    return bytes;
  }

  get remoteAddress(): string | undefined {
    return this._getpeername().address;
  }

  get remoteFamily(): string | undefined {
    return this._getpeername().family;
  }

  get remotePort(): number | undefined {
    return this._getpeername().port;
  }

  get localAddress(): string | undefined {
    return this._getsockname().address;
  }

  get localPort(): number | undefined {
    return this._getsockname().port;
  }

  get localFamily(): string | undefined {
    return this._getsockname().family;
  }

  override _read(_size: number): void {
    const st = this[kSocket];
    if (this.connecting || st.raw === null) {
      st.readWanted = true;
      return;
    }
    startReading(this);
  }

  override read(size?: number): unknown {
    const st = this[kSocket];
    if (st.onread !== null && !this.connecting && st.raw !== null && !st.reading) startReading(this);
    return super.read(size);
  }

  override pause(): this {
    const st = this[kSocket];
    if (st.onread !== null && !this.connecting && st.raw !== null && st.reading) stopReading(this);
    return super.pause();
  }

  override resume(): this {
    const st = this[kSocket];
    if (st.onread !== null && !this.connecting && st.raw !== null && !st.reading) startReading(this);
    return super.resume();
  }

  override _write(chunk: unknown, encoding: BufferEncoding, callback: Callback): void {
    writeGeneric(this, false, chunk, encoding, callback);
  }

  override _writev(chunks: Array<{ chunk: unknown; encoding: BufferEncoding }>, callback: Callback): void {
    writeGeneric(this, true, chunks, '', callback);
  }

  /** Node's shared write path: one chunk, or a writev batch */
  _writeGeneric(writev: boolean, data: unknown, encoding: string, cb: Callback): void {
    writeGeneric(this, writev, data, encoding, cb);
  }

  override _final(callback: Callback): void {
    const st = this[kSocket];
    if (this.pending) {
      // ended before the connection: the FIN goes out once connected
      st.connectFinal = callback;
      return;
    }
    try {
      (st.raw as RawSocket).shutdown(SHUT_WR);
    } catch (err) {
      if ((err as NodeError).code === 'ENOTCONN') callback();
      else callback(reshape(err, 'shutdown', '', 0));
      return;
    }
    callback();
  }

  /** end() then destroy() once everything was written */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', this.destroy);
  }

  /** close with RST: the peer gets ECONNRESET */
  resetAndDestroy(): this {
    const st = this[kSocket];
    if (st.raw !== null || this.connecting) {
      if (this.connecting) this.once('connect', () => this._reset());
      else this._reset();
    } else {
      this.destroy(errSocketClosed());
    }
    return this;
  }

  _reset(): this {
    this[kSocket].resetOnClose = true;
    return this.destroy();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const st = this[kSocket];
    this.connecting = false;
    st.gen++;
    if (st.timer !== null) {
      clearTimeout(st.timer);
      st.timer = null;
    }
    if (st.multi !== null) {
      if (st.multi.timer !== null) clearTimeout(st.multi.timer);
      st.multi = null;
    }
    const pendingWrite = st.connectWrite;
    st.connectWrite = null;
    st.connectFinal = null;
    st.onreadLeftover = null;
    if (st.hasHandle) {
      st.hasHandle = false;
      const reset = st.resetOnClose;
      st.resetOnClose = false;
      // the write in flight: Node completes it without error when the handle closes
      const wcb = st.wcb;
      st.wcb = null;
      st.wq = null;
      st.wqi = st.wqo = 0;
      releaseRaw(this, reset);
      st.sockname = null;
      cb(err);
      if (wcb !== null) process.nextTick(wcb);
      // Node emits this from the handle's close callback, after the immediates of this turn
      setImmediate(emitClose, this, Boolean(err), pendingWrite);
    } else {
      cb(err);
      process.nextTick(emitClose, this, undefined, pendingWrite);
    }
    const server = this._server;
    if (server !== null) {
      server._connections--;
      server._emitCloseIfDrained();
    }
  }

  ref(): this {
    const st = this[kSocket];
    st.refed = true;
    st.raw?.ref();
    st.multi?.timer?.ref();
    return this;
  }

  unref(): this {
    const st = this[kSocket];
    st.refed = false;
    st.raw?.unref();
    st.multi?.timer?.unref();
    return this;
  }

  /** the stack this socket lives on */
  get stack(): Stack {
    return this[kSocket].stack;
  }
}

type DuplexInit = (this: Duplex, options?: DuplexInitOptions) => void;

/** Node's net.Socket shape: callable with or without `new`, and applicable to a subclass instance. */
export const Socket = function Socket(this: unknown, options?: SocketOptions | number): NetSocket | void {
  if (!(this instanceof NetSocket)) return new (Socket as SocketConstructor)(options);
  const opts = checkSocketOptions(options);
  (Duplex as unknown as DuplexInit).call(this, duplexOptions(opts));
  initSocket(this, opts);
} as unknown as SocketConstructor;
Object.defineProperty(Socket, 'prototype', { value: NetSocket.prototype });
Object.defineProperty(NetSocket.prototype, 'constructor', { value: Socket, writable: true, configurable: true });
Object.defineProperty(NetSocket, 'name', { value: 'Socket' });
Object.setPrototypeOf(Socket, Duplex);

// ---------------------------------------------------------------------------------------------
// Server

export interface ServerOptions extends nodeNet.ServerOpts {
  /** the stack the server listens on (required) */
  stack?: Stack;
}

export interface ServerConstructor {
  new (connectionListener?: (socket: NetSocket) => void): NetServer;
  new (options?: ServerOptions, connectionListener?: (socket: NetSocket) => void): NetServer;
  (connectionListener?: (socket: NetSocket) => void): NetServer;
  (options?: ServerOptions, connectionListener?: (socket: NetSocket) => void): NetServer;
  readonly prototype: NetServer;
}

class ServerInternals {
  stack: Stack;
  raw: RawSocket | null = null;
  connectionKey: string | null = null;
  unref = false;
  /** bumped by listen() and close(): a lookup of an older listen() is ignored */
  listenGen = 0;
  SocketCtor: SocketConstructor;
  readonly onRawReadable: () => void;

  constructor(stack: Stack, SocketCtor: SocketConstructor, server: NetServer) {
    this.stack = stack;
    this.SocketCtor = SocketCtor;
    this.onRawReadable = () => onConnection(server);
  }
}

type ConnectionListener = (socket: NetSocket) => void;

function checkServerArgs(options: unknown, listener: unknown): [Dict, ConnectionListener | null] {
  let opts: Dict;
  let l: ConnectionListener | null = null;
  if (typeof options === 'function') {
    l = options as ConnectionListener;
    opts = {};
  } else if (options == null || typeof options === 'object') {
    opts = { ...(options as Dict | null | undefined) };
    if (typeof listener === 'function') l = listener as ConnectionListener;
  } else {
    throw argTypeError('options', 'of type object', options);
  }
  if (opts.keepAliveInitialDelay !== undefined) {
    validateNumber(opts.keepAliveInitialDelay, 'options.keepAliveInitialDelay');
    if (opts.keepAliveInitialDelay < 0) opts.keepAliveInitialDelay = 0;
  }
  if (opts.highWaterMark !== undefined) {
    validateNumber(opts.highWaterMark, 'options.highWaterMark');
    if (opts.highWaterMark < 0) opts.highWaterMark = getDefaultHighWaterMark(false);
  }
  if (opts.stack === undefined || opts.stack === null) throw errMissingStack();
  return [opts, l];
}

function initServer(self: NetServer, opts: Dict, listener: ConnectionListener | null): void {
  if (listener !== null) self.on('connection', listener);
  const SocketCtor = (opts[kSocketCtor] as SocketConstructor | undefined) ?? Socket;
  self[kServer] = new ServerInternals(opts.stack as Stack, SocketCtor, self);
  self._connections = 0;
  self.allowHalfOpen = Boolean(opts.allowHalfOpen);
  self.pauseOnConnect = !!opts.pauseOnConnect;
  self.noDelay = Boolean(opts.noDelay);
  self.keepAlive = Boolean(opts.keepAlive);
  self.keepAliveInitialDelay = ~~(Number(opts.keepAliveInitialDelay) / 1000);
  self.highWaterMark = (opts.highWaterMark as number | undefined) ?? getDefaultHighWaterMark(false);
}

/** a raw socket bound for listening, or the Error that stopped it */
function openListener(stack: Stack, family: 4 | 6, address: string, port: number, ipv6Only: boolean): RawSocket | Error {
  let raw: RawSocket;
  try {
    raw = stack.socket(family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM);
  } catch (err) {
    return err as Error;
  }
  try {
    raw.setOption('SO_REUSEADDR', 1);
    if (family === 6 && ipv6Only) raw.setOption('IPV6_V6ONLY', 1);
    raw.bind(address, port);
  } catch (err) {
    raw.close();
    return err as Error;
  }
  return raw;
}

function setupListen(self: NetServer, address: string | null, port: number, addressType: number, backlog: number, ipv6Only: boolean): void {
  const st = self[kServer];
  let shown: string;
  let opened: RawSocket | Error;
  if (!address) {
    // the IPv6 wildcard first (dual-stack unless ipv6Only); IPv4 when the stack lacks IPv6.
    // EADDRINUSE on '::' is the answer, as with libuv, which reports it at listen time.
    opened = st.stack.supports(AF_INET6) ? openListener(st.stack, 6, '', port, ipv6Only) : new Error('no IPv6');
    shown = '::';
    addressType = 6;
    if (opened instanceof Error && (opened as NodeError).code !== 'EADDRINUSE') {
      opened = openListener(st.stack, 4, '', port, false);
      shown = '0.0.0.0';
      addressType = 4;
    }
  } else {
    opened = openListener(st.stack, addressType === 6 ? 6 : 4, address, port, ipv6Only);
    shown = address;
  }
  if (opened instanceof Error) {
    const ex = listenError(opened, shown, port);
    process.nextTick(() => self.emit('error', ex));
    return;
  }
  startListening(self, opened, backlog, shown, port, addressType);
}

function startListening(self: NetServer, raw: RawSocket, backlog: number, shownAddress: string | null, port: number, addressType: number): void {
  const st = self[kServer];
  try {
    raw.listen(backlog || 511);
  } catch (err) {
    raw.close();
    const ex = listenError(err, shownAddress, port);
    process.nextTick(() => self.emit('error', ex));
    return;
  }
  st.raw = raw;
  let key = `${addressType}:${shownAddress}:${port}`;
  if (addressType === -1) {
    try {
      const a = raw.localAddress();
      key = `${a.family === 'IPv6' ? 6 : 4}:${a.address}:${a.port}`;
    } catch {
      key = '-1:raw';
    }
  }
  st.connectionKey = key;
  raw.on('readable', st.onRawReadable);
  if (st.unref) raw.unref();
  raw.watch(true, false);
  process.nextTick(() => {
    if (st.raw === raw) self.emit('listening');
  });
}

function lookupAndListen(self: NetServer, port: number, address: unknown, backlog: number, ipv6Only: boolean): void {
  const st = self[kServer];
  const gen = st.listenGen;
  const done = (err: Error | null, ip: unknown, family: unknown) => {
    if (gen !== st.listenGen) return;
    if (err) {
      self.emit('error', err);
      return;
    }
    const addr = typeof ip === 'string' && ip !== '' ? ip : null;
    setupListen(self, addr, port, addr ? (family === 6 ? 6 : 4) : 4, backlog, ipv6Only);
  };
  const type = typeof address === 'string' ? nodeNet.isIP(address) : 0;
  if (type) {
    process.nextTick(done, null, address, type);
    return;
  }
  checkLookupArgs(address, {});
  st.stack.lookup(address as string, { family: 0, all: false }, (err, ip, family) => done(err, ip, family));
}

function onConnection(self: NetServer): void {
  const st = self[kServer];
  const listener = st.raw;
  for (;;) {
    if (listener === null || st.raw !== listener) return;
    let accepted: RawSocket | null;
    try {
      accepted = listener.accept();
    } catch (err) {
      self.emit('error', reshape(err, 'accept', '', 0));
      return;
    }
    if (accepted === null) return;
    const client = accepted;
    if (self.maxConnections && self._connections >= self.maxConnections) {
      self.emit('drop', dropData(client));
      client.close();
      continue;
    }
    const socket = new st.SocketCtor({
      raw: client,
      allowHalfOpen: self.allowHalfOpen,
      pauseOnCreate: self.pauseOnConnect,
      readable: true,
      writable: true,
      readableHighWaterMark: self.highWaterMark,
      writableHighWaterMark: self.highWaterMark,
    });
    const sst = socket[kSocket];
    if (self.noDelay) {
      sst.noDelay = true;
      quietly(() => client.setNoDelay(true));
    }
    if (self.keepAlive) {
      sst.keepAlive = true;
      sst.keepAliveDelaySec = self.keepAliveInitialDelay;
      quietly(() => client.setKeepAlive(true, self.keepAliveInitialDelay * 1000));
    }
    self._connections++;
    socket.server = self;
    socket._server = self;
    self.emit('connection', socket);
  }
}

/** listen({ signal }): aborting closes the server */
function watchServerSignal(self: NetServer, signal: unknown): void {
  validateAbortSignal(signal, 'options.signal');
  const onAborted = () => self.close();
  if (signal.aborted) {
    process.nextTick(onAborted);
  } else {
    signal.addEventListener('abort', onAborted, { once: true });
    self.once('close', () => signal.removeEventListener('abort', onAborted));
  }
}

function dropData(client: RawSocket): Record<string, unknown> {
  const data = Object.create(null) as Record<string, unknown>;
  let local: SockAddr | null = null;
  let remote: SockAddr | null = null;
  try {
    local = client.localAddress();
  } catch {
    local = null;
  }
  try {
    remote = client.remoteAddress();
  } catch {
    remote = null;
  }
  data.localAddress = local?.address;
  data.localPort = local?.port;
  data.localFamily = local?.family;
  data.remoteAddress = remote?.address;
  data.remotePort = remote?.port;
  data.remoteFamily = remote?.family;
  return data;
}

/** A TCP server on a msockets stack: Node 20's net.Server over a listening RawSocket. */
export class NetServer extends EventEmitter {
  declare _connections: number;
  declare allowHalfOpen: boolean;
  declare pauseOnConnect: boolean;
  declare noDelay: boolean;
  declare keepAlive: boolean;
  /** seconds, as Node keeps it */
  declare keepAliveInitialDelay: number;
  declare highWaterMark: number;
  /** when set, connections beyond it are closed and 'drop' is emitted */
  declare maxConnections?: number;
  declare [kServer]: ServerInternals;

  constructor(options?: ServerOptions | ConnectionListener, connectionListener?: ConnectionListener) {
    const [opts, l] = checkServerArgs(options, connectionListener);
    super();
    initServer(this, opts, l);
  }

  listen(port?: number, hostname?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, hostname?: string, listeningListener?: () => void): this;
  listen(port?: number, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number, listeningListener?: () => void): this;
  listen(options: nodeNet.ListenOptions, listeningListener?: () => void): this;
  listen(handle: RawSocket | { fd: number }, backlog?: number, listeningListener?: () => void): this;
  listen(handle: RawSocket | { fd: number }, listeningListener?: () => void): this;
  listen(...args: unknown[]): this {
    const normalized = normalizeArgs(args);
    let options = normalized[0];
    const cb = normalized[1];
    const st = this[kServer];
    if (st.raw !== null) throw errAlreadyListen();
    if (cb !== null) this.once('listening', cb);
    const backlogFromArgs = toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]) || 0;

    const handle = options._handle || options.handle || options;
    st.listenGen++;
    if (isRawSocket(handle)) {
      if (handle.type !== SOCK_STREAM) throw invalidArgValue('handle', describeRaw(handle), 'must be a SOCK_STREAM socket');
      startListening(this, handle, backlogFromArgs, null, -1, -1);
      return this;
    }
    options = handle as Dict;

    if (options.signal !== undefined) watchServerSignal(this, options.signal);

    if (typeof options.fd === 'number' && options.fd >= 0) {
      throw unsupported('options.fd', options.fd, 'a msockets stack cannot listen on a file descriptor; pass a RawSocket');
    }

    let port = options.port;
    if (args.length === 0 || typeof args[0] === 'function' || (port === undefined && 'port' in options) || port === null) {
      port = 0;
    }
    if (typeof port === 'number' || typeof port === 'string') {
      const p = validatePort(port, 'options.port');
      const backlog = (options.backlog as number | undefined) || backlogFromArgs;
      const ipv6Only = Boolean(options.ipv6Only);
      if (options.host) lookupAndListen(this, p, options.host, backlog, ipv6Only);
      else setupListen(this, null, p, 4, backlog, ipv6Only);
      return this;
    }

    if (options.path && isPipeName(options.path)) throw unsupported('options.path', options.path, NO_IPC);

    if (!('port' in options) && !('path' in options)) {
      throw invalidArgValue('options', options, 'must have the property "port" or "path"');
    }
    throw invalidArgValue('options', options);
  }

  get listening(): boolean {
    const st = this[kServer];
    return st.raw !== null && st.connectionKey !== null;
  }

  address(): AddressInfo | null {
    const st = this[kServer];
    if (st.raw === null) return null;
    return toAddressInfo(st.raw.localAddress());
  }

  getConnections(cb: (error: Error | null, count: number) => void): this {
    process.nextTick(cb, null, this._connections);
    return this;
  }

  close(cb?: (err?: Error) => void): this {
    const st = this[kServer];
    if (typeof cb === 'function') {
      if (st.raw === null) this.once('close', () => cb(errNotRunning()));
      else this.once('close', cb);
    }
    st.listenGen++;
    const raw = st.raw;
    if (raw !== null) {
      st.raw = null;
      st.connectionKey = null;
      raw.off('readable', st.onRawReadable);
      raw.close();
    }
    this._emitCloseIfDrained();
    return this;
  }

  _emitCloseIfDrained(): void {
    if (this[kServer].raw !== null || this._connections) return;
    process.nextTick(() => this.emit('close'));
  }

  ref(): this {
    const st = this[kServer];
    st.unref = false;
    st.raw?.ref();
    return this;
  }

  unref(): this {
    const st = this[kServer];
    st.unref = true;
    st.raw?.unref();
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this[kServer].raw === null) return;
    await new Promise<void>((resolve, reject) => {
      this.close((err) => (err ? reject(err) : resolve()));
    });
  }

  override [captureRejectionSymbol](err: Error, event: string | symbol, ...args: unknown[]): void {
    if (event === 'connection') (args[0] as NetSocket).destroy(err);
    else this.emit('error', err);
  }

  /** the stack this server listens on */
  get stack(): Stack {
    return this[kServer].stack;
  }
}

type EventEmitterInit = (this: EventEmitter) => void;

/** Node's net.Server shape: callable with or without `new`, and applicable to a subclass instance. */
export const Server = function Server(this: unknown, options?: ServerOptions | ConnectionListener, connectionListener?: ConnectionListener): NetServer | void {
  if (!(this instanceof NetServer)) return new (Server as ServerConstructor)(options as ServerOptions, connectionListener);
  const [opts, l] = checkServerArgs(options, connectionListener);
  (EventEmitter as unknown as EventEmitterInit).call(this);
  initServer(this, opts, l);
} as unknown as ServerConstructor;
Object.defineProperty(Server, 'prototype', { value: NetServer.prototype });
Object.defineProperty(NetServer.prototype, 'constructor', { value: Server, writable: true, configurable: true });
Object.defineProperty(NetServer, 'name', { value: 'Server' });
Object.setPrototypeOf(Server, EventEmitter);

// ---------------------------------------------------------------------------------------------
// One stack's module

// (the per-stack constructors below are named Socket and Server, which shadows these)
const BaseSocket = Socket;
const BaseServer = Server;

/** a constructor bound to a stack, itself callable like Node's (with or without new, or .call) */
function bindSocket(stack: Stack): SocketConstructor {
  const StackSocket = function Socket(this: unknown, options?: SocketOptions | number): NetSocket | void {
    if (!(this instanceof StackSocket)) return new StackSocket(options);
    const opts: SocketOptions = typeof options === 'number' ? { fd: options } : { ...options };
    if (opts.raw === undefined) opts.stack = stack;
    (BaseSocket as unknown as (this: unknown, o: SocketOptions) => void).call(this, opts);
  } as unknown as SocketConstructor;
  Object.defineProperty(StackSocket, 'prototype', {
    value: Object.create(BaseSocket.prototype, { constructor: { value: StackSocket, writable: true, configurable: true } }),
  });
  Object.setPrototypeOf(StackSocket, BaseSocket);
  return StackSocket;
}

function bindServer(stack: Stack, StackSocket: SocketConstructor): ServerConstructor {
  const StackServer = function Server(this: unknown, options?: ServerOptions | ConnectionListener, connectionListener?: ConnectionListener): NetServer | void {
    if (!(this instanceof StackServer)) return new StackServer(options as ServerOptions, connectionListener);
    let opts: Dict;
    let l = connectionListener;
    if (typeof options === 'function') {
      l = options;
      opts = {};
    } else if (options == null || typeof options === 'object') {
      opts = { ...(options as Dict | null | undefined) };
    } else {
      throw argTypeError('options', 'of type object', options);
    }
    opts.stack = stack;
    opts[kSocketCtor] = StackSocket;
    (BaseServer as unknown as (this: unknown, o: Dict, l?: ConnectionListener) => void).call(this, opts, l);
  } as unknown as ServerConstructor;
  Object.defineProperty(StackServer, 'prototype', {
    value: Object.create(BaseServer.prototype, { constructor: { value: StackServer, writable: true, configurable: true } }),
  });
  Object.setPrototypeOf(StackServer, BaseServer);
  return StackServer;
}

const modules = new WeakMap<Stack, typeof import('net')>();

/** The `net` module of `stack`: Node 20's API, every socket on that stack. */
export function createNet(stack: Stack): typeof import('net') {
  const cached = modules.get(stack);
  if (cached) return cached;
  const StackSocket = bindSocket(stack);
  const StackServer = bindServer(stack, StackSocket);

  function connect(...args: unknown[]): NetSocket {
    const normalized = normalizeArgs(args);
    const options = normalized[0];
    const socket = new StackSocket(options as SocketOptions);
    if (options.timeout) socket.setTimeout(options.timeout as number);
    return socket.connect(normalized as unknown as nodeNet.SocketConnectOpts);
  }

  function createServer(options?: ServerOptions | ConnectionListener, connectionListener?: ConnectionListener): NetServer {
    return new StackServer(options as ServerOptions, connectionListener);
  }

  const mod = {
    Socket: StackSocket,
    Stream: StackSocket,
    Server: StackServer,
    createServer,
    createConnection: connect,
    connect,
    isIP: nodeNet.isIP,
    isIPv4: nodeNet.isIPv4,
    isIPv6: nodeNet.isIPv6,
    BlockList: nodeNet.BlockList,
    SocketAddress: nodeNet.SocketAddress,
    getDefaultAutoSelectFamily: nodeNet.getDefaultAutoSelectFamily,
    setDefaultAutoSelectFamily: nodeNet.setDefaultAutoSelectFamily,
    getDefaultAutoSelectFamilyAttemptTimeout: nodeNet.getDefaultAutoSelectFamilyAttemptTimeout,
    setDefaultAutoSelectFamilyAttemptTimeout: nodeNet.setDefaultAutoSelectFamilyAttemptTimeout,
    _normalizeArgs: normalizeArgs,
    _setSimultaneousAccepts(): void { /* Windows-only in Node; nothing to do */ },
  };
  // Our classes are not Node's (they sit on RawSockets, not libuv handles) but have its API:
  // the cast is the boundary where they stand in for it.
  const net = mod as unknown as typeof import('net');
  modules.set(stack, net);
  return net;
}
