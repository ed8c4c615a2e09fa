// Other kernel network namespaces as stacks.
//
//   stack('/var/run/netns/NAME' | '/proc/PID/ns/net' | 'netns:NAME')   an existing namespace
//   newNetnsStack({ interfaces, routes })                               a new one, owned
//
// A socket belongs for life to the namespace it was created in; the thread that uses it
// afterwards does not matter. So no thread of ours ever changes namespace: each namespace
// stack has a helper process inside the namespace (native/kernel/netns_helper.cc) that
// creates sockets on request and passes the descriptors back (SCM_RIGHTS), one synchronous
// round trip per socket. From then on the descriptor is an ordinary kernel socket:
// - s.net and s.dgram are Node's own net.Socket, net.Server and dgram.Socket, subclassed
//   only so that the descriptor libuv would create lazily in this thread's namespace is
//   created in the stack's namespace instead, at the same moment and of the same family.
//   Every byte then goes through Node's and libuv's own machinery.
// - msocket(s, ...) gives KernelRawSocket instances (uv_poll, plain system calls).
// - s.close() closes every socket made on the stack and ends the helper; a namespace the
//   stack created goes away with it.
import dgramNode = require('dgram');
import * as dns from 'dns';
import { EventEmitter } from 'events';
import * as fs from 'fs';
import netNode = require('net');
import { constants as osConstants } from 'os';
import { getSystemErrorMap } from 'util';

import { errnoName, invalidArgType, invalidArgValue, systemError, type SystemError } from '../errors';
import { native, type NativeNsHelper, type NativePoller } from '../native';
import {
  AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM,
  type LookupCallback, type RawSocket, type Stack,
} from '../raw';
import { READABLE } from './handle-socket';
import { KernelRawSocket, kernelStack } from './kernel';

const E = osConstants.errno;
const ENONET = (E as Record<string, number>).ENONET ?? 64;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const UV_TCP_IPV6ONLY = 1;

/** where `ip netns` keeps its namespaces */
export const NETNS_RUN_DIR = '/var/run/netns';

export interface NetnsInterfaceOptions {
  /**
   * Omitted: a TAP device whose frames you read and write yourself (NetnsTap.pump/send).
   * 'tap://NAME': the same, named NAME. Any other link ('hub://', 'vde://', ...): the TAP is
   * attached to it by attachTapToLink().
   */
  link?: string;
  /** the device's name inside the namespace (default: the kernel's tapN) */
  name?: string;
  /** 'aa:bb:cc:dd:ee:ff' */
  mac?: string;
  mtu?: number;
  /** 'ADDR/LEN', IPv4 or IPv6 */
  ip?: string | string[];
}

export interface NetnsRouteOptions {
  /** 'default' or 'ADDR/LEN' */
  to: string;
  via?: string;
  /** interface name */
  dev?: string;
}

export interface NetnsStackOptions {
  kind?: 'netns';
  /** findable with stack(name); default 'netns-N' */
  name?: string;
  interfaces?: NetnsInterfaceOptions[];
  routes?: NetnsRouteOptions[];
  /**
   * Put the namespace in a new user namespace even when this process could make a plain
   * one (it does so anyway without CAP_SYS_ADMIN). Root inside maps to this process's uid.
   */
  userNamespace?: boolean;
}

// ---------------------------------------------------------------------------------------
// errors

const NSTYPES: Record<number, string> = {
  0x00020000: 'mount', 0x02000000: 'cgroup', 0x04000000: 'uts', 0x08000000: 'ipc',
  0x10000000: 'user', 0x20000000: 'pid', 0x00000080: 'time',
};

/** The error of a helper that could not start, in words that say what is missing. */
function spawnError(r: [number, string, number], syscall: string, path: string | undefined): SystemError {
  const [errno, stage, nstype] = r;
  const code = errnoName(errno);
  if (stage === 'open') {
    if (code === 'ENOENT' || code === 'ENOTDIR') return systemError('ENOENT', syscall, path, undefined, 'no such network namespace');
    if (code === 'EACCES' || code === 'EPERM') {
      return systemError('EPERM', syscall, path, undefined,
        'no permission to open the namespace file (another user\'s /proc/PID/ns/net needs ptrace access: the same user, or CAP_SYS_PTRACE)');
    }
  }
  if (stage === 'nstype') {
    const what = NSTYPES[nstype];
    return systemError('ENOTSUP', syscall, path, undefined, what ? `a ${what} namespace, not a network namespace` : 'not a network namespace');
  }
  if (stage === 'setns' && code === 'EPERM') {
    return systemError('EPERM', syscall, path, undefined,
      'entering a network namespace needs CAP_SYS_ADMIN (setns) in this process\'s user namespace and in the one that owns the namespace: run as root or grant CAP_SYS_ADMIN');
  }
  if (stage === 'clone' && (code === 'EPERM' || code === 'ENOSPC' || code === 'EUSERS')) {
    return systemError(code, syscall, path, undefined,
      'creating a network namespace needs CAP_SYS_ADMIN, or unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)');
  }
  if (stage === 'uid_map' || stage === 'gid_map' || stage === 'setgroups') {
    return systemError(code, syscall, path, undefined, `writing /proc/self/${stage} in the new user namespace was refused`);
  }
  if (stage === 'loopback') return systemError(code, syscall, path, undefined, 'bringing up lo in the new namespace (CAP_NET_ADMIN there)');
  return systemError(code, syscall, path, undefined, `namespace helper: ${stage}`);
}

