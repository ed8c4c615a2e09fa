// msockets: a network stack per process, worker thread or async task.
//
//   stack(path)                  the kernel stack, another namespace, or a named user stack
//   msocket(stack|path, domain, type, protocol?)   a raw socket on that stack
//   setDefaultStack / getDefaultStack / withStack  the default of this thread / of an async scope
//   net, dgram                   Node-compatible modules on the current default stack
//
// Module state is per JavaScript environment: each worker thread has its own defaults.
import { AsyncLocalStorage } from 'async_hooks';
import * as fs from 'fs';

import { invalidArgType, systemError } from './errors';
import {
  AF_INET, AF_INET6, AF_UNSPEC, SOCK_DEFAULT, SOCK_DGRAM, SOCK_STREAM,
  type RawSocket, type Stack,
} from './raw';
import { kernelStack, kernelStackWithOwnClasses, KernelRawSocket } from './stacks/kernel';
import { newUserStack, type StackOptions, type UserStack } from './stacks/user';
// ---- netns (lib/stacks/netns.ts)
import { isNetnsPath, netnsStack, newNetnsStack, type NetnsStack, type NetnsStackOptions } from './stacks/netns';
export type { NetnsStack, NetnsStackOptions, NetnsInterfaceOptions, NetnsTap } from './stacks/netns';
// ----

export type { RawSocket, Stack, SockAddr, Datagram, SockOpt } from './raw';
export { AF_INET, AF_INET6, AF_UNSPEC, SOCK_DEFAULT, SOCK_DGRAM, SOCK_STREAM, RECVMMSG_MAX, SHUT_RD, SHUT_WR, SHUT_RDWR } from './raw';
export { kernelStack, kernelStackWithOwnClasses };
export type { StackOptions, UserStack, InterfaceOptions, ImpairOptions, TcpOptions, RouteOptions, SocketRow, InterfaceInfo } from './stacks/user';
export { parseConfigString, openLinkPort } from './stacks/user';
export type { LinkPort, LinkStats, LinkDownEvent } from './stacks/user';
export { StackResolver, type ResolverOptions } from './dns';
export { OtipAddress, type OtipOptions } from './otip';
export { DhcpClient, type DhcpLease, type DhcpOptions } from './dhcp';
export { hashAddress, hashMac, eui64Address, hashEui64Address, otipAddress, otipSlot, OTIP_PERIOD, ipv6Bytes, ipv6Text } from './addr';

/**
 * newStack(options | 'eth,ip=10.0.0.2/24,gw=10.0.0.1,link=hub://lan'): a user-space TCP/IP
 * stack in this thread, as cheap as a socket. With a name it is findable with stack(name).
 */
export function newStack(options: NetnsStackOptions & { kind: 'netns' }): NetnsStack;
export function newStack(options?: StackOptions | string): UserStack;
export function newStack(options: StackOptions | NetnsStackOptions | string = {}): UserStack | NetnsStack {
  // ---- netns (lib/stacks/netns.ts): { kind: 'netns' } is a new kernel network namespace
  if (typeof options === 'object' && options !== null && (options as { kind?: unknown }).kind === 'netns') return newNetnsStack(options as NetnsStackOptions);
  // ----
  return newUserStack(options as StackOptions | string);
}

// ---- the stacks this environment knows by name

const named = new Map<string, Stack>();

/** make a stack findable with stack(name); used by the stack kinds themselves */
export function registerStack(s: Stack): void {
  if (named.has(s.name)) throw systemError('EEXIST', 'newStack', s.name);
  named.set(s.name, s);
}

/** forget a closed stack's name */
export function unregisterStack(s: Stack): void {
  if (named.get(s.name) === s) named.delete(s.name);
  if (threadDefaults.get(AF_INET) === s) threadDefaults.delete(AF_INET);
  if (threadDefaults.get(AF_INET6) === s) threadDefaults.delete(AF_INET6);
}

/**
 * The stack named by `path`: 'kernel' (this thread's namespace), a user stack's name, or a
 * network namespace ('/var/run/netns/NAME', '/proc/PID/ns/net', 'netns:NAME'; EPERM when
 * it may not be entered).
 * ENOENT when nothing has that name; ENOTSUP when the path exists but is not a stack.
 */
export function stack(path: string): Stack {
  if (typeof path !== 'string') throw invalidArgType('path', 'string', path);
  if (path === 'kernel') return kernelStack;
  const s = named.get(path);
  if (s) return s;
  // ---- netns (lib/stacks/netns.ts): a network-namespace file, or 'netns:NAME'
  if (isNetnsPath(path)) return netnsStack(path);
  // ----
  let exists = false;
  try { fs.statSync(path); exists = true; } catch { exists = false; }
  if (exists) throw systemError('ENOTSUP', 'stack', path, undefined, 'not a network stack');
  throw systemError('ENOENT', 'stack', path, undefined, 'no such stack');
}

