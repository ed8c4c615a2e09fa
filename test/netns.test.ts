// Kernel network namespaces as stacks: stack('/var/run/netns/NAME' | '/proc/PID/ns/net' |
// 'netns:NAME') and newStack({ kind: 'netns' }). Servers and clients land in the namespace and
// nowhere else; Node's own net/dgram behaviour is kept; withStack scopes; UDP; a new
// namespace made by an unprivileged user; the errors; TAP interfaces and the frame pump; the
// gateway example; teardown with the stack and with a worker.
//
// Each test makes its own namespaces (`ip netns add ms<tag>-<pid>`) and removes them in after
// hooks, failed or not. Traffic stays on loopback or inside namespaces the test made.
// Missing root or tools: the test skips with the reason printed, or fails under CI=true.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';

import { startGateway } from '../examples/gateway';
import { runAsNobody } from './helpers/nobody';
import * as ms from '../lib/msocket';
import { KernelRawSocket } from '../lib/stacks/kernel';
import { newNetnsStack, NetnsStack, setTapLinkAttacher, type NetnsTap } from '../lib/stacks/netns';

const CI = process.env.CI === 'true';
const ROOT = path.join(__dirname, '..', '..');
const isRoot = process.getuid?.() === 0;
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

// ---- what the tests need, probed once

function probeIpNetns(): string | null {
  if (!has('ip')) return 'iproute2 (ip) is not installed';
  if (!isRoot) return 'not root: ip netns add needs CAP_SYS_ADMIN';
  const name = `msprobe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add does not work here: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', name]);
  return null;
}

function probeUnprivileged(): string | null {
  if (!isRoot) return 'not root: cannot switch to uid 65534 to test the unprivileged path';
  if (!has('setpriv')) return 'setpriv (util-linux) is not installed';
  if (!has('unshare')) return 'unshare (util-linux) is not installed';
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'unshare', '-rn', 'true'], { encoding: 'utf8' });
  if (r.status !== 0) return `unprivileged user namespaces are not allowed here: ${r.stderr.trim()}`;
  return null;
}

const noIpNetns = probeIpNetns();
const noUnprivileged = probeUnprivileged();
const noTun = !isRoot ? 'not root' : fs.existsSync('/dev/net/tun') ? null : '/dev/net/tun is missing';

/** a test that needs something: runs, or (missing) fails under CI=true, skips with the reason otherwise */
function itNeeds(missing: string | null, name: string, fn: (t: TestContext) => Promise<void> | void, timeout = 60_000): void {
  if (!missing) { it(name, { timeout }, fn); return; }
  if (CI) { it(name, () => assert.fail(`${missing} (CI=true: a missing privilege or tool is a failure)`)); return; }
  console.log(`# skipped "${name}": ${missing}`);
  it(name, { skip: missing }, () => undefined);
}

// ---- namespaces made by the tests; removed in after hooks, and at exit whatever happens

const madeNamespaces = new Set<string>();
process.on('exit', () => { for (const n of madeNamespaces) spawnSync('ip', ['netns', 'del', n]); });

