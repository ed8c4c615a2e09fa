// lib/net.ts against Node 20's own net: the public surface (every public member of
// net.Socket/net.Server and of the module), argument validation compared call by call with
// Node's, and the behaviour that matters most, over the in-memory stack (always) and the
// kernel stack with our classes (when the addon is built).
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter, captureRejectionSymbol, once } from 'node:events';
import * as nodeNet from 'node:net';
import { inherits } from 'node:util';

import { NetServer, NetSocket, Server, Socket, createNet } from '../lib/net';
import type { Stack } from '../lib/raw';
import { MemNetwork, MemStack, activeMemHandles, type MemRawSocket } from './helpers/memstack';

type NetModule = typeof nodeNet;
type Sock = nodeNet.Socket;
type Srv = nodeNet.Server;
interface ErrnoError extends Error { code?: string; errno?: number; syscall?: string; address?: string; port?: number }

// ---------------------------------------------------------------------------------------------
// Surface

type Kind = 'method' | 'accessor' | 'value';

/** symbols that are part of the public API (the rest on Node's prototypes are internal) */
const PUBLIC_SYMBOLS = new Set<symbol>([Symbol.asyncIterator, Symbol.asyncDispose, captureRejectionSymbol]);

/** every public member along a prototype chain, with what it is */
function publicMembers(proto: object): Map<string | symbol, Kind> {
  const out = new Map<string | symbol, Kind>();
  for (let p: object | null = proto; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const key of Reflect.ownKeys(p)) {
      if (key === 'constructor' || out.has(key)) continue;
      if (typeof key === 'string' && key.startsWith('_')) continue;
      if (typeof key === 'symbol' && !PUBLIC_SYMBOLS.has(key)) continue;
      const d = Object.getOwnPropertyDescriptor(p, key) as PropertyDescriptor;
      out.set(key, d.get || d.set ? 'accessor' : typeof d.value === 'function' ? 'method' : 'value');
    }
  }
  return out;
}

function compareSurface(what: string, theirs: object, ours: object): void {
  const want = publicMembers(theirs);
  const have = publicMembers(ours);
  const missing: string[] = [];
  const different: string[] = [];
  for (const [key, kind] of want) {
    const mine = have.get(key);
    if (mine === undefined) missing.push(String(key));
    else if (mine !== kind) different.push(`${String(key)} (Node: ${kind}, ours: ${mine})`);
  }
  assert.deepEqual(missing, [], `${what}: missing ${missing.join(', ')}`);
  assert.deepEqual(different, [], `${what}: not the same kind of member: ${different.join(', ')}`);
}

const surfaceStack = new MemStack({ name: 'surface' });
const surfaceNet = createNet(surfaceStack);

test('surface: every public member of net.Socket.prototype is on ours', () => {
  compareSurface('Socket', nodeNet.Socket.prototype, surfaceNet.Socket.prototype);
  compareSurface('Socket (base)', nodeNet.Socket.prototype, Socket.prototype);
});

test('surface: every public member of net.Server.prototype is on ours', () => {
  compareSurface('Server', nodeNet.Server.prototype, surfaceNet.Server.prototype);
  compareSurface('Server (base)', nodeNet.Server.prototype, Server.prototype);
});

test('surface: public instance properties of fresh sockets and servers', () => {
  const publicOwn = (o: object) => Object.keys(o).filter((k) => !k.startsWith('_'));
  const theirSocket = new nodeNet.Socket();
  const ourSocket = new surfaceNet.Socket();
  for (const k of publicOwn(theirSocket)) assert.ok(k in ourSocket, `Socket instance lacks ${k}`);
  assert.equal(ourSocket.connecting, false);
  assert.equal(ourSocket.allowHalfOpen, false);
  assert.equal((ourSocket as unknown as NetSocket).server, null);
  assert.equal(ourSocket.timeout, undefined);
  ourSocket.setTimeout(50);
  assert.equal(ourSocket.timeout, 50);
  ourSocket.destroy();
  theirSocket.destroy();

  const theirServer = new nodeNet.Server();
  const ourServer = new surfaceNet.Server();
  for (const k of publicOwn(theirServer)) {
    assert.ok(k in ourServer, `Server instance lacks ${k}`);
    assert.deepEqual((ourServer as unknown as Record<string, unknown>)[k], (theirServer as unknown as Record<string, unknown>)[k], `Server.${k}`);
  }
  assert.equal(ourServer.maxConnections, theirServer.maxConnections);
});

test('surface: the module has every public export of net', () => {
  // (`default` is the ES-module interop wrapper of this import, not part of net)
  const missing = Object.keys(nodeNet).filter((k) => !k.startsWith('_') && k !== 'default' && !(k in surfaceNet));
  assert.deepEqual(missing, [], `module: missing ${missing.join(', ')}`);
  const mod = surfaceNet as unknown as Record<string, unknown> & { _normalizeArgs(a: unknown[]): [object, unknown] };
  assert.equal(mod.Stream, surfaceNet.Socket);
  assert.equal(surfaceNet.isIP, nodeNet.isIP);
  assert.equal(surfaceNet.BlockList, nodeNet.BlockList);
  assert.equal(createNet(surfaceStack), surfaceNet, 'one module per stack');
  assert.deepEqual(mod._normalizeArgs([80, 'h', () => undefined])[0], { port: 80, host: 'h' });
});

