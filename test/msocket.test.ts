// The msocket API on the kernel stack: stack lookup and its errors, raw sockets with
// Berkeley semantics, SOCK_DEFAULT, thread and scoped defaults, raw sockets into net/dgram.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';

import * as ms from '../lib/msocket';
import type { RawSocket } from '../lib/raw';

function once(raw: RawSocket, ev: 'readable' | 'writable'): Promise<void> {
  return new Promise((resolve) => raw.once(ev, () => resolve()));
}

describe('stack()', () => {
  it("'kernel' is this namespace's kernel stack with Node's own net and dgram", () => {
    const k = ms.stack('kernel');
    assert.equal(k.kind, 'kernel');
    assert.equal(k.net, require('net'));
    assert.equal(k.dgram, require('dgram'));
    assert.equal(k.supports(ms.AF_INET), true);
    assert.equal(k.supports(ms.AF_INET6), true);
    assert.equal(k.supports(1), false);
  });
  it('ENOENT for a name that is no stack', () => {
    assert.throws(() => ms.stack('no-such'), { code: 'ENOENT', syscall: 'stack' });
  });
  it('ENOTSUP for a path that exists but is not a stack', () => {
    assert.throws(() => ms.stack('/etc/hostname'), { code: 'ENOTSUP', syscall: 'stack' });
  });
  it('ERR_INVALID_ARG_TYPE for a non-string', () => {
    assert.throws(() => ms.stack(42 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
  });
});

describe('msocket() on the kernel stack', () => {
  it('stream: bind, listen, accept, connect, send, recv, shutdown, EOF, close', async () => {
    const l = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    l.bind('127.0.0.1', 0);
    l.listen(16);
    const { port } = l.localAddress();
    assert.ok(port > 0);
    assert.ok(l.fd >= 0, 'a kernel raw socket exposes its fd');
    assert.equal(l.accept(), null, 'accept does not block');
    const c = ms.msocket(ms.stack('kernel'), ms.AF_INET, ms.SOCK_STREAM);
    l.watch(true, false);
    const ready = once(l, 'readable');
    await c.connect('127.0.0.1', port);
    await ready;
    const a = l.accept();
    assert.ok(a);
    assert.deepEqual(a.remoteAddress(), c.localAddress());
    assert.deepEqual(c.remoteAddress(), { address: '127.0.0.1', port, family: 'IPv4' });
    assert.equal(c.send(Buffer.from('ping')), 4);
    a.watch(true, false);
    await once(a, 'readable');
    assert.equal(a.recv()!.toString(), 'ping');
    assert.equal(a.recv(), null, 'nothing more: would block');
    c.shutdown(ms.SHUT_WR);
    await once(a, 'readable');
    const eof = a.recv();
    assert.ok(eof && eof.length === 0, 'an empty buffer at end of stream');
    assert.equal(a.send(Buffer.from('pong')), 4, 'half-closed: the other direction still works');
    c.watch(true, false);
    await once(c, 'readable');
    assert.equal(c.recv()!.toString(), 'pong');
    for (const s of [a, c, l]) s.close();
    assert.equal(l.closed, true);
    l.close(); // idempotent
  });

  it('connect to a closed port rejects ECONNREFUSED shaped like Node', async () => {
    const probe = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    probe.bind('127.0.0.1', 0);
    const port = probe.localAddress().port;
    probe.close();
    const c = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    await assert.rejects(c.connect('127.0.0.1', port), {
      code: 'ECONNREFUSED', syscall: 'connect', address: '127.0.0.1', port, errno: -111,
      message: `connect ECONNREFUSED 127.0.0.1:${port}`,
    });
    c.close();
  });

  it('bind to a port in use: EADDRINUSE', () => {
    const a = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    a.bind('127.0.0.1', 0);
    a.listen();
    const port = a.localAddress().port;
    const b = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    assert.throws(() => b.bind('127.0.0.1', port), { code: 'EADDRINUSE', syscall: 'bind', port });
    a.close(); b.close();
  });

  it('datagrams: sendto/recvfrom, zero length, connect, EMSGSIZE', async () => {
    const a = ms.msocket('kernel', 'AF_INET', 'SOCK_DGRAM');
    a.bind('127.0.0.1', 0);
    const b = ms.msocket(null, 'AF_INET', 'SOCK_DGRAM');
    b.bind('127.0.0.1', 0);
    a.watch(true, false);
    assert.equal(b.sendto(Buffer.alloc(0), '127.0.0.1', a.localAddress().port), 0);
    await once(a, 'readable');
    const d = a.recvfrom()!;
    assert.equal(d.data.length, 0);
    assert.deepEqual({ address: d.address, port: d.port, family: d.family }, b.localAddress());
    await b.connect('127.0.0.1', a.localAddress().port);
    assert.equal(b.send(Buffer.from('x')), 1);
    await once(a, 'readable');
    assert.equal(a.recvfrom()!.data.toString(), 'x');
    assert.throws(() => b.send(Buffer.alloc(65508)), { code: 'EMSGSIZE', syscall: 'send' });
    b.disconnect();
    assert.equal(b.remoteAddress(), null);
    a.close(); b.close();
  });

  it('IPv6 on ::1', async () => {
    const l = ms.msocket('kernel', 'AF_INET6', 'SOCK_STREAM');
    l.bind('::1', 0);
    l.listen();
    const c = ms.msocket('kernel', 'AF_INET6', 'SOCK_STREAM');
    await c.connect('::1', l.localAddress().port);
    assert.equal(c.localAddress().family, 'IPv6');
    c.close(); l.close();
  });

  it('socket options', () => {
    const s = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    s.setOption('SO_REUSEADDR', true);
    assert.equal(s.getOption('SO_REUSEADDR'), 1);
    s.setNoDelay(true);
    assert.equal(s.getOption('TCP_NODELAY'), 1);
    s.setKeepAlive(true, 5000);
    assert.equal(s.getOption('SO_KEEPALIVE'), 1);
    assert.equal(s.getOption('TCP_KEEPIDLE'), 5);
    assert.equal(s.getOption('SO_TYPE'), ms.SOCK_STREAM);
    s.close();
    assert.throws(() => s.getOption('SO_TYPE'), { code: 'EBADF' });
  });

  it('argument errors: bad domain, type, family not supported', () => {
    assert.throws(() => ms.msocket('kernel', 'AF_BOGUS', 'SOCK_STREAM'), { code: 'EAFNOSUPPORT' });
    assert.throws(() => ms.msocket('kernel', 1, 'SOCK_STREAM'), { code: 'EAFNOSUPPORT' });
    assert.throws(() => ms.msocket('kernel', 'AF_INET', 'SOCK_BOGUS'), { code: 'EINVAL' });
    assert.throws(() => ms.msocket('kernel', 'AF_INET', 3), { code: 'EPROTONOSUPPORT' });
    assert.throws(() => ms.msocket('kernel', {} as unknown as string, 'SOCK_STREAM'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => ms.msocket('no-such-stack', 'AF_INET', 'SOCK_STREAM'), { code: 'ENOENT' });
    assert.throws(() => ms.msocket(null, 'AF_INET', 'SOCK_DEFAULT'), { code: 'EINVAL' });
  });
});

describe('default stacks', () => {
  const other = ms.kernelStackWithOwnClasses();
  it('SOCK_DEFAULT sets the default of one family, or of all with AF_UNSPEC', () => {
    try {
      assert.equal(ms.msocket(other, 'AF_INET6', 'SOCK_DEFAULT'), 0);
      assert.equal(ms.getDefaultStack('AF_INET6'), other);
      assert.equal(ms.getDefaultStack('AF_INET'), ms.kernelStack);
      const s = ms.msocket(null, 'AF_INET6', 'SOCK_DGRAM');
      assert.equal(s.stack, other);
      s.close();
      assert.equal(ms.msocket(ms.kernelStack, 0, 'SOCK_DEFAULT'), 0);
      assert.equal(ms.getDefaultStack('AF_INET6'), ms.kernelStack);
    } finally {
      ms.setDefaultStack(ms.kernelStack);
    }
  });

  it('withStack scopes the default to fn and its async work, and nests', async () => {
    assert.equal(ms.getDefaultStack(), ms.kernelStack);
    const seen: string[] = [];
    const inner = ms.withStack(other, async () => {
      await new Promise((r) => setTimeout(r, 5));
      seen.push(ms.getDefaultStack() === other ? 'other' : 'kernel');
      await ms.withStack(ms.kernelStack, async () => {
        await new Promise((r) => setImmediate(r));
        seen.push(ms.getDefaultStack() === ms.kernelStack ? 'kernel' : 'other');
      });
      seen.push(ms.getDefaultStack() === other ? 'other' : 'kernel');
    });
    // work outside the scope, interleaved with it (which timer fires first depends on load, so
    // its observation is kept apart from the scope's sequence)
    let outsideSaw = '';
    const outside = (async () => { await new Promise((r) => setTimeout(r, 1)); outsideSaw = ms.getDefaultStack() === ms.kernelStack ? 'kernel' : 'other'; })();
    await Promise.all([inner, outside]);
    assert.deepEqual(seen, ['other', 'kernel', 'other']);
    assert.equal(outsideSaw, 'kernel');
  });

  it('module-level net and dgram follow the current default', async () => {
    const nodeNet = require('net');
    const server = ms.net.createServer();
    assert.ok(server instanceof nodeNet.Server, 'kernel default: Node\'s own server');
    server.close();
    await ms.withStack(other, async () => {
      const s2 = ms.net.createServer();
      assert.ok(!(s2 instanceof nodeNet.Server), 'scoped default: that stack\'s classes');
      assert.ok(s2 instanceof ms.net.Server);
      const u = ms.dgram.createSocket('udp4');
      assert.ok(u instanceof ms.dgram.Socket);
      u.close();
    });
  });
});

describe('raw sockets into net and dgram objects', () => {
  it('toNetServer and toNetSocket on the kernel stack hand the fd to Node', async () => {
    const l = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    l.bind('127.0.0.1', 0);
    l.listen();
    const port = l.localAddress().port;
    const server = ms.toNetServer(l, (sock) => sock.pipe(sock));
    const raw = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    await raw.connect('127.0.0.1', port);
    const sock = ms.toNetSocket(raw);
    const echoed = await new Promise<string>((resolve, reject) => {
      let got = '';
      sock.on('data', (d) => { got += d; if (got.length >= 5) resolve(got); });
      sock.on('error', reject);
      sock.write('hello');
    });
    assert.equal(echoed, 'hello');
    assert.equal(raw.closed, true, 'the raw socket gave its fd away');
    sock.destroy();
    await new Promise((r) => server.close(r));
  });

  it('toDgramSocket wraps a bound datagram socket', async () => {
    const raw = ms.msocket('kernel', 'AF_INET', 'SOCK_DGRAM');
    raw.bind('127.0.0.1', 0);
    const port = raw.localAddress().port;
    const sock = ms.toDgramSocket(raw);
    const got = new Promise<string>((r) => sock.once('message', (m) => r(m.toString())));
    const tx = ms.msocket('kernel', 'AF_INET', 'SOCK_DGRAM');
    tx.sendto(Buffer.from('dgram'), '127.0.0.1', port);
    assert.equal(await got, 'dgram');
    tx.close();
    sock.close();
  });
});

describe('descriptors', () => {
  it('closing sockets returns every descriptor', async () => {
    const count = () => fs.readdirSync('/proc/self/fd').length;
    const before = count();
    const socks = Array.from({ length: 50 }, () => ms.msocket('kernel', 'AF_INET', 'SOCK_DGRAM'));
    assert.ok(count() >= before + 50);
    for (const s of socks) s.close();
    assert.equal(count(), before);
  });
});
