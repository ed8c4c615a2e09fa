// User stacks on links to the world outside the process: tap:// (a kernel TAP device whose
// other side is a network namespace's kernel stack), udp:// (two Node processes over UDP on
// loopback), cmd:// (two Node processes through vde_plug to one vde_switch), link errors and
// link-down reports, and a namespace stack's TAP pumped to a descriptor link. Each test keeps
// a pcap capture and checks that tshark decodes every frame with valid checksums.
import assert from 'node:assert/strict';
import { execFile, execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as dgramNode from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';

import * as ms from '../lib/msocket';
import { runAsNobody } from './helpers/nobody';
import type { UserStack } from '../lib/msocket';
import { checkCapture as checkPcap } from './helpers/tshark';
import { echoExact, payload } from './helpers/userpair';

const MiB = 1 << 20;
const osErrno = (name: string) => (os.constants.errno as Record<string, number>)[name];
const CI = process.env.CI === 'true';
const execAsync = promisify(execFile);

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const isRoot = process.getuid?.() === 0;
const tunUsable = (() => { try { fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK); return true; } catch { return false; } })();

/** skip (with the reason) unless the requirement holds; under CI a missing requirement fails */
function requires(what: Record<string, boolean>): string | false {
  const missing = Object.entries(what).filter(([, ok]) => !ok).map(([k]) => k);
  return missing.length ? `needs ${missing.join(', ')}` : false;
}
function ciGuard(name: string, skip: string | false): void {
  if (skip && CI) it(`${name}: its requirements are present under CI`, () => assert.fail(`${skip} (CI=true)`));
}

/** tshark decodes every frame of the capture (a Linux peer's in most); TCP/UDP payloads here are
    test bytes, decoded as data; the file is removed once clean */
function checkCapture(file: string, protocols: string[], minFrames: number): void {
  checkPcap(file, { minFrames, protocols, data: { tcp: [7, 9000, 5000, 5001, 5002], udp: [7] }, linuxPeer: true, removeIfClean: true });
}

function tmpFile(tag: string): string {
  return path.join(os.tmpdir(), `msockets-links-${tag}-${process.pid}.pcap`);
}

/** a TCP server on `net` that hashes what it receives from one connection */
async function sink(n: typeof import('net'), host: string, port: number): Promise<{ done: Promise<{ sha: string; bytes: number }>; close: () => Promise<void> }> {
  const srv = n.createServer();
  const done = new Promise<{ sha: string; bytes: number }>((resolve, reject) => {
    srv.once('connection', (s) => {
      const h = createHash('sha256');
      let bytes = 0;
      s.on('data', (d: Buffer) => { h.update(d); bytes += d.length; });
      s.on('end', () => { s.end(); resolve({ sha: h.digest('hex'), bytes }); });
      s.on('error', reject);
    });
  });
  await new Promise<void>((r) => srv.listen(port, host, r));
  return { done, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

/** send `total` pseudo-random bytes to host:port; resolves to their sha256 */
async function source(n: typeof import('net'), host: string, port: number, total: number, seed = 3): Promise<string> {
  const h = createHash('sha256');
  const c = n.connect(port, host);
  const failed = new Promise<never>((_, reject) => c.on('error', reject));
  await Promise.race([new Promise((r) => c.once('connect', r)), failed]);
  for (const chunk of payload(total, 1 << 16, seed)) {
    h.update(chunk);
    if (!c.write(chunk)) await Promise.race([new Promise((r) => c.once('drain', r)), failed]);
  }
  await Promise.race([new Promise<void>((r) => c.end(() => r())), failed]);
  await new Promise<void>((r) => { if (c.destroyed) r(); else c.once('close', () => r()); });
  return h.digest('hex');
}


/** UDP datagrams to an echo server: all of `count` come back with their content (a lost one is resent) */
async function udpEcho(stack: UserStack, host: string, port: number, count: number): Promise<void> {
  const u = stack.dgram.createSocket('udp4');
  await new Promise<void>((r) => u.bind(0, r));
  const want = new Set<number>(Array.from({ length: count }, (_, i) => i));
  const done = new Promise<void>((resolve) => {
    u.on('message', (m) => {
      const i = m.readUInt32BE(0);
      assert.equal(m.length, 200 + i, 'length kept');
      assert.equal(m[m.length - 1], i & 0xff, 'content kept');
      want.delete(i);
      if (want.size === 0) resolve();
    });
  });
  const send = () => { for (const i of want) { const b = Buffer.alloc(200 + i, i & 0xff); b.writeUInt32BE(i, 0); u.send(b, port, host); } };
  send();
  const timer = setInterval(send, 500);
  try {
    await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error(`${want.size} datagrams never came back`)), 15_000))]);
  } finally {
    clearInterval(timer);
    u.close();
  }
}