test('surface: constructors behave like Node\'s (no new, subclassing, .call on a subclass instance)', () => {
  const NetMod = surfaceNet as unknown as { Socket: (o?: object) => Sock; Server: (o?: object) => Srv };
  const s = NetMod.Socket();
  assert.ok(s instanceof surfaceNet.Socket && s instanceof Socket && s instanceof NetSocket);
  assert.equal(s.constructor, surfaceNet.Socket);
  assert.equal(s.constructor.name, 'Socket');
  assert.equal((s as unknown as NetSocket).stack, surfaceStack);
  s.destroy();
  const srv = NetMod.Server();
  assert.ok(srv instanceof surfaceNet.Server && srv instanceof Server && srv instanceof NetServer && srv instanceof EventEmitter);

  // the pattern of http.Server: a function constructor that applies net.Server to itself
  function LegacyServer(this: Srv & { legacy: boolean }) {
    (surfaceNet.Server as unknown as (this: unknown, o: object) => void).call(this, { allowHalfOpen: true });
    this.legacy = true;
  }
  inherits(LegacyServer as unknown as new () => object, surfaceNet.Server as unknown as new () => object);
  const legacy = new (LegacyServer as unknown as new () => Srv & { legacy: boolean; allowHalfOpen: boolean })();
  assert.ok(legacy instanceof surfaceNet.Server);
  assert.equal(legacy.legacy, true);
  assert.equal(legacy.allowHalfOpen, true);
  assert.equal(legacy.listening, false);

  class Sub extends surfaceNet.Socket { extra = 1; }
  const sub = new Sub();
  assert.ok(sub instanceof Socket);
  assert.equal(sub.extra, 1);
  sub.destroy();

  // the base classes take the stack as an option
  const base = new Socket({ stack: surfaceStack });
  assert.equal((base as NetSocket).stack, surfaceStack);
  base.destroy();
  assert.throws(() => new Socket(), { code: 'ERR_MISSING_OPTION' });
  assert.throws(() => new Server(), { code: 'ERR_MISSING_OPTION' });
});

// ---------------------------------------------------------------------------------------------
// Validation: the same call on Node's net and on ours throws the same error

function caught(fn: () => unknown): ErrnoError | null {
  try {
    const r = fn();
    if (r && typeof (r as Sock).destroy === 'function') {
      (r as Sock).on('error', () => undefined);
      (r as Sock).destroy();
    }
    return null;
  } catch (err) {
    return err as ErrnoError;
  }
}

test('validation: errors thrown are Node\'s (name, code, message)', async () => {
  const cases: Array<[string, (net: NetModule) => unknown]> = [
    ['connect()', (n) => n.connect(undefined as never)],
    ['connect({})', (n) => n.connect({} as never)],
    ['port -1', (n) => n.connect({ port: -1 })],
    ['port 65536', (n) => n.connect({ port: 65536 })],
    ['port "abc"', (n) => n.connect({ port: 'abc' as never })],
    ['port ""', (n) => n.connect({ port: '' as never, host: 'localhost' })],
    ['port true', (n) => n.connect({ port: true as never })],
    ['port null', (n) => n.connect(null as never)],
    ['port 1.5', (n) => n.connect({ port: 1.5 })],
    ['host 1', (n) => n.connect({ port: 80, host: 1 as never })],
    ['localAddress foo', (n) => n.connect({ port: 80, localAddress: 'foo' })],
    ['localAddress 5', (n) => n.connect({ port: 80, localAddress: 5 as never })],
    ['localPort "x"', (n) => n.connect({ port: 80, localPort: 'x' as never })],
    ['family 5', (n) => n.connect({ port: 80, family: 5 })],
    ['family "x"', (n) => n.connect({ port: 80, host: 'localhost', family: 'x' as never })],
    ['lookup 5', (n) => n.connect({ port: 80, lookup: 5 as never })],
    ['hints "x"', (n) => n.connect({ port: 80, hints: 'x' as never })],
    ['hints 12345', (n) => n.connect({ port: 80, hints: 12345 })],
    ['timeout "x"', (n) => n.connect({ port: 80, timeout: 'x' as never })],
    ['autoSelectFamily "x"', (n) => n.connect({ port: 80, autoSelectFamily: 'x' as never })],
    ['attempt timeout 0', (n) => n.connect({ port: 80, autoSelectFamilyAttemptTimeout: 0 })],
    ['attempt timeout 1.5', (n) => n.connect({ port: 80, autoSelectFamilyAttemptTimeout: 1.5 })],
    ['attempt timeout 5e9', (n) => n.connect({ port: 80, autoSelectFamilyAttemptTimeout: 5e9 })],
    ['keepAliveInitialDelay "x"', (n) => n.connect({ port: 80, keepAliveInitialDelay: 'x' as never })],
    ['path 5', (n) => n.connect({ path: 5 as never })],
    ['signal 5', (n) => n.connect({ port: 80, host: '127.0.0.1', signal: 5 as never })],
    ['objectMode', (n) => new n.Socket({ objectMode: true } as never)],
    ['readableObjectMode', (n) => new n.Socket({ readableObjectMode: true } as never)],
    ['fd "x"', (n) => new n.Socket({ fd: 'x' as never })],
    ['fd -1', (n) => new n.Socket({ fd: -1 })],
    ['setTimeout "x"', (n) => new n.Socket().setTimeout('x' as never)],
    ['setTimeout -1', (n) => new n.Socket().setTimeout(-1)],
    ['setTimeout Infinity', (n) => new n.Socket().setTimeout(Infinity)],
    ['setTimeout cb 5', (n) => new n.Socket().setTimeout(1, 5 as never)],
    ['createServer(5)', (n) => n.createServer(5 as never)],
    ['createServer("x")', (n) => n.createServer('x' as never)],
    ['server highWaterMark', (n) => n.createServer({ highWaterMark: 'x' as never })],
    ['server keepAliveInitialDelay', (n) => n.createServer({ keepAliveInitialDelay: 'x' as never })],
    ['listen({})', (n) => n.createServer().listen({})],
    ['listen({port:-1})', (n) => n.createServer().listen({ port: -1 })],
    ['listen({port:"x"})', (n) => n.createServer().listen({ port: 'x' as never })],
    ['listen({host})', (n) => n.createServer().listen({ host: '127.0.0.1' })],
    ['listen({port:true})', (n) => n.createServer().listen({ port: true as never })],
    ['listen(-5)', (n) => n.createServer().listen(-5)],
    ['listen(65536)', (n) => n.createServer().listen(65536)],
    ['listen(true)', (n) => n.createServer().listen(true as never)],
    ['listen({fd:"x"})', (n) => n.createServer().listen({ fd: 'x' } as never)],
    ['listen({handle:{}})', (n) => n.createServer().listen({ handle: {} } as never)],
    ['listen signal 5', (n) => n.createServer().listen({ port: 0, signal: 5 as never })],
    ['listen host 5', (n) => n.createServer().listen({ port: 0, host: 5 as never })],
  ];
  const stack = new MemStack({ name: 'validation' });
  const ours = createNet(stack);
  const mismatches: string[] = [];
  for (const [name, fn] of cases) {
    const theirs = caught(() => fn(nodeNet));
    const mine = caught(() => fn(ours));
    assert.ok(theirs, `${name}: Node did not throw (the case is wrong)`);
    if (!mine) {
      mismatches.push(`${name}: ours did not throw (Node: ${theirs.code} ${theirs.message})`);
      continue;
    }
    if (mine.name !== theirs.name || mine.code !== theirs.code || mine.message !== theirs.message) {
      mismatches.push(`${name}:\n    node: ${theirs.name} ${theirs.code} ${theirs.message}\n    ours: ${mine.name} ${mine.code} ${mine.message}`);
    }
  }
  assert.deepEqual(mismatches, [], mismatches.join('\n'));
  assert.equal(stack.openSockets, 0, 'a failed call left a raw socket open');

  // listen twice, close when not running
  const theirs = nodeNet.createServer();
  const mine = ours.createServer();
  await new Promise<void>((r) => theirs.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => mine.listen(0, '127.0.0.1', r));
  const e1 = caught(() => theirs.listen(0));
  const e2 = caught(() => mine.listen(0));
  assert.ok(e1 && e2);
  assert.equal(e2.code, e1.code);
  assert.equal(e2.message, e1.message);
  await new Promise((r) => theirs.close(r));
  await new Promise((r) => mine.close(r));
  const [n1] = await new Promise<[Error | undefined]>((r) => nodeNet.createServer().close((e) => r([e])));
  const [n2] = await new Promise<[Error | undefined]>((r) => ours.createServer().close((e) => r([e])));
  assert.equal((n2 as ErrnoError).code, (n1 as ErrnoError).code);
  assert.equal(n2?.message, n1?.message);
});

