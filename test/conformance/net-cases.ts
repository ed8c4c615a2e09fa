// Conformance cases for `net`: what Node's own test-net-* tests check, in our own words, written
// once against a Target (see target.ts) and run against every stack kind.
//
// Rules every case follows:
// - only target.server.* and target.client.* are used: the server side listens on its own host,
//   the client side connects to target.server.host (and binds target.client.host when it binds);
// - everything a case creates is tracked by its Scope and closed/destroyed afterwards, also on
//   failure; every case has a bounded time (see tcase) and reports what it was waiting for;
// - an 'error' nobody asked for fails the case at once (Scope.expectErrors opts a socket out);
// - argument errors are compared with what Node's own `net` throws for the same call (code,
//   class, message), and the code Node throws is pinned too, so a Node upgrade that changes it
//   shows up as a suite failure rather than as silent agreement;
// - the few fixed waits are observation windows for "this must NOT happen" (no event exists for
//   that); all synchronisation is on events.
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type * as dgramNs from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as nodeNet from 'node:net';
import { constants as osConstants } from 'node:os';
import { describe, it } from 'node:test';

import type { Side, Target } from './target';

type Socket = nodeNet.Socket;
type Server = nodeNet.Server;
type ErrnoError = NodeJS.ErrnoException & { address?: string; port?: number };

// ---------------------------------------------------------------------------------------------
// Harness (shared with dgram-cases.ts)
// ---------------------------------------------------------------------------------------------

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function sha256(b: Buffer | Buffer[]): string {
  const h = createHash('sha256');
  for (const part of Array.isArray(b) ? b : [b]) h.update(part);
  return h.digest('hex');
}

/**
 * A view of target.server or target.client that reads the target each time, so that a target
 * may create its stacks in setup() (after the cases are registered) and expose them by getters.
 */
export function sideOf(target: Target, which: 'server' | 'client'): Side {
  return {
    get net() { return target[which].net; },
    get dgram() { return target[which].dgram; },
    get host() { return target[which].host; },
  };
}

export function familyName(t: Target): 'IPv4' | 'IPv6' {
  return t.family === 6 ? 'IPv6' : 'IPv4';
}

type Tracked =
  | { kind: 'socket'; obj: Socket }
  | { kind: 'server'; obj: Server }
  | { kind: 'udp'; obj: dgramNs.Socket };

/**
 * Everything one case creates and waits for. Tracks sockets, servers and datagram sockets so
 * cleanup closes them whatever happened; turns an unexpected 'error' or an exception thrown in a
 * listener into a failure of the case; remembers what the case is waiting for, for the timeout
 * message.
 */
export class Scope {
  private items: Tracked[] = [];
  private expected = new WeakSet<object>();
  private waiting = new Map<number, string>();
  private waitSeq = 0;
  private deferred: (() => unknown)[] = [];
  private rejectFailed!: (e: unknown) => void;
  /** rejects with the first failure reported from a listener */
  readonly failed: Promise<never>;
  done = false;

  constructor() {
    this.failed = new Promise<never>((_, reject) => { this.rejectFailed = reject; });
    this.failed.catch(() => { /* observed by the case runner */ });
  }

  fail(e: unknown): void {
    if (!this.done) this.rejectFailed(e);
  }

  /** wrap a listener: an exception thrown in it fails the case (instead of escaping as uncaught) */
  guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      try { fn(...args); } catch (e) { this.fail(e); }
    };
  }

  /** run at cleanup, before sockets are closed */
  defer(fn: () => unknown): void {
    this.deferred.push(fn);
  }

  /** 'error' on this object is part of the case: do not fail the case for it */
  expectErrors<T extends object>(obj: T): T {
    this.expected.add(obj);
    return obj;
  }

  private watchErrors(obj: EventEmitter, label: string): void {
    obj.on('error', (err: ErrnoError) => {
      if (this.done || this.expected.has(obj)) return;
      this.fail(new Error(`unexpected 'error' on ${label}: ${err && err.code ? `${err.code} ` : ''}${err && err.message}`));
    });
  }

  socket<T extends Socket>(s: T, label = 'client socket'): T {
    this.items.push({ kind: 'socket', obj: s });
    this.watchErrors(s, label);
    return s;
  }

  server<T extends Server>(srv: T, label = 'server'): T {
    this.items.push({ kind: 'server', obj: srv });
    this.watchErrors(srv, label);
    srv.on('connection', (c: Socket) => { this.socket(c, `${label}'s accepted socket`); });
    return srv;
  }

  udp<T extends dgramNs.Socket>(u: T, label = 'udp socket'): T {
    this.items.push({ kind: 'udp', obj: u });
    this.watchErrors(u, label);
    return u;
  }

  /** anything a call returned that might own a handle (used when a call was expected to throw) */
  adopt(x: unknown): void {
    if (!x || typeof x !== 'object') return;
    const o = x as Record<string, unknown>;
    if (typeof o.listen === 'function' && typeof o.close === 'function') this.server(this.expectErrors(x as Server), 'adopted server');
    else if (typeof o.destroy === 'function') this.socket(this.expectErrors(x as Socket), 'adopted socket');
    else if (typeof o.send === 'function' && typeof o.close === 'function') this.udp(this.expectErrors(x as dgramNs.Socket), 'adopted udp socket');
  }

  /**
   * The arguments of the next `event` on `em`. Waiting for anything but 'error' rejects if an
   * unexpected 'error' comes first; waiting for 'error' marks the emitter's errors as expected.
   * Call it before the action that causes the event: events already emitted are not seen.
   */
  wait<A extends unknown[] = unknown[]>(em: EventEmitter, event: string, label = event): Promise<A> {
    const id = ++this.waitSeq;
    this.waiting.set(id, label);
    if (event === 'error') this.expectErrors(em);
    const p = new Promise<A>((resolve, reject) => {
      const onEvent = (...args: unknown[]) => {
        cleanup();
        resolve(args as A);
      };
      const onError = (err: Error) => {
        if (this.done || this.expected.has(em)) return; // part of the case; whoever waits for 'error' sees it
        cleanup();
        reject(new Error(`${label}: 'error' while waiting for '${event}': ${(err as ErrnoError).code ?? ''} ${err.message}`));
      };
      const cleanup = () => {
        this.waiting.delete(id);
        em.off(event, onEvent);
        if (event !== 'error') em.off('error', onError);
      };
      em.on(event, onEvent);
      if (event !== 'error') em.on('error', onError);
    });
    // a wait the case never got to await must not become an unhandled rejection; the case still
    // fails through the unexpected-'error' tracker
    p.catch(() => { /* handled by whoever awaits */ });
    return p;
  }

  /** waits for a promise while telling the timeout message what it is */
  async waitFor<T>(p: Promise<T>, label: string): Promise<T> {
    const id = ++this.waitSeq;
    this.waiting.set(id, label);
    try { return await p; } finally { this.waiting.delete(id); }
  }

  describeWaiting(): string {
    const w = [...this.waiting.values()];
    return w.length ? `still waiting for: ${w.join('; ')}` : 'not waiting on any event';
  }

  async cleanup(): Promise<void> {
    this.done = true;
    for (const fn of this.deferred.reverse()) {
      try { await fn(); } catch { /* cleanup is best effort */ }
    }
    const closing: Promise<void>[] = [];
    // sockets first, so that server.close() callbacks can run
    for (const t of this.items) {
      try {
        if (t.kind === 'socket') t.obj.destroy();
        else if (t.kind === 'udp') t.obj.close();
      } catch { /* already closed */ }
    }
    for (const t of this.items) {
      if (t.kind !== 'server') continue;
      try {
        if (t.obj.listening) closing.push(new Promise<void>((resolve) => t.obj.close(() => resolve())));
      } catch { /* not running */ }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closing),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, 1000); }),
    ]);
    clearTimeout(timer);
  }
}

export interface CaseOptions {
  /** ms; the case fails (and is cleaned up) after this */
  timeout?: number;
  /** a reason to skip, or false */
  skip?: string | false;
}