/** Node's UVExceptionWithHostPort, as net.Server's listen errors are: `listen EADDRINUSE: address already in use 127.0.0.1:80` */
function uvException(err: number, syscall: string, address: string | null, port: number): SystemError {
  const [code, uvmsg] = getSystemErrorMap().get(err) ?? [errnoName(err), 'unknown error'];
  let details = '';
  if (port && port > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  const e = new Error(`${syscall} ${code}: ${uvmsg}${details}`) as SystemError;
  e.code = code;
  e.errno = err;
  e.syscall = syscall;
  if (address) e.address = address;
  if (port) e.port = port;
  return e;
}

// ---------------------------------------------------------------------------------------
// the stack

let counter = 0;

/** A kernel network namespace other than this thread's, as a stack. */
export class NetnsStack implements Stack {
  readonly kind = 'netns' as const;
  readonly name: string;
  /** the namespace file: the path it was opened by, or /proc/PID/ns/net of the helper for a namespace this stack made */
  readonly path: string;
  /** whether this stack made the namespace (it goes away with close()) */
  readonly owned: boolean;
  /** the TAP devices this stack made in its namespace */
  readonly interfaces: NetnsTap[] = [];
  /** called once when the stack closes (used by the stack registry) */
  onClose: (() => void) | null = null;
  private helper: NativeNsHelper | null;
  private readonly members = new Map<object, () => void>();
  private netModule: typeof netNode | undefined;
  private dgramModule: typeof dgramNode | undefined;
  private hasV6: boolean | undefined;

  constructor(name: string, path: string | null, helper: NativeNsHelper, owned: boolean) {
    this.name = name;
    this.helper = helper;
    this.owned = owned;
    this.path = path ?? `/proc/${helper.pid}/ns/net`;
  }

  get closed(): boolean { return this.helper === null; }
  /** the helper process (-1 once closed) */
  get pid(): number { return this.helper ? this.helper.pid : -1; }
  /** whether the namespace lives in a user namespace of its own (made without CAP_SYS_ADMIN) */
  get userNamespace(): boolean { return this.helper ? this.helper.userns : false; }

  get net(): typeof netNode { return (this.netModule ??= createNetnsNet(this)); }
  get dgram(): typeof dgramNode { return (this.dgramModule ??= createNetnsDgram(this)); }

  supports(domain: number): boolean {
    if (domain === AF_INET) return true;
    if (domain !== AF_INET6) return false;
    if (this.hasV6 === undefined) {
      const fd = this.createFd(AF_INET6, SOCK_DGRAM, 0);
      if (fd >= 0) native().kernel.close(fd);
      else if (fd === -ENONET) return false;
      this.hasV6 = fd >= 0;
    }
    return this.hasV6;
  }

  /**
   * socket(2) inside the namespace: a non-blocking descriptor this environment owns, or
   * -errno (never throws; -ENONET once the stack is closed or its helper is gone).
   */
  createFd(domain: number, type: number, protocol = 0): number {
    if (!this.helper) return -ENONET;
    const r = this.helper.socket(domain, type, protocol);
    if (r === -E.ECONNRESET || r === -E.EPIPE) return -ENONET;
    return r;
  }

  socket(domain: number, type: number, protocol = 0): RawSocket {
    if (domain !== AF_INET && domain !== AF_INET6) throw systemError('EAFNOSUPPORT', 'socket');
    if (type !== SOCK_STREAM && type !== SOCK_DGRAM) throw systemError('EPROTONOSUPPORT', 'socket');
    const fd = this.createFd(domain, type, protocol);
    if (fd < 0) throw systemError(fd, 'socket');
    return new NetnsRawSocket(this, fd, domain, type, protocol);
  }

  /**
   * Name resolution: dns.lookup, i.e. this host's resolver configuration. Queries to DNS
   * servers leave from this thread's namespace, not the stack's.
   */
  lookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void {
    dns.lookup(hostname, { family: options.family ?? 0, all: options.all === true }, callback as never);
  }

  /** closed with the stack (on a closed stack nothing is: its sockets fail with ENONET when used) */
  track(obj: object, closer: () => void): void {
    if (this.helper) this.members.set(obj, closer);
  }

  untrack(obj: object): void {
    this.members.delete(obj);
  }

  /** how many sockets, servers and raw sockets of this stack are open */
  get openCount(): number { return this.members.size; }

  /** A TAP device in the namespace, up, with its addresses (see NetnsInterfaceOptions). */
  addInterface(options: NetnsInterfaceOptions): NetnsTap {
    const helper = this.live('newStack');
    if (options === null || typeof options !== 'object') throw invalidArgType('interfaces[]', 'Object', options);
    let dev = '';
    let attach: string | undefined;
    if (options.name !== undefined) {
      if (typeof options.name !== 'string') throw invalidArgType('interfaces[].name', 'string', options.name);
      dev = options.name;
    }
    if (options.link !== undefined) {
      if (typeof options.link !== 'string') throw invalidArgType('interfaces[].link', 'string', options.link);
      const m = /^tap:\/\/(.+)$/.exec(options.link);
      if (m) dev = m[1];
      else attach = options.link;
    }
    if (options.mtu !== undefined && (!Number.isInteger(options.mtu) || options.mtu < 68 || options.mtu > 65535)) {
      throw invalidArgValue('interfaces[].mtu', options.mtu, 'must be an integer in 68..65535');
    }
    const mac = options.mac === undefined ? null : parseMac(options.mac);
    const ips = options.ip === undefined ? [] : Array.isArray(options.ip) ? options.ip : [options.ip];
    const addrs = ips.map((ip) => parseCidr(ip));
    if (Buffer.byteLength(dev) > 15) throw invalidArgValue('interfaces[].name', dev, 'is longer than 15 bytes');

    const r = helper.tap(dev, 0);
    if (typeof r === 'number') {
      throw systemError(r, 'newStack', dev || undefined, undefined, 'creating a TAP device in the namespace (/dev/net/tun, TUNSETIFF)');
    }
    const tap = new NetnsTap(this, r[0], r[1], r[2]);
    this.interfaces.push(tap);
    try {
      this.configure((nl) => {
        const n = native().netns;
        check(n.linkSet(nl, tap.ifindex, 1, options.mtu ?? 0, mac), 'link', tap.name);
        for (const a of addrs) check(n.addrAdd(nl, tap.ifindex, a.family, a.address, a.prefix), 'addr', `${a.address}/${a.prefix}`);
      });
      if (attach !== undefined) tap.attachment = attachTapToLink(tap, attach);
    } catch (e) {
      tap.close();
      throw e;
    }
    return tap;
  }

  /** A route in the namespace's main table. */
  addRoute(route: NetnsRouteOptions): void {
    this.live('newStack');
    if (route === null || typeof route !== 'object' || typeof route.to !== 'string') throw invalidArgType('routes[].to', 'string', route?.to);
    let family = 0;
    let dst = '';
    let prefix = 0;
    if (route.to !== 'default') {
      const c = parseCidr(route.to, true);
      family = c.family;
      dst = c.address;
      prefix = c.prefix;
    }
    if (route.via !== undefined) {
      const f = netNode.isIP(route.via);
      if (!f) throw invalidArgValue('routes[].via', route.via, 'is not an IP address');
      const fam = f === 6 ? AF_INET6 : AF_INET;
      if (family && fam !== family) throw invalidArgValue('routes[].via', route.via, 'is not of the family of routes[].to');
      family = fam;
    }
    if (!family) family = AF_INET;
    let ifindex = 0;
    if (route.dev !== undefined) {
      const tap = this.interfaces.find((t) => t.name === route.dev);
      if (!tap) throw systemError('ENODEV', 'newStack', route.dev, undefined, 'no such interface on this stack');
      ifindex = tap.ifindex;
    }
    this.configure((nl) => check(native().netns.routeAdd(nl, family, dst, prefix, route.via ?? '', ifindex), 'route', route.to));
  }

  close(): void {
    const h = this.helper;
    if (!h) return;
    this.helper = null;
    const members = [...this.members.values()];
    this.members.clear();
    for (const closer of members) {
      try { closer(); } catch { /* closing anyway */ }
    }
    for (const tap of this.interfaces.slice()) tap.close();
    h.close();
    const cb = this.onClose;
    this.onClose = null;
    if (cb) cb();
  }

  private live(syscall: string): NativeNsHelper {
    if (!this.helper) throw systemError('ENONET', syscall, this.name, undefined, 'the stack is closed');
    return this.helper;
  }

  /** run fn with a NETLINK_ROUTE socket made inside the namespace */
  private configure(fn: (nl: number) => void): void {
    const nl = this.createFd(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    if (nl < 0) throw systemError(nl, 'socket', undefined, undefined, 'a netlink socket in the namespace');
    try { fn(nl); } finally { native().kernel.close(nl); }
  }

  /** @internal */
  removeInterface(tap: NetnsTap): void {
    const i = this.interfaces.indexOf(tap);
    if (i >= 0) this.interfaces.splice(i, 1);
  }
}

function check(r: number, what: string, subject: string): void {
  if (r < 0) throw systemError(r, 'newStack', subject, undefined, `configuring ${what} in the namespace (rtnetlink)`);
}

function parseMac(mac: unknown): Buffer {
  if (typeof mac !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw invalidArgValue('interfaces[].mac', mac, 'is not a MAC address aa:bb:cc:dd:ee:ff');
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

function parseCidr(text: unknown, isRoute = false): { family: number; address: string; prefix: number } {
  const name = isRoute ? 'routes[].to' : 'interfaces[].ip';
  if (typeof text !== 'string') throw invalidArgType(name, 'string', text);
  const slash = text.lastIndexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const f = netNode.isIP(address);
  if (!f) throw invalidArgValue(name, text, 'is not ADDRESS/PREFIX');
  const max = f === 6 ? 128 : 32;
  const prefix = slash < 0 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash >= 0 && text.slice(slash + 1) === '')) {
    throw invalidArgValue(name, text, `has a prefix length outside 0..${max}`);
  }
  return { family: f === 6 ? AF_INET6 : AF_INET, address, prefix };
}

// ---------------------------------------------------------------------------------------
// TAP devices and the frame pump

export interface TapLinkAttachment {
  close(): void;
}

/** connects a TAP's frames to a link: read with tap.pump(), write with tap.send() */
export type TapLinkAttacher = (tap: NetnsTap, link: string) => TapLinkAttachment;

let tapLinkAttacher: TapLinkAttacher | null = null;

/** Register the function that attaches TAP devices to links (the link drivers of the user-stack engine). */
/** Registers the function that attaches TAP devices to links; returns the previous one. */
export function setTapLinkAttacher(fn: TapLinkAttacher | null): TapLinkAttacher | null {
  const previous = tapLinkAttacher;
  tapLinkAttacher = fn;
  return previous;
}

/**
 * Attach a namespace's TAP device to a virtual link ('hub://NAME', 'vde:///path', ...): each
 * frame the namespace sends goes to the link and each frame from the link is written to the
 * TAP. The link drivers belong to the user-stack engine; until it registers an attacher with
 * setTapLinkAttacher(), this throws ENOTSUP.
 */
export function attachTapToLink(tap: NetnsTap, link: string): TapLinkAttachment {
  if (!tapLinkAttacher) {
    throw systemError('ENOTSUP', 'newStack', link, undefined,
      'attaching a namespace TAP device to this kind of link is not implemented yet (use no link, or tap://NAME, and pump the frames yourself)');
  }
  return tapLinkAttacher(tap, link);
}

/** A TAP device inside a namespace stack: the namespace's side of an ethernet link. */
export class NetnsTap extends EventEmitter {
  readonly stack: NetnsStack;
  readonly name: string;
  readonly ifindex: number;
  /** the link its frames are pumped to, if any */
  attachment: TapLinkAttachment | null = null;
  private _fd: number;
  private poller: NativePoller | null = null;
  private onFrames: ((frames: Buffer[]) => void) | null = null;
  private refed = true;

  constructor(stack: NetnsStack, fd: number, name: string, ifindex: number) {
    super();
    this.stack = stack;
    this._fd = fd;
    this.name = name;
    this.ifindex = ifindex;
  }

  /** the /dev/net/tun descriptor, -1 once closed */
  get fd(): number { return this._fd; }
  get closed(): boolean { return this._fd < 0; }

  /**
   * The frame pump: every frame the namespace sends out of this device is handed to
   * onFrames, in batches (all that is readable, up to 64 per call). Replaces the previous
   * callback. Errors reading the device are emitted as 'error'.
   */
  pump(onFrames: (frames: Buffer[]) => void): void {
    if (this._fd < 0) throw systemError('EBADF', 'read', this.name);
    if (typeof onFrames !== 'function') throw invalidArgType('onFrames', 'function', onFrames);
    this.onFrames = onFrames;
    if (!this.poller) {
      this.poller = new (native().kernel.Poller)(this._fd, () => this.drain());
      if (!this.refed) this.poller.unref();
    }
    this.poller.start(READABLE);
  }

  /** stop reading frames (they queue in the device, then the kernel drops them) */
  stopPump(): void {
    if (this.poller) this.poller.start(0);
  }

  /** write one ethernet frame into the namespace; false when the device's queue is full */
  send(frame: Uint8Array): boolean {
    if (this._fd < 0) throw systemError('EBADF', 'write', this.name);
    const r = native().netns.tapWrite(this._fd, frame);
    if (r >= 0) return true;
    if (r === -E.EAGAIN) return false;
    throw systemError(r, 'write', this.name);
  }

  ref(): void {
    this.refed = true;
    if (this.poller) this.poller.ref();
  }

  unref(): void {
    this.refed = false;
    if (this.poller) this.poller.unref();
  }

  /** detach from its link and remove the device */
  close(): void {
    if (this._fd < 0) return;
    const a = this.attachment;
    this.attachment = null;
    if (a) {
      try { a.close(); } catch { /* closing anyway */ }
    }
    if (this.poller) { this.poller.close(); this.poller = null; }
    native().kernel.close(this._fd);
    this._fd = -1;
    this.onFrames = null;
    this.stack.removeInterface(this);
  }

  private drain(): void {
    if (this._fd < 0 || !this.onFrames) return;
    const r = native().netns.tapRead(this._fd, 64);
    if (typeof r === 'number') {
      this.stopPump();
      if (this.listenerCount('error') > 0) this.emit('error', systemError(r, 'read', this.name));
      return;
    }
    if (r.length > 0) this.onFrames(r);
  }
}

// ---------------------------------------------------------------------------------------
// raw sockets

/** A kernel raw socket whose descriptor was created in a namespace stack; closed with it. */
export class NetnsRawSocket extends KernelRawSocket {
  private readonly ns: NetnsStack;

  constructor(stack: NetnsStack, fd: number, domain: number, type: number, protocol: number) {
    super(stack, fd, domain, type, protocol);
    this.ns = stack;
    stack.track(this, () => this.close());
  }

  protected override adopt(fd: number): RawSocket {
    return new NetnsRawSocket(this.ns, fd, this.domain, SOCK_STREAM, this.protocol);
  }

  protected override release(): number {
    const fd = super.release();
    this.ns.untrack(this);
    return fd;
  }
}

/** the descriptor of a raw socket of this stack, handed over to a Node object */
function takeRaw(stack: NetnsStack, raw: unknown, type: number): number {
  if (!(raw instanceof KernelRawSocket) || raw.stack !== stack) {
    throw invalidArgValue('options.raw', raw, 'is not a raw socket of this stack');
  }
  if (raw.type !== type) throw invalidArgValue('options.raw', raw, type === SOCK_STREAM ? 'is not a stream socket' : 'is not a datagram socket');
  return raw.detach();
}

// ---------------------------------------------------------------------------------------
// Node's net and dgram, with descriptors from the namespace
//
// libuv creates a handle's socket lazily, in the first bind/connect (and, for UDP, send or
// membership) call, once the address family is known. The handles of our sockets get those
// methods wrapped: when the handle has no descriptor yet, one of the right family is created
// in the namespace and opened into the handle (uv_tcp_open / uv_udp_open) first, so libuv
// finds it there and never makes one of its own. Nothing else changes.

interface UvHandle {
  fd: number;
  open(fd: number): number;
  [method: string]: unknown;
}

const kGuarded = Symbol('msockets.netns.guarded');

/** 0, or a negative errno/libuv status for the wrapped call to return */
function ensureFd(stack: NetnsStack, h: UvHandle, domain: number, type: number): number {
  if (h.fd >= 0) return 0;
  const fd = stack.createFd(domain, type, 0);
  if (fd < 0) return fd;
  const k = native().kernel;
  const r = h.open(fd);
  if (r) {
    k.close(fd);
    return r;
  }
  k.release(fd);
  // uv_udp_open turns SO_REUSEADDR on; Node's own UDP sockets have it only with reuseAddr
  // (uv_udp_bind sets it then), and without it a second bind to the port must fail
  if (type === SOCK_DGRAM) k.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 0);
  return 0;
}

function guardHandle(stack: NetnsStack, h: unknown, methods: [string, number][], type: number): void {
  if (!h || typeof h !== 'object') return;
  const handle = h as UvHandle & { [kGuarded]?: boolean };
  // TCP and UDP handles; a Pipe (no bind6) has no address family and no namespace to mind
  if (handle[kGuarded] || typeof handle.open !== 'function' || typeof handle.bind6 !== 'function') return;
  handle[kGuarded] = true;
  for (const [name, domain] of methods) {
    const orig = handle[name];
    if (typeof orig !== 'function') continue;
    handle[name] = function guarded(...args: unknown[]): unknown {
      const e = ensureFd(stack, handle, domain, type);
      return e < 0 ? e : (orig as (...a: unknown[]) => unknown).apply(handle, args);
    };
  }
}

const TCP_METHODS: [string, number][] = [['bind', AF_INET], ['connect', AF_INET], ['bind6', AF_INET6], ['connect6', AF_INET6]];
const UDP_METHODS = ['bind', 'bind6', 'connect', 'connect6', 'send', 'send6', 'addMembership', 'dropMembership',
  'addSourceSpecificMembership', 'dropSourceSpecificMembership'];

/** in a cluster worker (loaded late, as Node's net does) */
function inClusterWorker(): boolean {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('cluster') as { isWorker?: boolean }).isWorker === true;
}

