// lib/dgram.ts: the whole public surface of Node's dgram.Socket is there; argument checks
// throw what Node's throw (compared against the real `dgram`, case by case); and the socket
// behaves like Node's over the in-memory double (test/helpers/memdgram.ts) and, when the
// addon loads, over real kernel raw sockets (lib/stacks/kernel.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import nodeDgram = require('node:dgram');
import { once } from 'node:events';
import * as path from 'node:path';
import { afterEach, describe, it } from 'node:test';

import { createDgram, Socket as BaseSocket } from '../lib/dgram';
import { AF_INET, AF_INET6, SOCK_DGRAM, type Stack } from '../lib/raw';
import { kernelStack } from '../lib/stacks/kernel';
import { MemDgramSocket, MemNetwork, MemStack } from './helpers/memdgram';

type Dgram = typeof nodeDgram;
type Sock = nodeDgram.Socket;

// ---- small helpers

function listening(s: Sock): Promise<void> {
  return once(s, 'listening').then(() => undefined);
}

async function bound(mod: Dgram, type: 'udp4' | 'udp6' = 'udp4', address = type === 'udp4' ? '127.0.0.1' : '::1'): Promise<Sock> {
  const s = mod.createSocket(type);
  s.bind(0, address);
  await listening(s);
  return s;
}

function nextMessage(s: Sock): Promise<[Buffer, nodeDgram.RemoteInfo]> {
  return once(s, 'message') as Promise<[Buffer, nodeDgram.RemoteInfo]>;
}

function sendP(s: Sock, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    (s.send as (...a: unknown[]) => void)(...args, (err: Error | null, bytes: number) => (err ? reject(err) : resolve(bytes)));
  });
}

/**
 * The module with every socket it creates remembered, so that a failing test does not leave
 * sockets open (which would keep the test process alive): closeTracked() after each test.
 */
function tracked(mod: Dgram): Dgram & { closeTracked(): Promise<void> } {
  const open = new Set<Sock>();
  const createSocket = ((type: nodeDgram.SocketType | nodeDgram.SocketOptions, listener?: (msg: Buffer, rinfo: nodeDgram.RemoteInfo) => void) => {
    const s = mod.createSocket(type as nodeDgram.SocketType, listener);
    open.add(s);
    s.once('close', () => open.delete(s));
    return s;
  }) as Dgram['createSocket'];
  return {
    Socket: mod.Socket,
    createSocket,
    closeTracked: () => {
      const socks = [...open];
      open.clear();
      for (const s of socks) s.on('error', () => undefined);
      return closeAll(...socks);
    },
  };
}

function closeAll(...socks: Sock[]): Promise<void> {
  return Promise.all(socks.map((s) => new Promise<void>((resolve) => {
    try { s.close(() => resolve()); } catch { resolve(); }
  }))).then(() => undefined);
}

/** a name that does not resolve: ENOTFOUND, or EAI_AGAIN where no DNS server answers */
const NOT_RESOLVED = /^(ENOTFOUND|EAI_AGAIN)$/;

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- the surface

/** every public name of Node's dgram.Socket.prototype chain: no `_` names, no internal symbols */
function nodeSurface(): (string | symbol)[] {
  const wellKnown = new Set<symbol>([Symbol.asyncDispose, Symbol.dispose, Symbol.iterator, Symbol.asyncIterator].filter((x) => typeof x === 'symbol'));
  const names = new Set<string | symbol>();
  for (let p: object | null = nodeDgram.Socket.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const key of Reflect.ownKeys(p)) {
      if (typeof key === 'string' ? key.startsWith('_') : !wellKnown.has(key)) continue;
      names.add(key);
    }
  }
  return [...names];
}

describe('dgram surface', () => {
  const mod = createDgram(new MemStack());

  it("has every public method and property of Node's dgram.Socket.prototype", () => {
    const missing: string[] = [];
    const wrongKind: string[] = [];
    for (const key of nodeSurface()) {
      const name = String(key);
      if (!(key in mod.Socket.prototype)) { missing.push(name); continue; }
      const theirs = typeof (nodeDgram.Socket.prototype as unknown as Record<string | symbol, unknown>)[key];
      const ours = typeof (mod.Socket.prototype as unknown as Record<string | symbol, unknown>)[key];
      if (theirs !== ours) wrongKind.push(`${name} (${ours}, Node: ${theirs})`);
    }
    assert.deepEqual(missing, [], `missing on our Socket.prototype: ${missing.join(', ')}`);
    assert.deepEqual(wrongKind, [], `not the same kind as Node's: ${wrongKind.join(', ')}`);
  });

  it("has the module's public names, and instances with Node's own public properties", async () => {
    for (const key of Object.keys(nodeDgram)) {
      if (key.startsWith('_')) continue;
      assert.equal(typeof (mod as unknown as Record<string, unknown>)[key], typeof (nodeDgram as unknown as Record<string, unknown>)[key], key);
    }
    const theirs = nodeDgram.createSocket('udp6');
    const ours = mod.createSocket('udp6');
    for (const key of Object.keys(theirs)) {
      if (key.startsWith('_')) continue;
      assert.ok(key in ours, `instance property ${key}`);
      assert.equal((ours as unknown as Record<string, unknown>)[key], (theirs as unknown as Record<string, unknown>)[key], key);
    }
    await closeAll(theirs, ours);
  });

  it('module sockets are instances of the base class, named Socket, and the base class needs a stack', async () => {
    const s = mod.createSocket('udp4');
    assert.ok(s instanceof mod.Socket);
    assert.ok(s instanceof BaseSocket);
    assert.equal(mod.Socket.name, 'Socket');
    await closeAll(s);
    assert.throws(() => new BaseSocket('udp4'), { code: 'ERR_INVALID_ARG_TYPE', message: /"options\.stack" property/ });
    const st = new MemStack();
    const direct = new BaseSocket({ type: 'udp4', stack: st });
    direct.bind(0, '127.0.0.1');
    await listening(direct as unknown as Sock);
    assert.equal(direct.address().address, '127.0.0.1');
    await closeAll(direct as unknown as Sock);
  });
});

