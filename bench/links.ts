// node dist/bench/links.js [--mib N] [--runs N] [udp] [cmd] [tap]
// TCP bulk throughput through descriptor links, next to the kernel stack on the same kind of
// path, all driven from this one process and event loop:
//   udp: two user stacks on udp:// over loopback        | kernel: Node's net over 127.0.0.1
//   cmd: two user stacks on cmd://"vde_plug DIR" to one vde_switch
//                                                        | kernel: two namespaces whose TAP devices
//                                                          are on the same switch (vde_plug2tap)
//   tap: a user stack on tap:// -> the kernel of a namespace on the TAP's other side
//                                                        | kernel: namespace -> namespace over a veth pair
// Needs root for cmd's kernel row and for tap (namespaces, TAP and veth devices).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'child_process';
import * as dgramNode from 'dgram';
import * as fs from 'fs';
import * as netNode from 'net';
import * as os from 'os';
import * as path from 'path';

import * as ms from '../lib/msocket';

const argv = process.argv.slice(2);
const opt = (name: string, def: number) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : def; };
const MIB = opt('--mib', 64);
const RUNS = opt('--runs', 3);
const only = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
const want = (c: string) => only.length === 0 || only.includes(c);
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
const sleep = (ms_: number) => new Promise((r) => setTimeout(r, ms_));

/** Mbit/s of one TCP transfer of MIB MiB from client to a sink server */
async function bulk(server: typeof netNode, host: string, client: typeof netNode, port: number): Promise<number> {
  const total = MIB << 20;
  const srv = server.createServer();
  const done = new Promise<number>((resolve, reject) => {
    srv.once('connection', (s) => {
      let got = 0;
      s.on('data', (d: Buffer) => { got += d.length; });
      s.on('end', () => { s.end(); resolve(got); });
      s.on('error', reject);
    });
  });
  await new Promise<void>((r) => srv.listen(port, host, r));
  port = (srv.address() as netNode.AddressInfo).port;
  const chunk = Buffer.alloc(1 << 16, 0x5a);
  const t0 = process.hrtime.bigint();
  const c = client.connect(port, host);
  await new Promise((r, j) => { c.once('connect', r); c.once('error', j); });
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!c.write(chunk)) await new Promise((r) => c.once('drain', r));
  }
  c.end();
  const got = await done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise<void>((r) => srv.close(() => r()));
  if (got !== total) throw new Error(`received ${got} of ${total}`);
  return (total * 8) / secs / 1e6;
}

async function median(fn: (run: number) => Promise<number>): Promise<string> {
  const v: number[] = [];
  for (let i = 0; i < RUNS; i++) v.push(await fn(i));
  v.sort((a, b) => a - b);
  return `${v[Math.floor(v.length / 2)].toFixed(0)} Mbit/s (${v.map((x) => x.toFixed(0)).join(', ')})`;
}

const rows: [string, string, string][] = [];
function row(name: string, user: string, kernel: string): void {
  rows.push([name, user, kernel]);
  console.log(`${name.padEnd(12)} user stack: ${user.padEnd(34)} kernel: ${kernel}`);
}

async function freePorts(n: number): Promise<number[]> {
  const s = await Promise.all(Array.from({ length: n }, () => new Promise<dgramNode.Socket>((r) => { const u = dgramNode.createSocket('udp4'); u.bind(0, '127.0.0.1', () => r(u)); })));
  const p = s.map((u) => u.address().port);
  for (const u of s) u.close();
  return p;
}

async function caseUdp(): Promise<void> {
  const [pa, pb] = await freePorts(2);
  const a = ms.newStack({ interfaces: [{ link: `udp://127.0.0.1:${pa}->127.0.0.1:${pb}`, ip: '10.80.0.1/24' }] });
  const b = ms.newStack({ interfaces: [{ link: `udp://127.0.0.1:${pb}->127.0.0.1:${pa}`, ip: '10.80.0.2/24' }] });
  try {
    await a.ping('10.80.0.2');
    const user = await median((i) => bulk(b.net, '10.80.0.2', a.net, 6000 + i));
    const kernel = await median(() => bulk(netNode, '127.0.0.1', netNode, 0));
    row('udp', user, `${kernel} [loopback]`);
  } finally {
    a.close();
    b.close();
  }
}

