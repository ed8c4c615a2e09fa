// The kernel stack of this thread's network namespace. Its `net` and `dgram` are Node's own;
// its raw sockets are real kernel sockets created by the addon, watched on libuv through a
// uv_poll, with every byte moved by plain system calls.
import dgramNode = require('dgram');
import * as dns from 'dns';
import netNode = require('net');

import { codedError, systemError } from '../errors';
import { native, type NativePoller } from '../native';
import { HandleRawSocket, familyName, type SocketOps } from './handle-socket';
import {
  AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM,
  type LookupCallback, type RawSocket, type Stack,
} from '../raw';

export { familyName };

/** A socket of a kernel stack: a non-blocking file descriptor watched with uv_poll. */
export class KernelRawSocket extends HandleRawSocket {
  readonly stack: Stack;
  private poller: NativePoller | null = null;

  constructor(stack: Stack, fd: number, domain: number, type: number, protocol: number) {
    super(fd, domain, type, protocol);
    this.stack = stack;
  }

  protected get k(): SocketOps { return native().kernel; }

  protected adopt(fd: number): RawSocket {
    return new KernelRawSocket(this.stack, fd, this.domain, SOCK_STREAM, this.protocol);
  }

  /** hand the descriptor over to something else (Node's own handles); this object is closed */
  detach(): number {
    const fd = this._fd;
    if (fd < 0) throw systemError('EBADF', 'detach');
    native().kernel.release(fd);
    this.release();
    return fd;
  }

  /** as libuv does it for Node: the idle time, then a probe every second, 10 of them */
  override setKeepAlive(enable: boolean, initialDelayMs = 0): void {
    super.setKeepAlive(enable, initialDelayMs);
    if (enable && initialDelayMs > 0) {
      this.setOption('TCP_KEEPINTVL', 1);
      this.setOption('TCP_KEEPCNT', 10);
    }
  }

  protected updatePoller(): void {
    if (this._fd < 0) return;
    const events = this.wanted();
    if (!this.poller) {
      if (events === 0) return;
      this.poller = new (native().kernel.Poller)(this._fd, (status, ev) => this.onReady(status, ev));
      if (!this.refed) this.poller.unref();
    }
    this.poller.start(events);
  }

  protected stopWatching(): void {
    if (this.poller) { this.poller.close(); this.poller = null; }
  }

  protected applyRef(): void {
    if (!this.poller) return;
    if (this.refed) this.poller.ref();
    else this.poller.unref();
  }
}

function kernelLookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void {
  dns.lookup(hostname, { family: options.family ?? 0, all: options.all === true }, callback as never);
}

function kernelSocket(stack: Stack, domain: number, type: number, protocol = 0): RawSocket {
  if (domain !== AF_INET && domain !== AF_INET6) throw systemError('EAFNOSUPPORT', 'socket');
  if (type !== SOCK_STREAM && type !== SOCK_DGRAM) throw systemError('EPROTONOSUPPORT', 'socket');
  const fd = native().kernel.socket(domain, type, protocol);
  if (fd < 0) throw systemError(fd, 'socket');
  return new KernelRawSocket(stack, fd, domain, type, protocol);
}

/** The kernel stack of this thread's namespace, with Node's own net and dgram. */
export const kernelStack: Stack = {
  kind: 'kernel',
  name: 'kernel',
  net: netNode,
  dgram: dgramNode,
  get closed() { return false; },
  supports(domain: number) { return domain === AF_INET || domain === AF_INET6; },
  socket(domain: number, type: number, protocol?: number) { return kernelSocket(kernelStack, domain, type, protocol); },
  lookup: kernelLookup,
  close() { throw codedError('ERR_INVALID_STATE', 'Invalid state: the kernel stack of this namespace cannot be closed'); },
};

let ownClasses: Stack | undefined;

/**
 * The same kernel stack, but with msockets' own net/dgram classes (lib/net.ts, lib/dgram.ts)
 * over its raw sockets instead of Node's: the reference the conformance suite checks those
 * classes against.
 */
export function kernelStackWithOwnClasses(): Stack {
  if (!ownClasses) {
    // loaded late: net.ts and dgram.ts import this module's types
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { createNet } = require('../net') as typeof import('../net');
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { createDgram } = require('../dgram') as typeof import('../dgram');
    let netMod: typeof netNode | undefined;
    let dgramMod: typeof dgramNode | undefined;
    const s: Stack = {
      kind: 'kernel',
      name: 'kernel',
      get net() { return (netMod ??= createNet(s)); },
      get dgram() { return (dgramMod ??= createDgram(s)); },
      get closed() { return false; },
      supports: kernelStack.supports,
      socket(domain: number, type: number, protocol?: number) { return kernelSocket(s, domain, type, protocol); },
      lookup: kernelLookup,
      close: kernelStack.close,
    };
    ownClasses = s;
  }
  return ownClasses;
}