type NormalizedArgs = [Record<string, unknown>, ((...a: unknown[]) => void) | null];
const normalizeArgs = (netNode as unknown as { _normalizeArgs(args: unknown[]): NormalizedArgs })._normalizeArgs;
const baseListen2 = (netNode.Server.prototype as unknown as { _listen2: (...a: unknown[]) => void })._listen2;

function toNumber(x: unknown): number | false {
  const n = Number(x);
  return n >= 0 ? n : false;
}

/** cluster workers share the primary's listening handles, made in its namespace: not for us */
function exclusiveListenArgs(args: unknown[]): unknown[] {
  const [options, cb] = normalizeArgs(args);
  if (options.path != null || options.handle || options._handle || typeof options.fd === 'number' ||
      (options.port === undefined && !('port' in options) && args.length > 0 && typeof args[0] !== 'function')) return args;
  const o: Record<string, unknown> = { ...options, exclusive: true };
  if (args.length === 0 || typeof args[0] === 'function' || o.port === null || o.port === undefined) o.port = 0;
  const backlog = toNumber(args.length > 1 && args[1]) || toNumber(args.length > 2 && args[2]);
  if (backlog && o.backlog === undefined) o.backlog = backlog;
  return cb ? [o, cb] : [o];
}

function exclusiveBindArgs(args: unknown[]): unknown[] {
  const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
  const rest = cb ? args.slice(0, -1) : args;
  let o: Record<string, unknown>;
  if (rest[0] !== null && typeof rest[0] === 'object') o = { ...(rest[0] as Record<string, unknown>) };
  else o = { port: rest[0], address: typeof rest[1] === 'string' ? rest[1] : undefined };
  o.exclusive = true;
  return cb ? [o, cb] : [o];
}

