// User stacks on vde://, vxvde:// and vxlan:// links, from JavaScript, against real peers:
// two Node processes through one vde_switch; three Node processes in three network
// namespaces (bridged) on one vxvde group; a user stack and a Linux kernel vxlan device.
// Each keeps a pcap capture and checks that tshark decodes every frame with valid checksums.
// (The drivers' own tests, with the Debian vde_plug and the kernel answering, are the C++
// test/engine/{vde,vxvde,vxlan}_link_test.cc.)
import assert from 'node:assert/strict';
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import * as ms from '../lib/msocket';
import type { UserStack } from '../lib/msocket';
import { checkCapture as checkPcap } from './helpers/tshark';
import { echoExact, payload } from './helpers/userpair';

const MiB = 1 << 20;
const CI = process.env.CI === 'true';
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const isRoot = process.getuid?.() === 0;

function requires(what: Record<string, boolean>): string | false {
  const missing = Object.entries(what).filter(([, ok]) => !ok).map(([k]) => k);
  return missing.length ? `needs ${missing.join(', ')}` : false;
}
function ciGuard(name: string, skip: string | false): void {
  if (skip && CI) it(`${name}: its requirements are present under CI`, () => assert.fail(`${skip} (CI=true)`));
}

/** tshark decodes every frame (Linux peers in some); the test payloads on `ports` decoded as data */
function checkCapture(file: string, ports: number[], minFrames: number): void {
  checkPcap(file, { minFrames, data: { tcp: ports }, linuxPeer: true, removeIfClean: true });
}

function mbps(bytes: number, msec: number): string {
  return `${((bytes * 8) / (msec / 1000) / 1e6).toFixed(0)} Mbit/s`;
}


// ---- a peer in another process (test/helpers/vx-peer.ts), optionally inside a namespace

interface Peer { child: ChildProcess; ask(m: object, key: string, timeoutMs?: number): Promise<Record<string, unknown>>; close(): Promise<void> }