// ---- argument checks: the same error as Node's, case by case

interface Case {
  name: string;
  run(mod: Dgram, keep: (s: Sock) => Sock): unknown;
}

const big = (): Buffer => Buffer.alloc(2);

const CASES: Case[] = [
  { name: 'createSocket()', run: (m) => (m.createSocket as (...a: unknown[]) => Sock)() },
  { name: "createSocket('foo')", run: (m) => m.createSocket('foo' as 'udp4') },
  { name: 'createSocket(123)', run: (m) => m.createSocket(123 as unknown as 'udp4') },
  { name: 'createSocket({})', run: (m) => m.createSocket({} as nodeDgram.SocketOptions) },
  { name: 'createSocket(null)', run: (m) => m.createSocket(null as unknown as 'udp4') },
  { name: 'lookup not a function', run: (m) => m.createSocket({ type: 'udp4', lookup: 1 as never }) },
  { name: 'lookup null', run: (m) => m.createSocket({ type: 'udp4', lookup: null as never }) },
  { name: 'lookup checked before type', run: (m) => m.createSocket({ type: 'x' as 'udp4', lookup: 1 as never }) },
  { name: 'recvBufferSize -1', run: (m) => m.createSocket({ type: 'udp4', recvBufferSize: -1 }) },
  { name: "recvBufferSize 'a'", run: (m) => m.createSocket({ type: 'udp4', recvBufferSize: 'a' as never }) },
  { name: 'recvBufferSize 2**32', run: (m) => m.createSocket({ type: 'udp4', recvBufferSize: 2 ** 32 }) },
  { name: 'sendBufferSize 1.5', run: (m) => m.createSocket({ type: 'udp4', sendBufferSize: 1.5 }) },
  { name: 'buffer sizes checked before lookup', run: (m) => m.createSocket({ type: 'udp4', lookup: 1 as never, recvBufferSize: -1 }) },
  { name: 'signal 1', run: (m) => m.createSocket({ type: 'udp4', signal: 1 as never }) },
  { name: 'signal null', run: (m) => m.createSocket({ type: 'udp4', signal: null as never }) },
  { name: 'type checked before signal', run: (m) => m.createSocket({ type: 'x' as 'udp4', signal: 1 as never }) },
  { name: 'bind(0, 1)', run: (m, keep) => keep(m.createSocket('udp4')).bind(0, 1 as never) },
  { name: 'bind({ address: 1 })', run: (m, keep) => keep(m.createSocket('udp4')).bind({ address: 1 as never }) },
  { name: 'bind twice', run: (m, keep) => { const s = keep(m.createSocket('udp4')); s.bind(0); s.bind(0); } },
  { name: 'connect()', run: (m, keep) => (keep(m.createSocket('udp4')).connect as (...a: unknown[]) => void)() },
  { name: 'connect(0)', run: (m, keep) => keep(m.createSocket('udp4')).connect(0) },
  { name: 'connect(70000)', run: (m, keep) => keep(m.createSocket('udp4')).connect(70000) },
  { name: "connect('a')", run: (m, keep) => keep(m.createSocket('udp4')).connect('a' as never) },
  { name: 'connect(5000, 1)', run: (m, keep) => keep(m.createSocket('udp4')).connect(5000, 1 as never) },
  { name: 'connect twice', run: (m, keep) => { const s = keep(m.createSocket('udp4')); s.connect(5000); s.connect(5001); } },
  { name: 'connect with a bad port after connect', run: (m, keep) => { const s = keep(m.createSocket('udp4')); s.connect(5000); s.connect(0); } },
  { name: 'disconnect() unconnected', run: (m, keep) => keep(m.createSocket('udp4')).disconnect() },
  { name: 'remoteAddress() unconnected', run: (m, keep) => keep(m.createSocket('udp4')).remoteAddress() },
  { name: 'address() unbound', run: (m, keep) => keep(m.createSocket('udp4')).address() },
  { name: 'send(1)', run: (m, keep) => keep(m.createSocket('udp4')).send(1 as never) },
  { name: 'send({})', run: (m, keep) => keep(m.createSocket('udp4')).send({} as never, 1, '127.0.0.1') },
  { name: 'send(null)', run: (m, keep) => keep(m.createSocket('udp4')).send(null as never, 1, '127.0.0.1') },
  { name: "send('x') without port", run: (m, keep) => keep(m.createSocket('udp4')).send('x') },
  { name: "send('x', 0)", run: (m, keep) => keep(m.createSocket('udp4')).send('x', 0) },
  { name: "send('x', 70000)", run: (m, keep) => keep(m.createSocket('udp4')).send('x', 70000) },
  { name: "send('x', 'a')", run: (m, keep) => keep(m.createSocket('udp4')).send('x', 'a' as never) },
  { name: "send('x', 1, 2)", run: (m, keep) => (keep(m.createSocket('udp4')).send as (...a: unknown[]) => void)('x', 1, 2) },
  { name: "send('x', 0, 1, 1, 1)", run: (m, keep) => keep(m.createSocket('udp4')).send('x', 0, 1, 1, 1 as never) },
  { name: 'send offset past the end', run: (m, keep) => keep(m.createSocket('udp4')).send(big(), 5, 1, 1, '127.0.0.1') },
  { name: 'send length past the end', run: (m, keep) => keep(m.createSocket('udp4')).send(big(), 0, 5, 1, '127.0.0.1') },
  { name: 'send offset -1', run: (m, keep) => keep(m.createSocket('udp4')).send(big(), -1, 1, 1, '127.0.0.1') },
  { name: 'send string length past its UTF-8 end', run: (m, keep) => keep(m.createSocket('udp4')).send('hé', 1, 3, 1, '127.0.0.1') },
  { name: 'send([1])', run: (m, keep) => keep(m.createSocket('udp4')).send([1], 1, '127.0.0.1') },
  { name: "send(['a', 1])", run: (m, keep) => keep(m.createSocket('udp4')).send(['a', 1], 1, '127.0.0.1') },
  { name: "sendto('x', '0', ...)", run: (m, keep) => (keep(m.createSocket('udp4')) as unknown as { sendto: (...a: unknown[]) => void }).sendto('x', '0', 1, 1, 'a') },
  { name: "sendto('x', 0, '1', ...)", run: (m, keep) => (keep(m.createSocket('udp4')) as unknown as { sendto: (...a: unknown[]) => void }).sendto('x', 0, '1', 1, 'a') },
  { name: "sendto('x', 0, 1, '1', ...)", run: (m, keep) => (keep(m.createSocket('udp4')) as unknown as { sendto: (...a: unknown[]) => void }).sendto('x', 0, 1, '1', 'a') },
  { name: 'sendto without address', run: (m, keep) => (keep(m.createSocket('udp4')) as unknown as { sendto: (...a: unknown[]) => void }).sendto('x', 0, 1, 1) },
  { name: 'close twice', run: (m) => { const s = m.createSocket('udp4'); s.close(); s.close(); } },
  { name: 'setBroadcast unbound', run: (m, keep) => keep(m.createSocket('udp4')).setBroadcast(true) },
  { name: 'setTTL unbound', run: (m, keep) => keep(m.createSocket('udp4')).setTTL(5) },
  { name: 'setTTL(0) unbound: the range first', run: (m, keep) => keep(m.createSocket('udp4')).setTTL(0) },
  { name: "setTTL('a')", run: (m, keep) => keep(m.createSocket('udp4')).setTTL('a' as never) },
  { name: 'setMulticastTTL unbound', run: (m, keep) => keep(m.createSocket('udp4')).setMulticastTTL(5) },
  { name: "setMulticastTTL('a')", run: (m, keep) => keep(m.createSocket('udp4')).setMulticastTTL('a' as never) },
  { name: 'setMulticastLoopback unbound', run: (m, keep) => keep(m.createSocket('udp4')).setMulticastLoopback(true) },
  { name: 'setMulticastInterface unbound', run: (m, keep) => keep(m.createSocket('udp4')).setMulticastInterface('0.0.0.0') },
  { name: 'setMulticastInterface(1)', run: (m, keep) => keep(m.createSocket('udp4')).setMulticastInterface(1 as never) },
  { name: 'addMembership()', run: (m, keep) => (keep(m.createSocket('udp4')).addMembership as (...a: unknown[]) => void)() },
  { name: 'dropMembership()', run: (m, keep) => (keep(m.createSocket('udp4')).dropMembership as (...a: unknown[]) => void)() },
  { name: 'addSourceSpecificMembership()', run: (m, keep) => (keep(m.createSocket('udp4')).addSourceSpecificMembership as (...a: unknown[]) => void)() },
  { name: "addSourceSpecificMembership(1, 'x')", run: (m, keep) => keep(m.createSocket('udp4')).addSourceSpecificMembership(1 as never, 'x') },
  { name: "addSourceSpecificMembership('a', 1)", run: (m, keep) => keep(m.createSocket('udp4')).addSourceSpecificMembership('a', 1 as never) },
  { name: "dropSourceSpecificMembership('a', 1)", run: (m, keep) => keep(m.createSocket('udp4')).dropSourceSpecificMembership('a', 1 as never) },
  { name: "setRecvBufferSize('a')", run: (m, keep) => keep(m.createSocket('udp4')).setRecvBufferSize('a' as never) },
  { name: 'setRecvBufferSize(-1)', run: (m, keep) => keep(m.createSocket('udp4')).setRecvBufferSize(-1) },
  { name: 'setSendBufferSize(1.5)', run: (m, keep) => keep(m.createSocket('udp4')).setSendBufferSize(1.5) },
  { name: 'setRecvBufferSize unbound', run: (m, keep) => keep(m.createSocket('udp4')).setRecvBufferSize(1000) },
  { name: 'getRecvBufferSize unbound', run: (m, keep) => keep(m.createSocket('udp4')).getRecvBufferSize() },
  { name: 'getSendBufferSize unbound', run: (m, keep) => keep(m.createSocket('udp4')).getSendBufferSize() },
  { name: 'queue sizes unbound', run: (m, keep) => { const s = keep(m.createSocket('udp4')); return [s.getSendQueueSize(), s.getSendQueueCount()]; } },
  { name: 'ref/unref return the socket', run: (m, keep) => { const s = keep(m.createSocket('udp4')); return [s.ref() === s, s.unref() === s]; } },
  ...(['send', 'bind', 'connect', 'address', 'remoteAddress', 'addMembership', 'disconnect'] as const).map((method): Case => ({
    name: `${method}() after close`,
    run: (m) => {
      const s = m.createSocket('udp4');
      s.close();
      const args: Record<string, unknown[]> = { send: ['x', 5000, '127.0.0.1'], connect: [5000], addMembership: ['224.0.0.1'] };
      return (s[method] as (...a: unknown[]) => unknown)(...(args[method] ?? []));
    },
  })),
];