function addNamespace(tag: string): string {
  const name = `ms${tag}-${process.pid}`;
  spawnSync('ip', ['netns', 'del', name]);  // a leftover of an earlier crash with the same pid
  // `ip netns add` sets up the /run/netns mount on first use, which can race with another
  // `ip` doing the same: try again
  for (let attempt = 1; ; attempt++) {
    const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
    if (r.status === 0) break;
    if (attempt === 3) throw new Error(`ip netns add ${name}: ${r.stderr.trim()}`);
    spawnSync('sleep', ['0.2']);
  }
  madeNamespaces.add(name);
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

function delNamespace(name: string): void {
  spawnSync('ip', ['netns', 'del', name]);
  madeNamespaces.delete(name);
}

/** `ss -H` listing of the namespace (or of this one with ns null) */
function ss(ns: string | null, flags: string): string {
  const args = ns ? ['netns', 'exec', ns, 'ss', '-H', flags] : ['-H', flags];
  return execFileSync(ns ? 'ip' : 'ss', args, { encoding: 'utf8' });
}

const safeRead = (f: string) => { try { return fs.readFileSync(f, 'utf8'); } catch { return ''; } };
const listensOn = (listing: string, addr: string) => listing.split('\n').some((l) => l.split(/\s+/).includes(addr));
const sleep = (ms_: number) => new Promise((r) => setTimeout(r, ms_));

// ---- small helpers over net/dgram

function echoServer(netMod: typeof net, reply?: string): net.Server {
  return netMod.createServer({ allowHalfOpen: true }, (c) => {
    if (reply !== undefined) { c.end(reply); c.resume(); return; }
    c.pipe(c);
  });
}

async function listen(server: net.Server, port: number, host?: string): Promise<number> {
  server.listen(port, host);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** connect, send, half-close, collect the answer until its end */
async function request(netMod: typeof net, port: number, host: string, send = 'ping'): Promise<string> {
  const c = netMod.connect(port, host);
  let got = '';
  c.setEncoding('utf8');
  c.on('data', (d: string) => { got += d; });
  c.end(send);
  await once(c, 'close');
  return got;
}

/** the error a connection attempt ends with */
async function connectError(netMod: typeof net, port: number, host: string): Promise<NodeJS.ErrnoException> {
  const c = netMod.connect(port, host);
  const [err] = await once(c, 'error') as [NodeJS.ErrnoException];
  c.destroy();
  return err;
}

/** the port is free in this thread's namespace (so a server seen there would be ours) */
async function assertFreeHere(port: number): Promise<void> {
  const probe = net.createServer();
  await listen(probe, port, '127.0.0.1');
  await new Promise((r) => probe.close(r));
}

async function closeServer(s: net.Server): Promise<void> {
  if (!s.listening) return;
  await new Promise((r) => s.close(r));
}

// ==========================================================================================

describe('a namespace stack: sockets land in its namespace and nowhere else', () => {
  let A = '';
  let B = '';
  let sA: ms.Stack;
  let sB: ms.Stack;
  const servers: net.Server[] = [];
  before(() => {
    if (noIpNetns) return;
    A = addNamespace('A');
    B = addNamespace('B');
    sA = ms.stack(`netns:${A}`);
    sB = ms.stack(`/var/run/netns/${B}`);
  });
  after(async () => {
    for (const s of servers) await closeServer(s).catch(() => undefined);
    sA?.close();
    sB?.close();
    if (A) delNamespace(A);
    if (B) delNamespace(B);
  });

  itNeeds(noIpNetns, "stack('netns:NAME'), the file and /proc/PID/ns/net name the same stack, of kind 'netns'", () => {
    assert.equal(sA.kind, 'netns');
    assert.equal(sA.name, `netns:${A}`);
    assert.equal(ms.stack(`/var/run/netns/${A}`), sA, 'the same namespace by another path is the same stack');
    const s = sA as NetnsStack;
    assert.equal(ms.stack(`/proc/${s.pid}/ns/net`), sA, "the helper's /proc/PID/ns/net is that namespace too");
    assert.notEqual(sA, sB);
    // closing a stack that is this thread's default leaves the kernel stack as the default
    const again = ms.stack(`/proc/${s.pid}/ns/net`);
    ms.setDefaultStack(again);
    assert.equal(ms.getDefaultStack(), sA);
    sA.close();
    assert.equal(ms.getDefaultStack(), ms.kernelStack);
    sA = ms.stack(`netns:${A}`);
    assert.notEqual(sA, again, 'a closed stack is not handed out again');
    assert.equal(sA.supports(ms.AF_INET), true);
    assert.equal(sA.supports(ms.AF_INET6), true);
    assert.equal(sA.supports(1), false);
  });

  itNeeds(noIpNetns, 'a server on 127.0.0.1 in A is reachable from stack A only: not from the root namespace, not from B; ss in A shows it', async () => {
    const server = echoServer(sA.net);
    servers.push(server);
    const port = await listen(server, 0, '127.0.0.1');
    assert.equal(await request(sA.net, port, '127.0.0.1', 'hello A'), 'hello A');

    await assertFreeHere(port);
    const fromRoot = await connectError(net, port, '127.0.0.1');
    assert.equal(fromRoot.code, 'ECONNREFUSED', 'the root namespace does not see it');
    const fromB = await connectError(sB.net, port, '127.0.0.1');
    assert.equal(fromB.code, 'ECONNREFUSED', 'namespace B does not see it');
    assert.equal(fromB.message, `connect ECONNREFUSED 127.0.0.1:${port}`);

    assert.ok(listensOn(ss(A, '-tln'), `127.0.0.1:${port}`), `ip netns exec ${A} ss -tln shows 127.0.0.1:${port}`);
    assert.ok(!listensOn(ss(B, '-tln'), `127.0.0.1:${port}`), 'B does not list it');
    assert.ok(!listensOn(ss(null, '-tln'), `127.0.0.1:${port}`), 'the root namespace does not list it');

    // no thread of this process has left its namespace
    const mine = fs.statSync('/proc/self/ns/net').ino;
    for (const tid of fs.readdirSync('/proc/self/task')) {
      assert.equal(fs.statSync(`/proc/self/task/${tid}/ns/net`).ino, mine, `thread ${tid} is still in this process's namespace`);
    }

    // the same port is free for another server in B
    const other = echoServer(sB.net, 'B');
    servers.push(other);
    assert.equal(await listen(other, port, '127.0.0.1'), port);
    assert.equal(await request(sB.net, port, '127.0.0.1'), 'B');
  });

  itNeeds(noIpNetns, "a client socket behaves as Node's own: states before/while/after connecting, event order, addresses", async () => {
    type Trace = { steps: [string, Record<string, unknown>][]; addrs: Record<string, unknown> };
    async function clientTrace(netMod: typeof net, port: number): Promise<Trace> {
      const s = new netMod.Socket();
      assert.ok(s instanceof net.Socket);
      const state = () => ({
        readable: s.readable, writable: s.writable, pending: s.pending, readyState: s.readyState,
        connecting: s.connecting, destroyed: s.destroyed, remoteAddress: s.remoteAddress,
        bytesWritten: s.bytesWritten,
      });
      const steps: [string, Record<string, unknown>][] = [['new', state()]];
      for (const ev of ['lookup', 'connect', 'ready', 'data', 'end', 'finish', 'close', 'error']) {
        s.on(ev, () => steps.push([ev, state()]));
      }
      s.connect(port, '127.0.0.1');
      steps.push(['after connect()', state()]);
      await once(s, 'connect');
      const addrs = {
        remoteAddress: s.remoteAddress, remoteFamily: s.remoteFamily, remotePortIsServer: s.remotePort === port,
        localAddress: s.localAddress, localFamily: s.localFamily, localPortSet: (s.localPort ?? 0) > 0,
        addressFamily: (s.address() as net.AddressInfo).family,
      };
      s.end('ping');
      await once(s, 'close');
      steps.push(['closed', state()]);
      return { steps, addrs };
    }
    const rootServer = echoServer(net);
    servers.push(rootServer);
    const nsServer = echoServer(sA.net);
    servers.push(nsServer);
    const nodeTrace = await clientTrace(net, await listen(rootServer, 0, '127.0.0.1'));
    const nsTrace = await clientTrace(sA.net, await listen(nsServer, 0, '127.0.0.1'));
    assert.deepEqual(nsTrace, nodeTrace);
    assert.deepEqual(nsTrace.steps.map((s) => s[0]).filter((e) => e === 'connect' || e === 'ready'), ['connect', 'ready']);
  });

  itNeeds(noIpNetns, "a server behaves as Node's own: listening state, events, address(), the accepted socket", async () => {
    async function serverTrace(netMod: typeof net): Promise<unknown> {
      const events: string[] = [];
      const server = netMod.createServer();
      const states: unknown[] = [[server.listening, server.address()]];
      for (const ev of ['listening', 'connection', 'close', 'error']) server.on(ev, () => events.push(ev));
      const accepted = new Promise<Record<string, unknown>>((resolve) => server.once('connection', (sock: net.Socket) => {
        resolve({
          remoteAddress: sock.remoteAddress, remoteFamily: sock.remoteFamily, localAddress: sock.localAddress,
          localPortIsServer: sock.localPort === (server.address() as net.AddressInfo).port,
          readable: sock.readable, writable: sock.writable, pending: sock.pending, readyState: sock.readyState,
          isNetSocket: sock instanceof net.Socket, isStackSocket: sock instanceof netMod.Socket,
        });
        sock.end();
      }));
      server.listen(0, '127.0.0.1');
      states.push(server.listening);
      await once(server, 'listening');
      const a = server.address() as net.AddressInfo;
      states.push([server.listening, a.address, a.family, typeof a.port]);
      const c = netMod.connect(a.port, '127.0.0.1');
      const acc = await accepted;
      await once(c, 'close');
      const closed = once(server, 'close');
      server.close();
      states.push(server.listening);
      await closed;
      return { events, states, acc };
    }
    assert.deepEqual(await serverTrace(sA.net), await serverTrace(net));
  });

  itNeeds(noIpNetns, 'IPv6 on ::1, and autoSelectFamily moving from ::1 to 127.0.0.1 stays in the namespace', async () => {
    const s6 = echoServer(sA.net);
    servers.push(s6);
    const p6 = await listen(s6, 0, '::1');
    const c6 = sA.net.connect(p6, '::1');
    await once(c6, 'connect');
    assert.equal(c6.remoteAddress, '::1');
    assert.equal(c6.remoteFamily, 'IPv6');
    c6.destroy();
    assert.ok(listensOn(ss(A, '-tln'), `[::1]:${p6}`));

    // a local address to bind first (internalConnect binds before it connects)
    const cl = sA.net.connect({ port: p6, host: '::1', localAddress: '::1' });
    await once(cl, 'connect');
    assert.equal(cl.localAddress, '::1');
    cl.destroy();

    // only 127.0.0.1 listens; the lookup offers ::1 first: the first attempt is refused, the
    // second is made on a new handle, whose socket must be created in A as well
    const s4 = echoServer(sA.net);
    servers.push(s4);
    const p4 = await listen(s4, 0, '127.0.0.1');
    await assertFreeHere(p4);
    const c = sA.net.connect({
      port: p4, host: 'dual.test', autoSelectFamily: true,
      lookup: ((_h: string, _o: unknown, cb: (e: null, a: { address: string; family: number }[]) => void) =>
        cb(null, [{ address: '::1', family: 6 }, { address: '127.0.0.1', family: 4 }])) as never,
    });
    await once(c, 'connect');
    assert.equal(c.remoteAddress, '127.0.0.1');
    assert.deepEqual(c.autoSelectFamilyAttemptedAddresses, [`::1:${p4}`, `127.0.0.1:${p4}`]);
    c.destroy();
  });

  itNeeds(noIpNetns, "listen errors and listen() without a host are Node's", async () => {
    const a = echoServer(sA.net);
    servers.push(a);
    const port = await listen(a, 0, '127.0.0.1');
    const again = sA.net.createServer();
    again.listen(port, '127.0.0.1');
    const [err] = await once(again, 'error') as [NodeJS.ErrnoException];
    // the same in this namespace with Node's own classes
    const r1 = net.createServer();
    const rport = await listen(r1, 0, '127.0.0.1');
    const r2 = net.createServer();
    r2.listen(rport, '127.0.0.1');
    const [nodeErr] = await once(r2, 'error') as [NodeJS.ErrnoException];
    await closeServer(r1);
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.syscall, nodeErr.syscall);
    assert.equal(err.errno, nodeErr.errno);
    assert.equal(err.message, nodeErr.message.replace(String(rport), String(port)));
    assert.equal(again.listening, false);

    const any = echoServer(sA.net, 'dual');
    servers.push(any);
    const p = await listen(any, 0);
    assert.deepEqual(any.address(), { address: '::', family: 'IPv6', port: p });
    assert.equal(await request(sA.net, p, '127.0.0.1'), 'dual', 'IPv4 reaches the dual-stack listener');
    assert.ok(listensOn(ss(A, '-tln'), `*:${p}`) || listensOn(ss(A, '-tln'), `[::]:${p}`));
  });

  itNeeds(noIpNetns, 'unix-domain sockets (a path) are left to Node as they are', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msockets-netns-'));
    try {
      const sock = path.join(dir, 's');
      const server = echoServer(sA.net);
      servers.push(server);
      server.listen(sock);
      await once(server, 'listening');
      assert.equal(server.address(), sock);
      const c = sA.net.connect({ path: sock });
      let got = '';
      c.on('data', (d) => { got += d; });
      c.end('over a path');
      await once(c, 'close');
      assert.equal(got, 'over a path');
      await closeServer(server);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  itNeeds(noIpNetns, 'raw sockets: msocket(stack A) is a KernelRawSocket in A; toNetServer and toNetSocket keep it there', async () => {
    const l = ms.msocket(sA, 'AF_INET', 'SOCK_STREAM');
    assert.ok(l instanceof KernelRawSocket);
    assert.equal(l.stack, sA);
    l.bind('127.0.0.1', 0);
    l.listen(8);
    const port = l.localAddress().port;
    assert.ok(listensOn(ss(A, '-tln'), `127.0.0.1:${port}`));
    const c = ms.msocket(`netns:${A}`, 'AF_INET', 'SOCK_STREAM');
    l.watch(true, false);
    const ready = once(l, 'readable');
    await c.connect('127.0.0.1', port);
    await ready;
    const a = l.accept();
    assert.ok(a instanceof KernelRawSocket);
    assert.equal(a.stack, sA);
    a.close();
    c.close();

    const server = ms.toNetServer(l, (sock) => sock.end('raw'));
    servers.push(server);
    assert.equal(l.closed, true);
    const raw = ms.msocket(sA, 'AF_INET', 'SOCK_STREAM');
    await raw.connect('127.0.0.1', port);
    const sock = ms.toNetSocket(raw);
    let got = '';
    sock.on('data', (d) => { got += d; });
    await once(sock, 'end');
    sock.destroy();
    assert.equal(got, 'raw');
  });
});

// ==========================================================================================

describe('withStack(ns, ...): module-level net and dgram land in that namespace', () => {
  let A = '';
  let B = '';
  let sA: ms.Stack;
  let sB: ms.Stack;
  let port = 0;
  let uport = 0;
  const closers: (() => void)[] = [];
  before(async () => {
    if (noIpNetns) return;
    A = addNamespace('WA');
    B = addNamespace('WB');
    sA = ms.stack(`netns:${A}`);
    sB = ms.stack(`netns:${B}`);
    // the same TCP and UDP ports in the root namespace, A and B, each answering its name
    const entries: [string, ms.Stack][] = [['root', ms.kernelStack], ['A', sA], ['B', sB]];
    for (const [name, s] of entries) {
      const srv = echoServer(s.net, name);
      port = await listen(srv, port, '127.0.0.1');
      const u = s.dgram.createSocket('udp4', (_m, rinfo) => u.send(name, rinfo.port, rinfo.address));
      u.bind(uport, '127.0.0.1');
      await once(u, 'listening');
      uport = u.address().port;
      closers.push(() => srv.close(), () => u.close());
    }
  });
  after(() => {
    for (const c of closers) { try { c(); } catch { /* gone */ } }
    sA?.close();
    sB?.close();
    if (A) delNamespace(A);
    if (B) delNamespace(B);
  });

  async function askTcp(): Promise<string> {
    return request(ms.net, port, '127.0.0.1');
  }
  async function askUdp(): Promise<string> {
    const u = ms.dgram.createSocket('udp4');
    const got = once(u, 'message');
    u.send('?', uport, '127.0.0.1');
    const [m] = await got as [Buffer];
    u.close();
    return m.toString();
  }

  itNeeds(noIpNetns, 'scoped defaults hold across interleaved awaits; outside them the default is untouched', async () => {
    const run = async (rounds: number) => {
      const seen: string[] = [];
      for (let i = 0; i < rounds; i++) {
        seen.push(await askTcp());
        await sleep(Math.random() * 3);
        seen.push(await askUdp());
        await new Promise((r) => setImmediate(r));
      }
      return seen;
    };
    const [inA, inB, outside, nested] = await Promise.all([
      ms.withStack(sA, () => run(6)),
      ms.withStack(sB, () => run(6)),
      run(6),
      ms.withStack(sA, async () => {
        const before_ = await askTcp();
        const inner = await ms.withStack(sB, () => run(2));
        const after_ = await askUdp();
        return [before_, ...inner, after_];
      }),
    ]);
    assert.deepEqual(inA, Array(12).fill('A'));
    assert.deepEqual(inB, Array(12).fill('B'));
    assert.deepEqual(outside, Array(12).fill('root'));
    assert.deepEqual(nested, ['A', 'B', 'B', 'B', 'B', 'A']);
    assert.equal(ms.getDefaultStack(), ms.kernelStack);
    assert.ok(!(ms.net.createServer() instanceof (sA.net.Server as unknown as typeof net.Server)), 'outside: the kernel stack\'s server');
  });
});

// ==========================================================================================

describe('UDP in a namespace', () => {
  let A = '';
  let sA: ms.Stack;
  const socks: dgram.Socket[] = [];
  before(() => {
    if (noIpNetns) return;
    A = addNamespace('U');
    sA = ms.stack(`netns:${A}`);
  });
  after(() => {
    for (const s of socks) { try { s.close(); } catch { /* closed */ } }
    sA?.close();
    if (A) delNamespace(A);
  });

  itNeeds(noIpNetns, 'send and receive, address(), implicit bind on send, connect, EADDRINUSE, IPv6', async () => {
    const a = sA.dgram.createSocket('udp4');
    socks.push(a);
    a.bind(0, '127.0.0.1');
    await once(a, 'listening');
    const addr = a.address();
    assert.equal(addr.address, '127.0.0.1');
    assert.equal(addr.family, 'IPv4');
    assert.ok(addr.port > 0);
    assert.ok(listensOn(ss(A, '-uln'), `127.0.0.1:${addr.port}`));
    assert.ok(!listensOn(ss(null, '-uln'), `127.0.0.1:${addr.port}`), 'not in the root namespace');

    const b = sA.dgram.createSocket('udp4');
    socks.push(b);
    const got = once(a, 'message');
    b.send('hi', addr.port, '127.0.0.1');  // binds b implicitly, in A
    const [msg, rinfo] = await got as [Buffer, dgram.RemoteInfo];
    assert.equal(msg.toString(), 'hi');
    assert.deepEqual(rinfo, { address: '127.0.0.1', family: 'IPv4', port: b.address().port, size: 2 });
    assert.ok(listensOn(ss(A, '-uan'), `0.0.0.0:${b.address().port}`), 'the implicit bind is in A');

    b.connect(addr.port, '127.0.0.1');
    await once(b, 'connect');
    assert.deepEqual(b.remoteAddress(), { address: '127.0.0.1', family: 'IPv4', port: addr.port });
    const got2 = once(a, 'message');
    b.send('connected');
    assert.equal(String((await got2)[0]), 'connected');

    // a second bind to the port fails as Node's does (no SO_REUSEADDR left behind)
    const c = sA.dgram.createSocket('udp4');
    socks.push(c);
    c.bind(addr.port, '127.0.0.1');
    const [err] = await once(c, 'error') as [NodeJS.ErrnoException];
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.syscall, 'bind');
    assert.equal(err.message, `bind EADDRINUSE 127.0.0.1:${addr.port}`);
    // with reuseAddr on both, as in Node
    const r1 = sA.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const r2 = sA.dgram.createSocket({ type: 'udp4', reuseAddr: true });
    socks.push(r1, r2);
    r1.bind(0, '127.0.0.1');
    await once(r1, 'listening');
    r2.bind(r1.address().port, '127.0.0.1');
    await once(r2, 'listening');

    const six = sA.dgram.createSocket('udp6');
    socks.push(six);
    six.bind(0, '::1');
    await once(six, 'listening');
    assert.deepEqual({ ...six.address(), port: 0 }, { address: '::1', family: 'IPv6', port: 0 });
    const tx6 = sA.dgram.createSocket('udp6');
    socks.push(tx6);
    const got6 = once(six, 'message');
    tx6.send('v6', six.address().port, '::1');
    const [m6, r6] = await got6 as [Buffer, dgram.RemoteInfo];
    assert.equal(m6.toString(), 'v6');
    assert.equal(r6.family, 'IPv6');
    assert.ok(listensOn(ss(A, '-uln'), `[::1]:${six.address().port}`));
  });
});

// ==========================================================================================

describe('errors', () => {
  it('ENOENT: no such namespace file or name', () => {
    const missing = `/var/run/netns/ms-none-${process.pid}`;
    assert.throws(() => ms.stack(missing), { code: 'ENOENT', syscall: 'stack' });
    assert.throws(() => ms.stack(`netns:ms-none-${process.pid}`), { code: 'ENOENT', syscall: 'stack' });
    assert.throws(() => ms.stack('netns:../x'), { code: 'ENOENT' });
    assert.throws(() => ms.msocket(missing, 'AF_INET', 'SOCK_STREAM'), { code: 'ENOENT' });
  });

  it('ENOTSUP: a file that is not a network namespace', () => {
    assert.throws(() => ms.stack('/etc/hostname'), { code: 'ENOTSUP', syscall: 'stack', message: /not a network namespace/ });
    assert.throws(() => ms.stack('/proc/self/ns/uts'), { code: 'ENOTSUP', message: /a uts namespace, not a network namespace/ });
    assert.throws(() => ms.stack('/proc/self/ns/user'), { code: 'ENOTSUP', message: /a user namespace/ });
    assert.throws(() => ms.stack(os.tmpdir()), { code: 'ENOTSUP' });
    assert.throws(() => ms.stack('/dev/null'), { code: 'ENOTSUP' }, 'devices are not even opened');
  });

  it("this thread's own namespace file is the kernel stack", () => {
    assert.equal(ms.stack('/proc/self/ns/net'), ms.kernelStack);
    assert.equal(ms.stack(`/proc/${process.pid}/ns/net`), ms.kernelStack);
  });

  it('a closed namespace stack: ENONET for new sockets, existing ones were closed with it', async () => {
    const s = newNetnsStack();
    const srv = echoServer(s.net);
    const port = await listen(srv, 0, '127.0.0.1');
    const c = s.net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    const raw = ms.msocket(s, 'AF_INET', 'SOCK_DGRAM');
    const u = s.dgram.createSocket('udp4');
    u.bind(0);
    await once(u, 'listening');
    const closes = [once(srv, 'close'), once(c, 'close'), once(u, 'close')];
    assert.equal(s.openCount >= 4, true);
    s.close();
    await Promise.all(closes);
    assert.equal(raw.closed, true);
    assert.equal(s.openCount, 0);
    assert.equal(s.closed, true);
    assert.throws(() => ms.msocket(s, 'AF_INET', 'SOCK_STREAM'), { code: 'ENONET' });
    const err = await connectError(s.net, port, '127.0.0.1');
    assert.equal(err.code, 'ENONET');
    assert.equal(err.syscall, 'connect');
    const late = s.net.createServer();
    late.listen(0, '127.0.0.1');
    assert.equal(((await once(late, 'error')) as [NodeJS.ErrnoException])[0].code, 'ENONET');
    const lateUdp = s.dgram.createSocket('udp4');
    lateUdp.bind(0);
    const [uerr] = await once(lateUdp, 'error') as [NodeJS.ErrnoException];
    assert.deepEqual([uerr.code, uerr.syscall], ['ENONET', 'bind']);
    lateUdp.close();
    s.close();  // idempotent
  });

  itNeeds(noIpNetns ?? noUnprivileged, 'EPERM, naming the missing privilege, for an unprivileged user: a root-owned namespace, another user\'s /proc/PID/ns/net', () => {
    const A = addNamespace('P');
    try {
      const out = runAsNobody(`
        const ms = require(PKG + '/dist/lib/msocket.js');
        const out = {};
        for (const p of [process.env.NSPATH, '/proc/1/ns/net']) {
          try { ms.stack(p); out[p] = 'opened'; } catch (e) { out[p] = { code: e.code, message: e.message }; }
        }
        console.log(JSON.stringify(out));
      `, { NSPATH: `/var/run/netns/${A}` });
      const ns = out[`/var/run/netns/${A}`] as { code: string; message: string };
      assert.equal(ns.code, 'EPERM');
      assert.match(ns.message, /CAP_SYS_ADMIN/);
      const proc1 = out['/proc/1/ns/net'] as { code: string; message: string };
      assert.equal(proc1.code, 'EPERM');
      assert.match(proc1.message, /ptrace|CAP_SYS_PTRACE/);
    } finally {
      delNamespace(A);
    }
  });
});

// ==========================================================================================

describe('newStack({ kind: \'netns\' }): a namespace owned by the stack', () => {
  itNeeds(noUnprivileged, 'an unprivileged user (uid 65534) gets a new namespace with working loopback sockets', () => {
    const out = runAsNobody(`
      const ms = require(PKG + '/dist/lib/msocket.js');
      const net = require('net');
      const out = { uid: process.getuid() };
      const s = ms.newStack({ kind: 'netns' });
      out.kind = s.kind;
      out.userNamespace = s.userNamespace;
      const srv = s.net.createServer({ allowHalfOpen: true }, (c) => c.pipe(c));
      srv.listen(0, '127.0.0.1', () => {
        const port = srv.address().port;
        const c = s.net.connect(port, '127.0.0.1');
        let got = '';
        c.on('data', (d) => { got += d; });
        c.on('end', () => {
          out.echo = got;
          const r = net.connect(port, '127.0.0.1');   // this process's own namespace
          r.on('connect', () => { out.outside = 'connected'; r.destroy(); done(); });
          r.on('error', (e) => { out.outside = e.code; done(); });
        });
        c.end('hello from 65534');
      });
      function done() { srv.close(); s.close(); out.closed = s.closed; console.log(JSON.stringify(out)); }
    `);
    assert.deepEqual(out, {
      uid: 65534, kind: 'netns', userNamespace: true, echo: 'hello from 65534', outside: 'ECONNREFUSED', closed: true,
    });
  });

  it('as this process: loopback up, sockets work, close() ends the helper and every socket', async (t) => {
    for (const userNamespace of [false, true]) {
      if (!isRoot && !userNamespace) continue;
      const s = ms.newStack({ kind: 'netns', userNamespace });
      try {
        assert.equal(s.kind, 'netns');
        assert.equal(s.owned, true);
        assert.equal(ms.stack(s.name), s, 'findable by name');
        assert.equal(s.userNamespace, userNamespace || !isRoot);
        const pid = s.pid;
        assert.ok(fs.existsSync(`/proc/${pid}`));
        // an idle helper holds little memory: what it inherited from Node was dropped
        const anonKb = Number(/RssAnon:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
        t.diagnostic(`helper RssAnon ${anonKb} kB`);
        assert.ok(anonKb < 4096, `helper RssAnon ${anonKb} kB`);
        if (has('nsenter') && isRoot) {
          const links = execFileSync('nsenter', [`--net=${s.path}`, 'ip', '-br', 'link'], { encoding: 'utf8' });
          assert.match(links, /^lo\s+UNKNOWN/m);
          assert.match(links, /LOOPBACK,UP/);
        }
        const srv = echoServer(s.net);
        const port = await listen(srv, 0, '127.0.0.1');
        assert.equal(await request(s.net, port, '127.0.0.1', 'in the new namespace'), 'in the new namespace');
        await assertFreeHere(port);
        const c = s.net.connect(port, '127.0.0.1');
        await once(c, 'connect');
        const closed = [once(c, 'close'), once(srv, 'close')];
        s.close();
        await Promise.all(closed);
        assert.equal(fs.existsSync(`/proc/${pid}`), false, 'the helper is gone and reaped');
        assert.equal(s.pid, -1);
        assert.throws(() => ms.stack(s.name), { code: 'ENOENT' });
      } finally {
        s.close();
      }
    }
  });

  it('a namespace stack made in a worker ends with the worker', async () => {
    const mod = path.join(__dirname, '..', 'lib', 'stacks', 'netns.js');
    const w = new Worker(`
      const { parentPort } = require('worker_threads');
      const { newNetnsStack } = require(${JSON.stringify(mod)});
      const s = newNetnsStack();
      parentPort.postMessage(s.pid);
    `, { eval: true });
    const [pid] = await once(w, 'message') as [number];
    assert.ok(pid > 0);
    await once(w, 'exit');
    for (let i = 0; i < 50 && fs.existsSync(`/proc/${pid}`); i++) await sleep(20);
    assert.equal(fs.existsSync(`/proc/${pid}`), false, 'the helper was killed and reaped at the worker\'s teardown');
  });

  it('the helper dies with its process, even one killed with SIGKILL', async () => {
    const mod = path.join(__dirname, '..', 'lib', 'stacks', 'netns.js');
    const child = spawn(process.execPath, ['-e', `
      const s = require(${JSON.stringify(mod)}).newNetnsStack();
      console.log(s.pid);
      setInterval(() => {}, 1000);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = await once(child.stdout, 'data') as [Buffer];
    const pid = Number(line.toString().trim());
    assert.ok(pid > 0 && fs.existsSync(`/proc/${pid}`));
    child.kill('SIGKILL');
    await once(child, 'exit');
    // PR_SET_PDEATHSIG: killed at once; reaped by init since its parent is gone
    for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`) && !/State:\s+Z/.test(safeRead(`/proc/${pid}/status`)); i++) await sleep(20);
    const status = safeRead(`/proc/${pid}/status`);
    assert.ok(status === '' || /State:\s+Z/.test(status), `the helper ${pid} is gone (${/State:.*/.exec(status)?.[0]})`);
  });

  itNeeds(noTun, 'interfaces: a TAP with addresses, MTU, MAC and a route; frames pumped out of it and written into it', async () => {
    const s = newNetnsStack({
      interfaces: [{ name: 'eth0', ip: ['10.77.0.2/24', 'fd77::2/64'], mac: '02:00:00:00:77:02', mtu: 1400 }],
      routes: [{ to: 'default', via: '10.77.0.1' }],
    });
    try {
      assert.equal(s.interfaces.length, 1);
      const tap = s.interfaces[0] as NetnsTap;
      assert.equal(tap.name, 'eth0');
      assert.ok(tap.ifindex > 1);
      if (has('nsenter')) {
        const show = (...a: string[]) => execFileSync('nsenter', [`--net=${s.path}`, 'ip', ...a], { encoding: 'utf8' });
        const addr = show('-br', 'addr', 'show', 'eth0');
        assert.match(addr, /10\.77\.0\.2\/24/);
        assert.match(addr, /fd77::2\/64/);
        const link = show('link', 'show', 'eth0');
        assert.match(link, /mtu 1400/);
        assert.match(link, /link\/ether 02:00:00:00:77:02/);
        assert.match(link, /[<,]UP[,>]/);
        assert.match(show('route'), /default via 10\.77\.0\.1 dev eth0/);
      }

      const frames: Buffer[] = [];
      let wake: (() => void) | null = null;
      tap.pump((batch) => { frames.push(...batch); if (wake) wake(); });
      const waitFrame = async (pred: (f: Buffer) => boolean): Promise<Buffer> => {
        for (let i = 0; i < 100; i++) {
          const f = frames.find(pred);
          if (f) return f;
          await Promise.race([new Promise<void>((r) => { wake = r; }), sleep(50)]);
        }
        throw new Error('no such frame came out of the TAP');
      };
      const ourMac = Buffer.from([2, 0, 0, 0, 0x77, 2]);
      const peerMac = Buffer.from([2, 0, 0, 0, 0x77, 9]);
      const ip = (a: string) => Buffer.from(a.split('.').map(Number));

      // out: a datagram to 10.77.0.9 makes the kernel ask who has it
      const tx = s.dgram.createSocket('udp4');
      tx.bind(0, '10.77.0.2');
      await once(tx, 'listening');
      tx.send('out', 9, '10.77.0.9');
      const arp = await waitFrame((f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1);
      assert.deepEqual(arp.subarray(6, 12), ourMac, 'from the MAC we gave it');
      assert.deepEqual(arp.subarray(28, 32), ip('10.77.0.2'), 'sender: our address');
      assert.deepEqual(arp.subarray(38, 42), ip('10.77.0.9'), 'target: the peer');

      // in: answer the ARP; the queued datagram comes out
      const reply = Buffer.concat([ourMac, peerMac, Buffer.from([8, 6, 0, 1, 8, 0, 6, 4, 0, 2]), peerMac, ip('10.77.0.9'), ourMac, ip('10.77.0.2')]);
      assert.equal(tap.send(reply), true);
      const out = await waitFrame((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt16BE(36) === 9);
      assert.deepEqual(out.subarray(0, 6), peerMac);
      assert.equal(out.subarray(42).toString(), 'out');

      // in: a UDP datagram from the wire reaches a socket in the namespace
      const rx = s.dgram.createSocket('udp4');
      rx.bind(5555, '10.77.0.2');
      await once(rx, 'listening');
      const got = once(rx, 'message');
      assert.equal(tap.send(udpFrame(ourMac, peerMac, ip('10.77.0.9'), ip('10.77.0.2'), 4444, 5555, Buffer.from('from the wire'))), true);
      const [m, rinfo] = await got as [Buffer, dgram.RemoteInfo];
      assert.equal(m.toString(), 'from the wire');
      assert.equal(rinfo.address, '10.77.0.9');
      assert.equal(rinfo.port, 4444);
    } finally {
      s.close();
    }
  });

  it('interfaces with other links go through the registered attacher; a link nobody drives fails cleanly', () => {
    // msockets registers the user-stack engine's attacher (hub:// and the links it drives);
    // a scheme nobody drives fails, and the half-made stack is gone
    assert.throws(() => newNetnsStack({ interfaces: [{ link: 'nosuch://nowhere' }] }), (e: NodeJS.ErrnoException) => {
      // unprivileged without a usable /dev/net/tun the TAP itself may fail first
      return e.code === 'EPROTONOSUPPORT' || e.code === 'ENOTSUP' || e.code === 'EACCES' || e.code === 'EPERM';
    });
    if (noTun) return;
    const calls: [NetnsTap, string][] = [];
    let closed = 0;
    const previous = setTapLinkAttacher((tap, link) => { calls.push([tap, link]); return { close: () => { closed++; } }; });
    assert.equal(typeof previous, 'function', 'the engine registered its attacher when msockets loaded');
    try {
      const s = newNetnsStack({ interfaces: [{ link: 'hub://lab' }] });
      try {
        assert.equal(calls.length, 1);
        assert.equal(calls[0][1], 'hub://lab');
        assert.equal(calls[0][0], s.interfaces[0]);
      } finally {
        s.close();
      }
      assert.equal(closed, 1);
    } finally {
      setTapLinkAttacher(previous);
    }
  });

  it('option errors', () => {
    assert.throws(() => newNetnsStack({ interfaces: [{ ip: 'nonsense' }] }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => newNetnsStack({ interfaces: [{ ip: ['10.0.0.1/33'] }] }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => newNetnsStack({ interfaces: [{ mac: 'zz' }] }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => newNetnsStack({ tcp: {} } as never), { code: 'ENOTSUP' });
    assert.throws(() => newNetnsStack(42 as never), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});

/** ethernet + IPv4 + UDP (no UDP checksum) */
function udpFrame(dst: Buffer, src: Buffer, sip: Buffer, dip: Buffer, sport: number, dport: number, payload: Buffer): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const iph = Buffer.alloc(20);
  iph[0] = 0x45;
  iph.writeUInt16BE(20 + 8 + payload.length, 2);
  iph[8] = 64;
  iph[9] = 17;
  sip.copy(iph, 12);
  dip.copy(iph, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += iph.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  iph.writeUInt16BE(~sum & 0xffff, 10);
  return Buffer.concat([dst, src, Buffer.from([8, 0]), iph, udp, payload]);
}

// ==========================================================================================

describe('examples/gateway.ts: accept on one stack, forward on another', () => {
  let A = '';
  let sA: ms.Stack;
  before(() => {
    if (noIpNetns) return;
    A = addNamespace('G');
    sA = ms.stack(`netns:${A}`);
  });
  after(() => {
    sA?.close();
    if (A) delNamespace(A);
  });

  itNeeds(noIpNetns, 'kernel -> namespace: 100 parallel connections, byte-exact both ways', async () => {
    const target = echoServer(sA.net);
    const tport = await listen(target, 0, '127.0.0.1');
    await assertFreeHere(tport);
    const g = await startGateway({ from: ms.kernelStack, listen: { host: '127.0.0.1', port: 0 }, to: sA, target: { host: '127.0.0.1', port: tport } });
    try {
      const one = async (i: number) => {
        const data = crypto.randomBytes(64 * 1024 + i * 997);
        const c = net.connect(g.address.port, '127.0.0.1');
        const chunks: Buffer[] = [];
        c.on('data', (d: Buffer) => chunks.push(d));
        c.end(data);
        await once(c, 'close');
        const back = Buffer.concat(chunks);
        assert.equal(back.length, data.length, `connection ${i}: length`);
        assert.ok(back.equals(data), `connection ${i}: content`);
      };
      await Promise.all(Array.from({ length: 100 }, (_, i) => one(i)));
      assert.equal(g.forwarded, 100);
      for (let i = 0; i < 50 && g.active > 0; i++) await sleep(10);
      assert.equal(g.active, 0);
    } finally {
      await g.close();
      await closeServer(target);
    }
  });
});