/** one conformance case: a Scope, a bounded time, cleanup always */
export function tcase(name: string, fn: (s: Scope) => Promise<void>, opts: CaseOptions = {}): void {
  const ms = opts.timeout ?? 3000;
  it(name, { skip: opts.skip || undefined, timeout: ms + 5000 }, async () => {
    const scope = new Scope();
    let timer: NodeJS.Timeout | undefined;
    const run = (async () => fn(scope))();
    run.catch(() => { /* raced below */ });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`case timed out after ${ms} ms; ${scope.describeWaiting()}`)), ms);
    });
    try {
      await Promise.race([run, scope.failed, timeout]);
    } finally {
      clearTimeout(timer);
      await scope.cleanup();
    }
  });
}

/** what a synchronous call threw, or undefined (anything it returned is adopted for cleanup) */
export function thrown(scope: Scope, fn: () => unknown): ErrnoError | undefined {
  try {
    scope.adopt(fn());
    return undefined;
  } catch (e) {
    return e as ErrnoError;
  }
}

/**
 * `actual` must throw what Node's own implementation throws for the same call (`reference`):
 * same code, same class, same message; and Node must throw `code` (pins the suite to Node).
 */
export function assertThrowsLikeNode(scope: Scope, what: string, code: string, actual: () => unknown, reference: () => unknown): void {
  const ref = thrown(scope, reference);
  assert.ok(ref, `suite assumption: Node's own implementation throws for ${what}`);
  assert.equal(ref.code, code, `suite assumption: Node's own implementation throws ${code} for ${what}`);
  const act = thrown(scope, actual);
  assert.ok(act, `${what}: did not throw; Node throws ${ref.code}: ${ref.message}`);
  assert.ok(act instanceof Error, `${what}: threw a non-Error ${String(act)}`);
  assert.equal(act.code, ref.code, `${what}: code`);
  assert.equal(act.name, ref.name, `${what}: name`);
  assert.ok(act instanceof (ref.constructor as ErrorConstructor), `${what}: should be a ${ref.constructor.name}`);
  assert.equal(act.message, ref.message, `${what}: message`);
}

/**
 * A port on `side` that nothing listens on and no connection holds. Not from listen(0): a
 * listener takes a port that a connection in TIME-WAIT still holds (SO_REUSEADDR), and a client
 * bound to it without that option then fails with EADDRINUSE. So a random port below the
 * ephemeral range (32768 and up on Linux and on user stacks), where no connection takes its local
 * port from, checked by listening on it.
 */
export async function freePort(side: Side): Promise<number> {
  for (let tries = 0; ; tries++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const srv = side.net.createServer();
    const ok = await new Promise<boolean>((resolve, reject) => {
      srv.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' && tries < 50 ? resolve(false) : reject(e)));
      srv.listen(port, side.host, () => resolve(true));
    });
    if (!ok) continue;
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    return port;
  }
}

// ---------------------------------------------------------------------------------------------
// net cases
// ---------------------------------------------------------------------------------------------