function outcome(mod: Dgram, c: Case): { threw: boolean; value?: unknown; error?: Record<string, unknown> } {
  const kept: Sock[] = [];
  try {
    const value = c.run(mod, (s) => { kept.push(s); return s; });
    return { threw: false, value: value && typeof value === 'object' && 'bind' in value ? '<socket>' : value };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { info?: unknown };
    return {
      threw: true,
      error: {
        name: err.name, code: err.code, message: err.message, errno: err.errno, syscall: err.syscall,
        ...(err.info ? { info: err.info } : {}),
      },
    };
  } finally {
    for (const s of kept) s.on('error', () => { /* a bind left behind */ });
    void closeAll(...kept);
  }
}

describe("argument checks: the same errors as Node's dgram", () => {
  const ours = createDgram(new MemStack());
  for (const c of CASES) {
    it(c.name, () => {
      assert.deepEqual(outcome(ours, c), outcome(nodeDgram, c));
    });
  }
});

// ---- behaviour, on any stack

function behaviour(stackName: string, makeStack: () => Stack): void {
  describe(`behaviour over ${stackName}`, () => {
    const stack = makeStack();
    const mod = tracked(createDgram(stack));
    afterEach(() => mod.closeTracked());

    it('bind: listening, address(), bind callback, ERR_SOCKET_ALREADY_BOUND', async () => {
      const s = mod.createSocket('udp4');
      assert.throws(() => s.address(), { code: 'EBADF', syscall: 'getsockname' });
      let called = 0;
      assert.equal(s.bind(0, '127.0.0.1', () => { called++; }), s);
      assert.throws(() => s.address(), { code: 'EBADF' }, 'not bound before listening');
      await listening(s);
      assert.equal(called, 1);
      const a = s.address();
      assert.equal(a.address, '127.0.0.1');
      assert.equal(a.family, 'IPv4');
      assert.ok(a.port > 0);
      assert.throws(() => s.bind(0), { code: 'ERR_SOCKET_ALREADY_BOUND', message: 'Socket is already bound' });
      await closeAll(s);
      assert.throws(() => s.address(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    });

    it('bind with no address binds the wildcard; bind({ port, address }) works', async () => {
      const a = mod.createSocket('udp4');
      a.bind();
      await listening(a);
      assert.equal(a.address().address, '0.0.0.0');
      const b = mod.createSocket('udp4');
      b.bind({ port: 0, address: '127.0.0.1' }, () => { /* listening */ });
      await listening(b);
      assert.equal(b.address().address, '127.0.0.1');
      await closeAll(a, b);
    });

    it("a bind error is emitted as 'error' with bind's address:port, and the socket can bind again", async () => {
      const a = await bound(mod);
      const port = a.address().port;
      const b = mod.createSocket('udp4');
      b.bind(port, '127.0.0.1');
      const [err] = await once(b, 'error') as [NodeJS.ErrnoException];
      assert.equal(err.code, 'EADDRINUSE');
      assert.equal(err.syscall, 'bind');
      assert.equal(err.message, `bind EADDRINUSE 127.0.0.1:${port}`);
      b.bind(0, '127.0.0.1');
      await listening(b);
      await closeAll(a, b);
    });

    it('send and receive with rinfo; implicit bind on the first send emits listening', async () => {
      const server = await bound(mod);
      const client = mod.createSocket('udp4');
      let listened = false;
      client.on('listening', () => { listened = true; });
      const got = nextMessage(server);
      const bytes = await sendP(client, 'hello', server.address().port, '127.0.0.1');
      assert.equal(bytes, 5);
      assert.ok(listened);
      const [msg, rinfo] = await got;
      assert.ok(Buffer.isBuffer(msg));
      assert.equal(msg.toString(), 'hello');
      assert.deepEqual(Object.keys(rinfo), ['address', 'family', 'port', 'size']);
      assert.equal(rinfo.address, '127.0.0.1');
      assert.equal(rinfo.family, 'IPv4');
      assert.equal(rinfo.port, client.address().port);
      assert.equal(rinfo.size, 5);
      await closeAll(server, client);
    });

    it('send overloads: offset/length over typed arrays and strings, arrays of pieces, default address', async () => {
      const server = await bound(mod);
      const client = mod.createSocket('udp4');
      const port = server.address().port;
      const seen: string[] = [];
      server.on('message', (m: Buffer) => seen.push(m.toString('hex')));
      assert.equal(await sendP(client, new Uint16Array([0x4241, 0x4443]), 1, 2, port, '127.0.0.1'), 2);
      assert.equal(await sendP(client, 'héllo', 1, 3, port, '127.0.0.1'), 3);
      assert.equal(await sendP(client, ['ab', Buffer.from('cd'), new Uint8Array([0x45]), new DataView(new Uint8Array([0x46]).buffer)], port), 6);
      assert.equal(await sendP(client, Buffer.from('xyz'), port), 3);
      await tick();
      assert.deepEqual(seen, ['4243', 'c3a96c', '616263644546', '78797a']);
      await closeAll(server, client);
    });

    it('zero-length datagrams: empty string, empty array, zero length', async () => {
      const server = await bound(mod);
      const client = mod.createSocket('udp4');
      const port = server.address().port;
      const sizes: number[] = [];
      server.on('message', (m: Buffer, r: nodeDgram.RemoteInfo) => { assert.equal(m.length, r.size); sizes.push(r.size); });
      assert.equal(await sendP(client, '', port, '127.0.0.1'), 0);
      assert.equal(await sendP(client, [], port), 0);
      assert.equal(await sendP(client, Buffer.from('abc'), 1, 0, port, '127.0.0.1'), 0);
      await tick();
      assert.deepEqual(sizes, [0, 0, 0]);
      await closeAll(server, client);
    });

    it('connect: connect event and callback, send without address, remoteAddress, disconnect', async () => {
      const server = await bound(mod);
      const port = server.address().port;
      const client = mod.createSocket('udp4');
      const events: string[] = [];
      client.on('listening', () => events.push('listening'));
      client.on('connect', () => events.push('connect'));
      assert.throws(() => client.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED', message: 'Not connected' });
      await new Promise<void>((resolve) => client.connect(port, '127.0.0.1', () => { events.push('callback'); resolve(); }));
      assert.deepEqual(events, ['listening', 'connect', 'callback']);
      assert.deepEqual(client.remoteAddress(), { address: '127.0.0.1', family: 'IPv4', port });
      assert.throws(() => client.connect(port), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED', message: 'Already connected' });
      assert.throws(() => client.send('x', port, '127.0.0.1', () => undefined), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
      assert.throws(() => client.send('x', 0, 1, port), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
      const got = nextMessage(server);
      assert.equal(await sendP(client, 'to the peer'), 11);
      const [msg, rinfo] = await got;
      assert.equal(msg.toString(), 'to the peer');
      assert.equal(rinfo.port, client.address().port);
      assert.equal(await sendP(client, Buffer.from('abc'), 1, 2), 2);
      client.disconnect();
      assert.throws(() => client.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
      assert.throws(() => client.disconnect(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
      assert.throws(() => client.send('x'), { code: 'ERR_SOCKET_BAD_PORT' });
      await closeAll(server, client);
    });

    it("ECONNREFUSED after sending to nobody on a connected socket: 'error' from recvmsg, as Node", async () => {
      const nobody = await bound(mod);
      const port = nobody.address().port;
      await closeAll(nobody);
      const s = mod.createSocket('udp4');
      await new Promise<void>((resolve) => s.connect(port, '127.0.0.1', resolve));
      assert.equal(await sendP(s, 'x'), 1);
      const [err] = await once(s, 'error') as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNREFUSED');
      assert.equal(err.syscall, 'recvmsg');
      assert.equal(err.message, 'recvmsg ECONNREFUSED');
    });

    it('sends made while the implicit bind is pending go out in order, callbacks in order', async () => {
      const server = await bound(mod);
      const port = server.address().port;
      const seen: string[] = [];
      server.on('message', (m: Buffer) => seen.push(m.toString()));
      const client = mod.createSocket('udp4');
      const done: string[] = [];
      for (const m of ['1', '22', '333']) client.send(m, port, '127.0.0.1', (err, n) => done.push(`${m}:${err ?? n}`));
      await tick(50);
      assert.deepEqual(done, ['1:1', '22:2', '333:3']);
      assert.deepEqual(seen, ['1', '22', '333']);
    });

    it('a bind error with a bind callback and no error listener is swallowed, as Node does', async () => {
      const a = await bound(mod);
      const b = mod.createSocket('udp4');
      let called = false;
      b.bind(a.address().port, '127.0.0.1', () => { called = true; });
      await tick(50);
      assert.equal(called, false);
      assert.equal(b.listenerCount('error'), 0);
      assert.equal(b.listenerCount('listening'), 0);
      b.bind(0, '127.0.0.1');
      await listening(b);
    });

    it('connect to a name that does not resolve: the callback gets the error, else it is emitted', async () => {
      const a = mod.createSocket('udp4');
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => a.connect(5000, 'nonexistent.invalid', resolve as () => void));
      assert.match(String(err.code), NOT_RESOLVED);
      assert.throws(() => a.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
      const b = mod.createSocket('udp4');
      b.connect(5000, 'nonexistent.invalid');
      const [emitted] = await once(b, 'error') as [NodeJS.ErrnoException];
      assert.match(String(emitted.code), NOT_RESOLVED);
      await closeAll(a, b);
    });

    it('connect to an address of the other family: EINVAL naming it', async () => {
      const a = mod.createSocket('udp4');
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => a.connect(5000, '::1', resolve as () => void));
      assert.equal(err.code, 'EINVAL');
      assert.equal(err.message, 'connect EINVAL ::1:5000');
      await closeAll(a);
    });

    it('EMSGSIZE goes to the send callback; without a callback it is dropped, as Node does', async () => {
      const a = mod.createSocket('udp4');
      await assert.rejects(sendP(a, Buffer.alloc(65508), 5000, '127.0.0.1'), {
        code: 'EMSGSIZE', syscall: 'send', address: '127.0.0.1', port: 5000, message: 'send EMSGSIZE 127.0.0.1:5000',
      });
      const server = await bound(mod);
      assert.equal(await sendP(a, Buffer.alloc(65507), server.address().port, '127.0.0.1'), 65507);
      let errors = 0;
      a.on('error', () => { errors++; });
      a.send(Buffer.alloc(70000), 5000, '127.0.0.1');
      await tick(50);
      assert.equal(errors, 0);
      await closeAll(a, server);
    });

    it("a name that does not resolve: the send callback gets it, else 'error'", async () => {
      const a = mod.createSocket('udp4');
      await assert.rejects(sendP(a, 'x', 5000, 'nonexistent.invalid'), (err: NodeJS.ErrnoException) => NOT_RESOLVED.test(String(err.code)));
      a.send('x', 5000, 'nonexistent.invalid');
      const [err] = await once(a, 'error') as [NodeJS.ErrnoException];
      assert.match(String(err.code), NOT_RESOLVED);
      await closeAll(a);
    });

    it('send to localhost resolves through the stack', async () => {
      const server = await bound(mod);
      const a = mod.createSocket('udp4');
      const got = nextMessage(server);
      assert.equal(await sendP(a, 'x', server.address().port, 'localhost'), 1);
      await got;
      await closeAll(server, a);
    });

    it('close: callback, async close event, twice throws ERR_SOCKET_DGRAM_NOT_RUNNING', async () => {
      const s = await bound(mod);
      const order: string[] = [];
      s.on('close', () => order.push('event'));
      assert.equal(s.close(() => order.push('callback')), s);
      order.push('sync');
      assert.throws(() => s.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING', message: 'Not running' });
      assert.throws(() => s.send('x', 5000, '127.0.0.1'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
      // Node: a TypeError from its internals ("Cannot read properties of null")
      assert.throws(() => s.setTTL(5), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
      await tick();
      assert.deepEqual(order, ['sync', 'event', 'callback']);
    });

    it('close while the implicit bind is pending: listening, then close; the queued send is dropped', async () => {
      const s = mod.createSocket('udp4');
      const order: string[] = [];
      s.on('listening', () => order.push('listening'));
      s.send('x', 5000, '127.0.0.1', () => order.push('send callback'));
      s.close(() => order.push('close'));
      // Node: the second close() is queued too, and throws later from inside the queue
      assert.throws(() => s.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
      await tick(50);
      assert.deepEqual(order, ['listening', 'close']);
    });

    it('close before the bind is done: close only', async () => {
      const s = mod.createSocket('udp4');
      const order: string[] = [];
      s.on('listening', () => order.push('listening'));
      s.bind(0, '127.0.0.1');
      s.close(() => order.push('close'));
      await tick(50);
      assert.deepEqual(order, ['close']);
    });

    it('options: TTL checks and return values, broadcast, multicast TTL and loopback', async () => {
      const s = await bound(mod);
      assert.equal(s.setTTL(64), 64);
      assert.throws(() => s.setTTL(0), { code: 'EINVAL', syscall: 'setTTL', message: 'setTTL EINVAL' });
      assert.throws(() => s.setTTL(256), { code: 'EINVAL', syscall: 'setTTL' });
      assert.throws(() => s.setTTL('a' as never), { code: 'ERR_INVALID_ARG_TYPE', message: 'The "ttl" argument must be of type number. Received type string (\'a\')' });
      assert.equal(s.setMulticastTTL(0), 0);
      assert.throws(() => s.setMulticastTTL(256), { code: 'EINVAL', syscall: 'setMulticastTTL' });
      assert.equal(s.setMulticastLoopback(false), false);
      assert.equal(s.setBroadcast(true), undefined);
      s.setMulticastInterface('127.0.0.1');
      await closeAll(s);
    });

    it('buffer sizes: the createSocket options, set and get, ERR_SOCKET_BAD_BUFFER_SIZE', async () => {
      const s = mod.createSocket({ type: 'udp4', recvBufferSize: 65536, sendBufferSize: 65536 });
      s.bind(0, '127.0.0.1');
      await listening(s);
      assert.ok(s.getRecvBufferSize() >= 65536);
      assert.ok(s.getSendBufferSize() >= 65536);
      s.setRecvBufferSize(32768);
      assert.ok(s.getRecvBufferSize() >= 32768);
      s.setSendBufferSize(0);
      assert.throws(() => s.setRecvBufferSize(-1), { code: 'ERR_SOCKET_BAD_BUFFER_SIZE', name: 'TypeError' });
      assert.throws(() => s.setRecvBufferSize(2 ** 31), {
        code: 'ERR_SOCKET_BUFFER_SIZE', name: 'SystemError', syscall: 'uv_recv_buffer_size',
        message: 'Could not get or set buffer size: uv_recv_buffer_size returned EINVAL (invalid argument)',
      });
      assert.equal(s.getSendQueueSize(), 0);
      assert.equal(s.getSendQueueCount(), 0);
      await closeAll(s);
    });

    it('udp6: bind ::1, send, receive with IPv6 rinfo; an IPv4 address is EINVAL', async () => {
      const server = await bound(mod, 'udp6');
      const client = mod.createSocket('udp6');
      const got = nextMessage(server);
      assert.equal(await sendP(client, 'six', server.address().port), 3);
      const [msg, rinfo] = await got;
      assert.equal(msg.toString(), 'six');
      assert.equal(rinfo.family, 'IPv6');
      assert.equal(rinfo.address, '::1');
      await assert.rejects(sendP(client, 'x', 5000, '127.0.0.1'), { code: 'EINVAL', message: 'send EINVAL 127.0.0.1:5000' });
      const bad = mod.createSocket('udp6');
      bad.bind(0, '127.0.0.1');
      const [err] = await once(bad, 'error') as [NodeJS.ErrnoException];
      assert.equal(err.message, 'bind EINVAL 127.0.0.1');
      await closeAll(server, client, bad);
    });

    it('reuseAddr lets two sockets bind one port', async () => {
      const a = mod.createSocket({ type: 'udp4', reuseAddr: true });
      a.bind(0, '127.0.0.1');
      await listening(a);
      const b = mod.createSocket({ type: 'udp4', reuseAddr: true });
      b.bind(a.address().port, '127.0.0.1');
      await listening(b);
      assert.equal(b.address().port, a.address().port);
      await closeAll(a, b);
    });

    it('a lookup option is called for every address, with the family number', async () => {
      const calls: unknown[][] = [];
      const s = mod.createSocket({
        type: 'udp4',
        lookup: (host, family, cb) => { calls.push([host, family]); cb(null, host === 'here' ? '127.0.0.1' : host, 4); },
      });
      const server = await bound(mod);
      const got = nextMessage(server);
      await sendP(s, 'x', server.address().port, 'here');
      await got;
      assert.deepEqual(calls, [['0.0.0.0', 4], ['here', 4]]);
      await closeAll(s, server);
    });

    it('bind({ raw }): a bound raw socket is adopted at once, an unbound one is bound', async () => {
      const raw = stack.socket(AF_INET, SOCK_DGRAM);
      raw.bind('127.0.0.1', 0);
      const port = raw.localAddress().port;
      const s = mod.createSocket('udp4');
      let listened = false;
      s.on('listening', () => { listened = true; });
      s.bind({ raw } as nodeDgram.BindOptions);
      assert.ok(listened, 'listening before bind() returns, as for { fd }');
      assert.equal(s.address().port, port);
      const fresh = stack.socket(AF_INET, SOCK_DGRAM);
      const t = mod.createSocket('udp4');
      t.bind({ raw: fresh, address: '127.0.0.1' } as nodeDgram.BindOptions);
      await listening(t);
      assert.equal(t.address().address, '127.0.0.1');
      const got = nextMessage(s);
      await sendP(t, 'via raw', port, '127.0.0.1');
      assert.equal((await got)[0].toString(), 'via raw');
      await closeAll(s, t);
      assert.ok(raw.closed && fresh.closed, 'the adopted raw sockets are closed with their socket');
      const six = stack.socket(AF_INET6, SOCK_DGRAM);
      assert.throws(() => mod.createSocket('udp4').bind({ raw: six } as nodeDgram.BindOptions), { code: 'ERR_INVALID_ARG_VALUE' });
      six.close();
    });

    it('signal: an abort closes the socket; Symbol.asyncDispose closes it', async () => {
      const ac = new AbortController();
      const s = mod.createSocket({ type: 'udp4', signal: ac.signal });
      s.bind(0, '127.0.0.1');
      await listening(s);
      const closed = once(s, 'close');
      ac.abort();
      await closed;
      assert.throws(() => s.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
      const pre = mod.createSocket({ type: 'udp4', signal: AbortSignal.abort() });
      assert.throws(() => pre.bind(0), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
      const d = await bound(mod);
      await d[Symbol.asyncDispose]();
      assert.throws(() => d.address(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
      await d[Symbol.asyncDispose]();
    });
  });
}

behaviour('the in-memory double', () => new MemStack());

let kernelProblem: string | false = false;
try {
  kernelStack.socket(AF_INET, SOCK_DGRAM).close();
} catch (e) {
  kernelProblem = `kernel raw sockets unavailable: ${(e as Error).message}`;
}
if (kernelProblem) {
  describe('behaviour over kernel raw sockets', () => { it('runs when the addon loads', { skip: kernelProblem }, () => undefined); });
} else {
  behaviour('kernel raw sockets', () => kernelStack);
}

// ---- what only the double can show

describe('over the in-memory double', () => {
  it('would-block: sends queue (getSendQueueSize/Count), then go out in order on writable', async () => {
    const stack = new MemStack();
    const mod = createDgram(stack);
    const server = await bound(mod);
    const client = await bound(mod);
    const port = server.address().port;
    const seen: string[] = [];
    server.on('message', (m: Buffer) => seen.push(m.toString()));
    stack.network.congest(true);
    const done: string[] = [];
    for (const m of ['one', 'three', '']) client.send(m, port, '127.0.0.1', (err, n) => done.push(`${m}:${err ? err.message : n}`));
    await tick();
    assert.equal(client.getSendQueueCount(), 3);
    assert.equal(client.getSendQueueSize(), 8);
    assert.deepEqual(done, [], 'no callback before the datagram is sent');
    stack.network.congest(false);
    await tick();
    assert.equal(client.getSendQueueCount(), 0);
    assert.equal(client.getSendQueueSize(), 0);
    assert.deepEqual(done, ['one:3', 'three:5', ':0']);
    assert.deepEqual(seen, ['one', 'three', '']);
    await closeAll(server, client);
  });

  it('would-block: a datagram behind queued ones waits its turn even when the socket is writable', async () => {
    const stack = new MemStack();
    const mod = createDgram(stack);
    const server = await bound(mod);
    const client = await bound(mod);
    const port = server.address().port;
    const seen: string[] = [];
    server.on('message', (m: Buffer) => seen.push(m.toString()));
    stack.network.congest(true);
    client.send('a', port, '127.0.0.1');
    await tick();
    stack.network.congest(false);
    client.send('b', port, '127.0.0.1');
    await tick();
    assert.deepEqual(seen, ['a', 'b']);
    await closeAll(server, client);
  });

  it('would-block: close cancels the queue (ECANCELED) after the close event', async () => {
    const stack = new MemStack();
    const mod = createDgram(stack);
    const client = await bound(mod);
    stack.network.congest(true);
    const order: string[] = [];
    client.send('x', 5000, '127.0.0.1', (err) => order.push(`send ${(err as NodeJS.ErrnoException).code}`));
    await tick();
    client.close(() => order.push('close'));
    await tick();
    assert.deepEqual(order, ['close', 'send ECANCELED']);
    stack.network.congest(false);
  });

  it('multicast: members of the group on the port receive; membership errors name the call', async () => {
    const mod = createDgram(new MemStack());
    const member = mod.createSocket('udp4');
    member.bind(0);
    await listening(member);
    assert.throws(() => mod.createSocket('udp4').addMembership('224.1.2.3'), { code: 'EBADF', syscall: 'addMembership' });
    member.addMembership('224.1.2.3');
    assert.throws(() => member.addMembership('224.1.2.3'), { code: 'EADDRINUSE', message: 'addMembership EADDRINUSE' });
    assert.throws(() => member.addMembership('1.2.3.4'), { code: 'EINVAL', syscall: 'addMembership' });
    const sender = mod.createSocket('udp4');
    const got = nextMessage(member);
    await sendP(sender, 'group', member.address().port, '224.1.2.3');
    assert.equal((await got)[0].toString(), 'group');
    member.dropMembership('224.1.2.3');
    assert.throws(() => member.dropMembership('224.1.2.3'), { code: 'EADDRNOTAVAIL', syscall: 'dropMembership' });
    await closeAll(member, sender);
  });

  it('source-specific multicast on raw sockets without it: ENOSYS, saying so', async () => {
    const st = new MemStack({ name: 'no-ssm' });
    const s = await bound(createDgram(st));
    assert.throws(() => s.addSourceSpecificMembership('10.0.0.1', '232.1.1.1'), {
      code: 'ENOSYS', syscall: 'addSourceSpecificMembership', message: /no-ssm/,
    });
    await closeAll(s);
  });

  it('bind({ fd }) on a user-space stack: a clear ERR_INVALID_ARG_VALUE, and the socket is still usable', async () => {
    const s = createDgram(new MemStack({ name: 'userland' })).createSocket('udp4');
    assert.throws(() => s.bind({ fd: 3 }), { code: 'ERR_INVALID_ARG_VALUE', message: /'userland' is a user-space stack/ });
    s.bind(0, '127.0.0.1');
    await listening(s);
    await closeAll(s);
  });

  it('bind({ raw }) of another stack: ERR_INVALID_ARG_VALUE', () => {
    const other = new MemStack();
    const raw = other.socket(AF_INET, SOCK_DGRAM);
    const s = createDgram(new MemStack()).createSocket('udp4');
    assert.throws(() => s.bind({ raw } as nodeDgram.BindOptions), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.raw/ });
    raw.close();
    s.close();
  });

  it("a truncated datagram is never delivered cut: 'error' EMSGSIZE from recvmsg", async () => {
    const stack = new MemStack();
    const mod = createDgram(stack);
    const raw = stack.socket(AF_INET, SOCK_DGRAM) as MemDgramSocket;
    raw.bind('127.0.0.1', 0);
    const original = raw.recvfrom.bind(raw);
    let first = true;
    raw.recvfrom = () => {
      const d = original();
      if (d && first) { first = false; return { ...d, truncated: true }; }
      return d;
    };
    const s = mod.createSocket('udp4');
    s.bind({ raw } as nodeDgram.BindOptions);
    const messages: string[] = [];
    s.on('message', (m: Buffer) => messages.push(m.toString()));
    const errored = once(s, 'error');
    const c = mod.createSocket('udp4');
    await sendP(c, 'cut', raw.localAddress().port, '127.0.0.1');
    await sendP(c, 'whole', raw.localAddress().port, '127.0.0.1');
    const [err] = await errored as [NodeJS.ErrnoException];
    assert.equal(err.code, 'EMSGSIZE');
    assert.equal(err.syscall, 'recvmsg');
    await tick();
    assert.deepEqual(messages, ['whole']);
    await closeAll(s, c);
  });

  it('an unref()d bound socket does not keep the process alive', () => {
    const helper = path.join(__dirname, 'helpers', 'memdgram.js');
    const script = `
      const { MemStack } = require(${JSON.stringify(helper)});
      const s = new MemStack().dgram.createSocket('udp4');
      s.bind(0, () => { s.unref(); setTimeout(() => {}, 10); });
    `;
    const r = spawnSync(process.execPath, ['-e', script], { timeout: 10000 });
    assert.equal(r.status, 0, `exited with ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
    const kept = spawnSync(process.execPath, ['-e', `${script.replace('s.unref();', '')} setTimeout(() => process.exit(7), 300);`], { timeout: 10000 });
    assert.equal(kept.status, 7, 'a ref()d one does');
  });

  it('works on a double with IPv4 only: udp6 bind reports the stack error', async () => {
    const mod = createDgram(new MemStack({ families: [AF_INET], network: new MemNetwork() }));
    const s = mod.createSocket('udp6');
    s.bind(0);
    const [err] = await once(s, 'error') as [NodeJS.ErrnoException];
    assert.equal(err.code, 'EAFNOSUPPORT');
    await closeAll(s);
  });
});
