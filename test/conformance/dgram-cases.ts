// Conformance cases for `dgram`: what Node's own test-dgram-* tests check, in our own words,
// written once against a Target and run against every stack kind. Same rules as net-cases.ts
// (whose harness this file uses): only target.server.* / target.client.*, everything tracked and
// closed, bounded time, argument errors compared with Node's own dgram.
import * as assert from 'node:assert/strict';
import type * as dgramNs from 'node:dgram';
import * as nodeDgram from 'node:dgram';
import { constants as osConstants } from 'node:os';
import { describe } from 'node:test';

import { assertThrowsLikeNode, delay, familyName, Scope, sha256, sideOf, tcase } from './net-cases';
import type { Side, Target } from './target';

type UdpSocket = dgramNs.Socket;
type RemoteInfo = dgramNs.RemoteInfo;
type ErrnoError = NodeJS.ErrnoException & { address?: string; port?: number };

/** the datagrams a socket receives, in order, whether or not someone is waiting yet */
class Inbox {
  private queue: [Buffer, RemoteInfo][] = [];
  private waiters: ((m: [Buffer, RemoteInfo]) => void)[] = [];
  count = 0;

  constructor(private scope: Scope, sock: UdpSocket, private label: string) {
    sock.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
      this.count++;
      const w = this.waiters.shift();
      if (w) w([msg, rinfo]);
      else this.queue.push([msg, rinfo]);
    });
  }

  get queued(): number { return this.queue.length; }

  next(what = 'a datagram'): Promise<[Buffer, RemoteInfo]> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    return this.scope.waitFor(new Promise((resolve) => this.waiters.push(resolve)), `${this.label}: ${what}`);
  }
}