test('validation: what these stacks cannot do fails clearly', () => {
  const net = createNet(new MemStack({ name: 'deviations' }));
  assert.throws(() => net.connect('/tmp/some.sock'), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.path.*not supported/ });
  assert.throws(() => net.connect({ path: '/tmp/x', port: 80 }), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => net.createServer().listen('/tmp/some.sock'), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.path.*not supported/ });
  assert.throws(() => net.createServer().listen({ fd: 3 }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.fd.*not supported/ });
  assert.throws(() => new net.Socket({ fd: 3 }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.fd.*not supported/ });
  assert.throws(() => new net.Socket({ handle: {} } as never), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => net.connect({ port: 80, localPort: 70000 }), { code: 'ERR_SOCKET_BAD_PORT' });
});

// ---------------------------------------------------------------------------------------------
// Behaviour, on every stack we can run here

interface Fixture {
  name: string;
  server: NetModule;
  client: NetModule;
  /** the server's address */
  host: string;
  /** raw sockets still open on the stacks (memstack), for leak checks */
  openSockets?(): number;
  mem?: { a: MemStack; b: MemStack };
  skip?: string;
}

function memFixture(name: string, receiveBuffer?: number): Fixture {
  const network = new MemNetwork();
  const a = new MemStack({ name: `${name}-a`, network, addresses: ['10.0.0.1'], receiveBuffer, hosts: { multi: ['10.0.0.99', '10.0.0.1'], dual: ['10.0.0.1', '10.0.0.99'] } });
  const b = new MemStack({ name: `${name}-b`, network, addresses: ['10.0.0.2'], receiveBuffer, hosts: { multi: ['10.0.0.99', '10.0.0.1'], refused: ['10.0.0.1', '127.0.0.1'] } });
  return { name, server: a.net, client: b.net, host: '10.0.0.1', openSockets: () => a.openSockets + b.openSockets, mem: { a, b } };
}

function kernelFixture(): Fixture {
  let stack: Stack;
  try {
    // loaded by path so that this file compiles and runs without the addon
    const modPath = '../lib/stacks/kernel';
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(modPath) as { kernelStackWithOwnClasses(): Stack };
    stack = mod.kernelStackWithOwnClasses();
    stack.socket(2, 1).close(); // the addon loads
  } catch (err) {
    return { name: 'kernel (msockets classes)', server: nodeNet, client: nodeNet, host: '127.0.0.1', skip: `kernel stack unavailable: ${(err as Error).message}` };
  }
  return { name: 'kernel (msockets classes)', server: stack.net, client: stack.net, host: '127.0.0.1' };
}

const fixtures: Fixture[] = [memFixture('memstack'), kernelFixture()];