export function netCases(target: Target): void {
  const S = sideOf(target, 'server');
  const C = sideOf(target, 'client');
  const FAM = familyName(target);
  // documentation prefixes (TEST-NET-2, 2001:db8::/32): on no interface of any side
  const UNOWNED = target.family === 6 ? '2001:db8::dead:1' : '198.51.100.254';

  async function listen(scope: Scope, opts?: nodeNet.ServerOpts, onConnection?: (c: Socket) => void): Promise<{ server: Server; port: number }> {
    const server = scope.server(onConnection ? S.net.createServer(opts ?? {}, onConnection) : S.net.createServer(opts ?? {}));
    const listening = scope.wait(server, 'listening', 'server listening');
    server.listen({ port: 0, host: S.host });
    await listening;
    const a = server.address() as nodeNet.AddressInfo;
    return { server, port: a.port };
  }

  function connect(scope: Scope, port: number, opts: Partial<nodeNet.TcpNetConnectOpts> = {}): Socket {
    return scope.socket(C.net.connect({ port, host: S.host, ...opts }));
  }

  /** a connected pair: client (client side) and peer (its accepted socket on the server side) */
  async function pair(scope: Scope, serverOpts?: nodeNet.ServerOpts, clientOpts: Partial<nodeNet.TcpNetConnectOpts> = {}) {
    const { server, port } = await listen(scope, serverOpts);
    const accepted = scope.wait<[Socket]>(server, 'connection', 'server connection');
    const client = connect(scope, port, clientOpts);
    const [[peer]] = await Promise.all([accepted, scope.wait(client, 'connect', 'client connect')]);
    return { server, port, client, peer };
  }

  /** all bytes until 'end' */
  function readAll(scope: Scope, s: Socket, label: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    const p = scope.wait(s, 'end', `${label} end`).then(() => Buffer.concat(chunks));
    p.catch(() => { /* handled by whoever awaits */ });
    return p;
  }

  /** writes `data` in chunks, honouring back-pressure (waits for 'drain' when write() is false) */
  async function writeChunked(scope: Scope, s: Socket, data: Buffer, chunk: number, label: string): Promise<void> {
    for (let off = 0; off < data.length; off += chunk) {
      if (!s.write(data.subarray(off, off + chunk))) await scope.wait(s, 'drain', `${label} drain`);
    }
  }

  /** records the named events of `em`, in order */
  function record(em: EventEmitter, events: string[]): string[] {
    const seen: string[] = [];
    for (const ev of events) em.on(ev, (...args: unknown[]) => {
      seen.push(ev === 'close' ? `close(${String(args[0])})` : ev);
    });
    return seen;
  }

  describe('net', () => {
    // ---------------------------------------------------------------- argument validation
    describe('argument validation', () => {
      tcase('connect() without port or path throws ERR_MISSING_ARGS', async (scope) => {
        assertThrowsLikeNode(scope, 'connect()', 'ERR_MISSING_ARGS', () => C.net.connect(undefined as never), () => nodeNet.connect(undefined as never));
        assertThrowsLikeNode(scope, 'connect({host})', 'ERR_MISSING_ARGS',
          () => C.net.connect({ host: S.host } as never), () => nodeNet.connect({ host: S.host } as never));
      });

      tcase('connect with a port out of range throws ERR_SOCKET_BAD_PORT', async (scope) => {
        for (const port of [65536, -1, 1.5]) {
          assertThrowsLikeNode(scope, `connect(${port}, host)`, 'ERR_SOCKET_BAD_PORT', () => C.net.connect(port, S.host), () => nodeNet.connect(port, S.host));
        }
        assertThrowsLikeNode(scope, "connect({port: 'abc'})", 'ERR_SOCKET_BAD_PORT',
          () => C.net.connect({ port: 'abc' as never, host: S.host }), () => nodeNet.connect({ port: 'abc' as never, host: S.host }));
      });

      tcase('connect with a port of the wrong type throws ERR_INVALID_ARG_TYPE', async (scope) => {
        for (const port of [true, null, {}, []] as unknown[]) {
          assertThrowsLikeNode(scope, `connect({port: ${JSON.stringify(port)}})`, 'ERR_INVALID_ARG_TYPE',
            () => C.net.connect({ port: port as never, host: S.host }), () => nodeNet.connect({ port: port as never, host: S.host }));
        }
      });

      tcase('connect with a host that is not a string throws ERR_INVALID_ARG_TYPE', async (scope) => {
        assertThrowsLikeNode(scope, 'connect({host: 123})', 'ERR_INVALID_ARG_TYPE',
          () => C.net.connect({ port: 80, host: 123 as never }), () => nodeNet.connect({ port: 80, host: 123 as never }));
      });

      tcase('connect with an invalid localAddress throws ERR_INVALID_IP_ADDRESS', async (scope) => {
        for (const localAddress of ['not-an-ip', '999.1.1.1']) {
          assertThrowsLikeNode(scope, `connect({localAddress: '${localAddress}'})`, 'ERR_INVALID_IP_ADDRESS',
            () => C.net.connect({ port: 80, host: S.host, localAddress }), () => nodeNet.connect({ port: 80, host: S.host, localAddress }));
        }
      });

      tcase('connect with a localPort that is not a number throws ERR_INVALID_ARG_TYPE', async (scope) => {
        assertThrowsLikeNode(scope, "connect({localPort: 'x'})", 'ERR_INVALID_ARG_TYPE',
          () => C.net.connect({ port: 80, host: S.host, localPort: 'x' as never }), () => nodeNet.connect({ port: 80, host: S.host, localPort: 'x' as never }));
      });

      tcase('connect with a lookup that is not a function throws ERR_INVALID_ARG_TYPE', async (scope) => {
        assertThrowsLikeNode(scope, 'connect({lookup: 1})', 'ERR_INVALID_ARG_TYPE',
          () => C.net.connect({ port: 80, host: 'conformance.invalid', lookup: 1 as never }),
          () => nodeNet.connect({ port: 80, host: 'conformance.invalid', lookup: 1 as never }));
      });

      tcase('connect with a bad timeout option throws like setTimeout does', async (scope) => {
        assertThrowsLikeNode(scope, "connect({timeout: 'x'})", 'ERR_INVALID_ARG_TYPE',
          () => C.net.connect({ port: 80, host: S.host, timeout: 'x' as never }), () => nodeNet.connect({ port: 80, host: S.host, timeout: 'x' as never }));
        assertThrowsLikeNode(scope, 'connect({timeout: -1})', 'ERR_OUT_OF_RANGE',
          () => C.net.connect({ port: 80, host: S.host, timeout: -1 }), () => nodeNet.connect({ port: 80, host: S.host, timeout: -1 }));
      });

      tcase('createServer with options that are not an object throws ERR_INVALID_ARG_TYPE', async (scope) => {
        assertThrowsLikeNode(scope, 'createServer(1)', 'ERR_INVALID_ARG_TYPE', () => S.net.createServer(1 as never), () => nodeNet.createServer(1 as never));
      });

      tcase('listen with a port out of range throws ERR_SOCKET_BAD_PORT', async (scope) => {
        for (const port of [65536, -1]) {
          assertThrowsLikeNode(scope, `listen(${port}, host)`, 'ERR_SOCKET_BAD_PORT',
            () => S.net.createServer().listen(port, S.host), () => nodeNet.createServer().listen(port, S.host));
        }
        assertThrowsLikeNode(scope, "listen({port: 'abc'})", 'ERR_SOCKET_BAD_PORT',
          () => S.net.createServer().listen({ port: 'abc' as never, host: S.host }), () => nodeNet.createServer().listen({ port: 'abc' as never, host: S.host }));
      });

      tcase('listen without a port or path throws ERR_INVALID_ARG_VALUE', async (scope) => {
        assertThrowsLikeNode(scope, 'listen({host})', 'ERR_INVALID_ARG_VALUE',
          () => S.net.createServer().listen({ host: S.host }), () => nodeNet.createServer().listen({ host: S.host }));
        assertThrowsLikeNode(scope, 'listen(true)', 'ERR_INVALID_ARG_VALUE',
          () => S.net.createServer().listen(true as never), () => nodeNet.createServer().listen(true as never));
      });

      tcase('setTimeout validates msecs and callback', async (scope) => {
        const a = scope.socket(new C.net.Socket());
        const r = scope.socket(new nodeNet.Socket());
        assertThrowsLikeNode(scope, "setTimeout('x')", 'ERR_INVALID_ARG_TYPE', () => a.setTimeout('x' as never), () => r.setTimeout('x' as never));
        assertThrowsLikeNode(scope, 'setTimeout(-1)', 'ERR_OUT_OF_RANGE', () => a.setTimeout(-1), () => r.setTimeout(-1));
        assertThrowsLikeNode(scope, 'setTimeout(1, 5)', 'ERR_INVALID_ARG_TYPE', () => a.setTimeout(1, 5 as never), () => r.setTimeout(1, 5 as never));
      });

      tcase('write of a chunk that is not a string or buffer throws', async (scope) => {
        const a = scope.socket(new C.net.Socket());
        const r = scope.socket(new nodeNet.Socket());
        assertThrowsLikeNode(scope, 'write(1)', 'ERR_INVALID_ARG_TYPE', () => a.write(1 as never), () => r.write(1 as never));
        assertThrowsLikeNode(scope, 'write(null)', 'ERR_STREAM_NULL_VALUES', () => a.write(null as never), () => r.write(null as never));
      });

      tcase('listen while already listening throws ERR_SERVER_ALREADY_LISTEN', async (scope) => {
        const { server } = await listen(scope);
        // the reference: Node's own server on this machine's loopback (not part of the target)
        const ref = scope.server(nodeNet.createServer());
        await new Promise<void>((resolve) => ref.listen(0, '127.0.0.1', () => resolve()));
        assertThrowsLikeNode(scope, 'second listen()', 'ERR_SERVER_ALREADY_LISTEN', () => server.listen(0, S.host), () => ref.listen(0, '127.0.0.1'));
        assert.equal(server.listening, true, 'the first listen is unaffected');
      });

      tcase('isIP, isIPv4 and isIPv6 classify addresses like Node', async () => {
        const samples = [S.host, C.host, '10.0.0.1', '255.255.255.255', '::1', 'fd00::2', '::ffff:10.0.0.1', 'fe80::1%eth0',
          '1.2.3', '256.1.1.1', 'localhost', '', 'x::y', '1:2:3:4:5:6:7:8:9'];
        for (const a of samples) {
          assert.equal(C.net.isIP(a), nodeNet.isIP(a), `isIP(${JSON.stringify(a)})`);
          assert.equal(C.net.isIPv4(a), nodeNet.isIPv4(a), `isIPv4(${JSON.stringify(a)})`);
          assert.equal(C.net.isIPv6(a), nodeNet.isIPv6(a), `isIPv6(${JSON.stringify(a)})`);
        }
        assert.equal(C.net.isIP(S.host), target.family, 'the server host is an address of the target family');
      });

      tcase('connect and createConnection return net.Socket, createServer a net.Server', async (scope) => {
        const { port } = await listen(scope);
        const a = connect(scope, port);
        const b = scope.socket(C.net.createConnection({ port, host: S.host }));
        assert.ok(a instanceof C.net.Socket, 'connect() returns a Socket of the module');
        assert.ok(b instanceof C.net.Socket, 'createConnection() returns a Socket of the module');
        const srv = scope.server(S.net.createServer());
        assert.ok(srv instanceof S.net.Server, 'createServer() returns a Server of the module');
        assert.ok(new S.net.Server() instanceof EventEmitter, 'new Server() is an EventEmitter');
        await Promise.all([scope.wait(a, 'connect'), scope.wait(b, 'connect')]);
      });

      tcase('a fresh Socket is pending, not connecting, not destroyed, address() {}, no remote', async (scope) => {
        const s = scope.socket(new C.net.Socket());
        assert.equal(s.pending, true, 'pending');
        assert.equal(s.connecting, false, 'connecting');
        assert.equal(s.destroyed, false, 'destroyed');
        // Node's value: a fresh Duplex is readable and writable, so readyState says 'open' before any connect
        assert.deepEqual([s.readyState, s.readable, s.writable], ['open', true, true], 'readyState, readable, writable');
        assert.deepEqual(s.address(), {}, 'address()');
        assert.equal(s.remoteAddress, undefined, 'remoteAddress');
        assert.equal(s.remotePort, undefined, 'remotePort');
        assert.equal(s.bytesRead, 0, 'bytesRead');
        assert.equal(s.bytesWritten, 0, 'bytesWritten');
      });
    });

    // ---------------------------------------------------------------- connecting
    describe('connect forms and events', () => {
      tcase('connect(port, host): connect event, remote and local addresses on both ends', async (scope) => {
        const { server, port } = await listen(scope);
        const accepted = scope.wait<[Socket]>(server, 'connection');
        const c = scope.socket(C.net.connect(port, S.host));
        await scope.wait(c, 'connect');
        const [peer] = await accepted;
        assert.equal(c.remoteAddress, S.host, 'client remoteAddress');
        assert.equal(c.remotePort, port, 'client remotePort');
        assert.equal(c.remoteFamily, FAM, 'client remoteFamily');
        assert.equal(c.localAddress, C.host, 'client localAddress');
        assert.equal(c.localFamily, FAM, 'client localFamily');
        assert.ok(Number.isInteger(c.localPort) && c.localPort! > 0, `client localPort ${c.localPort}`);
        assert.deepEqual(c.address(), { address: C.host, family: FAM, port: c.localPort }, 'client address()');
        assert.equal(peer.remoteAddress, C.host, 'peer remoteAddress');
        assert.equal(peer.remotePort, c.localPort, 'peer remotePort is the client localPort');
        assert.equal(peer.remoteFamily, FAM, 'peer remoteFamily');
        assert.equal(peer.localAddress, S.host, 'peer localAddress');
        assert.equal(peer.localPort, port, 'peer localPort');
        assert.ok(peer instanceof S.net.Socket, 'the accepted socket is a Socket of the module');
      });

      tcase('connect(options) and the callback forms call the callback once, with no arguments', async (scope) => {
        const { port } = await listen(scope);
        const calls: unknown[][] = [];
        const done: Promise<void>[] = [];
        const forms: [string, () => Socket][] = [
          ['connect(options)', () => C.net.connect({ port, host: S.host })],
          ['connect(port, host, cb)', () => C.net.connect(port, S.host, function (...a: unknown[]) { calls.push(['port', ...a]); })],
          ['connect(options, cb)', () => C.net.connect({ port, host: S.host }, (...a: unknown[]) => { calls.push(['options', ...a]); })],
          ['createConnection(port, host, cb)', () => C.net.createConnection(port, S.host, (...a: unknown[]) => { calls.push(['cc', ...a]); })],
        ];
        for (const [label, f] of forms) {
          const s = scope.socket(f());
          done.push(scope.wait(s, 'connect', label).then(() => {
            assert.equal(s.remotePort, port, `${label}: remotePort`);
          }));
        }
        await Promise.all(done);
        assert.deepEqual(calls.map((c) => c[0]).sort(), ['cc', 'options', 'port'], 'each callback called exactly once');
        for (const c of calls) assert.equal(c.length, 1, `${String(c[0])}: the connect callback gets no arguments`);
      });

      tcase('new Socket().connect(port, host, cb) returns the socket and connects it', async (scope) => {
        const { port } = await listen(scope);
        const s = scope.socket(new C.net.Socket());
        let called = 0;
        const r = s.connect(port, S.host, () => { called++; });
        assert.equal(r, s, 'connect() returns this');
        assert.equal(s.connecting, true, 'connecting right after connect()');
        await scope.wait(s, 'connect');
        assert.equal(called, 1, 'callback called once');
        const s2 = scope.socket(new C.net.Socket());
        assert.equal(s2.connect({ port, host: S.host }), s2, 'connect(options) returns this');
        await scope.wait(s2, 'connect');
      });

      tcase("'connect' comes before 'ready', and connecting/pending flip at 'connect'", async (scope) => {
        const { port } = await listen(scope);
        const c = connect(scope, port);
        const seen = record(c, ['connect', 'ready']);
        const states: string[] = [];
        c.on('connect', () => states.push(`connect:${c.connecting}/${c.pending}`));
        await scope.wait(c, 'ready');
        assert.deepEqual(seen, ['connect', 'ready']);
        assert.deepEqual(states, ['connect:false/false']);
      });

      tcase('states at each phase: opening, open, readOnly after end(), closed after close', async (scope) => {
        const { port } = await listen(scope);
        const c = connect(scope, port);
        assert.deepEqual([c.readyState, c.connecting, c.pending, c.destroyed], ['opening', true, true, false], 'while connecting');
        await scope.wait(c, 'connect');
        assert.deepEqual([c.readyState, c.connecting, c.pending, c.destroyed], ['open', false, false, false], 'connected');
        const closed = scope.wait<[boolean]>(c, 'close');
        c.resume();
        c.end();
        assert.deepEqual([c.readyState, c.writable], ['readOnly', false], 'after end()');
        const [hadError] = await closed;
        assert.equal(hadError, false, 'close(hadError)');
        assert.deepEqual([c.readyState, c.destroyed, c.pending], ['closed', true, true], 'closed');
      });

      tcase('writes made before the connection is up are sent once it is, end(data) included', async (scope) => {
        const { server, port } = await listen(scope);
        const accepted = scope.wait<[Socket]>(server, 'connection');
        const c = connect(scope, port);
        assert.equal(c.connecting, true);
        c.write('early-');
        c.end('bird');
        const [peer] = await accepted;
        const got = await readAll(scope, peer, 'peer');
        assert.equal(got.toString(), 'early-bird');
      });

      tcase('localAddress and localPort options bind the client end', async (scope) => {
        const { server, port } = await listen(scope);
        const localPort = await freePort(C);
        const accepted = scope.wait<[Socket]>(server, 'connection');
        const c = connect(scope, port, { localAddress: C.host, localPort });
        await scope.wait(c, 'connect');
        const [peer] = await accepted;
        assert.equal(c.localAddress, C.host, 'client localAddress');
        assert.equal(c.localPort, localPort, 'client localPort');
        assert.equal(peer.remoteAddress, C.host, 'peer remoteAddress');
        assert.equal(peer.remotePort, localPort, 'peer remotePort');
      });

      tcase("timeout option: sets socket.timeout and 'timeout' fires when idle", async (scope) => {
        const { port } = await listen(scope);
        const t0 = Date.now();
        const c = connect(scope, port, { timeout: 80 });
        assert.equal(c.timeout, 80, 'socket.timeout');
        await scope.wait(c, 'connect');
        await scope.wait(c, 'timeout');
        const elapsed = Date.now() - t0;
        assert.ok(elapsed >= 75, `'timeout' after ${elapsed} ms, not before the 80 ms idle time`);
        assert.equal(c.destroyed, false, "'timeout' does not destroy the socket");
        assert.equal(c.readyState, 'open');
      });

      tcase("custom lookup: 'lookup' event (null, address, family, host) before 'connect'", async (scope) => {
        const { port } = await listen(scope);
        const hostname = 'conformance-server.invalid';
        const asked: string[] = [];
        const lookup = (h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) => {
          asked.push(h);
          setImmediate(() => {
            if (o && o.all) cb(null, [{ address: S.host, family: target.family }]);
            else cb(null, S.host, target.family);
          });
        };
        const c = connect(scope, port, { host: hostname, lookup: lookup as never });
        const seen = record(c, ['lookup', 'connect']);
        const lookedUp = scope.wait<[Error | null, string, number, string]>(c, 'lookup');
        await scope.wait(c, 'connect');
        const [err, address, family, host] = await lookedUp;
        assert.deepEqual(asked, [hostname], 'the lookup function was asked for the host, once');
        assert.deepEqual([err, address, family, host], [null, S.host, target.family, hostname], "'lookup' arguments");
        assert.deepEqual(seen, ['lookup', 'connect'], 'order');
        assert.equal(c.remoteAddress, S.host);
      });

      tcase("lookup failure: 'lookup' with the error, then 'error' with the same error, then 'close'(true)", async (scope) => {
        const hostname = 'conformance-nowhere.invalid';
        const failure = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname });
        const lookup = (_h: string, _o: unknown, cb: (e: Error) => void) => { setImmediate(cb, failure); };
        const c = connect(scope, 80, { host: hostname, lookup: lookup as never });
        const seen = record(c, ['lookup', 'connect', 'error', 'close']);
        const lookedUp = scope.wait<[Error | null, unknown, unknown, string]>(c, 'lookup');
        const errored = scope.wait<[Error]>(c, 'error');
        await scope.wait(c, 'close');
        const [lerr, , , lhost] = await lookedUp;
        const [err] = await errored;
        assert.equal(lerr, failure, "'lookup' carries the lookup error");
        assert.equal(lhost, hostname, "'lookup' carries the host");
        assert.equal(err, failure, "'error' carries the same error object");
        assert.deepEqual(seen, ['lookup', 'error', 'close(true)']);
      });
    });

    // ---------------------------------------------------------------- data
    describe('data transfer', () => {
      tcase('echo: bytes sent come back unchanged, then end and close(false) on both ends', async (scope) => {
        const { server, port } = await listen(scope);
        server.on('connection', (s: Socket) => s.pipe(s));
        const c = connect(scope, port);
        const closed = scope.wait<[boolean]>(c, 'close');
        const got = readAll(scope, c, 'client');
        c.write('hello, ');
        c.end(Buffer.from('world'));
        assert.equal((await got).toString(), 'hello, world');
        assert.deepEqual(await closed, [false]);
      });

      tcase('setEncoding(utf8) decodes characters split across writes', async (scope) => {
        const { client, peer } = await pair(scope);
        const text = '€uro Ωmega 𝄞 ' .repeat(50);
        const bytes = Buffer.from(text);
        client.setEncoding('utf8');
        const parts: unknown[] = [];
        client.on('data', (d: unknown) => parts.push(d));
        const ended = scope.wait(client, 'end');
        for (let i = 0; i < bytes.length; i += 7) peer.write(bytes.subarray(i, i + 7)); // cuts through characters
        peer.end();
        await ended;
        assert.ok(parts.every((p) => typeof p === 'string'), "'data' gives strings after setEncoding");
        assert.equal(parts.join(''), text);
      });

      tcase('write(string, encoding) encodes, and the write callback is called', async (scope) => {
        const { client, peer } = await pair(scope);
        const got = readAll(scope, peer, 'peer');
        const cbs: unknown[] = [];
        assert.equal(typeof client.write('68656c6c6f', 'hex', (e) => cbs.push(e ?? 'ok')), 'boolean', 'write returns a boolean');
        client.write('IHdvcmxk', 'base64', (e) => cbs.push(e ?? 'ok'));
        client.write('!', 'latin1');
        const finished = scope.wait(client, 'finish');
        assert.equal(client.end(), client, 'end() returns this');
        await finished;
        assert.equal((await got).toString(), 'hello world!');
        assert.deepEqual(cbs, ['ok', 'ok']);
      });

      tcase('4 MiB client to server in one write arrives byte-exact', async (scope) => {
        const { client, peer } = await pair(scope);
        const data = randomBytes(4 << 20);
        const got = readAll(scope, peer, 'peer');
        client.end(data);
        const buf = await got;
        assert.equal(buf.length, data.length, 'length');
        assert.equal(sha256(buf), sha256(data), 'sha256');
      }, { timeout: 10000 });

      tcase('4 MiB server to client in 64 KiB writes with back-pressure arrives byte-exact', async (scope) => {
        const { client, peer } = await pair(scope);
        const data = randomBytes(4 << 20);
        const got = readAll(scope, client, 'client');
        await writeChunked(scope, peer, data, 64 << 10, 'peer');
        peer.end();
        const buf = await got;
        assert.equal(buf.length, data.length, 'length');
        assert.equal(sha256(buf), sha256(data), 'sha256');
      }, { timeout: 10000 });

      tcase('2 MiB each way at once through an echoing server arrives byte-exact', async (scope) => {
        const { client, peer } = await pair(scope);
        peer.pipe(peer);
        const data = randomBytes(2 << 20);
        const got = readAll(scope, client, 'client');
        await writeChunked(scope, client, data, 16 << 10, 'client');
        client.end();
        const buf = await got;
        assert.equal(buf.length, data.length, 'length');
        assert.equal(sha256(buf), sha256(data), 'sha256');
      }, { timeout: 10000 });

      tcase('10000 small writes arrive complete and in order', async (scope) => {
        const { client, peer } = await pair(scope);
        const got = readAll(scope, peer, 'peer');
        const parts: Buffer[] = [];
        for (let i = 0; i < 10000; i++) {
          const b = Buffer.from(`${i.toString(36)};`);
          parts.push(b);
          client.write(b);
        }
        client.end();
        const expected = Buffer.concat(parts);
        assert.equal(sha256(await got), sha256(expected));
      }, { timeout: 10000 });

      tcase('bytesRead and bytesWritten count bytes (UTF-8 for strings) on both ends', async (scope) => {
        const { client, peer } = await pair(scope, { allowHalfOpen: true });
        const peerGot = readAll(scope, peer, 'peer');
        const clientGot = readAll(scope, client, 'client');
        client.write('é');                 // 2 bytes
        client.end(Buffer.alloc(1000, 1)); // 1000 bytes
        await peerGot;
        peer.end(Buffer.alloc(500, 2));
        await clientGot;
        assert.equal(client.bytesWritten, 1002, 'client.bytesWritten');
        assert.equal(peer.bytesRead, 1002, 'peer.bytesRead');
        assert.equal(peer.bytesWritten, 500, 'peer.bytesWritten');
        assert.equal(client.bytesRead, 500, 'client.bytesRead');
      });

      tcase('a socket is async-iterable until the peer ends', async (scope) => {
        const { client, peer } = await pair(scope);
        peer.write('one,');
        peer.write('two,');
        peer.end('three');
        const chunks: Buffer[] = [];
        await scope.waitFor((async () => { for await (const chunk of client) chunks.push(chunk as Buffer); })(), 'for await over the client');
        assert.equal(Buffer.concat(chunks).toString(), 'one,two,three');
      });

      tcase('1 server and 50 concurrent clients each get their own bytes echoed', async (scope) => {
        const { server, port } = await listen(scope);
        let connections = 0;
        server.on('connection', (s: Socket) => { connections++; s.pipe(s); });
        const runs: Promise<void>[] = [];
        for (let i = 0; i < 50; i++) {
          const data = randomBytes(16 << 10);
          data.writeUInt32BE(i, 0);
          const c = connect(scope, port);
          const got = readAll(scope, c, `client ${i}`);
          c.end(data);
          runs.push(got.then((buf) => { assert.equal(sha256(buf), sha256(data), `client ${i} got its own bytes back`); }));
        }
        await Promise.all(runs);
        assert.equal(connections, 50, 'server connections');
      }, { timeout: 10000 });
    });

    // ---------------------------------------------------------------- half-open
    describe('half-open', () => {
      tcase('allowHalfOpen false: the peer ends its side by itself when it gets end', async (scope) => {
        const { client, peer } = await pair(scope);
        const peerSeen = record(peer, ['end', 'finish', 'close']);
        const clientSeen = record(client, ['end', 'finish', 'close']);
        client.resume();
        peer.resume();
        const closes = Promise.all([scope.wait(client, 'close', 'client close'), scope.wait(peer, 'close', 'peer close')]);
        client.end();
        await closes;
        assert.equal(peer.writableEnded, true, 'peer ended its writable side without being asked');
        assert.deepEqual(peerSeen, ['end', 'finish', 'close(false)'], 'peer events');
        assert.deepEqual([...clientSeen].sort(), ['close(false)', 'end', 'finish'].sort(), 'client events');
        assert.equal(clientSeen[clientSeen.length - 1], 'close(false)', "client 'close' comes last");
      });

      tcase('allowHalfOpen true on the server: it can keep writing after the client ended', async (scope) => {
        const { client, peer } = await pair(scope, { allowHalfOpen: true });
        const clientClosed = scope.wait<[boolean]>(client, 'close');
        const clientGot = readAll(scope, client, 'client');
        const peerGot = readAll(scope, peer, 'peer');
        client.end('request');
        assert.equal((await peerGot).toString(), 'request');
        assert.equal(peer.readyState, 'writeOnly', 'peer after end');
        assert.equal(peer.writableEnded, false, 'peer did not end by itself');
        assert.equal(client.readyState, 'readOnly', 'client after its end()');
        await delay(30); // the peer stays writable for a while, not just until the next tick
        assert.equal(peer.destroyed, false);
        peer.write('response ');
        peer.end('after half-close');
        assert.equal((await clientGot).toString(), 'response after half-close');
        const [hadError] = await clientClosed;
        assert.equal(hadError, false);
      });

      tcase('allowHalfOpen true on the client: it can keep writing after the server ended', async (scope) => {
        const { client, peer } = await pair(scope, {}, { allowHalfOpen: true });
        const closes = Promise.all([scope.wait(client, 'close', 'client close'), scope.wait(peer, 'close', 'peer close')]);
        const clientGot = readAll(scope, client, 'client');
        const peerGot = readAll(scope, peer, 'peer');
        peer.end('bye');
        assert.equal((await clientGot).toString(), 'bye');
        assert.equal(client.readyState, 'writeOnly', 'client after end');
        client.write('late ');
        client.end('words');
        assert.equal((await peerGot).toString(), 'late words');
        await closes;
      });
    });

    // ---------------------------------------------------------------- flow control
    describe('pause, resume and back-pressure', () => {
      tcase("write() returns false when the peer is not reading, and 'drain' follows once it reads", async (scope) => {
        const { client, peer } = await pair(scope, { pauseOnConnect: true });
        const chunk = Buffer.alloc(64 << 10, 0x61);
        let total = 0;
        let full = false;
        while (total < (128 << 20)) {
          total += chunk.length;
          if (!client.write(chunk)) { full = true; break; }
        }
        assert.ok(full, `write() never returned false after ${total} bytes to a peer that does not read`);
        assert.equal(client.writableNeedDrain, true, 'writableNeedDrain');
        let resumed = false;
        const drained = scope.wait(client, 'drain');
        client.on('drain', scope.guard(() => assert.ok(resumed, "'drain' before the peer read anything")));
        await delay(50); // observation window: no 'drain' while nobody reads
        let received = 0;
        peer.on('data', (d: Buffer) => { received += d.length; });
        const ended = scope.wait(peer, 'end');
        resumed = true;
        peer.resume();
        await drained;
        client.end();
        await ended;
        assert.equal(received, total, 'every byte written arrives');
      }, { timeout: 10000 });

      tcase("pause() stops 'data' until resume()", async (scope) => {
        const { client, peer } = await pair(scope);
        let received = '';
        let whilePaused = 0;
        let paused = false;
        peer.on('data', (d: Buffer) => { if (paused) whilePaused++; received += d.toString(); });
        const first = scope.wait(peer, 'data', 'first data');
        client.write('first');
        await first;
        assert.equal(peer.pause(), peer, 'pause() returns this');
        paused = true;
        assert.equal(peer.isPaused(), true, 'isPaused()');
        await new Promise<void>((resolve) => client.write('second', () => resolve()));
        await delay(100); // observation window: no 'data' while paused
        assert.equal(whilePaused, 0, "'data' emitted while paused");
        assert.equal(received, 'first');
        const ended = scope.wait(peer, 'end');
        paused = false;
        assert.equal(peer.resume(), peer, 'resume() returns this');
        client.end('!');
        await ended;
        assert.equal(received, 'firstsecond!');
      });

      tcase('pauseOnConnect: no data until the accepted socket is resumed', async (scope) => {
        const { server, port } = await listen(scope, { pauseOnConnect: true });
        const accepted = scope.wait<[Socket]>(server, 'connection');
        const c = connect(scope, port);
        const finished = scope.wait(c, 'finish');
        c.end('queued while paused');
        const [peer] = await accepted;
        let received = '';
        let early = 0;
        let resumed = false;
        peer.on('data', (d: Buffer) => { if (!resumed) early++; received += d.toString(); });
        await finished;
        await delay(100); // observation window: a 'data' listener alone must not start the flow
        assert.equal(early, 0, "'data' before resume()");
        const ended = scope.wait(peer, 'end');
        resumed = true;
        peer.resume();
        await ended;
        assert.equal(received, 'queued while paused');
      });
    });

    // ---------------------------------------------------------------- timeouts and options
    describe('timeouts and socket options', () => {
      tcase("setTimeout(ms) emits 'timeout' when idle, returns this, and leaves the socket open", async (scope) => {
        const { client } = await pair(scope);
        let cbCalls = 0;
        const t0 = Date.now();
        assert.equal(client.setTimeout(60, () => { cbCalls++; }), client, 'setTimeout returns this');
        assert.equal(client.timeout, 60, 'socket.timeout');
        await scope.wait(client, 'timeout');
        const elapsed = Date.now() - t0;
        assert.ok(elapsed >= 55, `'timeout' after ${elapsed} ms`);
        assert.equal(cbCalls, 1, 'the callback is a timeout listener');
        assert.equal(client.destroyed, false, 'not destroyed by the timeout');
        assert.equal(client.readyState, 'open');
      });

      tcase('activity resets the idle timer', async (scope) => {
        const { client, peer } = await pair(scope);
        let lastData = 0;
        let bytes = 0;
        client.on('data', (d: Buffer) => { bytes += d.length; lastData = Date.now(); });
        client.setTimeout(200);
        const timedOut = scope.wait(client, 'timeout');
        let sent = 0;
        const tick = setInterval(() => {
          peer.write('.');
          if (++sent === 12) clearInterval(tick);
        }, 25);
        scope.defer(() => clearInterval(tick));
        await timedOut;
        const at = Date.now();
        assert.equal(bytes, 12, `'timeout' fired while data was still arriving every 25 ms (after ${bytes} of 12)`);
        assert.ok(at - lastData >= 190, `'timeout' ${at - lastData} ms after the last data, expected about 200`);
      });

      tcase('setTimeout(0) disables the idle timer and removes the callback', async (scope) => {
        const { client } = await pair(scope);
        let fired = 0;
        const cb = () => { fired++; };
        client.on('timeout', () => { fired++; });
        client.setTimeout(40, cb);
        assert.equal(client.setTimeout(0, cb), client);
        assert.equal(client.timeout, 0, 'socket.timeout after setTimeout(0)');
        assert.equal(client.listeners('timeout').includes(cb), false, 'callback removed');
        await delay(200); // observation window: 5x the disabled timeout
        assert.equal(fired, 0, "'timeout' fired after setTimeout(0)");
      });

      tcase('setKeepAlive and setNoDelay return this before and after connect, and data still flows', async (scope) => {
        const { server, port } = await listen(scope, { noDelay: true, keepAlive: true, keepAliveInitialDelay: 1000 });
        server.on('connection', (s: Socket) => s.pipe(s));
        const c = scope.socket(new C.net.Socket());
        assert.equal(c.setNoDelay(true), c, 'setNoDelay before connect');
        assert.equal(c.setKeepAlive(true, 500), c, 'setKeepAlive before connect');
        c.connect(port, S.host);
        await scope.wait(c, 'connect');
        assert.equal(c.setNoDelay(), c, 'setNoDelay()');
        assert.equal(c.setNoDelay(false), c, 'setNoDelay(false)');
        assert.equal(c.setKeepAlive(true, 1000), c, 'setKeepAlive(true, 1000)');
        assert.equal(c.setKeepAlive(false), c, 'setKeepAlive(false)');
        assert.equal(c.setKeepAlive(), c, 'setKeepAlive()');
        const c2 = connect(scope, port, { noDelay: true, keepAlive: true, keepAliveInitialDelay: 2000 });
        for (const s of [c, c2]) {
          const got = readAll(scope, s, 'client');
          s.end('ping');
          assert.equal((await got).toString(), 'ping');
        }
      });

      tcase('ref() and unref() return this and do not disturb sockets or servers', async (scope) => {
        const { server, port } = await listen(scope);
        server.on('connection', (s: Socket) => s.end('pong'));
        assert.equal(server.unref(), server, 'server.unref()');
        assert.equal(server.ref(), server, 'server.ref()');
        assert.equal(server.unref(), server, 'server.unref() again');
        const c = connect(scope, port);
        assert.equal(c.unref(), c, 'socket.unref()');
        assert.equal(c.ref(), c, 'socket.ref()');
        const got = readAll(scope, c, 'client');
        assert.equal((await got).toString(), 'pong', 'an unref\'d server still accepts');
        server.ref();
      });
    });

    // ---------------------------------------------------------------- ending, destroying
    describe('end and destroy', () => {
      tcase("end(): 'finish' then 'close'(false) locally, 'end' then 'close'(false) on the peer, each once", async (scope) => {
        const { client, peer } = await pair(scope);
        const clientSeen = record(client, ['finish', 'end', 'close', 'error']);
        const peerSeen = record(peer, ['finish', 'end', 'close', 'error']);
        client.resume();
        peer.resume();
        const both = Promise.all([scope.wait(client, 'close', 'client close'), scope.wait(peer, 'close', 'peer close')]);
        let endCb = 0;
        assert.equal(client.end(() => { endCb++; }), client, 'end() returns this');
        await both;
        assert.equal(endCb, 1, 'the end(cb) callback is called once');
        await new Promise((r) => setImmediate(r)); // anything emitted twice would come now
        assert.equal(clientSeen.filter((e) => e === 'finish').length, 1, 'client finish once');
        assert.ok(clientSeen.indexOf('finish') < clientSeen.indexOf('close(false)'), "client 'finish' before 'close'");
        assert.equal(clientSeen.at(-1), 'close(false)');
        assert.equal(clientSeen.filter((e) => e.startsWith('close')).length, 1, 'client close once');
        assert.deepEqual(peerSeen, ['end', 'finish', 'close(false)'], 'peer events');
      });

      tcase("destroy(err): 'error' with that error, then 'close'(true); the peer sees 'end'", async (scope) => {
        const { client, peer } = await pair(scope);
        peer.resume();
        const peerEnd = scope.wait(peer, 'end');
        const peerClose = scope.wait<[boolean]>(peer, 'close');
        const seen = record(client, ['error', 'close', 'end', 'finish']);
        const errored = scope.wait<[Error]>(client, 'error');
        const closed = scope.wait<[boolean]>(client, 'close');
        const boom = new Error('boom');
        assert.equal(client.destroy(boom), client, 'destroy returns this');
        assert.equal(client.destroyed, true, 'destroyed at once');
        assert.equal(client.readyState, 'closed');
        const [err] = await errored;
        await closed;
        assert.equal(err, boom, "'error' carries the error given to destroy");
        assert.deepEqual(seen, ['error', 'close(true)']);
        await peerEnd;
        assert.deepEqual(await peerClose, [false], "peer 'close'");
      });

      tcase("destroy(): no 'error', 'close'(false) once, a second destroy is harmless", async (scope) => {
        const { client, peer } = await pair(scope);
        peer.resume();
        const seen = record(client, ['error', 'close', 'end', 'finish']);
        const closed = scope.wait(client, 'close');
        // listen now: on a fast path the peer may close before the client's 'close' has run
        const peerClosed = scope.wait(peer, 'close', 'peer close');
        client.destroy();
        assert.equal(client.destroyed, true);
        client.destroy();
        await closed;
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(seen, ['close(false)']);
        await peerClosed;
      });

      tcase("destroy() while connecting: 'close'(false) and neither 'connect' nor 'error'", async (scope) => {
        const { port } = await listen(scope);
        const c = connect(scope, port);
        const seen = record(c, ['connect', 'error', 'close', 'ready']);
        assert.equal(c.connecting, true);
        const closed = scope.wait(c, 'close');
        c.destroy();
        assert.equal(c.destroyed, true);
        await closed;
        await delay(30); // observation window: a late 'connect' would show here
        assert.deepEqual(seen, ['close(false)']);
      });

      tcase("write after end: returns false, callback and 'error' get ERR_STREAM_WRITE_AFTER_END", async (scope) => {
        const { client, peer } = await pair(scope);
        peer.resume();
        client.resume();
        const errored = scope.wait<[ErrnoError]>(client, 'error');
        const closed = scope.wait<[boolean]>(client, 'close');
        client.end();
        let cbErr: ErrnoError | null | undefined;
        const cbCalled = new Promise<void>((resolve) => {
          const r = client.write('too late', (e) => { cbErr = e; resolve(); });
          assert.equal(r, false, 'write() after end() returns false');
        });
        const [err] = await errored;
        await cbCalled;
        assert.equal(err.code, 'ERR_STREAM_WRITE_AFTER_END');
        assert.equal(err.message, 'write after end');
        assert.equal(cbErr && cbErr.code, 'ERR_STREAM_WRITE_AFTER_END');
        const [hadError] = await closed;
        assert.equal(hadError, true);
      });

      tcase('write after destroy: the callback gets ERR_STREAM_DESTROYED, no error event', async (scope) => {
        const { client } = await pair(scope);
        const seen = record(client, ['error']);
        const closed = scope.wait(client, 'close');
        client.destroy();
        const [e] = await new Promise<[ErrnoError | null | undefined]>((resolve) => { client.write('x', (err) => resolve([err])); });
        assert.equal(e && e.code, 'ERR_STREAM_DESTROYED');
        assert.equal(e && e.message, 'Cannot call write after a stream was destroyed');
        await closed;
        assert.deepEqual(seen, []);
      });

      tcase("resetAndDestroy(): the peer gets 'error' ECONNRESET then 'close'(true)", async (scope) => {
        const { client, peer } = await pair(scope);
        peer.resume();
        const seen = record(peer, ['end', 'error', 'close']);
        const peerErr = scope.wait<[ErrnoError]>(peer, 'error');
        const peerClose = scope.wait(peer, 'close');
        const localClose = scope.wait<[boolean]>(client, 'close');
        assert.equal(client.resetAndDestroy(), client, 'resetAndDestroy returns this');
        assert.equal(client.destroyed, true);
        assert.deepEqual(await localClose, [false], "local 'close'");
        const [err] = await peerErr;
        await peerClose;
        assert.equal(err.code, 'ECONNRESET');
        assert.equal(err.syscall, 'read');
        assert.equal(err.errno, -osConstants.errno.ECONNRESET);
        assert.deepEqual(seen, ['error', 'close(true)']);
      });
    });

    // ---------------------------------------------------------------- servers
    describe('server', () => {
      tcase("listen forms: (port, host, cb), (options, cb), (port, host, backlog, cb); 'listening' is async", async (scope) => {
        const forms: [string, (srv: Server, cb: () => void) => Server][] = [
          ['listen(port, host, cb)', (srv, cb) => srv.listen(0, S.host, cb)],
          ['listen(options, cb)', (srv, cb) => srv.listen({ port: 0, host: S.host }, cb)],
          ['listen(port, host, backlog, cb)', (srv, cb) => srv.listen(0, S.host, 16, cb)],
          ['listen(options with backlog)', (srv, cb) => { srv.once('listening', cb); return srv.listen({ port: 0, host: S.host, backlog: 8 }); }],
        ];
        for (const [label, f] of forms) {
          const srv = scope.server(S.net.createServer());
          let returned = false;
          let syncCall = false;
          const listening = scope.wait(srv, 'listening', label);
          const done = new Promise<void>((resolve) => {
            const r = f(srv, () => { syncCall = !returned; resolve(); });
            returned = true;
            assert.equal(r, srv, `${label} returns the server`);
          });
          await Promise.all([listening, done]);
          assert.equal(syncCall, false, `${label}: callback called synchronously`);
          const a = srv.address() as nodeNet.AddressInfo;
          assert.equal(a.address, S.host, `${label}: address`);
          const c = connect(scope, a.port);
          await scope.wait(c, 'connect', `${label}: client connect`);
        }
      });

      tcase('listening and address(): false/null before, set while listening, false/null after close', async (scope) => {
        const srv = scope.server(S.net.createServer());
        assert.equal(srv.listening, false);
        assert.equal(srv.address(), null);
        const listening = scope.wait(srv, 'listening');
        srv.listen(0, S.host);
        await listening;
        assert.equal(srv.listening, true);
        const a = srv.address() as nodeNet.AddressInfo;
        assert.deepEqual(Object.keys(a).sort(), ['address', 'family', 'port']);
        assert.equal(a.address, S.host);
        assert.equal(a.family, FAM);
        const closed = scope.wait(srv, 'close');
        assert.equal(srv.close(), srv, 'close() returns the server');
        assert.equal(srv.listening, false, 'listening right after close()');
        await closed;
        assert.equal(srv.address(), null, 'address() after close');
      });

      tcase('listen on port 0 gives distinct ephemeral ports', async (scope) => {
        const a = await listen(scope);
        const b = await listen(scope);
        for (const p of [a.port, b.port]) assert.ok(Number.isInteger(p) && p >= 1024 && p <= 65535, `ephemeral port ${p}`);
        assert.notEqual(a.port, b.port);
      });

      tcase('a port can be listened on again right after close, with its connections in TIME_WAIT', async (scope) => {
        const { server, port } = await listen(scope);
        server.on('connection', (s: Socket) => s.end('bye')); // the server closes first: TIME_WAIT is on its side
        for (let i = 0; i < 3; i++) {
          const c = connect(scope, port);
          const closed = scope.wait(c, 'close', `client ${i} close`);
          assert.equal((await readAll(scope, c, `client ${i}`)).toString(), 'bye');
          await closed;
        }
        await new Promise<void>((resolve) => server.close(() => resolve()));
        const again = scope.server(S.net.createServer((s) => s.end('again')));
        const listening = scope.wait(again, 'listening', 'listen on the same port again');
        again.listen(port, S.host);
        await listening;
        assert.equal((again.address() as nodeNet.AddressInfo).port, port);
        assert.equal((await readAll(scope, connect(scope, port), 'client')).toString(), 'again');
      });

      tcase('EADDRINUSE: code, syscall listen, address, port, message; the first server keeps working', async (scope) => {
        const { server, port } = await listen(scope);
        server.on('connection', (s: Socket) => s.end('still here'));
        const second = scope.server(S.net.createServer());
        const errored = scope.wait<[ErrnoError]>(second, 'error');
        second.listen(port, S.host);
        const [err] = await errored;
        assert.equal(err.code, 'EADDRINUSE');
        assert.equal(err.errno, -osConstants.errno.EADDRINUSE);
        assert.equal(err.syscall, 'listen');
        assert.equal(err.address, S.host);
        assert.equal(err.port, port);
        assert.equal(err.message, `listen EADDRINUSE: address already in use ${S.host}:${port}`);
        assert.equal(second.listening, false);
        const c = connect(scope, port);
        assert.equal((await readAll(scope, c, 'client')).toString(), 'still here');
      });

      tcase('EADDRNOTAVAIL: listen on an address that is not on this stack', async (scope) => {
        const srv = scope.server(S.net.createServer());
        const errored = scope.wait<[ErrnoError]>(srv, 'error');
        srv.listen(0, UNOWNED);
        const [err] = await errored;
        assert.equal(err.code, 'EADDRNOTAVAIL');
        assert.equal(err.syscall, 'listen');
        assert.equal(err.address, UNOWNED);
        assert.equal(srv.listening, false);
      });

      tcase('ECONNREFUSED: code, syscall connect, address, port, message; then close(true), never connect', async (scope) => {
        const port = await freePort(S);
        const c = connect(scope, port);
        const seen = record(c, ['connect', 'error', 'close']);
        const errored = scope.wait<[ErrnoError]>(c, 'error');
        const closed = scope.wait(c, 'close');
        const [err] = await errored;
        await closed;
        assert.equal(err.code, 'ECONNREFUSED');
        assert.equal(err.errno, -osConstants.errno.ECONNREFUSED);
        assert.equal(err.syscall, 'connect');
        assert.equal(err.address, S.host);
        assert.equal(err.port, port);
        assert.equal(err.message, `connect ECONNREFUSED ${S.host}:${port}`);
        assert.deepEqual(seen, ['error', 'close(true)']);
        assert.equal(c.destroyed, true);
      });

      tcase('connect to a black-hole address with a socket timeout: timeout while connecting (or EHOSTUNREACH)', async (scope) => {
        const c = scope.expectErrors(connect(scope, 9, { host: target.blackhole!, timeout: 300 }));
        const outcome = await Promise.race([
          scope.wait(c, 'timeout').then(() => 'timeout'),
          scope.wait<[ErrnoError]>(c, 'error').then(([e]) => e.code ?? 'error without code'),
          scope.wait(c, 'connect').then(() => 'connect'),
        ]);
        if (outcome === 'timeout') {
          assert.equal(c.connecting, true, "still connecting at 'timeout'");
          assert.equal(c.readyState, 'opening');
          const closed = scope.wait<[boolean]>(c, 'close');
          c.destroy();
          assert.deepEqual(await closed, [false]);
        } else {
          assert.equal(outcome, 'EHOSTUNREACH', 'the connection attempt must time out or fail with EHOSTUNREACH');
        }
      }, { skip: !target.blackhole && 'target has no blackhole address' });

      tcase("close(cb) with connections open: stops accepting now, cb and 'close' after the last one ends", async (scope) => {
        const { server, port, client, peer } = await pair(scope);
        peer.on('data', () => { /* flowing */ });
        let cbArgs: unknown[] | undefined;
        const closed = scope.wait(server, 'close');
        server.close((...args: unknown[]) => { cbArgs = args; });
        assert.equal(server.listening, false, 'listening right after close()');
        const refused = connect(scope, port);
        const [err] = await scope.wait<[ErrnoError]>(refused, 'error', 'new connection refused');
        assert.equal(err.code, 'ECONNREFUSED', 'a closed server refuses new connections');
        assert.equal(cbArgs, undefined, 'close callback called while a connection is open');
        client.write('still works');
        await scope.wait(peer, 'data', 'open connection still carries data');
        client.end();
        await closed;
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(cbArgs, [], 'close callback called without error');
      });

      tcase('close() when not listening: callback gets ERR_SERVER_NOT_RUNNING, close is emitted', async (scope) => {
        const srv = scope.server(S.net.createServer());
        const closed = scope.wait(srv, 'close');
        const [err] = await new Promise<[ErrnoError | undefined]>((resolve) => srv.close((e) => resolve([e as ErrnoError | undefined])));
        assert.ok(err instanceof Error, 'callback gets an Error');
        assert.equal(err.code, 'ERR_SERVER_NOT_RUNNING');
        assert.equal(err.message, 'Server is not running.');
        await closed;
      });

      tcase('getConnections counts open connections', async (scope) => {
        const { server, port } = await listen(scope);
        const count = () => new Promise<number>((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
        assert.equal(await count(), 0);
        const peers: Socket[] = [];
        const clients: Socket[] = [];
        for (let i = 0; i < 3; i++) {
          const accepted = scope.wait<[Socket]>(server, 'connection');
          const c = connect(scope, port);
          clients.push(c);
          peers.push((await accepted)[0]);
        }
        assert.equal(await count(), 3);
        const gone = scope.wait(peers[0], 'close', 'peer 0 close');
        peers[0].resume();
        clients[0].end();
        await gone;
        assert.equal(await count(), 2);
      });

      tcase("maxConnections: connections beyond it are closed and 'drop' tells who", async (scope) => {
        const { server, port } = await listen(scope);
        server.maxConnections = 1;
        let connections = 0;
        server.on('connection', () => { connections++; });
        const dropped = scope.wait<[nodeNet.DropArgument]>(server, 'drop');
        const first = connect(scope, port);
        await Promise.all([scope.wait(first, 'connect'), scope.wait(server, 'connection', 'first connection')]);
        const second = scope.expectErrors(connect(scope, port));
        let secondPort: number | undefined;
        const secondErrors: string[] = [];
        second.on('connect', () => { secondPort = second.localPort; });
        second.on('error', (e: ErrnoError) => { secondErrors.push(String(e.code)); });
        second.resume();
        const secondClosed = scope.wait(second, 'close', 'dropped client close');
        const [data] = await dropped;
        await secondClosed;
        assert.ok(secondPort, "the dropped client got 'connect' (the handshake completed)");
        assert.ok(secondErrors.every((c) => c === 'ECONNRESET'), `the dropped client sees an end or a reset, not ${secondErrors.join()}`);
        assert.deepEqual({ ...data }, {
          localAddress: S.host, localPort: port, localFamily: FAM,
          remoteAddress: C.host, remotePort: secondPort, remoteFamily: FAM,
        }, "'drop' data");
        assert.equal(connections, 1, "no 'connection' for the dropped one");
        assert.equal(first.destroyed, false, 'the first connection is unaffected');
      });

      tcase("'connection' goes to createServer's listener and to later listeners, with a net.Socket", async (scope) => {
        const got: string[] = [];
        const server = scope.server(S.net.createServer((s) => { got.push(`ctor:${s instanceof S.net.Socket}`); }));
        server.on('connection', (s: Socket) => { got.push(`on:${s instanceof S.net.Socket}`); });
        const listening = scope.wait(server, 'listening');
        server.listen(0, S.host);
        await listening;
        const accepted = scope.wait(server, 'connection');
        connect(scope, (server.address() as nodeNet.AddressInfo).port);
        await accepted;
        assert.deepEqual(got, ['ctor:true', 'on:true']);
      });
    });
  });
}