async function caseCmd(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msockets-bench-sw-'));
  const swdir = path.join(dir, 'sw');
  const procs: ChildProcess[] = [];
  const nss: string[] = [];
  const sw = spawn('vde_switch', ['-s', swdir], { stdio: ['pipe', 'ignore', 'ignore'] });
  procs.push(sw);
  try {
    for (let i = 0; i < 100 && !fs.existsSync(path.join(swdir, 'ctl')); i++) await sleep(20);
    const a = ms.newStack({ interfaces: [{ link: `cmd://"vde_plug ${swdir}"`, ip: '10.81.0.1/24' }] });
    const b = ms.newStack({ interfaces: [{ link: `cmd://"vde_plug ${swdir}"`, ip: '10.81.0.2/24' }] });
    let user = '';
    try {
      await a.ping('10.81.0.2').catch(() => a.ping('10.81.0.2'));
      user = await median((i) => bulk(b.net, '10.81.0.2', a.net, 6000 + i));
    } finally {
      a.close();
      b.close();
    }
    let kernel = 'n/a (needs root and vde_plug2tap)';
    if (process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v vde_plug2tap']).status === 0) {
      const stacks: ms.Stack[] = [];
      for (const [i, ip] of [[1, '10.82.0.1/24'], [2, '10.82.0.2/24']] as const) {
        const ns = `msbk${process.pid}${i}`;
        const tap = `msbt${process.pid}${i}`.slice(0, 15);
        sh('ip', ['netns', 'add', ns]);
        nss.push(ns);
        procs.push(spawn('vde_plug2tap', ['-s', swdir, tap], { stdio: 'ignore' }));
        for (let k = 0; k < 100 && spawnSync('ip', ['link', 'show', tap], { stdio: 'ignore' }).status !== 0; k++) await sleep(20);
        sh('ip', ['link', 'set', tap, 'netns', ns]);
        sh('ip', ['-n', ns, 'addr', 'add', ip, 'dev', tap]);
        sh('ip', ['-n', ns, 'link', 'set', tap, 'up']);
        stacks.push(ms.stack(`netns:${ns}`));
      }
      await sleep(300);
      kernel = `${await median((i) => bulk(stacks[1].net, '10.82.0.2', stacks[0].net, 6000 + i))} [namespaces on the switch via vde_plug2tap]`;
      for (const s of stacks) s.close();
    }
    row('cmd+vde', user, kernel);
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    for (const ns of nss) spawnSync('ip', ['netns', 'del', ns]);
    await sleep(100);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function caseTap(): Promise<void> {
  if (process.getuid?.() !== 0) { row('tap', 'n/a (needs root)', 'n/a'); return; }
  const ns = `msbn${process.pid}`;
  const dev = `msbd${process.pid}`.slice(0, 15);
  const k1 = `msbk1${process.pid}`;
  const k2 = `msbk2${process.pid}`;
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['netns', 'add', k1]);
  sh('ip', ['netns', 'add', k2]);
  let s: ms.UserStack | undefined;
  const stacks: ms.Stack[] = [];
  try {
    s = ms.newStack({ interfaces: [{ link: `tap://${dev}`, ip: '10.83.0.2/24' }] });
    sh('ip', ['link', 'set', dev, 'netns', ns]);
    sh('ip', ['-n', ns, 'addr', 'add', '10.83.0.1/24', 'dev', dev]);
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    const k = ms.stack(`netns:${ns}`);
    stacks.push(k);
    await s.ping('10.83.0.1');
    const up = await median((i) => bulk(k.net, '10.83.0.1', s!.net, 6000 + i));
    const down = await median((i) => bulk(s!.net, '10.83.0.2', k.net, 6100 + i));
    // the kernel on both ends of a veth pair
    sh('ip', ['link', 'add', 'msbv0', 'netns', k1, 'type', 'veth', 'peer', 'name', 'msbv1', 'netns', k2]);
    sh('ip', ['-n', k1, 'addr', 'add', '10.84.0.1/24', 'dev', 'msbv0']);
    sh('ip', ['-n', k2, 'addr', 'add', '10.84.0.2/24', 'dev', 'msbv1']);
    sh('ip', ['-n', k1, 'link', 'set', 'msbv0', 'up']);
    sh('ip', ['-n', k2, 'link', 'set', 'msbv1', 'up']);
    const s1 = ms.stack(`netns:${k1}`);
    const s2 = ms.stack(`netns:${k2}`);
    stacks.push(s1, s2);
    await sleep(200);
    const kernel = await median((i) => bulk(s2.net, '10.84.0.2', s1.net, 6200 + i));
    row('tap u->k', up, `${kernel} [namespace -> namespace over veth]`);
    row('tap k->u', down, '');
  } finally {
    s?.close();
    for (const x of stacks) x.close();
    for (const n of [ns, k1, k2]) spawnSync('ip', ['netns', 'del', n]);
  }
}

(async () => {
  console.log(`TCP bulk, ${MIB} MiB per run, median of ${RUNS} (${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(1)})`);
  if (want('udp')) await caseUdp();
  if (want('cmd')) await caseCmd();
  if (want('tap')) await caseTap();
})().catch((e) => { console.error(e); process.exit(1); });
