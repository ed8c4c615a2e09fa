// The raw-socket contract: what every kind of stack provides, and what lib/net.ts and
// lib/dgram.ts are written against. Berkeley semantics, non-blocking, readiness by events.
//
// Conventions
// - Every failing call throws a Node-shaped system error (see errors.ts: code, errno,
//   syscall, address, port), never returns an error code.
// - Readiness is level-triggered: while a socket is watched for reading (watch(true, _))
//   and recv()/recvfrom()/accept() would not return null, 'readable' is emitted once per
//   event-loop turn. The consumer drains until null. The same for 'writable' and send().
// - A stream socket's asynchronous failure (RST, timeout, unreachable) makes it readable and
//   writable; the next recv() throws it with syscall 'read', the next send() with 'write'.
//   A connect() in progress rejects with it instead (syscall 'connect').
import type { EventEmitter } from 'events';

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DEFAULT = 0;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
/** the most datagrams one recvmmsg() call returns */
export const RECVMMSG_MAX = 64;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;

export type FamilyName = 'IPv4' | 'IPv6';

export interface SockAddr {
  address: string;
  port: number;
  family: FamilyName;
}

export interface Datagram extends SockAddr {
  data: Buffer;
  /** the datagram was larger than the receive buffer and was cut (MSG_TRUNC) */
  truncated?: boolean;
}

/** Socket options common to every stack. Booleans are given as 0/1 too. */
export type SockOpt =
  | 'SO_REUSEADDR' | 'SO_REUSEPORT' | 'SO_BROADCAST' | 'SO_KEEPALIVE'
  | 'SO_RCVBUF' | 'SO_SNDBUF' | 'SO_ERROR' | 'SO_TYPE'
  | 'TCP_NODELAY' | 'TCP_KEEPIDLE' | 'TCP_KEEPINTVL' | 'TCP_KEEPCNT' | 'TCP_MAXSEG'
  | 'IP_TTL' | 'IP_MULTICAST_TTL' | 'IP_MULTICAST_LOOP'
  | 'IPV6_V6ONLY' | 'IPV6_UNICAST_HOPS' | 'IPV6_MULTICAST_HOPS' | 'IPV6_MULTICAST_LOOP';

export interface RawSocketEvents {
  readable: () => void;
  writable: () => void;
}

export interface RawSocket extends EventEmitter {
  readonly stack: Stack;
  /** AF_INET or AF_INET6 */
  readonly domain: number;
  /** SOCK_STREAM or SOCK_DGRAM */
  readonly type: number;
  readonly protocol: number;
  /** the kernel file descriptor, or -1 for a user-space socket */
  readonly fd: number;
  readonly closed: boolean;

  /** bind(2). address '' means the wildcard of the socket's family. port 0: ephemeral. */
  bind(address: string, port: number): void;
  /** listen(2) */
  listen(backlog?: number): void;
  /** accept(2): a connected socket, or null when none is pending. */
  accept(): RawSocket | null;
  /**
   * connect(2). Stream: resolves once established, rejects with the failure (syscall
   * 'connect', address and port set). Datagram: sets the default peer, resolves at once.
   */
  connect(address: string, port: number): Promise<void>;
  /** datagram only: forget the default peer (connect to AF_UNSPEC). */
  disconnect(): void;

  /**
   * Stream: queue bytes, returns how many were taken (0 when the send buffer is full:
   * wait for 'writable'). Datagram: send one datagram to the connected peer whole,
   * returns its length (0 for an empty datagram), -1 when it would block, or throws
   * (EMSGSIZE, ...).
   */
  send(data: Uint8Array): number;
  /** datagram only: one datagram to address:port, whole or not at all; -1 when it would block. */
  sendto(data: Uint8Array, address: string, port: number): number;
  /** stream: the bytes available now (any size), null when none (would block), an empty Buffer at end of stream. */
  recv(): Buffer | null;
  /** datagram: the next datagram, or null when none. */
  recvfrom(): Datagram | null;
  /**
   * datagram, optional (user stacks have it): up to `max` (at most RECVMMSG_MAX) queued
   * datagrams in one call, or null when none; throws like recvfrom() when none was taken and an
   * error is pending. Fewer than asked for means the queue is empty, or that the next datagram
   * did not fit this call and comes whole with the next.
   */
  recvmmsg?(max: number): Datagram[] | null;

  /** shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR */
  shutdown(how: number): void;
  /** close(2). Idempotent. No events after it. Pending data is still sent (graceful). */
  close(): void;
  /** close with RST (SO_LINGER 0) */
  abort(): void;

  /** getsockname(2) */
  localAddress(): SockAddr;
  /** getpeername(2), or null when not connected */
  remoteAddress(): SockAddr | null;

  setOption(name: SockOpt, value: number | boolean): void;
  getOption(name: SockOpt): number;
  /** keepalive on/off, with the idle time before the first probe in ms (0: keep current) */
  setKeepAlive(enable: boolean, initialDelayMs?: number): void;
  setNoDelay(enable: boolean): void;
  addMembership(group: string, iface?: string): void;
  dropMembership(group: string, iface?: string): void;
  setMulticastInterface(iface: string): void;

  /** which readiness events to emit (see the conventions above) */
  watch(readable: boolean, writable: boolean): void;
  /** a watched socket keeps the event loop alive unless unref'd */
  ref(): void;
  unref(): void;

  on<E extends keyof RawSocketEvents>(event: E, listener: RawSocketEvents[E]): this;
  once<E extends keyof RawSocketEvents>(event: E, listener: RawSocketEvents[E]): this;
  off<E extends keyof RawSocketEvents>(event: E, listener: RawSocketEvents[E]): this;
  emit<E extends keyof RawSocketEvents>(event: E): boolean;
}

export type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | { address: string; family: number }[], family?: number) => void;

export interface Stack {
  /** 'kernel' (this namespace), 'netns' (another kernel namespace) or 'user' */
  readonly kind: 'kernel' | 'netns' | 'user';
  readonly name: string;
  /** net-compatible module for this stack */
  readonly net: typeof import('net');
  /** dgram-compatible module for this stack */
  readonly dgram: typeof import('dgram');
  readonly closed: boolean;
  /** whether this stack has the address family (AF_INET, AF_INET6) */
  supports(domain: number): boolean;
  /** socket(2) on this stack; throws EAFNOSUPPORT, EPROTONOSUPPORT, ... */
  socket(domain: number, type: number, protocol?: number): RawSocket;
  /** name resolution as dns.lookup does it, on this stack's resolver */
  lookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void;
  /** tear down the stack and every socket on it */
  close(): void;
}