/** a listening socket bound in the namespace as libuv binds: {fd}, or {err} (-errno) */
function bindListener(stack: NetnsStack, address: string, port: number, v6: boolean, flags: number): { fd: number } | { err: number } {
  const domain = v6 ? AF_INET6 : AF_INET;
  const fd = stack.createFd(domain, SOCK_STREAM, 0);
  if (fd < 0) return { err: fd };
  const k = native().kernel;
  let r = k.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (r === 0 && v6) r = k.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, flags & UV_TCP_IPV6ONLY ? 1 : 0);
  if (r === 0) r = k.bind(fd, domain, address, port);
  if (r < 0) {
    k.close(fd);
    return { err: r === -E.EAFNOSUPPORT ? -E.EINVAL : r };
  }
  return { fd };
}

export function createNetnsNet(stack: NetnsStack): typeof netNode {
  const kHandle = Symbol('msockets.netns.handle');

  function socketOptions(options: unknown): unknown {
    if (options === null || typeof options !== 'object' || !('raw' in options)) return options;
    const { raw, ...rest } = options as { raw: unknown };
    return { readable: true, writable: true, ...rest, fd: takeRaw(stack, raw, SOCK_STREAM) };
  }

  function trackSocket(s: netNode.Socket): void {
    stack.track(s, () => s.destroy());
    s.once('close', () => stack.untrack(s));
  }

  /** net.Socket whose descriptor is created in the namespace */
  class Socket extends netNode.Socket {
    constructor(options?: netNode.SocketConstructorOpts & { raw?: RawSocket }) {
      super(socketOptions(options) as netNode.SocketConstructorOpts);
      trackSocket(this);
    }

    /** sockets a namespace server accepts are Node's own net.Socket: they count too */
    static override [Symbol.hasInstance](obj: unknown): boolean {
      return obj instanceof netNode.Socket;
    }
  }
  // Node assigns _handle in connect() and when it retries another address family
  // (autoSelectFamily): every handle gets its bind/connect guarded as it is assigned. Node
  // itself keeps _handle as an accessor over a private symbol; chain to it.
  const base = Object.getOwnPropertyDescriptor(netNode.Socket.prototype, '_handle');
  const baseGet = base?.get;
  const baseSet = base?.set;
  Object.defineProperty(Socket.prototype, '_handle', {
    configurable: true,
    enumerable: false,
    get(this: { [kHandle]?: unknown }) { return baseGet ? baseGet.call(this) : (this[kHandle] ?? null); },
    set(this: { [kHandle]?: unknown }, h: unknown) {
      if (h) guardHandle(stack, h, TCP_METHODS, SOCK_STREAM);
      if (baseSet) baseSet.call(this, h);
      else this[kHandle] = h;
    },
  });

  /** net.Server whose listening socket is created and bound in the namespace */
  class Server extends netNode.Server {
    constructor(...args: unknown[]) {
      super(...(args as [netNode.ServerOpts, ((s: netNode.Socket) => void)?]));
      stack.track(this, () => this.close());
      this.on('connection', trackSocket);
      this.once('close', () => stack.untrack(this));
    }

    override listen(...args: unknown[]): this {
      if (args[0] instanceof KernelRawSocket) {
        args = [{ fd: takeRaw(stack, args[0], SOCK_STREAM) }, ...args.slice(1)];
      } else if (inClusterWorker()) {
        args = exclusiveListenArgs(args);
      }
      return (super.listen as (...a: unknown[]) => this)(...args);
    }

    /**
     * Node's setupListenHandle, by its legacy name (kept by Node for code that wraps it):
     * for TCP without a handle, bind in the namespace as createServerHandle would, with the
     * same IPv6-then-IPv4 fallback and the same errors, then let Node adopt the descriptor.
     */
    _listen2(address: string | null, port: number, addressType: number, backlog: number, fd: unknown, flags: number): void {
      const self = this as unknown as { _handle: unknown; _connectionKey: string };
      if (self._handle || typeof fd === 'number' || (port === -1 && addressType === -1)) {
        baseListen2.call(this, address, port, addressType, backlog, fd, flags);
        return;
      }
      let r: { fd: number } | { err: number };
      if (!address) {
        r = bindListener(stack, '::', port, true, flags);
        if ('err' in r && r.err !== -E.EADDRINUSE) {
          address = '0.0.0.0';
          addressType = 4;
          r = bindListener(stack, address, port, false, 0);
        } else {
          address = '::';
          addressType = 6;
        }
      } else {
        r = bindListener(stack, address, port, addressType === 6, flags);
      }
      const k = native().kernel;
      if ('fd' in r) {
        const l = k.listen(r.fd, backlog || 511);
        if (l < 0) {
          k.close(r.fd);
          r = { err: l };
        }
      }
      if ('err' in r) {
        const error = uvException(r.err, 'listen', address, port);
        process.nextTick(() => this.emit('error', error));
        return;
      }
      k.release(r.fd);
      baseListen2.call(this, null, null, addressType, backlog, r.fd, flags);
      if (self._handle) self._connectionKey = `${addressType}:${address}:${port}`;
    }
  }

  function connect(...args: unknown[]): netNode.Socket {
    const normalized = normalizeArgs(args);
    const options = normalized[0];
    const socket = new Socket(options as netNode.SocketConstructorOpts);
    if (options.timeout) socket.setTimeout(options.timeout as number);
    return (socket.connect as (a: unknown) => netNode.Socket)(normalized);
  }

  const m: Record<string, unknown> = { ...netNode };
  delete m._createServerHandle;  // would bind in this thread's namespace
  m.Socket = Socket;
  m.Stream = Socket;
  m.Server = Server;
  m.createServer = (...args: unknown[]) => new Server(...args);
  m.connect = connect;
  m.createConnection = connect;
  return Object.freeze(m) as unknown as typeof netNode;
}