function record(em: EventEmitter, events: string[]): string[] {
  const seen: string[] = [];
  for (const ev of events) {
    em.on(ev, (...args: unknown[]) => {
      if (ev === 'close') seen.push(`close(${String(args[0])})`);
      else if (ev === 'error') seen.push(`error(${(args[0] as ErrnoError).code})`);
      else seen.push(ev);
    });
  }
  return seen;
}

async function listen(net: NetModule, host: string, opts: nodeNet.ServerOpts = {}): Promise<{ server: Srv; port: number }> {
  const server = net.createServer(opts);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => { server.off('error', reject); resolve(); });
  });
  return { server, port: (server.address() as nodeNet.AddressInfo).port };
}

async function pair(fx: Fixture, serverOpts: nodeNet.ServerOpts = {}, clientOpts: Partial<nodeNet.TcpNetConnectOpts> = {}) {
  const { server, port } = await listen(fx.server, fx.host, serverOpts);
  const accepted = once(server, 'connection') as Promise<[Sock]>;
  const client = fx.client.connect({ port, host: fx.host, ...clientOpts });
  const [[peer]] = await Promise.all([accepted, once(client, 'connect')]);
  return { server, port, client, peer };
}

function closeServer(server: Srv): Promise<void> {
  return new Promise((r) => server.close(() => r()));
}

function settled(s: Sock): Promise<void> {
  // `closed` turns true at destroy(), before 'close' is emitted: our _destroy queues that
  // emission (setImmediate, or nextTick without a handle), so an immediate queued now runs after it
  return s.destroyed && s.closed ? new Promise((r) => setImmediate(r)) : new Promise((r) => s.once('close', () => r()));
}

function readAll(s: Sock): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

const tick = () => new Promise((r) => setImmediate(r));
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

function before(seen: string[], a: string, b: string): void {
  const i = seen.indexOf(a);
  const j = seen.indexOf(b);
  assert.ok(i >= 0 && j >= 0 && i < j, `'${a}' before '${b}' in ${seen.join(', ')}`);
}

async function noLeaks(fx: Fixture): Promise<void> {
  if (!fx.openSockets) return;
  for (let i = 0; i < 5 && fx.openSockets() > 0; i++) await tick();
  assert.equal(fx.openSockets(), 0, 'raw sockets left open');
}