// ---- domains, types

const DOMAINS: Record<string, number> = { AF_UNSPEC, AF_INET, AF_INET6, PF_UNSPEC: AF_UNSPEC, PF_INET: AF_INET, PF_INET6: AF_INET6 };
const TYPES: Record<string, number> = { SOCK_DEFAULT, SOCK_STREAM, SOCK_DGRAM };

function parseDomain(domain: unknown): number {
  if (typeof domain === 'number' && Number.isInteger(domain)) return domain;
  if (typeof domain === 'string') {
    const d = DOMAINS[domain];
    if (d !== undefined) return d;
    throw systemError('EAFNOSUPPORT', 'msocket', undefined, undefined, `unknown domain '${domain}'`);
  }
  throw invalidArgType('domain', ['string', 'number'], domain);
}

function parseType(type: unknown): number {
  if (typeof type === 'number' && Number.isInteger(type)) return type;
  if (typeof type === 'string') {
    const t = TYPES[type];
    if (t !== undefined) return t;
    throw systemError('EINVAL', 'msocket', undefined, undefined, `unknown socket type '${type}'`);
  }
  throw invalidArgType('type', ['string', 'number'], type);
}

// ---- defaults: one per family for this thread, and one scoped to an async context

const threadDefaults = new Map<number, Stack>();
const scope = new AsyncLocalStorage<Stack>();

function resolveStack(s: Stack | string): Stack {
  if (typeof s === 'string') return stack(s);
  if (s && typeof s === 'object' && typeof (s as Stack).socket === 'function') return s;
  throw invalidArgType('stack', ['string', 'Stack'], s);
}

/** Make s the default stack of this thread (for every family it supports). */
export function setDefaultStack(s: Stack | string): void {
  const st = resolveStack(s);
  if (st.closed) throw systemError('ENONET', 'setDefaultStack', st.name);
  for (const fam of [AF_INET, AF_INET6]) if (st.supports(fam)) threadDefaults.set(fam, st);
}

/** The default stack here: the one of the enclosing withStack() scope, else this thread's. */
export function getDefaultStack(domain: number | string = AF_INET): Stack {
  const scoped = scope.getStore();
  if (scoped) return scoped;
  const fam = parseDomain(domain);
  return threadDefaults.get(fam === AF_UNSPEC ? AF_INET : fam) ?? kernelStack;
}

/** Run fn with s as the default stack, for fn and every piece of async work it starts. */
export function withStack<T>(s: Stack | string, fn: () => T): T {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'function', fn);
  return scope.run(resolveStack(s), fn);
}

// ---- msocket

/**
 * msocket(stack, domain, type, protocol): a raw socket on `stack` (a Stack, a path or a
 * name; null or undefined: the default stack for `domain`).
 * msocket(stack, domain, 'SOCK_DEFAULT') creates no socket: it makes `stack` this thread's
 * default for `domain` ('AF_UNSPEC' or 0: every family the stack has) and returns 0.
 */
export function msocket(s: Stack | string | null | undefined, domain: number | string, type: 'SOCK_DEFAULT' | 0, protocol?: number): 0;
export function msocket(s: Stack | string | null | undefined, domain: number | string, type: number | string, protocol?: number): RawSocket;
export function msocket(s: Stack | string | null | undefined, domain: number | string, type: number | string, protocol = 0): RawSocket | 0 {
  const dom = parseDomain(domain);
  const typ = parseType(type);
  if (typeof protocol !== 'number' || !Number.isInteger(protocol)) throw invalidArgType('protocol', 'number', protocol);
  if (typ === SOCK_DEFAULT) {
    if (s === null || s === undefined) throw systemError('EINVAL', 'msocket', undefined, undefined, 'SOCK_DEFAULT needs a stack');
    const st = resolveStack(s);
    if (dom === AF_UNSPEC) {
      let any = false;
      for (const fam of [AF_INET, AF_INET6]) if (st.supports(fam)) { threadDefaults.set(fam, st); any = true; }
      if (!any) throw systemError('EAFNOSUPPORT', 'msocket');
      return 0;
    }
    if (dom !== AF_INET && dom !== AF_INET6) throw systemError('EINVAL', 'msocket', undefined, undefined, 'unsupported domain');
    if (!st.supports(dom)) throw systemError('EAFNOSUPPORT', 'msocket');
    threadDefaults.set(dom, st);
    return 0;
  }
  const st = s === null || s === undefined ? getDefaultStack(dom) : resolveStack(s);
  if (st.closed) throw systemError('ENONET', 'msocket', st.name);
  if (!st.supports(dom)) throw systemError('EAFNOSUPPORT', 'msocket');
  if (typ !== SOCK_STREAM && typ !== SOCK_DGRAM) throw systemError('EPROTONOSUPPORT', 'msocket');
  return st.socket(dom, typ, protocol);
}