function startPeer(netns?: string): Peer {
  const script = path.join(__dirname, 'helpers', 'vx-peer.js');
  const child = netns
    ? spawn('ip', ['netns', 'exec', netns, process.execPath, script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: Record<string, unknown>[] = [];
  const waiters: { key: string; resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  child.on('message', (m: Record<string, unknown>) => {
    const w = waiters.findIndex((x) => x.key in m || 'error' in m);
    if (w >= 0) {
      const [x] = waiters.splice(w, 1);
      if ('error' in m && !(x.key in m)) x.reject(new Error(`peer: ${String(m.error)}`));
      else x.resolve(m);
    } else queue.push(m);
  });
  child.on('exit', () => { for (const w of waiters.splice(0)) w.reject(new Error('the peer exited')); });
  const next = (key: string, timeoutMs: number) => {
    const i = queue.findIndex((m) => key in m);
    if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no '${key}' from the peer in ${timeoutMs} ms`)), timeoutMs);
      waiters.push({ key, resolve: (m) => { clearTimeout(t); resolve(m); }, reject: (e) => { clearTimeout(t); reject(e); } });
    });
  };
  const hello = next('hello', 20_000);
  return {
    child,
    async ask(m, key, timeoutMs = 60_000) {
      await hello;
      const p = next(key, timeoutMs);
      child.send(m);
      return p;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      if (child.connected) child.send({ op: 'exit' });
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    },
  };
}

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// ---------------------------------------------------------------------------------------

describe('vde:// — two Node processes on one vde_switch', () => {
  const skip = requires({ vde_switch: has('vde_switch') });
  ciGuard('vde', skip);
  it('ping, TCP byte-exact both ways, a missing switch is ENOENT, a vanished switch takes the link down', { skip, timeout: 120_000 }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msvx-js-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const swdir = path.join(dir, 'sw');
    const file = path.join(dir, 'vde.pcap');
    const sw = spawn('vde_switch', ['-s', swdir], { stdio: ['pipe', 'ignore', 'ignore'] });
    const peer = startPeer();
    let s: UserStack | undefined;
    try {
      for (let i = 0; i < 250 && !fs.existsSync(path.join(swdir, 'ctl')); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(fs.existsSync(path.join(swdir, 'ctl')), 'vde_switch made its control socket');
      await peer.ask({ op: 'start', link: `vde://${swdir}`, ip: '10.67.0.2/24' }, 'ready');
      s = ms.newStack({ interfaces: [{ link: `vde://${swdir}[4]`, ip: '10.67.0.1/24', capture: file }] });
      assert.ok((await s.ping('10.67.0.2')) >= 0);
      const msec = await echoExact(s.net, '10.67.0.2', 7, 16 * MiB);
      t.diagnostic(`vde_switch between two processes, echo of 16 MiB: ${mbps(16 * MiB, msec)} each way`);
      // the peer's turn: it echoes through a server here
      const srv = s.net.createServer((c) => { c.on('error', () => undefined); c.pipe(c); });
      await new Promise<void>((r) => srv.listen(7, r));
      const { echoed } = await peer.ask({ op: 'echo', host: '10.67.0.1', port: 7, bytes: 4 * MiB }, 'echoed') as { echoed: { bytes: number } };
      assert.equal(echoed.bytes, 4 * MiB);
      srv.close();
      const link = s.stats().links!.eth0;
      assert.equal(link.kind, 'vde');
      assert.equal(link.up, true);
      assert.equal(link.rxMalformed, 0);
      assert.ok(link.rxFrames > 10000 && link.txFrames > 10000);
      s.capture(null);
      // no switch there
      assert.throws(() => ms.newStack({ interfaces: [{ link: `vde://${dir}/nope` }] }), (e: NodeJS.ErrnoException) => {
        assert.equal(e.code, 'ENOENT');
        assert.equal(e.syscall, 'newStack');
        assert.match(e.message, /no switch/);
        return true;
      });
      // the switch goes away: our link goes down and says why
      const down = new Promise((r) => s!.once('linkdown', r));
      sw.kill('SIGTERM');
      await Promise.race([down, new Promise((_, rej) => setTimeout(() => rej(new Error('no linkdown')), 5000))]);
      const after = s.stats().links!.eth0;
      assert.equal(after.up, false);
      assert.match(after.downReason ?? '', /switch/);
    } finally {
      s?.close();
      await peer.close();
      sw.kill('SIGKILL');
    }
    checkCapture(file, [7], 1000);
  });
});