for (const fx of fixtures) {
  const opts = { skip: fx.skip, timeout: 10000 };

  test(`${fx.name}: connect, echo, end and close in Node's order`, opts, async () => {
    const { server, port } = await listen(fx.server, fx.host);
    let serverSeen: string[] = [];
    server.on('connection', (c: Sock) => {
      serverSeen = record(c, ['data', 'end', 'finish', 'close']);
      c.on('data', (d) => c.write(d));
      c.on('end', () => c.end());
    });
    const client = new fx.client.Socket();
    const seen = record(client, ['lookup', 'connect', 'ready', 'data', 'end', 'finish', 'close', 'error']);
    assert.equal(client.pending, true);
    assert.equal(client.readyState, 'open');
    assert.equal(client.connect(port, fx.host), client);
    assert.equal(client.connecting, true);
    assert.equal(client.readyState, 'opening');
    assert.equal(client.bufferSize, 0);
    const got = readAll(client);
    client.on('connect', () => {
      assert.equal(client.connecting, false);
      assert.equal(client.pending, false);
      assert.equal(client.readyState, 'open');
      assert.equal(client.remoteAddress, fx.host);
      assert.equal(client.remotePort, port);
      assert.equal(client.remoteFamily, 'IPv4');
      assert.equal(typeof client.localPort, 'number');
      assert.deepEqual(client.address(), { address: client.localAddress, family: 'IPv4', port: client.localPort });
      client.end('hello, world');
    });
    assert.equal((await got).toString(), 'hello, world');
    await settled(client);
    assert.deepEqual(seen.filter((e) => e !== 'finish'), ['connect', 'ready', 'data', 'end', 'close(false)']);
    before(seen, 'ready', 'finish');
    assert.equal(client.readyState, 'closed');
    assert.deepEqual(client.address(), {});
    await delay(5);
    assert.deepEqual(serverSeen.filter((e) => e !== 'finish'), ['data', 'end', 'close(false)']);
    await closeServer(server);
    await noLeaks(fx);
  });

  test(`${fx.name}: back-pressure: write() false while the peer does not read, then 'drain'`, opts, async () => {
    const { server, client, peer } = await pair(fx, { pauseOnConnect: true });
    assert.equal(peer.isPaused(), true);
    const chunk = Buffer.alloc(256 * 1024, 7);
    let written = 0;
    let ok = true;
    while (ok && written < 512 * 1024 * 1024) {
      ok = client.write(chunk);
      written += chunk.length;
      if (ok) await tick();
    }
    assert.equal(ok, false, 'write() never returned false');
    assert.equal(client.writableNeedDrain, true);
    assert.ok((client.bufferSize ?? 0) > 0);
    assert.equal(client.bytesWritten, written);
    const drained = once(client, 'drain');
    const got = readAll(peer);
    peer.resume();
    await drained;
    client.end();
    const data = await got;
    assert.equal(data.length, written);
    assert.equal(peer.bytesRead, written);
    assert.equal(client.bytesWritten, written);
    await Promise.all([settled(client), settled(peer)]);
    await closeServer(server);
    await noLeaks(fx);
  });

  test(`${fx.name}: bytesRead and bytesWritten, strings counted in UTF-8`, opts, async () => {
    const { server, client, peer } = await pair(fx);
    const got = readAll(peer);
    client.write('héllo');
    client.write(Buffer.alloc(10));
    assert.equal(client.bytesWritten, 16);
    client.end('€');
    assert.equal((await got).length, 19);
    assert.equal(peer.bytesRead, 19);
    await settled(client);
    assert.equal(client.bytesWritten, 19, 'kept after close');
    assert.equal(client.bytesRead, 0);
    await closeServer(server);
  });

  test(`${fx.name}: half-open: the server keeps writing after the client's FIN`, opts, async () => {
    const { server, client, peer } = await pair(fx, { allowHalfOpen: true });
    const peerSeen = record(peer, ['end', 'finish', 'close']);
    const fromServer = readAll(client);
    peer.resume();
    peer.on('end', () => {
      assert.equal(peer.readyState, 'writeOnly');
      setTimeout(() => { peer.write('late '); peer.end('reply'); }, 10);
    });
    client.end('ping');
    assert.equal((await fromServer).toString(), 'late reply');
    await Promise.all([settled(client), settled(peer)]);
    assert.deepEqual(peerSeen, ['end', 'finish', 'close(false)']);
    await closeServer(server);
  });

  test(`${fx.name}: allowHalfOpen false: the FIN is answered by our own end()`, opts, async () => {
    const { server, client, peer } = await pair(fx);
    const seen = record(client, ['end', 'finish', 'close']);
    client.resume();
    client.on('end', () => assert.equal(client.readyState, 'writeOnly'));
    peer.end('bye');
    await settled(client);
    assert.deepEqual(seen, ['end', 'finish', 'close(false)']);
    await closeServer(server);
  });

  test(`${fx.name}: destroy() during the lookup: no event but close(false), nothing left open`, opts, async () => {
    const { server, port } = await listen(fx.server, fx.host);
    let answer: (() => void) | null = null;
    const lookup = (_h: string, _o: object, cb: (e: Error | null, a: string, f: number) => void) => {
      answer = () => cb(null, fx.host, 4);
    };
    const c = fx.client.connect({ port, host: 'somewhere', lookup: lookup as never, autoSelectFamily: false });
    const seen = record(c, ['lookup', 'connect', 'connectionAttempt', 'error', 'close']);
    c.destroy();
    await settled(c);
    (answer as (() => void) | null)?.();
    await delay(20);
    assert.deepEqual(seen, ['close(false)']);
    await closeServer(server);
    await noLeaks(fx);
  });

  test(`${fx.name}: destroy() with writes queued before the connection`, opts, async () => {
    const { server, port } = await listen(fx.server, fx.host);
    const c = fx.client.connect(port, fx.host);
    const results: string[] = [];
    c.write('a', (e) => results.push(`a:${(e as ErrnoError | undefined)?.code}`));
    c.write('b', (e) => results.push(`b:${(e as ErrnoError | undefined)?.code}`));
    assert.equal(c.bytesWritten, 2);
    const seen = record(c, ['connect', 'error', 'close']);
    c.destroy();
    await settled(c);
    await delay(10);
    assert.deepEqual(seen, ['close(false)']);
    // as in Node: the held write fails, and the buffered one gets the same error after it
    assert.deepEqual(results, ['a:ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'b:ERR_SOCKET_CLOSED_BEFORE_CONNECTION']);
    await closeServer(server);
    await noLeaks(fx);
  });

  test(`${fx.name}: ECONNREFUSED as Node reports it`, opts, async () => {
    const { server, port } = await listen(fx.server, fx.host);
    await closeServer(server);
    const c = fx.client.connect(port, fx.host);
    const seen = record(c, ['connectionAttempt', 'connectionAttemptFailed', 'connect', 'error', 'close']);
    const [err] = await once(c, 'error') as [ErrnoError];
    await settled(c);
    assert.equal(err.message, `connect ECONNREFUSED ${fx.host}:${port}`);
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(err.errno, -111);
    assert.equal(err.syscall, 'connect');
    assert.equal(err.address, fx.host);
    assert.equal(err.port, port);
    assert.deepEqual(seen, ['connectionAttempt', 'connectionAttemptFailed', 'error(ECONNREFUSED)', 'close(true)']);
    await noLeaks(fx);
  });

  test(`${fx.name}: EADDRINUSE as Node reports it, the first server unharmed`, opts, async () => {
    const { server, port } = await listen(fx.server, fx.host);
    const second = fx.server.createServer();
    second.listen(port, fx.host);
    const [err] = await once(second, 'error') as [ErrnoError];
    assert.equal(err.message, `listen EADDRINUSE: address already in use ${fx.host}:${port}`);
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.errno, -98);
    assert.equal(err.syscall, 'listen');
    assert.equal(err.address, fx.host);
    assert.equal(err.port, port);
    assert.equal(second.listening, false);
    assert.equal(server.listening, true);
    const { client } = { client: fx.client.connect(port, fx.host) };
    await once(client, 'connect');
    client.destroy();
    await closeServer(server);
  });

  test(`${fx.name}: maxConnections: the excess is closed and 'drop' says who`, opts, async () => {
    const { server, port } = await listen(fx.server, fx.host);
    server.maxConnections = 1;
    const first = fx.client.connect(port, fx.host);
    await once(server, 'connection');
    const dropped = once(server, 'drop') as Promise<[Record<string, unknown>]>;
    const second = fx.client.connect(port, fx.host);
    second.on('error', () => undefined);
    second.resume();
    const [data] = await dropped;
    assert.equal(Object.getPrototypeOf(data), null);
    assert.deepEqual(Object.keys(data), ['localAddress', 'localPort', 'localFamily', 'remoteAddress', 'remotePort', 'remoteFamily']);
    assert.equal(data.localPort, port);
    await settled(second);
    const counted = await new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    assert.equal(counted, 1);
    const closed = closeServer(server);
    first.destroy();
    await closed;
    assert.equal(server.listening, false);
    await noLeaks(fx);
  });

  test(`${fx.name}: resetAndDestroy() sends an RST: the peer gets ECONNRESET`, opts, async () => {
    const { server, client, peer } = await pair(fx);
    peer.resume();
    const peerSeen = record(peer, ['end', 'error', 'close']);
    const seen = record(client, ['error', 'close']);
    client.resetAndDestroy();
    await Promise.all([settled(client), settled(peer)]);
    assert.deepEqual(seen, ['close(false)']);
    assert.deepEqual(peerSeen, ['error(ECONNRESET)', 'close(true)']);
    await closeServer(server);
  });

  test(`${fx.name}: setTimeout: 'timeout' when idle, postponed by activity`, opts, async () => {
    const { server, client, peer } = await pair(fx);
    peer.resume();
    const t0 = Date.now();
    client.setTimeout(80);
    const writer = setInterval(() => client.write('x'), 20);
    setTimeout(() => clearInterval(writer), 200);
    await once(client, 'timeout');
    assert.ok(Date.now() - t0 >= 250, `timed out after ${Date.now() - t0} ms despite activity`);
    assert.equal(client.destroyed, false);
    client.setTimeout(0);
    client.destroy();
    await closeServer(server);
  });

  test(`${fx.name}: cork/uncork: many small writes arrive whole and in order`, opts, async () => {
    const { server, client, peer } = await pair(fx);
    const got = readAll(peer);
    const raw = fx.mem ? (fx.mem.b.rawSockets[0] as MemRawSocket) : null;
    const sendsBefore = raw?.sendCalls ?? 0;
    const parts: string[] = [];
    client.cork();
    for (let i = 0; i < 500; i++) {
      parts.push(`${i},`);
      client.write(`${i},`);
    }
    client.write(Buffer.alloc(40000, 'z'));
    parts.push('z'.repeat(40000));
    client.uncork();
    client.end();
    assert.equal((await got).toString(), parts.join(''));
    if (raw) assert.ok(raw.sendCalls - sendsBefore <= 3, `${raw.sendCalls - sendsBefore} sends for one writev`);
    await settled(client);
    await closeServer(server);
  });

  test(`${fx.name}: 4 MiB each way at once arrive byte-exact`, opts, async () => {
    const { server, client, peer } = await pair(fx);
    const data = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    const sum = createHash('sha256').update(data).digest('hex');
    const atPeer = readAll(peer);
    const atClient = readAll(client);
    client.end(data);
    peer.end(data);
    const [a, b] = await Promise.all([atPeer, atClient]);
    assert.equal(createHash('sha256').update(a).digest('hex'), sum);
    assert.equal(createHash('sha256').update(b).digest('hex'), sum);
    await Promise.all([settled(client), settled(peer)]);
    await closeServer(server);
    await noLeaks(fx);
  });

  test(`${fx.name}: onread: bytes land in the given buffer, false pauses`, opts, async () => {
    const { server, port } = await listen(fx.server, fx.host);
    server.on('connection', (c: Sock) => c.end(Buffer.from('abcdefghij')));
    const buf = Buffer.alloc(4);
    const calls: string[] = [];
    let first = true;
    const client = fx.client.connect({
      port, host: fx.host,
      onread: {
        buffer: buf,
        callback: (n: number, b: Uint8Array) => {
          assert.equal(b, buf);
          calls.push(buf.subarray(0, n).toString());
          if (first) {
            first = false;
            setTimeout(() => client.resume(), 20);
            return false;
          }
          return true;
        },
      },
    });
    let data = false;
    client.on('data', () => { data = true; });
    await once(client, 'end');
    assert.equal(calls.join(''), 'abcdefghij');
    assert.deepEqual(calls, ['abcd', 'efgh', 'ij']);
    assert.equal(data, false);
    await settled(client);
    await closeServer(server);
  });
}

// ---------------------------------------------------------------------------------------------
// Things only the in-memory stack can stage

function rawOf(stack: MemStack, port: number, side: 'local' | 'remote'): MemRawSocket {
  const found = stack.rawSockets.find((r) => {
    const a = side === 'local' ? r.localAddress() : r.remoteAddress();
    return a !== null && a.port === port && r.remoteAddress() !== null;
  });
  assert.ok(found, `no raw socket with ${side} port ${port}`);
  return found;
}

test('memstack: noDelay/keepAlive options reach the raw sockets, client and server side', async () => {
  const fx = memFixture('options');
  const mem = fx.mem as { a: MemStack; b: MemStack };
  const { server, client, peer } = await pair(fx, { noDelay: true, keepAlive: true, keepAliveInitialDelay: 3000 }, { noDelay: true, keepAlive: true, keepAliveInitialDelay: 1500 });
  const mine = rawOf(mem.b, client.localPort as number, 'local');
  const theirs = rawOf(mem.a, client.localPort as number, 'remote');
  assert.equal(mine.noDelay, true);
  assert.equal(mine.keepAlive, true);
  assert.equal(mine.keepAliveDelay, 1000, 'whole seconds, as Node keeps them');
  assert.equal(theirs.noDelay, true);
  assert.equal(theirs.keepAlive, true);
  assert.equal(theirs.keepAliveDelay, 3000);
  client.setNoDelay(false);
  assert.equal(mine.noDelay, false);
  assert.equal(client.setKeepAlive(false), client);
  assert.equal(mine.keepAlive, false);
  client.destroy();
  peer.destroy();
  await closeServer(server);
});

test('memstack: writing after the peer\'s FIN was answered fails with EPIPE, as in Node', async () => {
  const fx = memFixture('epipe');
  const { server, client, peer } = await pair(fx);
  const seen = record(client, ['end', 'finish', 'error', 'close']);
  const results: string[] = [];
  client.resume();
  peer.resume();
  client.on('end', () => {
    client.write('in the end handler', (e) => results.push(`cb1 ${(e as ErrnoError | undefined)?.code}`));
    setImmediate(() => {
      results.push(`ret ${client.write('late', (e) => results.push(`cb2 ${(e as ErrnoError | undefined)?.code}`))}`);
    });
  });
  peer.end('bye');
  await settled(client);
  await delay(5);
  assert.deepEqual(seen, ['end', 'finish', 'close(false)']);
  assert.deepEqual(results, ['cb1 undefined', 'ret false', 'cb2 EPIPE']);
  await closeServer(server);
});

test('memstack: destroySoon() ends, then destroys once written', async () => {
  const fx = memFixture('destroysoon');
  const { server, client, peer } = await pair(fx);
  const got = readAll(peer);
  client.write('abc');
  client.destroySoon();
  await settled(client);
  assert.equal(client.bytesWritten, 3);
  assert.equal((await got).toString(), 'abc');
  await closeServer(server);
});

test('memstack: ipv6Only keeps IPv4 clients out of a :: listener', async () => {
  const fx = memFixture('v6only');
  const server = fx.server.createServer();
  server.listen({ port: 0, ipv6Only: true });
  await once(server, 'listening');
  const { port } = server.address() as nodeNet.AddressInfo;
  const c = fx.client.connect(port, '10.0.0.1');
  const [err] = await once(c, 'error') as [ErrnoError];
  assert.equal(err.code, 'ECONNREFUSED');
  await closeServer(server);
});

test('memstack: new Socket({ raw, pauseOnCreate }) and { readable: false }', async () => {
  const fx = memFixture('wrap-options');
  const mem = fx.mem as { a: MemStack; b: MemStack };
  const { server, port } = await listen(fx.server, fx.host);
  // the write-only socket below closes with 'hello' unread: an RST, as Linux sends, hits c
  server.on('connection', (c: Sock) => { c.on('error', () => undefined); c.end('hello'); });
  const raw1 = mem.b.socket(2, 1);
  await raw1.connect('10.0.0.1', port);
  const paused = new fx.client.Socket({ raw: raw1, pauseOnCreate: true } as never);
  assert.equal(paused.readableFlowing, false);
  let early = false;
  paused.on('data', () => { early = true; });
  await delay(20);
  assert.equal(early, false, 'data before resume()');
  assert.equal((raw1 as MemRawSocket).watching.readable, false);
  const got = new Promise<string>((r) => { let s = ''; paused.on('data', (d: Buffer) => { s += d; }); paused.on('end', () => r(s)); });
  paused.resume();
  assert.equal(await got, 'hello');
  paused.destroy();

  const raw2 = mem.b.socket(2, 1);
  await raw2.connect('10.0.0.1', port);
  const writeOnly = new fx.client.Socket({ raw: raw2, readable: false } as never);
  assert.equal(writeOnly.readable, false);
  assert.equal(writeOnly.readyState, 'writeOnly');
  await delay(10);
  assert.equal((raw2 as MemRawSocket).watching.readable, false);
  writeOnly.destroy();
  await settled(writeOnly);
  await closeServer(server);
  await noLeaks(fx);
});

test('memstack: destroy() while connecting to a black hole frees the raw socket', async () => {
  const fx = memFixture('blackhole');
  const c = fx.client.connect(80, '10.0.0.99');
  const seen = record(c, ['connect', 'error', 'close']);
  await delay(10);
  assert.equal(c.connecting, true);
  assert.equal(fx.openSockets?.(), 1);
  assert.equal(activeMemHandles() > 0, true);
  c.destroy();
  await settled(c);
  await delay(10);
  assert.deepEqual(seen, ['close(false)']);
  assert.equal(fx.openSockets?.(), 0);
});

test('memstack: a connect timeout via setTimeout while connecting', async () => {
  const fx = memFixture('blackhole-timeout');
  const c = fx.client.connect({ port: 80, host: '10.0.0.99', timeout: 30 });
  await once(c, 'timeout');
  assert.equal(c.connecting, true);
  c.destroy();
  await settled(c);
  assert.equal(fx.openSockets?.(), 0);
});

test('memstack: autoSelectFamily tries the next address when one does not answer', async () => {
  const fx = memFixture('happy');
  const { server, port } = await listen(fx.server, fx.host);
  const c = new fx.client.Socket();
  const seen: string[] = [];
  c.on('lookup', (_e, ip) => seen.push(`lookup ${ip}`));
  c.on('connectionAttempt', (ip) => seen.push(`attempt ${ip}`));
  c.on('connectionAttemptTimeout', (ip) => seen.push(`timeout ${ip}`));
  c.on('connectionAttemptFailed', (ip) => seen.push(`failed ${ip}`));
  c.on('connect', () => seen.push('connect'));
  c.connect({ port, host: 'multi', autoSelectFamilyAttemptTimeout: 20 });
  await once(c, 'connect');
  assert.deepEqual(seen, ['lookup 10.0.0.99', 'lookup 10.0.0.1', 'attempt 10.0.0.99', 'timeout 10.0.0.99', 'attempt 10.0.0.1', 'connect']);
  assert.deepEqual(c.autoSelectFamilyAttemptedAddresses, [`10.0.0.99:${port}`, `10.0.0.1:${port}`]);
  assert.equal(c.remoteAddress, '10.0.0.1');
  assert.equal(fx.mem?.b.openSockets, 1, 'the abandoned attempt was closed');
  c.destroy();
  await closeServer(server);
});

test('memstack: every attempt refused: one AggregateError with every failure', async () => {
  const fx = memFixture('refused');
  const c = fx.client.connect({ port: 9, host: 'refused' });
  const [err] = await once(c, 'error') as [AggregateError & { code?: string }];
  assert.equal(err.name, 'AggregateError');
  assert.equal(err.code, 'ECONNREFUSED');
  assert.equal(err.message, '');
  assert.deepEqual(err.errors.map((e: Error) => e.message), ['connect ECONNREFUSED 10.0.0.1:9', 'connect ECONNREFUSED 127.0.0.1:9']);
  await settled(c);
  assert.equal(fx.openSockets?.(), 0);
});

test('memstack: partial sends through a tiny receive buffer keep every byte', async () => {
  const fx = memFixture('tiny', 1024);
  const { server, client, peer } = await pair(fx);
  const data = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const got = readAll(peer);
  assert.equal(client.write(data), false);
  client.end();
  assert.ok((await got).equals(data));
  await settled(client);
  await closeServer(server);
});

test('memstack: listen(raw) and new Socket({ raw }) adopt raw sockets', async () => {
  const fx = memFixture('adopt');
  const a = (fx.mem as { a: MemStack; b: MemStack }).a;
  const listener = a.socket(2, 1);
  listener.bind('10.0.0.1', 0);
  const server = fx.server.createServer();
  (server.listen as (raw: unknown, cb: () => void) => Srv)(listener, () => undefined);
  assert.equal(server.listening, true);
  await once(server, 'listening');
  const { port } = server.address() as nodeNet.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[Sock]>;
  const raw = (fx.mem as { a: MemStack; b: MemStack }).b.socket(2, 1);
  await raw.connect('10.0.0.1', port);
  const client = new fx.client.Socket({ raw } as never);
  assert.equal(client.pending, false);
  assert.equal(client.readyState, 'open');
  assert.equal(client.remotePort, port);
  const [peer] = await accepted;
  const got = readAll(peer);
  client.end('adopted');
  assert.equal((await got).toString(), 'adopted');
  await settled(client);
  await closeServer(server);
  assert.equal(fx.openSockets?.(), 0);
});

test('memstack: a server without host listens on :: and takes IPv4 clients', async () => {
  const fx = memFixture('wildcard');
  const server = fx.server.createServer();
  server.listen(0);
  assert.equal(server.listening, true);
  await once(server, 'listening');
  const addr = server.address() as nodeNet.AddressInfo;
  assert.equal(addr.address, '::');
  assert.equal(addr.family, 'IPv6');
  const accepted = once(server, 'connection') as Promise<[Sock]>;
  const c = fx.client.connect(addr.port, '10.0.0.1');
  const [peer] = await accepted;
  assert.equal(peer.remoteAddress, '::ffff:10.0.0.2');
  assert.equal(peer.remoteFamily, 'IPv6');
  c.destroy();
  await closeServer(server);
});

test('memstack: unref() lets go of the event loop, ref() takes it back', async () => {
  const fx = memFixture('refs');
  const { server, client, peer } = await pair(fx);
  const base = activeMemHandles();
  client.unref();
  assert.equal(activeMemHandles(), base - 1);
  client.ref();
  assert.equal(activeMemHandles(), base);
  server.unref();
  assert.equal(activeMemHandles(), base - 1);
  server.ref();
  client.destroy();
  peer.destroy();
  await settled(client);
  await closeServer(server);
});

test('memstack: close(cb) waits for the connections; Symbol.asyncDispose closes', async () => {
  const fx = memFixture('close');
  const { server, client, peer } = await pair(fx);
  const order: string[] = [];
  server.close(() => order.push('close cb'));
  assert.equal(server.listening, false);
  assert.equal(server.address(), null);
  await delay(10);
  assert.deepEqual(order, []);
  peer.destroy();
  client.resume();
  await settled(client);
  await delay(5);
  assert.deepEqual(order, ['close cb']);

  const { server: s2 } = await listen(fx.server, fx.host);
  await (s2 as unknown as { [Symbol.asyncDispose](): Promise<void> })[Symbol.asyncDispose]();
  assert.equal(s2.listening, false);
  assert.equal(fx.openSockets?.(), 0);
});

test('memstack: listen({ signal }) closes on abort; connect({ signal }) destroys with AbortError', async () => {
  const fx = memFixture('signal');
  const ac = new AbortController();
  const server = fx.server.createServer();
  server.listen({ port: 0, host: fx.host, signal: ac.signal });
  await once(server, 'listening');
  const closed = once(server, 'close');
  ac.abort();
  await closed;
  assert.equal(server.listening, false);

  const ac2 = new AbortController();
  const c = fx.client.connect({ port: 80, host: '10.0.0.99', signal: ac2.signal });
  ac2.abort();
  const [err] = await once(c, 'error') as [ErrnoError];
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORT_ERR');
  await settled(c);
  assert.equal(fx.openSockets?.(), 0);
});

test('memstack: a rejected promise in a connection listener destroys that socket (captureRejections)', async () => {
  const fx = memFixture('rejections');
  const server = new (fx.server.Server as unknown as new (o: object) => Srv)({});
  const victim = new fx.client.Socket();
  const victimError = once(victim, 'error') as Promise<[Error]>;
  (server as unknown as { [captureRejectionSymbol](e: Error, ev: string, s: Sock): void })[captureRejectionSymbol](new Error('boom'), 'connection', victim);
  assert.equal(victim.destroyed, true);
  assert.equal((await victimError)[0].message, 'boom');
  const errors: Error[] = [];
  server.on('error', (e) => errors.push(e));
  (server as unknown as { [captureRejectionSymbol](e: Error, ev: string): void })[captureRejectionSymbol](new Error('other'), 'listening');
  assert.deepEqual(errors.map((e) => e.message), ['other']);
});