let dgramStateSymbol: symbol | undefined;

/** Node's private per-socket state of a dgram.Socket (its handle lives there) */
function dgramState(sock: object): { handle: unknown } | undefined {
  if (!dgramStateSymbol) dgramStateSymbol = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  const st = dgramStateSymbol ? (sock as Record<symbol, { handle: unknown } | undefined>)[dgramStateSymbol] : undefined;
  return st && typeof st === 'object' && st.handle ? st : undefined;
}

export function createNetnsDgram(stack: NetnsStack): typeof dgramNode {
  const Base = dgramNode.Socket as unknown as new (type: unknown, listener?: unknown) => dgramNode.Socket;

  /** dgram.Socket whose descriptor is created in the namespace */
  class Socket extends Base {
    constructor(type: unknown, listener?: unknown) {
      super(type, listener);
      const state = dgramState(this);
      if (!state) {
        (this as unknown as { close(): void }).close();
        throw systemError('ENOTSUP', 'createSocket', undefined, undefined, 'this Node version\'s dgram internals are not the ones msockets knows');
      }
      const domain = (this as unknown as { type: string }).type === 'udp6' ? AF_INET6 : AF_INET;
      guardHandle(stack, state.handle, UDP_METHODS.map((n) => [n, domain] as [string, number]), SOCK_DGRAM);
      stack.track(this, () => {
        try { this.close(); } catch { /* already closed */ }
      });
      this.once('close', () => stack.untrack(this));
    }

    override bind(...args: unknown[]): this {
      const a0 = args[0];
      if (a0 !== null && typeof a0 === 'object' && 'raw' in a0) {
        const { raw, ...rest } = a0 as { raw: unknown };
        args = [{ ...rest, fd: takeRaw(stack, raw, SOCK_DGRAM) }, ...args.slice(1)];
      } else if (inClusterWorker() && !(a0 !== null && typeof a0 === 'object' && ('fd' in a0 || typeof (a0 as { recvStart?: unknown }).recvStart === 'function'))) {
        args = exclusiveBindArgs(args);
      }
      return (super.bind as (...a: unknown[]) => this)(...args);
    }
  }

  const m: Record<string, unknown> = { ...dgramNode };
  m.Socket = Socket;
  m.createSocket = (type: unknown, listener?: unknown) => new Socket(type, listener);
  return Object.freeze(m) as unknown as typeof dgramNode;
}