// ---- a peer in another process (test/helpers/link-peer.ts)

interface Peer { child: ChildProcess; next(key: string, timeoutMs?: number): Promise<Record<string, unknown>>; linkdowns: unknown[]; close(): Promise<void> }

function startPeer(): Peer {
  const child = fork(path.join(__dirname, 'helpers', 'link-peer.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: Record<string, unknown>[] = [];
  const waiters: { key: string; resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  const linkdowns: unknown[] = [];
  child.on('message', (m: Record<string, unknown>) => {
    if (m.linkdown) linkdowns.push(m.linkdown);
    const w = waiters.findIndex((x) => x.key in m || 'error' in m);
    if (w >= 0) {
      const [x] = waiters.splice(w, 1);
      if ('error' in m && !(x.key in m)) x.reject(new Error(`peer: ${m.error}`));
      else x.resolve(m);
    } else queue.push(m);
  });
  child.on('exit', () => { for (const w of waiters.splice(0)) w.reject(new Error('the peer exited')); });
  return {
    child,
    linkdowns,
    next(key, timeoutMs = 60_000) {
      const i = queue.findIndex((m) => key in m);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no '${key}' from the peer in ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ key, resolve: (m) => { clearTimeout(t); resolve(m); }, reject: (e) => { clearTimeout(t); reject(e); } });
      });
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.send({ op: 'exit' });
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    },
  };
}

async function freeUdpPorts(n: number): Promise<number[]> {
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise<dgramNode.Socket>((r) => {
    const s = dgramNode.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => r(s));
  })));
  const ports = socks.map((s) => s.address().port);
  for (const s of socks) s.close();
  return ports;
}