// ---- raw sockets into net/dgram objects of their stack

/** A net.Socket over a connected stream raw socket, of the raw socket's own stack. */
export function toNetSocket(raw: RawSocket): import('net').Socket {
  if (raw.stack === kernelStack && raw instanceof KernelRawSocket) {
    const nodeNet = kernelStack.net;
    return new nodeNet.Socket({ fd: raw.detach(), readable: true, writable: true });
  }
  return new (raw.stack.net.Socket as unknown as new (o: object) => import('net').Socket)({ raw });
}

/** A net.Server listening on a bound stream raw socket (listen() is called when needed). */
export function toNetServer(raw: RawSocket, listener?: (s: import('net').Socket) => void): import('net').Server {
  if (raw.stack === kernelStack && raw instanceof KernelRawSocket) {
    const server = kernelStack.net.createServer(listener);
    server.listen({ fd: raw.detach() });
    return server;
  }
  const server = raw.stack.net.createServer(listener);
  (server.listen as (r: RawSocket) => void)(raw);
  return server;
}

/** A dgram.Socket over a datagram raw socket (bound or not). */
export function toDgramSocket(raw: RawSocket): import('dgram').Socket {
  const type = raw.domain === AF_INET6 ? 'udp6' : 'udp4';
  if (raw.stack === kernelStack && raw instanceof KernelRawSocket) {
    const sock = kernelStack.dgram.createSocket(type);
    sock.bind({ fd: raw.detach() } as never);
    return sock;
  }
  const sock = raw.stack.dgram.createSocket(type);
  sock.bind({ raw } as never);
  return sock;
}

// ---- net and dgram on the current default stack

function current(): Stack {
  return getDefaultStack();
}

function forwardingClass<T extends object>(pick: (s: Stack) => T, name: string, bases: () => Function[]): T {
  const f = function (this: unknown, ...args: unknown[]) {
    const C = pick(current()) as unknown as new (...a: unknown[]) => object;
    return new C(...args);
  };
  Object.defineProperty(f, 'name', { value: name });
  Object.defineProperty(f, Symbol.hasInstance, {
    value: (obj: unknown) => bases().some((B) => obj instanceof (B as new () => object)),
  });
  return f as unknown as T;
}

type NetModule = typeof import('net');
type DgramModule = typeof import('dgram');

function classesOf(kind: 'net' | 'dgram', name: string): Function[] {
  const out: Function[] = [(kind === 'net' ? kernelStack.net : kernelStack.dgram)[name as never] as Function];
  try {
    const own = kind === 'net' ? require('./net') : require('./dgram');
    if (own && own[name]) out.push(own[name]);
  } catch { /* not built */ }
  return out;
}

/** Node's `net`, on the current default stack (resolved at each call). */
export const net: NetModule = (() => {
  const nodeNet = kernelStack.net;
  const m = Object.create(null) as Record<string, unknown>;
  // stack-independent helpers straight from Node
  for (const key of ['isIP', 'isIPv4', 'isIPv6', 'BlockList', 'SocketAddress',
    'getDefaultAutoSelectFamily', 'setDefaultAutoSelectFamily',
    'getDefaultAutoSelectFamilyAttemptTimeout', 'setDefaultAutoSelectFamilyAttemptTimeout'] as const) {
    if (key in nodeNet) m[key] = (nodeNet as unknown as Record<string, unknown>)[key];
  }
  m.Socket = forwardingClass((s) => s.net.Socket, 'Socket', () => classesOf('net', 'Socket'));
  m.Stream = m.Socket;
  m.Server = forwardingClass((s) => s.net.Server, 'Server', () => classesOf('net', 'Server'));
  m.createServer = (...args: unknown[]) => (current().net.createServer as (...a: unknown[]) => unknown)(...args);
  m.connect = (...args: unknown[]) => (current().net.connect as (...a: unknown[]) => unknown)(...args);
  m.createConnection = (...args: unknown[]) => (current().net.createConnection as (...a: unknown[]) => unknown)(...args);
  return Object.freeze(m) as unknown as NetModule;
})();

/** Node's `dgram`, on the current default stack (resolved at each call). */
export const dgram: DgramModule = (() => {
  const m = Object.create(null) as Record<string, unknown>;
  m.Socket = forwardingClass((s) => s.dgram.Socket, 'Socket', () => classesOf('dgram', 'Socket'));
  m.createSocket = (...args: unknown[]) => (current().dgram.createSocket as (...a: unknown[]) => unknown)(...args);
  return Object.freeze(m) as unknown as DgramModule;
})();