// ---------------------------------------------------------------------------------------
// opening and making namespace stacks

const byInode = new Map<string, NetnsStack>();

function nsKey(st: fs.Stats): string {
  return `${st.dev}:${st.ino}`;
}

/** 'netns:NAME' or a path that is not a stack name: what netnsStack() takes */
export function isNetnsPath(path: string): boolean {
  return path.startsWith('netns:') || path.startsWith('/');
}

/**
 * The stack of an existing network namespace: '/var/run/netns/NAME', '/proc/PID/ns/net' or
 * 'netns:NAME'. The same namespace by any path is the same stack (until it is closed); this
 * thread's own namespace is the kernel stack. ENOENT: no such file; ENOTSUP: not a network
 * namespace; EPERM: not allowed to enter it (the message says which privilege is missing).
 */
export function netnsStack(path: string): Stack {
  if (typeof path !== 'string') throw invalidArgType('path', 'string', path);
  let file = path;
  if (path.startsWith('netns:')) {
    const name = path.slice(6);
    if (!name || name.includes('/') || name === '.' || name === '..') throw systemError('ENOENT', 'stack', path, undefined, 'no such network namespace');
    file = `${NETNS_RUN_DIR}/${name}`;
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (code === 'ENOENT' || code === 'ENOTDIR') throw systemError('ENOENT', 'stack', path, undefined, 'no such stack');
    throw spawnError([-(E[code as keyof typeof E] ?? E.EIO), 'open', 0], 'stack', path);
  }
  const key = nsKey(st);
  try {
    if (nsKey(fs.statSync('/proc/thread-self/ns/net')) === key) return kernelStack;
  } catch { /* no /proc: cannot tell */ }
  const cached = byInode.get(key);
  if (cached && !cached.closed) return cached;
  const r = native().netns.spawn(file, 'join');
  if (Array.isArray(r)) throw spawnError(r, 'stack', path);
  const s = new NetnsStack(path, file, r, false);
  byInode.set(key, s);
  s.onClose = () => {
    if (byInode.get(key) === s) byInode.delete(key);
    // no longer anyone's default either
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    (require('../msocket') as typeof import('../msocket')).unregisterStack(s);
  };
  return s;
}