export function dgramCases(target: Target): void {
  const S = sideOf(target, 'server');
  const C = sideOf(target, 'client');
  const FAM = familyName(target);
  const UDP: dgramNs.SocketType = target.family === 6 ? 'udp6' : 'udp4';
  const WILDCARD = target.family === 6 ? '::' : '0.0.0.0';
  /** the reference sockets (Node's own, on this machine's loopback) use the target's family */
  const REF_LOOPBACK = target.family === 6 ? '::1' : '127.0.0.1';
  /** the largest UDP payload of one IP datagram: 65535 - 20 (IPv4 header) - 8, or 65535 - 8 for IPv6 */
  const MAX_PAYLOAD = target.family === 6 ? 65527 : 65507;
  // documentation prefixes (TEST-NET-2, 2001:db8::/32): on no interface of any side
  const UNOWNED = target.family === 6 ? '2001:db8::dead:1' : '198.51.100.254';

  function socket(scope: Scope, side: Side, label: string, opts: Partial<dgramNs.SocketOptions> = {}): UdpSocket {
    return scope.udp(side.dgram.createSocket({ type: UDP, ...opts }), label);
  }

  /** a socket of `side` bound to its host on an ephemeral port */
  async function bound(scope: Scope, side: Side, label: string, opts: Partial<dgramNs.SocketOptions> = {}): Promise<{ sock: UdpSocket; port: number; inbox: Inbox }> {
    const sock = socket(scope, side, label, opts);
    const inbox = new Inbox(scope, sock, label);
    const listening = scope.wait(sock, 'listening', `${label} listening`);
    sock.bind(0, side.host);
    await listening;
    return { sock, port: sock.address().port, inbox };
  }

  /** send with a callback; resolves with what the callback got */
  function send(sock: UdpSocket, ...args: unknown[]): Promise<[ErrnoError | null, number | undefined]> {
    return new Promise((resolve) => {
      (sock.send as (...a: unknown[]) => void)(...args, (err: ErrnoError | null, bytes?: number) => resolve([err, bytes]));
    });
  }

  describe('dgram', () => {
    describe('sockets and binding', () => {
      tcase('createSocket with a bad type throws ERR_SOCKET_BAD_TYPE', async (scope) => {
        assertThrowsLikeNode(scope, "createSocket('udp5')", 'ERR_SOCKET_BAD_TYPE', () => C.dgram.createSocket('udp5' as never), () => nodeDgram.createSocket('udp5' as never));
        assertThrowsLikeNode(scope, 'createSocket({})', 'ERR_SOCKET_BAD_TYPE', () => C.dgram.createSocket({} as never), () => nodeDgram.createSocket({} as never));
      });

      tcase('createSocket(type) and createSocket({type}) give dgram.Socket instances', async (scope) => {
        const a = scope.udp(C.dgram.createSocket(UDP));
        const b = scope.udp(C.dgram.createSocket({ type: UDP }));
        assert.ok(a instanceof C.dgram.Socket);
        assert.ok(b instanceof C.dgram.Socket);
      });

      tcase('before bind: address(), setTTL() and setBroadcast() throw like Node (EBADF)', async (scope) => {
        const a = socket(scope, C, 'unbound');
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        assertThrowsLikeNode(scope, 'address() before bind', 'EBADF', () => a.address(), () => r.address());
        assertThrowsLikeNode(scope, 'setTTL() before bind', 'EBADF', () => a.setTTL(5), () => r.setTTL(5));
        assertThrowsLikeNode(scope, 'setBroadcast() before bind', 'EBADF', () => a.setBroadcast(true), () => r.setBroadcast(true));
        const e = (() => { try { a.address(); } catch (err) { return err as ErrnoError; } return undefined; })();
        assert.equal(e?.syscall, 'getsockname');
      });

      tcase("bind(port, address, cb): 'listening', then the callback; address() is set; bind returns this", async (scope) => {
        const sock = socket(scope, S, 'server');
        const order: string[] = [];
        sock.on('listening', () => order.push('listening'));
        const done = new Promise<void>((resolve) => {
          const r = sock.bind(0, S.host, () => { order.push('callback'); resolve(); });
          assert.equal(r, sock, 'bind returns this');
        });
        await scope.waitFor(done, 'bind callback');
        assert.deepEqual(order, ['listening', 'callback']);
        const a = sock.address();
        assert.deepEqual(Object.keys(a).sort(), ['address', 'family', 'port']);
        assert.equal(a.address, S.host);
        assert.equal(a.family, FAM);
        assert.ok(Number.isInteger(a.port) && a.port >= 1024 && a.port <= 65535, `ephemeral port ${a.port}`);
      });

      tcase('bind({port, address}) and bind() without address (the wildcard, still reachable at host)', async (scope) => {
        const a = socket(scope, S, 'options form');
        const la = scope.wait(a, 'listening');
        a.bind({ port: 0, address: S.host });
        await la;
        assert.equal(a.address().address, S.host);

        const w = socket(scope, S, 'wildcard');
        const inbox = new Inbox(scope, w, 'wildcard');
        const lw = scope.wait(w, 'listening');
        w.bind(0);
        await lw;
        assert.equal(w.address().address, WILDCARD, 'bind() without address binds the wildcard');
        const { sock: c } = await bound(scope, C, 'client');
        const [err] = await send(c, 'to the wildcard', w.address().port, S.host);
        assert.equal(err, null);
        const [msg, rinfo] = await inbox.next();
        assert.equal(msg.toString(), 'to the wildcard');
        assert.equal(rinfo.address, C.host);
      });

      tcase('bind twice throws ERR_SOCKET_ALREADY_BOUND', async (scope) => {
        const { sock } = await bound(scope, S, 'server');
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        // the reference: Node's own socket on this machine's loopback (not part of the target)
        await new Promise<void>((resolve) => r.bind(0, REF_LOOPBACK, () => resolve()));
        assertThrowsLikeNode(scope, 'second bind()', 'ERR_SOCKET_ALREADY_BOUND', () => sock.bind(0, S.host), () => r.bind(0, REF_LOOPBACK));
      });

      tcase("EADDRINUSE: 'error' with code, syscall bind, address, port and message", async (scope) => {
        const { port } = await bound(scope, S, 'first');
        const second = socket(scope, S, 'second');
        const errored = scope.wait<[ErrnoError]>(second, 'error');
        second.bind(port, S.host);
        const [err] = await errored;
        assert.equal(err.code, 'EADDRINUSE');
        assert.equal(err.errno, -osConstants.errno.EADDRINUSE);
        assert.equal(err.syscall, 'bind');
        assert.equal(err.address, S.host);
        assert.equal(err.port, port);
        assert.equal(err.message, `bind EADDRINUSE ${S.host}:${port}`);
      });

      tcase("EADDRNOTAVAIL: bind to an address that is not on this stack", async (scope) => {
        const sock = socket(scope, S, 'server');
        const errored = scope.wait<[ErrnoError]>(sock, 'error');
        sock.bind(0, UNOWNED);
        const [err] = await errored;
        assert.equal(err.code, 'EADDRNOTAVAIL');
        assert.equal(err.errno, -osConstants.errno.EADDRNOTAVAIL);
        assert.equal(err.syscall, 'bind');
        assert.equal(err.address, UNOWNED);
        assert.equal(err.message, `bind EADDRNOTAVAIL ${UNOWNED}`);
      });

      tcase('reuseAddr: two sockets can bind the same address and port', async (scope) => {
        const { port } = await bound(scope, S, 'first', { reuseAddr: true });
        const second = socket(scope, S, 'second', { reuseAddr: true });
        const listening = scope.wait(second, 'listening');
        second.bind(port, S.host);
        await listening;
        assert.equal(second.address().port, port);
      });

      tcase("send on an unbound socket binds it implicitly ('listening', address(), rinfo.port)", async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const c = socket(scope, C, 'client');
        const listening = scope.wait(c, 'listening', 'implicit bind');
        const [err, bytes] = await send(c, 'implicit', port, S.host);
        assert.deepEqual([err, bytes], [null, 8]);
        await listening;
        const a = c.address();
        assert.ok(a.port > 0, 'bound to a port');
        const [msg, rinfo] = await inbox.next();
        assert.equal(msg.toString(), 'implicit');
        assert.equal(rinfo.port, a.port, 'the datagram comes from the implicitly bound port');
        assert.equal(rinfo.address, C.host);
      });

      tcase('ref() and unref() return the socket', async (scope) => {
        const { sock } = await bound(scope, S, 'server');
        assert.equal(sock.unref(), sock);
        assert.equal(sock.ref(), sock);
      });
    });

    describe('send', () => {
      tcase('send overloads: string, Buffer, Uint8Array, array of chunks, offset/length', async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const { sock: c } = await bound(scope, C, 'client');
        const results: [ErrnoError | null, number | undefined][] = [];
        results.push(await send(c, 'a string', port, S.host));
        results.push(await send(c, Buffer.from('a buffer'), port, S.host));
        results.push(await send(c, new Uint8Array([0x75, 0x38]), port, S.host));
        results.push(await send(c, [Buffer.from('one '), 'two ', new Uint8Array([0x33])], port, S.host));
        results.push(await send(c, Buffer.from('0123456789'), 2, 5, port, S.host));
        results.push(await send(c, 'abcdef', 1, 3, port, S.host));
        assert.deepEqual(results, [[null, 8], [null, 8], [null, 2], [null, 9], [null, 5], [null, 3]], 'callbacks get (null, bytes)');
        const got: string[] = [];
        for (let i = 0; i < 6; i++) got.push((await inbox.next(`datagram ${i}`))[0].toString());
        assert.deepEqual(got, ['a string', 'a buffer', 'u8', 'one two 3', '23456', 'bcd']);
      });

      tcase('send validates its arguments like Node', async (scope) => {
        const { sock: c } = await bound(scope, C, 'client');
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        const H = S.host;
        const call = (s: UdpSocket, ...a: unknown[]) => () => (s.send as (...x: unknown[]) => void)(...a);
        assertThrowsLikeNode(scope, 'send(1, ...)', 'ERR_INVALID_ARG_TYPE', call(c, 1, 9, H), call(r, 1, 9, H));
        for (const port of [0, 65536, -1]) {
          assertThrowsLikeNode(scope, `send('x', ${port}, host)`, 'ERR_SOCKET_BAD_PORT', call(c, 'x', port, H), call(r, 'x', port, H));
        }
        assertThrowsLikeNode(scope, "send('x') unconnected", 'ERR_SOCKET_BAD_PORT', call(c, 'x'), call(r, 'x'));
        assertThrowsLikeNode(scope, "send('x', port, 5)", 'ERR_INVALID_ARG_TYPE', call(c, 'x', 9, 5), call(r, 'x', 9, 5));
        assertThrowsLikeNode(scope, 'send(buf, offset out of bounds, ...)', 'ERR_BUFFER_OUT_OF_BOUNDS',
          call(c, Buffer.alloc(4), 5, 1, 9, H), call(r, Buffer.alloc(4), 5, 1, 9, H));
        assertThrowsLikeNode(scope, 'send(buf, offset, length out of bounds, ...)', 'ERR_BUFFER_OUT_OF_BOUNDS',
          call(c, Buffer.alloc(4), 1, 4, 9, H), call(r, Buffer.alloc(4), 1, 4, 9, H));
      });

      tcase('rinfo: address, family, port and size of the sender', async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const { sock: c, port: cport } = await bound(scope, C, 'client');
        await send(c, Buffer.alloc(123, 7), port, S.host);
        const [msg, rinfo] = await inbox.next();
        assert.ok(Buffer.isBuffer(msg), "'message' gives a Buffer");
        assert.deepEqual({ ...rinfo }, { address: C.host, family: FAM, port: cport, size: 123 });
      });

      tcase('a reply to rinfo reaches the sender, from the server host', async (scope) => {
        const { sock: s, port } = await bound(scope, S, 'server');
        s.on('message', (m: Buffer, r: RemoteInfo) => { s.send(Buffer.concat([Buffer.from('re: '), m]), r.port, r.address); });
        const { sock: c, inbox } = await bound(scope, C, 'client');
        await send(c, 'ping', port, S.host);
        const [msg, rinfo] = await inbox.next('the reply');
        assert.equal(msg.toString(), 're: ping');
        assert.deepEqual({ ...rinfo }, { address: S.host, family: FAM, port, size: 8 });
      });

      tcase('a zero-length datagram is sent (bytes 0) and received (size 0)', async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const { sock: c } = await bound(scope, C, 'client');
        assert.deepEqual(await send(c, Buffer.alloc(0), port, S.host), [null, 0]);
        const [msg, rinfo] = await inbox.next();
        assert.equal(msg.length, 0);
        assert.equal(rinfo.size, 0);
        await send(c, 'after', port, S.host);
        assert.equal((await inbox.next())[0].toString(), 'after', 'the empty datagram is one datagram, not nothing');
      });

      tcase(`EMSGSIZE for a ${MAX_PAYLOAD + 1}-byte datagram; ${MAX_PAYLOAD} bytes arrive whole`, async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const { sock: c } = await bound(scope, C, 'client');
        const [err, bytes] = await send(c, Buffer.alloc(MAX_PAYLOAD + 1), port, S.host);
        assert.ok(err, `a ${MAX_PAYLOAD + 1}-byte datagram must fail`);
        assert.equal(err.code, 'EMSGSIZE');
        assert.equal(err.errno, -osConstants.errno.EMSGSIZE);
        assert.equal(err.syscall, 'send');
        assert.equal(err.address, S.host);
        assert.equal(err.port, port);
        assert.equal(err.message, `send EMSGSIZE ${S.host}:${port}`);
        assert.equal(bytes, undefined);
        const big = Buffer.alloc(MAX_PAYLOAD);
        for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
        assert.deepEqual(await send(c, big, port, S.host), [null, MAX_PAYLOAD]);
        const [msg] = await inbox.next('the largest datagram');
        assert.equal(msg.length, MAX_PAYLOAD);
        assert.equal(sha256(msg), sha256(big));
      });

      tcase('1000 datagrams arrive complete and in order (window of 32)', async (scope) => {
        const { sock: s, port } = await bound(scope, S, 'server');
        const { sock: c } = await bound(scope, C, 'client');
        const N = 1000;
        let received = 0;
        let sent = 0;
        const done = new Promise<void>((resolve) => {
          const pump = () => {
            while (sent < N && sent - received < 32) {
              const b = Buffer.alloc(200, sent & 0xff);
              b.writeUInt32BE(sent, 0);
              c.send(b, port, S.host);
              sent++;
            }
          };
          s.on('message', scope.guard((m: Buffer) => {
            assert.equal(m.length, 200);
            assert.equal(m.readUInt32BE(0), received, `datagram ${received} arrives in order`);
            received++;
            if (received === N) resolve();
            else pump();
          }));
          pump();
        });
        await scope.waitFor(done, `all ${N} datagrams (got ${received})`);
      }, { timeout: 8000 });
    });

    describe('connect and disconnect', () => {
      tcase("connect(port, host, cb): 'connect', remoteAddress(), send without an address", async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const c = socket(scope, C, 'client');
        const order: string[] = [];
        c.on('connect', () => order.push('connect'));
        await scope.waitFor(new Promise<void>((resolve) => c.connect(port, S.host, () => { order.push('callback'); resolve(); })), 'connect callback');
        assert.deepEqual(order, ['connect', 'callback']);
        assert.deepEqual({ ...c.remoteAddress() }, { address: S.host, family: FAM, port });
        assert.equal(c.address().address, C.host, 'a connected socket has the local address of its route');
        assert.deepEqual(await send(c, 'connected'), [null, 9]);
        assert.deepEqual(await send(c, Buffer.from('0123456789'), 8, 2), [null, 2]);
        const [m1, r1] = await inbox.next();
        const [m2] = await inbox.next();
        assert.equal(m1.toString(), 'connected');
        assert.equal(m2.toString(), '89');
        assert.equal(r1.port, c.address().port);
      });

      tcase('connected: send with an address and a second connect throw ERR_SOCKET_DGRAM_IS_CONNECTED', async (scope) => {
        const { port } = await bound(scope, S, 'server');
        const c = socket(scope, C, 'client');
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        const { port: refPort } = await bound(scope, S, 'reference target');
        await Promise.all([
          new Promise<void>((resolve) => c.connect(port, S.host, () => resolve())),
          // the reference: Node's own socket on this machine's loopback (not part of the target)
          new Promise<void>((resolve) => r.connect(refPort, REF_LOOPBACK, () => resolve())),
        ]);
        const never = () => scope.fail(new Error('send callback called for a send that threw'));
        assertThrowsLikeNode(scope, 'send(msg, port, address, cb) when connected', 'ERR_SOCKET_DGRAM_IS_CONNECTED',
          () => c.send('x', port, S.host, never), () => r.send('x', refPort, REF_LOOPBACK, never));
        assertThrowsLikeNode(scope, 'send(buf, offset, length, port, address) when connected', 'ERR_SOCKET_DGRAM_IS_CONNECTED',
          () => c.send(Buffer.from('xy'), 0, 2, port, S.host), () => r.send(Buffer.from('xy'), 0, 2, refPort, REF_LOOPBACK));
        assertThrowsLikeNode(scope, 'connect when connected', 'ERR_SOCKET_DGRAM_IS_CONNECTED',
          () => c.connect(port, S.host), () => r.connect(refPort, REF_LOOPBACK));
      });

      tcase('not connected: remoteAddress() and disconnect() throw ERR_SOCKET_DGRAM_NOT_CONNECTED', async (scope) => {
        const { sock } = await bound(scope, C, 'client');
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        assertThrowsLikeNode(scope, 'remoteAddress()', 'ERR_SOCKET_DGRAM_NOT_CONNECTED', () => sock.remoteAddress(), () => r.remoteAddress());
        assertThrowsLikeNode(scope, 'disconnect()', 'ERR_SOCKET_DGRAM_NOT_CONNECTED', () => sock.disconnect(), () => r.disconnect());
      });

      tcase('connect with a bad port throws ERR_SOCKET_BAD_PORT', async (scope) => {
        const c = socket(scope, C, 'client');
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        for (const port of [0, 65536]) {
          assertThrowsLikeNode(scope, `connect(${port})`, 'ERR_SOCKET_BAD_PORT', () => c.connect(port, S.host), () => r.connect(port, S.host));
        }
      });

      tcase('disconnect(): remoteAddress() throws again and sends need an address again', async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const c = socket(scope, C, 'client');
        await new Promise<void>((resolve) => c.connect(port, S.host, () => resolve()));
        c.disconnect();
        assert.throws(() => c.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
        assert.throws(() => c.send('x'), { code: 'ERR_SOCKET_BAD_PORT' }, 'send without an address after disconnect');
        assert.deepEqual(await send(c, 'addressed', port, S.host), [null, 9]);
        assert.equal((await inbox.next())[0].toString(), 'addressed');
        const again = scope.wait(c, 'connect');
        c.connect(port, S.host);
        await again;
        assert.equal(c.remoteAddress().port, port, 'can connect again after disconnect');
      });

      tcase("connected to a closed port: the port-unreachable reply gives 'error' ECONNREFUSED (recvmsg)", async (scope) => {
        const { sock: gone, port } = await bound(scope, S, 'closed port');
        await new Promise<void>((resolve) => gone.close(() => resolve()));
        const c = socket(scope, C, 'client');
        await new Promise<void>((resolve) => c.connect(port, S.host, () => resolve()));
        const errored = scope.wait<[ErrnoError]>(c, 'error');
        assert.deepEqual(await send(c, 'anyone?'), [null, 7], 'the send itself succeeds');
        const [err] = await errored;
        assert.equal(err.code, 'ECONNREFUSED');
        assert.equal(err.errno, -osConstants.errno.ECONNREFUSED);
        assert.equal(err.syscall, 'recvmsg');
        assert.equal(err.message, 'recvmsg ECONNREFUSED');
      });

      tcase('a connected socket receives only from its peer', async (scope) => {
        const { sock: peer, port } = await bound(scope, S, 'peer');
        const { sock: stranger } = await bound(scope, S, 'stranger');
        const c = socket(scope, C, 'client');
        const inbox = new Inbox(scope, c, 'client');
        await new Promise<void>((resolve) => c.connect(port, S.host, () => resolve()));
        const cport = c.address().port;
        assert.deepEqual(await send(stranger, 'from a stranger', cport, C.host), [null, 15]);
        assert.deepEqual(await send(peer, 'from the peer', cport, C.host), [null, 13]);
        const [msg, rinfo] = await inbox.next('the peer\'s datagram');
        assert.equal(msg.toString(), 'from the peer', 'the stranger\'s datagram (sent first) must be filtered out');
        assert.equal(rinfo.port, port);
      });
    });

    describe('options and closing', () => {
      tcase('setTTL: 1..255 return the value; 0 and 256 throw EINVAL; a non-number throws ERR_INVALID_ARG_TYPE', async (scope) => {
        const { sock } = await bound(scope, C, 'client');
        for (const ttl of [1, 64, 255]) assert.equal(sock.setTTL(ttl), ttl, `setTTL(${ttl})`);
        for (const ttl of [0, 256]) {
          assert.throws(() => sock.setTTL(ttl), (e: ErrnoError) => {
            assert.equal(e.code, 'EINVAL', `setTTL(${ttl}) code`);
            assert.equal(e.syscall, 'setTTL', `setTTL(${ttl}) syscall`);
            assert.equal(e.message, 'setTTL EINVAL', `setTTL(${ttl}) message`);
            return true;
          });
        }
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        assertThrowsLikeNode(scope, "setTTL('x')", 'ERR_INVALID_ARG_TYPE', () => sock.setTTL('x' as never), () => r.setTTL('x' as never));
      });

      tcase('setBroadcast(true/false) on a bound socket does not throw, and sending still works', async (scope) => {
        const { port, inbox } = await bound(scope, S, 'server');
        const { sock: c } = await bound(scope, C, 'client');
        assert.equal(c.setBroadcast(true), undefined);
        assert.deepEqual(await send(c, 'with broadcast on', port, S.host), [null, 17]);
        assert.equal(c.setBroadcast(false), undefined);
        assert.deepEqual(await send(c, 'and off', port, S.host), [null, 7]);
        assert.equal((await inbox.next())[0].toString(), 'with broadcast on');
        assert.equal((await inbox.next())[0].toString(), 'and off');
      });

      tcase("close(cb): returns this, 'close' once, then the callback; no more datagrams", async (scope) => {
        const { sock, port, inbox } = await bound(scope, S, 'server');
        const events: string[] = [];
        sock.on('close', () => events.push('close'));
        const closed = new Promise<void>((resolve) => {
          const r = sock.close(() => { events.push('callback'); resolve(); });
          assert.equal(r, sock, 'close returns this');
        });
        await scope.waitFor(closed, 'close callback');
        assert.deepEqual(events, ['close', 'callback']);
        const { sock: c } = await bound(scope, C, 'client');
        await send(c, 'into the void', port, S.host);
        await delay(50); // observation window: a closed socket must not deliver
        assert.equal(inbox.count, 0, "'message' after close");
        assert.deepEqual(events, ['close', 'callback'], "'close' once");
      });

      tcase('after close: close, send, bind and address() throw ERR_SOCKET_DGRAM_NOT_RUNNING', async (scope) => {
        const { sock } = await bound(scope, S, 'server');
        const r = scope.udp(nodeDgram.createSocket(UDP), 'reference');
        await Promise.all([
          new Promise<void>((resolve) => sock.close(() => resolve())),
          new Promise<void>((resolve) => r.close(() => resolve())),
        ]);
        assertThrowsLikeNode(scope, 'second close()', 'ERR_SOCKET_DGRAM_NOT_RUNNING', () => sock.close(), () => r.close());
        assertThrowsLikeNode(scope, 'send after close', 'ERR_SOCKET_DGRAM_NOT_RUNNING', () => sock.send('x', 9, S.host), () => r.send('x', 9, S.host));
        assertThrowsLikeNode(scope, 'bind after close', 'ERR_SOCKET_DGRAM_NOT_RUNNING', () => sock.bind(0, S.host), () => r.bind(0, S.host));
        assertThrowsLikeNode(scope, 'address() after close', 'ERR_SOCKET_DGRAM_NOT_RUNNING', () => sock.address(), () => r.address());
      });
    });
  });
}