describe('vde:// — a user stack and the Linux kernel through vde_switch and vde_plug', () => {
  const skip = requires({ root: isRoot, vde_switch: has('vde_switch'), vde_plug: has('vde_plug'), ip: has('ip'), ping: has('ping'), curl: has('curl') });
  ciGuard('vde to the kernel', skip);
  it('kernel ping, curl to a server on the user stack, a user-stack client to a kernel server, 128 MiB byte-exact both ways', { skip, timeout: 300_000 }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msvx-kern-'));
    const ns = `msvx-kern-${process.pid}`;
    const tap = `msvk${process.pid % 100000}`;
    const swdir = path.join(dir, 'sw');
    const file = path.join(dir, 'vde-kernel.pcap');
    const sw = spawn('vde_switch', ['-s', swdir], { stdio: ['pipe', 'ignore', 'ignore'] });
    let plug: ChildProcess | undefined;
    let s: UserStack | undefined;
    const servers: { close(): void }[] = [];
    try {
      for (let i = 0; i < 250 && !fs.existsSync(path.join(swdir, 'ctl')); i++) await new Promise((r) => setTimeout(r, 20));
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // Debian's vde_plug joins the switch to a TAP device inside the namespace: the kernel's side
      plug = spawn('ip', ['netns', 'exec', ns, 'vde_plug', `vde://${swdir}`, `tap://${tap}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      let plugErr = '';
      plug.stderr!.on('data', (d) => { plugErr += d; });
      for (let i = 0; i < 250 && spawnSync('ip', ['-n', ns, 'link', 'show', tap]).status !== 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(spawnSync('ip', ['-n', ns, 'link', 'show', tap]).status, 0, `vde_plug made ${tap} in the namespace: ${plugErr}`);
      sh('ip', ['-n', ns, 'addr', 'add', '10.74.0.1/24', 'dev', tap]);
      sh('ip', ['-n', ns, 'link', 'set', tap, 'up']);

      s = ms.newStack({ interfaces: [{ link: `vde://${swdir}`, ip: '10.74.0.2/24', capture: file }] });
      // ping both ways
      // (asynchronously: the user stack answers from this process's event loop)
      const pingK = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn('ip', ['netns', 'exec', ns, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.74.0.2'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout!.on('data', (d) => { out += d; });
        p.stderr!.on('data', (d) => { out += d; });
        p.on('close', (code) => resolve({ code, out }));
      });
      assert.equal(pingK.code, 0, `kernel ping to the user stack: ${pingK.out}`);
      assert.ok((await s.ping('10.74.0.1')) >= 0);
      // a kernel echo server in the namespace (a socket made there from this process)
      const k = ms.stack(`netns:${ns}`);
      const ks = k.net.createServer((c) => { c.on('error', () => undefined); c.pipe(c); });
      servers.push(ks);
      await new Promise<void>((r) => ks.listen(7007, '10.74.0.1', r));
      // the capture for tshark covers ARP, ICMP and a 4 MiB exchange; the 128 MiB runs follow uncaptured
      await echoExact(s.net, '10.74.0.1', 7007, 4 * MiB);
      s.capture(null);

      // curl in the namespace downloads 128 MiB from an HTTP server on the user stack
      const http = await import('node:http');
      // what the server writes is hashed as it goes (payload() draws fresh random blocks per call)
      const body = createHash('sha256');
      let bodyBytes = 0;
      const h = http.createServer((req, res) => {
        res.writeHead(200, { 'content-length': String(128 * MiB) });
        const gen = payload(128 * MiB, 1 << 16, 11);
        const pump = () => {
          for (let n = gen.next(); !n.done; n = gen.next()) {
            body.update(n.value);
            bodyBytes += n.value.length;
            if (!res.write(n.value)) { res.once('drain', pump); return; }
          }
          res.end();
        };
        pump();
      });
      const hs = s.net.createServer((c) => h.emit('connection', c));
      servers.push(hs);
      await new Promise<void>((r) => hs.listen(8080, r));
      const t0 = Date.now();
      const curl = await new Promise<{ code: number | null; sha: string; bytes: number; err: string }>((resolve) => {
        const p = spawn('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', '120', 'http://10.74.0.2:8080/big'], { stdio: ['ignore', 'pipe', 'pipe'] });
        const hh = createHash('sha256');
        let bytes = 0, err = '';
        p.stdout!.on('data', (d: Buffer) => { hh.update(d); bytes += d.length; });
        p.stderr!.on('data', (d) => { err += d; });
        p.on('close', (code) => resolve({ code, sha: hh.digest('hex'), bytes, err }));
      });
      assert.equal(curl.code, 0, `curl: ${curl.err}`);
      assert.equal(curl.bytes, bodyBytes);
      assert.equal(curl.sha, body.digest('hex'), 'curl got the body byte-exact');
      t.diagnostic(`kernel curl <- user stack over vde_switch, 128 MiB: ${mbps(128 * MiB, Date.now() - t0)}`);

      // a user-stack client to a kernel server in the namespace: 128 MiB echoed, both ways at once
      const msec = await echoExact(s.net, '10.74.0.1', 7007, 128 * MiB);
      t.diagnostic(`user stack -> kernel echo over vde_switch, 128 MiB each way: ${mbps(128 * MiB, msec)} each way`);
      assert.equal(s.stats().links!.eth0.rxMalformed, 0);
    } finally {
      for (const x of servers) x.close();
      s?.close();
      plug?.kill('SIGTERM');
      sw.kill('SIGKILL');
      spawnSync('ip', ['netns', 'del', ns]);
    }
    checkCapture(file, [7007, 8080], 500);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('vxvde:// — three Node processes in three network namespaces on one group', () => {
  const skip = requires({ root: isRoot, 'ip (iproute2)': has('ip') });
  ciGuard('vxvde', skip);
  it('all pairs ping and echo TCP byte-exact; the appliance that leaves (goodbye) and comes back elsewhere with its MAC and IP is reachable at once', { skip, timeout: 180_000 }, async (t) => {
    const id = process.pid;
    const br = `msvxjbr${id}`;
    // three hosts, and a fourth where the third one's appliance moves to
    const nss = [1, 2, 3, 4].map((i) => `msvxj${i}-${id}`);
    const peers: Peer[] = [];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msvx-js-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'vxvde.pcap');
    try {
      // a LAN: each namespace has a veth into a bridge (multicast flooded, no snooping)
      sh('ip', ['netns', 'add', br]);
      sh('ip', ['-n', br, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
      sh('ip', ['-n', br, 'link', 'set', 'br0', 'up']);
      nss.forEach((ns, k) => {
        sh('ip', ['netns', 'add', ns]);
        sh('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${k}`, 'netns', br]);
        sh('ip', ['-n', br, 'link', 'set', `p${k}`, 'master', 'br0']);
        sh('ip', ['-n', br, 'link', 'set', `p${k}`, 'up']);
        sh('ip', ['-n', ns, 'addr', 'add', `10.214.0.${k + 1}/24`, 'dev', 'eth0']);
        sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
        sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        sh('ip', ['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      });
      const macs: string[] = [];
      for (const [k, ns] of nss.slice(0, 3).entries()) {
        const p = startPeer(ns);
        peers.push(p);
        const { mac } = await p.ask({ op: 'start', link: 'vxvde://239.77.0.9/vni=9', ip: `10.68.0.${k + 1}/24`, capture: k === 0 ? file : undefined }, 'ready') as { mac: string };
        macs.push(mac);
      }
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          if (i === j) continue;
          const { pinged } = await peers[i].ask({ op: 'ping', host: `10.68.0.${j + 1}` }, 'pinged') as { pinged: number };
          assert.ok(pinged >= 0);
          const { echoed } = await peers[i].ask({ op: 'echo', host: `10.68.0.${j + 1}`, port: 7, bytes: 2 * MiB }, 'echoed') as { echoed: { bytes: number; ms: number } };
          assert.equal(echoed.bytes, 2 * MiB);
          t.diagnostic(`vxvde ${i + 1} -> ${j + 1}: echo of 2 MiB, ${mbps(2 * MiB, echoed.ms)} each way`);
        }
      }
      // the appliance on host 3 stops (its link says goodbye) and starts on host 4 with the same
      // MAC and IP: hosts 1 and 2 forgot where that MAC was, so their first frames flood and
      // find it; without the goodbye they would unicast to host 3 until the entry aged out
      // (vxvde's expiretime, 128 s by default) and this ping would time out
      await peers[2].close();
      peers.splice(2, 1);
      const moved = startPeer(nss[3]);
      peers.push(moved);
      await moved.ask({ op: 'start', link: 'vxvde://239.77.0.9/vni=9', ip: '10.68.0.3/24', mac: macs[2] }, 'ready');
      for (const i of [0, 1]) {
        const { pinged } = await peers[i].ask({ op: 'ping', host: '10.68.0.3' }, 'pinged') as { pinged: number };
        assert.ok(pinged >= 0, `host ${i + 1} reaches the moved appliance`);
        const { echoed } = await peers[i].ask({ op: 'echo', host: '10.68.0.3', port: 7, bytes: MiB }, 'echoed') as { echoed: { bytes: number } };
        assert.equal(echoed.bytes, MiB);
      }
      for (const p of peers) {
        const { stats } = await p.ask({ op: 'stats' }, 'stats') as { stats: { links: Record<string, { kind: string; up: boolean; rxMalformed: number; rxFrames: number }> } };
        const link = stats.links.eth0;
        assert.equal(link.kind, 'vxvde');
        assert.equal(link.up, true);
        assert.equal(link.rxMalformed, 0);
        assert.ok(link.rxFrames > 1000);
      }
    } finally {
      for (const p of peers) await p.close();
      for (const ns of [...nss, br]) spawnSync('ip', ['netns', 'del', ns]);
    }
    checkCapture(file, [7], 1000);
  });
});

describe('vxlan:// — a user stack and a Linux kernel vxlan device', () => {
  const skip = requires({ root: isRoot, 'ip (iproute2)': has('ip'), python3: has('python3') });
  ciGuard('vxlan', skip);
  it('ping and TCP byte-exact to a kernel echo server behind a vxlan device in another namespace', { skip, timeout: 120_000 }, async (t) => {
    const id = process.pid;
    const na = `msvxla-${id}`;
    const nb = `msvxlb-${id}`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msvx-js-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'vxlan.pcap');
    let peer: Peer | undefined;
    let server: ChildProcess | undefined;
    try {
      sh('ip', ['netns', 'add', na]);
      sh('ip', ['netns', 'add', nb]);
      sh('ip', ['-n', na, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nb]);
      for (const [ns, a] of [[na, '10.215.0.1/24'], [nb, '10.215.0.2/24']]) {
        sh('ip', ['-n', ns, 'addr', 'add', a, 'dev', 'eth0']);
        sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
        sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        sh('ip', ['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      }
      sh('ip', ['-n', nb, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '10', 'group', '239.77.0.10', 'dev', 'eth0', 'dstport', '4789']);
      sh('ip', ['-n', nb, 'addr', 'add', '10.69.0.100/24', 'dev', 'vx0']);
      sh('ip', ['-n', nb, 'link', 'set', 'vx0', 'up']);
      // `ethtool -K vx0 tx off`, by ioctl: through a veth, the kernel's offloaded TCP checksums
      // would never be filled in (no real NIC on the way)
      const off = 'import socket,fcntl,struct,ctypes\nev=ctypes.create_string_buffer(struct.pack("II",0x17,0))\n' +
        's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfcntl.ioctl(s.fileno(),0x8946,struct.pack("16sP",b"vx0",ctypes.addressof(ev))+bytes(16))\n';
      sh('ip', ['netns', 'exec', nb, 'python3', '-c', off]);
      const echo = 'import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n' +
        's.bind(("10.69.0.100", 7777)); s.listen(4); print("ready", flush=True)\nwhile True:\n  c,_=s.accept()\n' +
        '  while True:\n    d=c.recv(262144)\n    if not d: break\n    c.sendall(d)\n  c.close()\n';
      server = spawn('ip', ['netns', 'exec', nb, 'python3', '-c', echo], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        const to = setTimeout(() => reject(new Error('the echo server did not start')), 10_000);
        server!.stdout!.once('data', () => { clearTimeout(to); resolve(); });
      });
      peer = startPeer(na);
      await peer.ask({ op: 'start', link: 'vxlan://239.77.0.10/vni=10', ip: '10.69.0.1/24', capture: file }, 'ready');
      const { pinged } = await peer.ask({ op: 'ping', host: '10.69.0.100' }, 'pinged') as { pinged: number };
      assert.ok(pinged >= 0);
      const { echoed } = await peer.ask({ op: 'echo', host: '10.69.0.100', port: 7777, bytes: 8 * MiB }, 'echoed') as { echoed: { bytes: number; ms: number } };
      assert.equal(echoed.bytes, 8 * MiB);
      t.diagnostic(`vxlan to a kernel vxlan device: echo of 8 MiB, ${mbps(8 * MiB, echoed.ms)} each way`);
      const { stats } = await peer.ask({ op: 'stats' }, 'stats') as { stats: { links: Record<string, { kind: string; up: boolean; rxMalformed: number }> } };
      assert.equal(stats.links.eth0.kind, 'vxlan');
      assert.equal(stats.links.eth0.up, true);
      assert.equal(stats.links.eth0.rxMalformed, 0);
    } finally {
      await peer?.close();
      server?.kill('SIGKILL');
      spawnSync('ip', ['netns', 'del', na]);
      spawnSync('ip', ['netns', 'del', nb]);
    }
    checkCapture(file, [7777], 1000);
  });
});