/** descendants of pid, [pid, comm] (from /proc), not looking under the processes in `except` */
function descendants(pid: number, except: number[] = []): [number, string][] {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = st.lastIndexOf(')');
      comm.set(Number(d), st.slice(st.indexOf('(') + 1, close));
      parent.set(Number(d), Number(st.slice(close + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  const out: [number, string][] = [];
  const walk = (p: number) => { for (const [c, pp] of parent) if (pp === p && !except.includes(c)) { out.push([c, comm.get(c)!]); walk(c); } };
  walk(pid);
  return out;
}

function mbps(bytes: number, ms: number): string {
  return `${((bytes * 8) / (ms / 1000) / 1e6).toFixed(0)} Mbit/s`;
}

// ---------------------------------------------------------------------------------------

describe('tap:// — a user stack on a TAP device whose kernel side is in a network namespace', () => {
  const skip = requires({ root: isRoot, '/dev/net/tun': tunUsable, 'ip (iproute2)': has('ip'), tc: has('tc'), 'ping (iputils-ping)': has('ping') });
  ciGuard('tap', skip);
  it('ping both ways, then 256 MiB byte-exact TCP both ways with loss 1% and delay 5ms (netem)', { skip, timeout: 600_000 }, async (t) => {
    const ns = `mslt${process.pid}`;
    const dev = `mst${process.pid}`.slice(0, 15);
    const file = tmpFile('tap');
    let s: UserStack | undefined;
    let k: ms.Stack | undefined;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      s = ms.newStack({ interfaces: [{ link: `tap://${dev}`, ip: '10.61.0.2/24', capture: file }], tcp: { receiveBufferMax: 8 * MiB, sendBuffer: 4 * MiB } });
      // the device exists now (the link made it) and its kernel side becomes the namespace's
      execFileSync('ip', ['link', 'set', dev, 'netns', ns]);
      execFileSync('ip', ['-n', ns, 'addr', 'add', '10.61.0.1/24', 'dev', dev]);
      execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // loss and delay on the path: netem on the kernel side; on a kernel built without
      // sch_netem, the same on the user stack's side with its own fault injection
      let impairedBy = 'netem on the kernel side';
      const tc = spawnSync('tc', ['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'netem', 'loss', '1%', 'delay', '5ms'], { encoding: 'utf8' });
      if (tc.status !== 0) {
        assert.match(tc.stderr, /qdisc kind is unknown/, `tc netem: ${tc.stderr}`);
        s.impair('eth0', { loss: 0.01, delay: 5 });
        impairedBy = 'the user stack\'s impair (this kernel has no sch_netem)';
      }

      // the kernel pings the user stack (asynchronously: this loop runs the user stack)
      const { stdout } = await execAsync('ip', ['netns', 'exec', ns, 'ping', '-c', '5', '-i', '0.2', '-W', '2', '10.61.0.2']);
      const rx = /(\d+) received/.exec(stdout);
      assert.ok(rx && Number(rx[1]) >= 3, `the kernel's pings were answered: ${stdout.split('\n').slice(-3).join(' ')}`);
      // the user stack pings the kernel (a ping may fall to the 1% loss: three tries)
      let rtt = -1;
      for (let i = 0; i < 3 && rtt < 0; i++) rtt = await s.ping('10.61.0.1').catch(() => -1);
      assert.ok(rtt >= 4, `the user stack's ping was answered through the 5 ms netem delay (rtt ${rtt} ms)`);

      k = ms.stack(`netns:${ns}`);
      // a small exchange both ways inside the capture, then the capture stops before the big one
      {
        const a = await sink(k.net, '10.61.0.1', 5000);
        const sent = await source(s.net, '10.61.0.1', 5000, 1 * MiB);
        assert.equal((await a.done).sha, sent);
        await a.close();
      }
      s.capture(null);

      const total = 256 * MiB;
      const toKernel = await sink(k.net, '10.61.0.1', 5001);
      const toUser = await sink(s.net, '10.61.0.2', 5002);
      const t0 = Date.now();
      const timeOf = async (p: Promise<string>) => { const sha = await p; return { sha, ms: Date.now() - t0 }; };
      const [up, down] = await Promise.all([
        timeOf(source(s.net, '10.61.0.1', 5001, total, 11)),
        timeOf(source(k.net, '10.61.0.2', 5002, total, 12)),
      ]);
      const [gotK, gotU] = await Promise.all([toKernel.done, toUser.done]);
      assert.equal(gotK.bytes, total);
      assert.equal(gotK.sha, up.sha, 'user -> kernel byte-exact');
      assert.equal(gotU.bytes, total);
      assert.equal(gotU.sha, down.sha, 'kernel -> user byte-exact');
      await toKernel.close();
      await toUser.close();
      const link = s.stats().links!.eth0;
      assert.equal(link.kind, 'tap');
      assert.equal(link.up, true);
      assert.ok(link.rxFrames > total / 1500 && link.txFrames > total / 1500, 'the frames went through the link');
      t.diagnostic(`tap, loss 1% delay 5ms by ${impairedBy}, both directions at once: user->kernel ${mbps(total, up.ms)}, kernel->user ${mbps(total, down.ms)}`);
    } finally {
      s?.close();
      k?.close();
      spawnSync('ip', ['netns', 'del', ns]);
      spawnSync('ip', ['link', 'del', dev], { stdio: 'ignore' });
    }
    checkCapture(file, ['eth:ethertype:arp', 'eth:ethertype:ip:icmp', 'eth:ethertype:ip:tcp'], 50);
  });
});

describe('udp:// — two Node processes, each with a user stack, over UDP on loopback', () => {
  it('TCP byte-exact both ways and UDP both ways', { timeout: 180_000 }, async (t) => {
    const [pa, pb] = await freeUdpPorts(2);
    const file = tmpFile('udp');
    const peer = startPeer();
    let s: UserStack | undefined;
    try {
      await peer.next('hello');
      peer.child.send({ op: 'start', link: `udp://127.0.0.1:${pb}->127.0.0.1:${pa}`, ip: '10.63.0.2/24' });
      await peer.next('ready');
      s = ms.newStack({ interfaces: [{ link: `udp://127.0.0.1:${pa}->127.0.0.1:${pb}`, ip: '10.63.0.1/24', capture: file }] });
      assert.ok((await s.ping('10.63.0.2')) >= 0);
      // this process -> the peer's echo server and back
      const ms32 = await echoExact(s.net, '10.63.0.2', 7, 32 * MiB);
      t.diagnostic(`udp link, echo of 32 MiB (both directions at once): ${mbps(32 * MiB, ms32)} each way`);
      // the peer -> a server here
      const sk = await sink(s.net, '10.63.0.1', 9000);
      peer.child.send({ op: 'send', host: '10.63.0.1', port: 9000, bytes: 16 * MiB });
      const [{ sent }, got] = await Promise.all([peer.next('sent'), sk.done]);
      assert.equal(got.bytes, 16 * MiB);
      assert.equal(got.sha, sent, 'peer -> here byte-exact');
      await sk.close();
      // UDP out to the peer's echo socket and back
      await udpEcho(s, '10.63.0.2', 7, 200);
      const link = s.stats().links!.eth0;
      assert.equal(link.kind, 'udp');
      assert.equal(link.rxMalformed, 0);
      assert.equal(link.rxFiltered, 0);
    } finally {
      s?.close();
      await peer.close();
    }
    checkCapture(file, ['eth:ethertype:arp', 'eth:ethertype:ip:icmp', 'eth:ethertype:ip:tcp', 'eth:ethertype:ip:udp'], 1000);
  });

  it('IPv6 hosts: two stacks over udp:// on ::1 (bracketed and bare forms)', { timeout: 30_000 }, async () => {
    const probe = dgramNode.createSocket('udp6');
    const v6 = await new Promise<boolean>((r) => { probe.once('error', () => r(false)); probe.bind(0, '::1', () => r(true)); });
    probe.close();
    if (!v6) {
      if (CI) assert.fail('no IPv6 loopback under CI');
      return;
    }
    const socks = await Promise.all([0, 1].map(() => new Promise<dgramNode.Socket>((r) => { const u = dgramNode.createSocket('udp6'); u.bind(0, '::1', () => r(u)); })));
    const [pa, pb] = socks.map((u) => u.address().port);
    for (const u of socks) u.close();
    const a = ms.newStack({ interfaces: [{ link: `udp://[::1]:${pa}->[::1]:${pb}`, ip: '10.72.0.1/24' }] });
    const b = ms.newStack({ interfaces: [{ link: `udp://::1:${pb}->::1:${pa}`, ip: '10.72.0.2/24' }] });
    try {
      assert.ok((await a.ping('10.72.0.2')) >= 0);
      assert.ok(b.stats().links!.eth0.rxFrames >= 2);
    } finally {
      a.close();
      b.close();
    }
  });

  it('datagrams from anyone but the peer are counted and dropped; short ones are malformed', { timeout: 30_000 }, async () => {
    const [pa, pb, pc] = await freeUdpPorts(3);
    const s = ms.newStack({ interfaces: [{ link: `udp://127.0.0.1:${pa}->127.0.0.1:${pb}`, ip: '10.64.0.1/24' }] });
    const peer = dgramNode.createSocket('udp4');
    const stranger = dgramNode.createSocket('udp4');
    try {
      await new Promise<void>((r) => peer.bind(pb, '127.0.0.1', r));
      await new Promise<void>((r) => stranger.bind(pc, '127.0.0.1', r));
      const frame = Buffer.alloc(60);
      frame.fill(0xff, 0, 6);
      frame.writeUInt16BE(0x0806, 12);
      for (let i = 0; i < 5; i++) stranger.send(frame, pa, '127.0.0.1');
      for (let i = 0; i < 3; i++) peer.send(Buffer.alloc(10), pa, '127.0.0.1');
      peer.send(frame, pa, '127.0.0.1');
      const deadline = Date.now() + 5000;
      let link = s.stats().links!.eth0;
      while (Date.now() < deadline && (link.rxFiltered < 5 || link.rxMalformed < 3 || link.rxFrames < 1)) {
        await new Promise((r) => setTimeout(r, 20));
        link = s.stats().links!.eth0;
      }
      assert.equal(link.rxFiltered, 5, 'the stranger was filtered');
      assert.equal(link.rxMalformed, 3, 'runts counted');
      assert.equal(link.rxFrames, 1, 'the peer\'s frame went in');
    } finally {
      s.close();
      peer.close();
      stranger.close();
    }
  });
});

describe('cmd:// — two Node processes on one vde_switch through vde_plug', () => {
  const skip = requires({ vde_switch: has('vde_switch'), vde_plug: has('vde_plug') });
  ciGuard('cmd', skip);
  it('TCP byte-exact both ways; killing our vde_plug takes the link down and says why', { skip, timeout: 180_000 }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msockets-sw-'));
    const swdir = path.join(dir, 'switch');
    const file = tmpFile('cmd');
    const sw = spawn('vde_switch', ['-s', swdir], { stdio: ['pipe', 'ignore', 'ignore'] });
    const peer = startPeer();
    let s: UserStack | undefined;
    try {
      for (let i = 0; i < 100 && !fs.existsSync(path.join(swdir, 'ctl')); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(fs.existsSync(path.join(swdir, 'ctl')), 'vde_switch made its control socket');
      await peer.next('hello');
      peer.child.send({ op: 'start', link: `cmd://"vde_plug ${swdir}"`, ip: '10.65.0.2/24' });
      await peer.next('ready');
      s = ms.newStack({ interfaces: [{ link: `cmd://"vde_plug ${swdir}"`, ip: '10.65.0.1/24', capture: file }] });
      let rtt = -1;
      for (let i = 0; i < 3 && rtt < 0; i++) rtt = await s.ping('10.65.0.2').catch(() => -1);
      assert.ok(rtt >= 0, 'the peer answers through the switch');
      const ms32 = await echoExact(s.net, '10.65.0.2', 7, 32 * MiB);
      t.diagnostic(`cmd link (vde_plug + vde_switch), echo of 32 MiB (both directions at once): ${mbps(32 * MiB, ms32)} each way`);
      const sk = await sink(s.net, '10.65.0.1', 9000);
      peer.child.send({ op: 'send', host: '10.65.0.1', port: 9000, bytes: 16 * MiB });
      const [{ sent }, got] = await Promise.all([peer.next('sent'), sk.done]);
      assert.equal(got.bytes, 16 * MiB);
      assert.equal(got.sha, sent, 'peer -> here byte-exact');
      await sk.close();
      await udpEcho(s, '10.65.0.2', 7, 50);
      assert.equal(s.stats().links!.eth0.up, true);

      // our vde_plug dies: the stack says so, with the reason, and stats keep it
      const mine = () => descendants(process.pid, [peer.child.pid!, sw.pid!]);
      const plugs = mine().filter(([, c]) => c === 'vde_plug');
      assert.equal(plugs.length, 1, `one vde_plug of ours: ${JSON.stringify(mine())}`);
      const down = new Promise<ms.LinkDownEvent>((r) => s!.once('linkdown', r));
      process.kill(plugs[0][0], 'SIGKILL');
      const ev = await Promise.race([down, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no linkdown within 5 s')), 5000))]);
      assert.equal(ev.interface, 'eth0');
      assert.match(ev.reason, /vde_plug/);
      assert.match(ev.reason, /status 137|SIGKILL/);
      const link = s.stats().links!.eth0;
      assert.equal(link.up, false);
      assert.equal(link.downReason, ev.reason);
      // the process it ran is reaped: no zombie, no stray sh
      await new Promise((r) => setTimeout(r, 100));
      const left = mine().filter(([, c]) => c === 'vde_plug' || c === 'sh');
      assert.deepEqual(left, [], 'nothing of the command is left');
      // sockets on a down link time out or fail rather than hang the process: a ping fails
      await assert.rejects(s.ping('10.65.0.2', { timeout: 500 }));
    } finally {
      s?.close();
      await peer.close();
      sw.kill('SIGTERM');
      await new Promise((r) => { if (sw.exitCode !== null) r(null); else sw.once('exit', r); });
      fs.rmSync(dir, { recursive: true, force: true });
    }
    checkCapture(file, ['eth:ethertype:arp', 'eth:ethertype:ip:icmp', 'eth:ethertype:ip:tcp', 'eth:ethertype:ip:udp'], 1000);
  });

  it('closing the stack kills and reaps its command', { timeout: 20_000 }, async () => {
    const s = ms.newStack({ interfaces: [{ link: 'cmd://"sleep 30"', ip: '10.66.0.1/24' }] });
    const kids = descendants(process.pid).filter(([, c]) => c === 'sleep' || c === 'sh');
    assert.ok(kids.length >= 1, 'the command runs');
    s.close();
    const left = descendants(process.pid).filter(([, c]) => c === 'sleep' || c === 'sh');
    assert.deepEqual(left, [], 'killed and reaped on close');
  });
});

describe('link errors', () => {
  it('malformed URLs: EINVAL; unknown schemes: EPROTONOSUPPORT; err.syscall newStack with the driver\'s message', () => {
    for (const link of ['udp://nope', 'udp://5000->127.0.0.1', 'udp://5000->127.0.0.1:0', 'udp://x:y->127.0.0.1:9', 'udp://99999->127.0.0.1:9',
      'tap://', 'tap://a/b', 'tap://sixteen-chars-xx', 'cmd://', 'cmd://""', 'no-scheme', 'UPPER://x']) {
      assert.throws(() => ms.newStack({ name: `bad-${process.pid}`, interfaces: [{ link }] }), (e: NodeJS.ErrnoException) => {
        assert.equal(e.code, 'EINVAL', `${link}: ${e.message}`);
        assert.equal(e.syscall, 'newStack');
        assert.ok(e.message.length > `newStack EINVAL ${link}`.length, `a message says why: ${e.message}`);
        return true;
      });
      assert.throws(() => ms.stack(`bad-${process.pid}`), { code: 'ENOENT' }, 'the half-made stack is gone');
    }
    for (const link of ['nosuch://x', 'ptp:///tmp/x']) {
      assert.throws(() => ms.newStack({ interfaces: [{ link }] }), (e: NodeJS.ErrnoException) => {
        assert.equal(e.code, 'EPROTONOSUPPORT');
        assert.equal(e.syscall, 'newStack');
        assert.match(e.message, /no '.*' link driver/);
        return true;
      });
    }
  });

  it('cmd:// on a stream of random bytes: counted as malformed, nothing breaks, the link stays up', { timeout: 30_000 }, async () => {
    const s = ms.newStack({ interfaces: [{ link: 'cmd://"head -c 4000000 /dev/urandom; sleep 30"', ip: '10.73.0.1/24' }] });
    try {
      const deadline = Date.now() + 10_000;
      let link = s.stats().links!.eth0;
      while (Date.now() < deadline && link.rxMalformed + link.rxFrames < 20) {
        await new Promise((r) => setTimeout(r, 20));
        link = s.stats().links!.eth0;
      }
      assert.ok(link.rxMalformed >= 1, `malformed records counted (${link.rxMalformed}, ${link.rxFrames} frames)`);
      assert.equal(link.up, true);
      const eth = s.stats().eth as Record<string, number>;
      assert.equal(eth.inFrames, link.rxFrames, 'the frames that passed the framing reached the stack');
    } finally {
      s.close();
    }
  });

  it('the one-line configuration takes every link kind (commas inside quotes do not split)', () => {
    const o = ms.parseConfigString('eth,ip=10.0.0.2/24,link=cmd://"ssh h vde_plug /tmp/a,b",mtu=1400');
    assert.equal(o.interfaces![0].link, 'cmd://"ssh h vde_plug /tmp/a,b"');
    assert.equal(o.interfaces![0].mtu, 1400);
    assert.equal(ms.parseConfigString('vnl=udp://5000->127.0.0.1:5001,ip=10.0.0.2').interfaces![0].link, 'udp://5000->127.0.0.1:5001');
    assert.equal(ms.parseConfigString('link=vxvde://239.1.2.3/vni=12').interfaces![0].link, 'vxvde://239.1.2.3/vni=12');
    // and a stack made from it opens the link
    const s = ms.newStack('link=cmd://"sleep 5",ip=10.71.0.1/24');
    try {
      assert.equal(s.stats().links!.eth0.kind, 'cmd');
    } finally {
      s.close();
    }
  });

  it('udp:// on a port already bound: EADDRINUSE', async () => {
    const [pa] = await freeUdpPorts(1);
    const hold = dgramNode.createSocket('udp4');
    await new Promise<void>((r) => hold.bind(pa, '127.0.0.1', r));
    try {
      assert.throws(() => ms.newStack({ interfaces: [{ link: `udp://127.0.0.1:${pa}->127.0.0.1:9` }] }), { code: 'EADDRINUSE', syscall: 'newStack' });
    } finally {
      hold.close();
    }
  });

  const unprivSkip = requires({ root: isRoot, '/dev/net/tun': tunUsable });
  ciGuard('tap without privilege', unprivSkip);
  it('tap:// without CAP_NET_ADMIN: EPERM naming the capability', { skip: unprivSkip, timeout: 30_000 }, () => {
    const r = runAsNobody(`
      const ms = require(PKG + '/dist/lib/msocket.js');
      try { ms.newStack({ interfaces: [{ link: 'tap://msnp${process.pid}'.slice(0, 21) }] }); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ code: e.code, syscall: e.syscall, message: e.message })); }`);
    const out = JSON.stringify(r);
    assert.equal(r.code, 'EPERM', out);
    assert.equal(r.syscall, 'newStack');
    assert.match(String(r.message), /CAP_NET_ADMIN/);
  });

  it('cmd:// whose command does not exist: the link goes down with the reason', { timeout: 20_000 }, async () => {
    const s = ms.newStack({ interfaces: [{ link: 'cmd://"msockets-no-such-command-here"', ip: '10.67.0.1/24' }] });
    try {
      const ev = await Promise.race([
        new Promise<ms.LinkDownEvent>((r) => s.once('linkdown', r)),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no linkdown within 5 s')), 5000)),
      ]);
      assert.equal(ev.interface, 'eth0');
      assert.match(ev.reason, /msockets-no-such-command-here' exited with status 127/);
      assert.equal(s.stats().links!.eth0.up, false);
      assert.equal(s.stats().links!.eth0.downReason, ev.reason);
    } finally {
      s.close();
    }
  });

  it('cmd:// framing: records split across reads are reassembled; bad lengths and runts are counted', { timeout: 20_000 }, async () => {
    // the command writes: an ARP request to us split in odd pieces, a 5-byte runt, a 0-length
    // record (skipped), then a length over 9236 (the rest of the stream is discarded)
    const arp = Buffer.from('ffffffffffff02000000000208060001080006040001020000000002' + '0a440002' + '000000000000' + '0a440001', 'hex');
    const rec = Buffer.concat([Buffer.from([0, arp.length]), arp]);
    const hex = (b: Buffer) => [...b].map((x) => '\\' + x.toString(8).padStart(3, '0')).join('');
    const script = [
      `printf '${hex(rec.subarray(0, 1))}'`, 'sleep 0.05', `printf '${hex(rec.subarray(1, 20))}'`, 'sleep 0.05', `printf '${hex(rec.subarray(20))}'`,
      `printf '${hex(Buffer.from([0, 5, 1, 2, 3, 4, 5, 0, 0]))}'`, `printf '${hex(Buffer.from([0x30, 0, 1, 2, 3]))}'`, 'sleep 30',
    ].join('; ');
    const s2 = ms.newStack({ interfaces: [{ mac: '02:00:00:00:00:01', ip: '10.68.0.1/24', link: `cmd://${script}` }] });
    try {
      const deadline = Date.now() + 5000;
      let link = s2.stats().links!.eth0;
      while (Date.now() < deadline && link.rxMalformed < 2) {
        await new Promise((r) => setTimeout(r, 20));
        link = s2.stats().links!.eth0;
      }
      assert.equal(link.rxFrames, 1, 'the split record arrived whole');
      assert.equal(link.rxMalformed, 2, 'the runt and the bad length');
      const arpStats = s2.stats().arp as Record<string, number>;
      assert.equal(arpStats.inRequests, 1, 'the ARP request reached the stack');
      assert.ok(link.txFrames >= 1, 'and the stack answered through the command');
      assert.equal(link.up, true);
    } finally {
      s2.close();
    }
  });
});

describe('a namespace stack whose TAP is pumped to a descriptor link', () => {
  let canNetns = true;
  try { ms.newStack({ kind: 'netns' }).close(); } catch { canNetns = false; }
  const skip = requires({ 'network namespaces': canNetns });
  ciGuard('netns on udp://', skip);
  it('netns kernel <-> udp:// <-> user stack: ping and TCP byte-exact', { skip, timeout: 60_000 }, async () => {
    const [pa, pb] = await freeUdpPorts(2);
    const file = tmpFile('netns-udp');
    let nsStack: ms.NetnsStack | undefined;
    let s: UserStack | undefined;
    try {
      nsStack = ms.newStack({ kind: 'netns', interfaces: [{ link: `udp://127.0.0.1:${pa}->127.0.0.1:${pb}`, ip: ['10.69.0.1/24'] }] });
      s = ms.newStack({ interfaces: [{ link: `udp://127.0.0.1:${pb}->127.0.0.1:${pa}`, ip: '10.69.0.2/24', capture: file }] });
      assert.ok((await s.ping('10.69.0.1')) >= 0, 'the namespace kernel answers through the udp link');
      const a = await sink(nsStack.net, '10.69.0.1', 5000);
      const sent = await source(s.net, '10.69.0.1', 5000, 8 * MiB);
      const got = await a.done;
      assert.equal(got.bytes, 8 * MiB);
      assert.equal(got.sha, sent);
      await a.close();
    } finally {
      s?.close();
      nsStack?.close();
    }
    checkCapture(file, ['eth:ethertype:arp', 'eth:ethertype:ip:icmp', 'eth:ethertype:ip:tcp'], 100);
  });

  it('a link that cannot open fails the namespace stack cleanly', () => {
    if (!canNetns) return;
    assert.throws(() => ms.newStack({ kind: 'netns', interfaces: [{ link: 'udp://nope' }] }), { code: 'EINVAL', syscall: 'newStack' });
  });
});

describe('links and the environment', () => {
  it('openLinkPort: frames from JavaScript through a link and back; the link going down is reported once', { timeout: 20_000 }, async () => {
    const got: Buffer[] = [];
    let downs: string[] = [];
    const port = ms.openLinkPort('cmd://cat', (frames) => got.push(...frames), (r) => downs.push(r));
    try {
      const sent = Array.from({ length: 100 }, (_, i) => Buffer.alloc(14 + i * 50, i));
      for (const f of sent) assert.equal(port.send(f), 0);
      assert.equal(port.send(Buffer.alloc(5)), -osErrno('EINVAL'), 'a runt is refused');
      const deadline = Date.now() + 5000;
      while (got.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(got.length, sent.length);
      for (let i = 0; i < sent.length; i++) assert.ok(got[i].equals(sent[i]), `frame ${i} came back intact`);
      assert.equal(port.stats()!.txFrames, 100);
    } finally {
      port.close();
    }
    downs = [];
    const dying = ms.openLinkPort('cmd://"exit 2"', () => undefined, (r) => downs.push(r));
    try {
      const deadline = Date.now() + 5000;
      while (downs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(downs, ["cmd: 'exit 2' exited with status 2"]);
      assert.equal(dying.stats()!.up, false);
      assert.equal(dying.send(Buffer.alloc(60)), -osErrno('ENETDOWN'));
    } finally {
      dying.close();
    }
    assert.throws(() => ms.openLinkPort('udp://nope', () => undefined), { code: 'EINVAL', syscall: 'newStack' });
  });

  it('a worker that exits with stacks on udp:// and cmd:// links leaves no descriptor and no process behind', { timeout: 30_000 }, async () => {
    const fdCount = () => fs.readdirSync('/proc/self/fd').length;
    ms.newStack().close();  // the addon is loaded in this thread already
    const [pa, pb] = await freeUdpPorts(2);
    const before = fdCount();
    const entry = path.join(__dirname, '..', 'lib', 'msocket.js');
    const w = new Worker(`
      const { parentPort, workerData } = require('worker_threads');
      const ms = require(workerData.entry);
      const a = ms.newStack({ interfaces: [{ link: 'udp://127.0.0.1:${pa}->127.0.0.1:${pb}', ip: '10.70.0.1/24' }] });
      const b = ms.newStack({ interfaces: [{ link: 'udp://127.0.0.1:${pb}->127.0.0.1:${pa}', ip: '10.70.0.2/24' }] });
      const c = ms.newStack({ interfaces: [{ link: 'cmd://"sleep 60"', ip: '10.70.0.3/24' }] });
      a.ping('10.70.0.2').then((rtt) => parentPort.postMessage({ rtt }));
      setInterval(() => {}, 1000);  // links do not keep a thread alive: this does, until terminate()
      // no close(): the environment's teardown must do it
    `, { eval: true, workerData: { entry } });
    let kids: [number, string][] = [];
    const msg = await new Promise<{ rtt: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    assert.ok(msg.rtt >= 0, 'the stacks talked over the udp link inside the worker');
    kids = descendants(process.pid).filter(([, c]) => c === 'sleep' || c === 'sh');
    assert.ok(kids.length >= 1, `the worker's command runs: ${JSON.stringify(descendants(process.pid))}`);
    await w.terminate();
    assert.equal(fdCount(), before, 'the links\' descriptors are closed');
    assert.deepEqual(descendants(process.pid).filter(([, c]) => c === 'sleep' || c === 'sh'), [], 'the command is killed and reaped');
  });
});