/**
 * A new network namespace as a stack, owned by it (freed by close()), with loopback up and
 * optionally TAP interfaces and routes. Made with CAP_SYS_ADMIN when this process has it,
 * else inside a new user namespace (no privilege needed where user namespaces are allowed).
 */
export function newNetnsStack(options: NetnsStackOptions = {}): NetnsStack {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'Object', options);
  const o = options as NetnsStackOptions & Record<string, unknown>;
  if (o.kind !== undefined && o.kind !== 'netns') throw invalidArgValue('options.kind', o.kind, "must be 'netns'");
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name === '')) throw invalidArgType('options.name', 'string', o.name);
  if (o.interfaces !== undefined && !Array.isArray(o.interfaces)) throw invalidArgType('options.interfaces', 'Array', o.interfaces);
  if (o.routes !== undefined && !Array.isArray(o.routes)) throw invalidArgType('options.routes', 'Array', o.routes);
  for (const key of ['dns', 'tcp'] as const) {
    if (o[key] !== undefined) throw systemError('ENOTSUP', 'newStack', key, undefined, `'${key}' is not supported on a namespace stack`);
  }
  for (const i of o.interfaces ?? []) {
    const io = i as Record<string, unknown>;
    if (io && (io.dhcp || io.slaac === false)) throw systemError('ENOTSUP', 'newStack', undefined, undefined, 'dhcp and slaac: false are not supported on a namespace stack');
  }
  const r = native().netns.spawn(null, o.userNamespace ? 'user' : 'new');
  if (Array.isArray(r)) throw spawnError(r, 'newStack', undefined);
  const s = new NetnsStack(o.name ?? `netns-${++counter}`, null, r, true);
  try {
    for (const i of o.interfaces ?? []) s.addInterface(i);
    for (const route of o.routes ?? []) s.addRoute(route);
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const registry = require('../msocket') as typeof import('../msocket');
    registry.registerStack(s);
    s.onClose = () => registry.unregisterStack(s);
  } catch (e) {
    s.close();
    throw e;
  }
  return s;
}

