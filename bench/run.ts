// npm run bench [-- --quick] [-- CASE ...] [-- --list]
//
// msockets against what users would use instead, Node's own net/dgram over the kernel stack,
// in the same process and the same run. Every figure is the median of several runs, shown
// with its spread [min..max]. The ratio is msockets / kernel for rates, and kernel / msockets
// for times and memory, so a ratio above 1 always means msockets did better. Targets are
// those of issue 7; each row says whether it met its target in this run.
//
// Output: a table on stdout (the machine and Node version on top), and in bench/results/
// latest.{json,md} + ratios.svg for a full run, quick.{json,md,svg} for --quick.
// Memory figures come from child processes (a fresh heap each), so that what one case
// allocated does not hide in another's RSS.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'child_process';
import * as dgramNode from 'dgram';
import * as fs from 'fs';
import * as netNode from 'net';
import * as os from 'os';
import * as path from 'path';
import * as v8 from 'v8';
import * as vm from 'vm';

import * as ms from '../lib/msocket';
import { native } from '../lib/native';
import type { RawSocket } from '../lib/raw';

const MiB = 1 << 20;
const gc = (() => { v8.setFlagsFromString('--expose-gc'); return vm.runInNewContext('gc') as () => void; })();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// figures, rows, targets

type Better = 'higher' | 'lower';
interface Figure { median: number; min: number; max: number; runs: number[] }
/** ratio: on the ratio; max: the msockets median must be at most value; ok: the case must succeed */
interface Target { text: string; kind: 'ratio' | 'max' | 'ok'; value: number }
interface Row {
  case: string;           // the case it belongs to (the name that selects it)
  name: string;
  unit: string;
  better: Better;
  msockets: Figure | null;
  kernel: Figure | null;
  kernelWhat?: string;    // what the kernel column measured, when it is not Node over loopback
  ratio: number | null;
  ratioMin: number | null; // worst combination of the two spreads
  ratioMax: number | null;
  target?: Target;
  met: boolean | null;
  note?: string;
  skipped?: string;       // why there are no figures
  failed?: string;        // the error that ended this part of the case
}

function fig(runs: number[]): Figure {
  const s = [...runs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], runs };
}

const ratioTarget = (x: number): Target => ({ text: `>= ${x}x`, kind: 'ratio', value: x });
const maxTarget = (x: number, text: string): Target => ({ text, kind: 'max', value: x });

// ---------------------------------------------------------------------------------------
// the command line

interface Options { quick: boolean; cases: string[]; child: string[] | null; list: boolean; render: string | null; readme: boolean }

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, cases: [], child: null, list: false, render: null, readme: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--list' || a === '--help' || a === '-h') o.list = true;
    else if (a === '--readme') o.readme = true;
    else if (a === '--child') { o.child = argv.slice(i + 1); break; }
    else if (a === '--render') o.render = argv[++i] ?? usage('--render needs a results name (latest, quick, ...)');
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else o.cases.push(a);
  }
  return o;
}

function usage(problem?: string): never {
  const say = problem ? console.error : console.log;
  if (problem) say(`bench: ${problem}`);
  say('usage: npm run bench [-- --quick] [-- CASE ...]   (cases run in this order)');
  say('       npm run bench -- --render NAME   (bench/results/NAME.json into NAME.md and its chart again)');
  say('       add --readme to a full run or to --render latest: the tables in README.md and bench/README.md too');
  for (const c of CASES) say(`  ${c.name.padEnd(9)} ${c.title}`);
  process.exit(problem ? 2 : 0);
}

// ---------------------------------------------------------------------------------------
// the run's context: settings, rows, output

class Bench {
  readonly rows: Row[] = [];
  /** runs per figure */
  readonly runs: number;
  /** runs per figure of the long cases (100,000 stacks, idle connections, impairments) */
  readonly fewRuns = 3;
  failures = 0;
  current = '';

  constructor(readonly quick: boolean) {
    this.runs = quick ? 3 : 5;
  }

  record(r: {
    name: string; unit: string; better: Better; m: Figure | null; k: Figure | null;
    target?: Target; note?: string; kernelWhat?: string;
  }): void {
    const { m, k } = r;
    let ratio: number | null = null;
    let ratioMin: number | null = null;
    let ratioMax: number | null = null;
    if (m && k && m.median > 0 && k.median > 0 && m.min > 0 && k.min > 0) {
      if (r.better === 'higher') { ratio = m.median / k.median; ratioMin = m.min / k.max; ratioMax = m.max / k.min; } else {
        ratio = k.median / m.median; ratioMin = k.min / m.max; ratioMax = k.max / m.min;
      }
    }
    let met: boolean | null = null;
    if (r.target) {
      if (r.target.kind === 'ratio') met = ratio === null ? null : ratio >= r.target.value;
      else if (r.target.kind === 'max') met = m ? m.median <= r.target.value : null;
      else met = m !== null;
    }
    const row: Row = {
      case: this.current, name: r.name, unit: r.unit, better: r.better, msockets: m, kernel: k,
      kernelWhat: r.kernelWhat, ratio, ratioMin, ratioMax, target: r.target, met, note: r.note,
    };
    this.rows.push(row);
    console.log(tableLine(row));
  }

  skip(name: string, reason: string, target?: Target): void {
    const row: Row = {
      case: this.current, name, unit: '', better: 'higher', msockets: null, kernel: null,
      // a skipped 'it works' target is missed; a skipped figure is not measured
      ratio: null, ratioMin: null, ratioMax: null, target, met: target?.kind === 'ok' ? false : null, skipped: reason,
    };
    this.rows.push(row);
    console.log(tableLine(row));
  }

  /** a part that threw: a row says so, and the bench will exit with 1 */
  fail(name: string, e: unknown, target?: Target): void {
    this.failures++;
    const row: Row = {
      case: this.current, name, unit: '', better: 'higher', msockets: null, kernel: null,
      ratio: null, ratioMin: null, ratioMax: null, target, met: target?.kind === 'ok' ? false : null, failed: errText(e),
    };
    this.rows.push(row);
    console.log(tableLine(row));
  }

  /** run one part of a case; if it throws, a row says so and the bench will exit with 1 */
  async part(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      console.error(`bench: ${this.current}: ${name} failed:`, e);
      this.fail(name, e);
    }
  }

  /** n runs of fn, the figures of each key */
  async repeat<K extends string>(n: number, fn: () => Promise<Record<K, number>>): Promise<Record<K, Figure>> {
    const acc: Partial<Record<K, number[]>> = {};
    for (let i = 0; i < n; i++) {
      const r = await fn();
      for (const key of Object.keys(r) as K[]) (acc[key] ??= []).push(r[key]);
    }
    const out: Partial<Record<K, Figure>> = {};
    for (const key of Object.keys(acc) as K[]) out[key] = fig(acc[key]!);
    return out as Record<K, Figure>;
  }

  /** n runs of each, alternating (load on a shared machine drifts: both sides see the same) */
  async alternate<K extends string>(n: number, a: () => Promise<Record<K, number>>, b: () => Promise<Record<K, number>>): Promise<[Record<K, Figure>, Record<K, Figure>]> {
    const ra: Record<K, number>[] = [];
    const rb: Record<K, number>[] = [];
    // one warm-up run of each, not counted: the first run of a code path pays for compiling it
    await a();
    await b();
    for (let i = 0; i < n; i++) { ra.push(await a()); rb.push(await b()); }
    const figs = (rs: Record<K, number>[]) => {
      const out: Partial<Record<K, Figure>> = {};
      for (const key of Object.keys(rs[0]) as K[]) out[key] = fig(rs.map((r) => r[key]));
      return out as Record<K, Figure>;
    };
    return [figs(ra), figs(rb)];
  }
}

const fmt = (v: number) => (Math.abs(v) >= 1000 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
function cell(f: Figure | null): string {
  if (!f) return '-';
  if (f.runs.length === 1) return `${fmt(f.median)} (1 run)`;
  return `${fmt(f.median)} [${fmt(f.min)}..${fmt(f.max)}]`;
}
function ratioCell(r: Row): string {
  if (r.ratio === null) return '-';
  return `${r.ratio.toFixed(2)}x [${r.ratioMin!.toFixed(2)}..${r.ratioMax!.toFixed(2)}]`;
}
function metCell(r: Row): string {
  if (!r.target) return '';
  if (r.met === null) return `${r.target.text}: not measured`;
  return `${r.target.text}: ${r.met ? 'met' : 'MISSED'}`;
}
function noteCell(r: Row): string {
  const parts: string[] = [];
  if (r.skipped) parts.push(`skipped: ${r.skipped}`);
  if (r.failed) parts.push(`FAILED: ${r.failed}`);
  if (r.kernelWhat) parts.push(`kernel column: ${r.kernelWhat}`);
  if (r.note) parts.push(r.note);
  return parts.join('; ');
}
const esc = (s: string) => s.replace(/\|/g, '\\|');
const HEAD = ['case', 'unit', 'msockets', 'kernel', 'ratio', 'target', 'note'];
function tableLine(r: Row): string {
  return `| ${[`${r.case}: ${r.name}`, r.unit, cell(r.msockets), cell(r.kernel), ratioCell(r), metCell(r), noteCell(r)].map(esc).join(' | ')} |`;
}

// ---------------------------------------------------------------------------------------
// workloads over any net/dgram-compatible module

let hubN = 0;
function userPair(mtu: number, tcp?: ms.TcpOptions, impair?: ms.ImpairOptions): { a: ms.UserStack; b: ms.UserStack; close(): void } {
  const hub = `bench-${process.pid}-${++hubN}`;
  const a = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: '10.9.0.1/24', mtu, impair }], tcp });
  const b = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: '10.9.0.2/24', mtu, impair }], tcp });
  return { a, b, close() { a.close(); b.close(); } };
}

type Net = typeof netNode;
type Dgram = typeof dgramNode;

async function listen(net: Net, host: string, onConn: (s: netNode.Socket) => void): Promise<{ server: netNode.Server; port: number }> {
  const server = net.createServer(onConn);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host, backlog: 4096 }, () => { server.off('error', reject); resolve(); });
  });
  return { server, port: (server.address() as netNode.AddressInfo).port };
}
const closeServer = (s: netNode.Server) => new Promise<void>((r) => s.close(() => r()));

/** a promise that rejects with ETIMEDOUT after ms (a stuck link must not hang the bench) */
function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(Object.assign(new Error(`${what}: no result after ${ms / 1000} s`), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

const STALL_S = 15;

/**
 * MB/s (2^20 bytes) of one stream of 64 KiB writes from client to server. With `seconds`, the
 * transfer stops at that time if it has not finished, and the rate is what arrived by then.
 */
async function bulk(server: Net, client: Net, host: string, total: number, seconds = 0): Promise<{ mbs: number }> {
  let got = 0;
  let t0 = 0;
  let accepted: netNode.Socket | null = null;
  let c: netNode.Socket | null = null;
  let finish: (t: number) => void = () => undefined;
  const finished = new Promise<number>((r) => { finish = r; });
  const { server: srv, port } = await listen(server, host, (s) => {
    accepted = s;
    s.on('data', (d: Buffer) => { got += d.length; });
    s.on('end', () => { finish(Date.now()); s.end(); });
    s.on('error', () => undefined);
  });
  let failed: (e: Error) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => { failed = reject; });
  failure.catch(() => undefined); // an error after the result is no unhandled rejection
  let cap: NodeJS.Timeout | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  try {
    c = client.connect(port, host, () => {
      t0 = Date.now();
      if (seconds > 0) cap = setTimeout(() => finish(Date.now()), seconds * 1000);
      const chunk = Buffer.alloc(64 * 1024, 0x5a);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!c!.write(chunk)) { c!.once('drain', pump); return; }
        }
        c!.end();
      };
      pump();
    });
    c.on('error', (e) => failed(e));
    // a link that stops moving data fails the run instead of hanging the bench
    let seen = -1;
    watchdog = setInterval(() => {
      if (got === seen) failed(Object.assign(new Error(`bulk transfer: no data for ${STALL_S} s (${got} bytes arrived)`), { code: 'ETIMEDOUT' }));
      seen = got;
    }, STALL_S * 1000);
    const t1 = await Promise.race([finished, failure]);
    const bytes = got;
    return { mbs: bytes / MiB / Math.max(0.001, (t1 - t0) / 1000) };
  } finally {
    clearTimeout(cap);
    clearInterval(watchdog);
    c?.destroy();
    (accepted as netNode.Socket | null)?.destroy();
    await closeServer(srv);
  }
}

/** round trips per second of 64-byte messages over `conns` connections, and latency percentiles (µs) */
async function reqres(server: Net, client: Net, host: string, conns: number, seconds: number): Promise<{ rate: number; p50: number; p99: number }> {
  const { server: srv, port } = await listen(server, host, (s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); s.on('error', () => undefined); });
  const msg = Buffer.alloc(64, 1);
  const lat: number[] = [];
  let count = 0;
  let t0 = 0n;
  const end = Date.now() + seconds * 1000;
  try {
    await deadline(Promise.all(Array.from({ length: conns }, () => new Promise<void>((resolve, reject) => {
      const c = client.connect(port, host);
      c.setNoDelay(true);
      let pending = 0;
      let t = 0n;
      c.on('connect', () => { t = process.hrtime.bigint(); if (t0 === 0n) t0 = t; c.write(msg); });
      c.on('data', (d) => {
        pending += d.length;
        while (pending >= 64) {
          pending -= 64;
          const now = process.hrtime.bigint();
          if (lat.length < 500_000) lat.push(Number(now - t) / 1000);
          count++;
          if (Date.now() < end) { t = now; c.write(msg); } else { c.end(); return; }
        }
      });
      c.on('error', reject);
      c.on('close', () => resolve());
    }))), seconds * 1000 + 30_000, 'request/response');
  } finally {
    await closeServer(srv);
  }
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  return { rate: count / elapsed, p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)] };
}

/** connections opened and closed per second, `parallel` at a time */
async function connRate(server: Net, client: Net, host: string, parallel: number, total: number): Promise<{ rate: number }> {
  const { server: srv, port } = await listen(server, host, (s) => { s.on('error', () => undefined); s.end(); });
  const t0 = process.hrtime.bigint();
  let started = 0;
  try {
    await deadline(Promise.all(Array.from({ length: parallel }, async () => {
      while (started < total) {
        started++;
        await new Promise<void>((resolve, reject) => {
          const c = client.connect(port, host);
          c.on('error', reject);
          c.on('close', () => resolve());
          c.resume();
        });
      }
    })), 120_000, 'connection rate');
  } finally {
    await closeServer(srv);
  }
  return { rate: total / (Number(process.hrtime.bigint() - t0) / 1e9) };
}

/**
 * 64-byte datagrams per second delivered one way, and the share lost. They are sent 32 per
 * event-loop turn: libuv reads at most 32 datagrams from a kernel UDP socket per turn, so a
 * sender that outpaced that would only measure the kernel socket's queue overflowing.
 */
async function udpFlood(dgram: Dgram, clientDgram: Dgram, host: string, count: number): Promise<{ rate: number; loss: number }> {
  const rx = dgram.createSocket('udp4');
  const tx = clientDgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => rx.bind(0, host, r));
    const port = rx.address().port;
    let got = 0;
    let last = Date.now();
    rx.on('message', () => { got++; last = Date.now(); });
    const msg = Buffer.alloc(64, 2);
    const t0 = Date.now();
    for (let i = 0; i < count; i += 32) {
      await Promise.all(Array.from({ length: Math.min(32, count - i) }, () => new Promise<void>((r) => tx.send(msg, port, host, () => r()))));
      // let the loop poll, so that the receiver reads (send callbacks alone never yield to I/O)
      await new Promise((r) => setImmediate(r));
    }
    last = Date.now();
    while (got < count && Date.now() - last < 200) await sleep(10);
    return { rate: got / Math.max(0.001, (last - t0) / 1000), loss: 1 - got / count };
  } finally {
    tx.close(); rx.close();
  }
}

/** UDP ping-pong round trips per second, one datagram in flight (a lost one ends the run early) */
async function udpPingPong(dgram: Dgram, clientDgram: Dgram, host: string, seconds: number): Promise<{ rate: number }> {
  const srv = dgram.createSocket('udp4');
  const c = clientDgram.createSocket('udp4');
  try {
    await new Promise<void>((r) => srv.bind(0, host, r));
    srv.on('message', (m, ri) => srv.send(m, ri.port, ri.address));
    const port = srv.address().port;
    const msg = Buffer.alloc(64, 3);
    let n = 0;
    const t0 = process.hrtime.bigint();
    let tLast = t0;
    const end = Date.now() + seconds * 1000;
    await new Promise<void>((resolve) => {
      let stall: NodeJS.Timeout = setTimeout(resolve, 1000);
      c.on('message', () => {
        n++;
        tLast = process.hrtime.bigint();
        clearTimeout(stall);
        if (Date.now() < end) { stall = setTimeout(resolve, 1000); c.send(msg, port, host); } else resolve();
      });
      c.send(msg, port, host);
    });
    return { rate: n / Math.max(1e-6, Number(tLast - t0) / 1e9) };
  } finally {
    c.close(); srv.close();
  }
}

// ---------------------------------------------------------------------------------------
// system helpers (bench-owned namespaces, devices and processes; each removed in finally)

const isRoot = () => process.getuid?.() === 0;

/** run a command; its error output (first line) on failure */
function sh(cmd: string, args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return { ok: false, err: `${cmd}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}` };
  if (r.status !== 0) return { ok: false, err: `${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n')[0]}` };
  return { ok: true, err: '' };
}
function must(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (!r.ok) throw new Error(r.err);
}
function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err && err.message ? (err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message) : String(e);
}

/** a vde_switch of our own on a fresh control directory; stop() kills exactly that process */
async function startVdeSwitch(): Promise<{ dir: string; stop(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msb-vde-'));
  let child: ChildProcess | null = null;
  const stop = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    child = null;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const sw = path.join(dir, 'switch');
    // in the foreground with its console on a pipe we hold: it lives until we kill it
    child = spawn('vde_switch', ['-s', sw], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr += d; });
    const spawned = await new Promise<Error | null>((resolve) => { child!.once('spawn', () => resolve(null)); child!.once('error', resolve); });
    if (spawned) throw new Error(`vde_switch: ${(spawned as NodeJS.ErrnoException).code ?? spawned.message} (Debian package vde2)`);
    for (let i = 0; i < 100 && !fs.existsSync(path.join(sw, 'ctl')); i++) {
      if (child.exitCode !== null) throw new Error(`vde_switch exited: ${stderr.trim()}`);
      await sleep(30);
    }
    if (!fs.existsSync(path.join(sw, 'ctl'))) throw new Error('vde_switch made no control socket in 3 s');
    return { dir: sw, stop };
  } catch (e) {
    stop();
    throw e;
  }
}

function netnsStackOrReason(): ms.NetnsStack | string {
  try {
    return ms.newStack({ kind: 'netns' });
  } catch (e) {
    return errText(e);
  }
}

// ---------------------------------------------------------------------------------------
// the cases

interface Case { name: string; title: string; run(b: Bench): Promise<void> }

const bulkCase: Case = {
  name: 'bulk',
  title: 'bulk TCP, one stream of 64 KiB writes: hub MTU 65535/1500, kernel namespace, vde://, tap://',
  async run(b) {
    const bytes = b.quick ? 128 * MiB : 1024 * MiB;
    const note = `${bytes / MiB} MiB`;
    const kernelRun = () => bulk(netNode, netNode, '127.0.0.1', bytes);
    for (const mtu of [65535, 1500]) {
      const p = userPair(mtu);
      try {
        const [m, k] = await b.alternate(b.runs, () => bulk(p.a.net, p.b.net, '10.9.0.1', bytes), kernelRun);
        b.record({ name: `user stacks on hub://, MTU ${mtu}`, unit: 'MB/s', better: 'higher', m: m.mbs, k: k.mbs, target: ratioTarget(mtu === 65535 ? 1.5 : 0.5), note });
      } finally {
        p.close();
      }
    }
    // a kernel network namespace as a msockets stack: Node's own net machinery in another namespace
    const ns = netnsStackOrReason();
    if (typeof ns === 'string') b.skip('kernel namespace stack (newStack({ kind: netns }))', `${ns}; needs root/CAP_SYS_ADMIN or unprivileged user namespaces`);
    else {
      try {
        const [m, k] = await b.alternate(b.runs, () => bulk(ns.net, ns.net, '127.0.0.1', bytes), kernelRun);
        b.record({ name: 'kernel namespace stack (newStack({ kind: netns })), loopback', unit: 'MB/s', better: 'higher', m: m.mbs, k: k.mbs, note: `${note}${ns.userNamespace ? ', in a user namespace' : ''}` });
      } finally {
        ns.close();
      }
    }
    // links that leave the process: a time limit too, so that a slow one does not take the run
    const cap = b.quick ? 1 : 10;
    await b.part('user stack to a namespace TAP', () => bulkNetnsTap(b, bytes, kernelRun, cap));
    await b.part('user stacks on vde://', () => bulkVde(b, bytes, kernelRun, cap));
    await b.part('user stack on tap://', () => bulkTap(b, bytes, kernelRun, cap));
  },
};

/**
 * a user stack talking to the kernel of a namespace stack through the TAP device of that
 * namespace, whose frames the namespace stack bridges to a hub:// (user stack <-> kernel, today)
 */
async function bulkNetnsTap(b: Bench, bytes: number, kernelRun: () => Promise<{ mbs: number }>, cap: number): Promise<void> {
  const name = 'user stack to a kernel namespace over its TAP (bridged to hub://), MTU 1500';
  const hub = `bench-${process.pid}-${++hubN}`;
  let ns: ms.NetnsStack | null = null;
  let user: ms.UserStack | null = null;
  try {
    try {
      ns = ms.newStack({ kind: 'netns', interfaces: [{ link: `hub://${hub}`, ip: '10.77.0.1/24', mtu: 1500 }] });
      user = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: '10.77.0.2/24', mtu: 1500 }] });
    } catch (e) {
      b.skip(name, errText(e));
      return;
    }
    const [k, u] = [ns, user];
    const [m, kk] = await b.alternate(b.runs, () => bulk(k.net, u.net, '10.77.0.1', bytes, cap), kernelRun);
    b.record({ name, unit: 'MB/s', better: 'higher', m: m.mbs, k: kk.mbs, note: `up to ${bytes / MiB} MiB or ${cap} s, user stack sends; the TAP's frames cross JavaScript (NetnsTap.pump)` });
  } finally {
    user?.close();
    ns?.close();
  }
}

/** two user stacks on a vde_switch (Debian's) */
async function bulkVde(b: Bench, bytes: number, kernelRun: () => Promise<{ mbs: number }>, cap: number): Promise<void> {
  const name = 'user stacks on vde:// (vde_switch), MTU 1500';
  let sw: { dir: string; stop(): void } | null = null;
  const stacks: ms.UserStack[] = [];
  try {
    try {
      sw = await startVdeSwitch();
      stacks.push(ms.newStack({ interfaces: [{ link: `vde://${sw.dir}`, ip: '10.79.0.1/24', mtu: 1500 }] }));
      stacks.push(ms.newStack({ interfaces: [{ link: `vde://${sw.dir}`, ip: '10.79.0.2/24', mtu: 1500 }] }));
    } catch (e) {
      b.skip(name, errText(e));
      return;
    }
    const [a, c] = stacks;
    const [m, k] = await b.alternate(b.runs, () => bulk(a.net, c.net, '10.79.0.1', bytes, cap), kernelRun);
    b.record({ name, unit: 'MB/s', better: 'higher', m: m.mbs, k: k.mbs, note: `up to ${bytes / MiB} MiB or ${cap} s` });
  } finally {
    for (const s of stacks) s.close();
    sw?.stop();
  }
}

/**
 * a user stack on tap://DEV talking to the kernel on the other side of that TAP: the device
 * is moved into a namespace of ours, where the kernel end listens
 */
async function bulkTap(b: Bench, bytes: number, kernelRun: () => Promise<{ mbs: number }>, cap: number): Promise<void> {
  const name = 'user stack on tap:// to the kernel behind it, MTU 1500';
  if (!isRoot()) { b.skip(name, 'needs root (a TAP device, a namespace)'); return; }
  if (!fs.existsSync('/dev/net/tun')) { b.skip(name, 'no /dev/net/tun'); return; }
  const nsName = `msb-tap-${process.pid}`;
  const dev = `msbtap${process.pid % 100000}`;
  let nsMade = false;
  let user: ms.UserStack | null = null;
  let kernelSide: ms.Stack | null = null;
  try {
    try {
      must('ip', ['netns', 'add', nsName]);
      nsMade = true;
      user = ms.newStack({ interfaces: [{ link: `tap://${dev}`, ip: '10.78.0.2/24', mtu: 1500 }] });
      must('ip', ['link', 'set', 'dev', dev, 'netns', nsName]);
      must('ip', ['-n', nsName, 'link', 'set', 'dev', 'lo', 'up']);
      must('ip', ['-n', nsName, 'link', 'set', 'dev', dev, 'mtu', '1500', 'up']);
      must('ip', ['-n', nsName, 'addr', 'add', '10.78.0.1/24', 'dev', dev]);
      kernelSide = ms.stack(`netns:${nsName}`);
    } catch (e) {
      b.skip(name, errText(e));
      return;
    }
    const k = kernelSide;
    const u = user;
    const [m, kk] = await b.alternate(b.runs, () => bulk(k.net as Net, u.net, '10.78.0.1', bytes, cap), kernelRun);
    b.record({ name, unit: 'MB/s', better: 'higher', m: m.mbs, k: kk.mbs, note: `up to ${bytes / MiB} MiB or ${cap} s, user stack sends` });
  } finally {
    user?.close();
    kernelSide?.close();
    if (nsMade) {
      sh('ip', ['-n', nsName, 'link', 'del', 'dev', dev]);
      sh('ip', ['netns', 'del', nsName]);
    }
    if (sh('ip', ['link', 'show', 'dev', dev]).ok) sh('ip', ['link', 'del', 'dev', dev]);
  }
}

const reqresCase: Case = {
  name: 'reqres',
  title: 'request/response, 64-byte messages: 1 and 64 connections; round trips/s, p50/p99 latency',
  async run(b) {
    const secs = b.quick ? 1 : 3;
    for (const conns of [1, 64]) {
      const p = userPair(65535);
      try {
        const [m, k] = await b.alternate(b.runs,
          () => reqres(p.a.net, p.b.net, '10.9.0.1', conns, secs),
          () => reqres(netNode, netNode, '127.0.0.1', conns, secs));
        const label = `${conns} connection${conns > 1 ? 's' : ''}`;
        b.record({ name: `round trips, ${label}`, unit: 'rt/s', better: 'higher', m: m.rate, k: k.rate, target: conns === 1 ? ratioTarget(2) : undefined, note: `${secs} s per run` });
        b.record({ name: `latency p50, ${label}`, unit: 'µs', better: 'lower', m: m.p50, k: k.p50 });
        b.record({ name: `latency p99, ${label}`, unit: 'µs', better: 'lower', m: m.p99, k: k.p99 });
      } finally {
        p.close();
      }
    }
  },
};

const connrateCase: Case = {
  name: 'connrate',
  title: 'TCP connections opened and closed per second, sequential and 64 in parallel',
  async run(b) {
    const total = b.quick ? 1000 : 10_000;
    for (const par of [1, 64]) {
      const p = userPair(65535);
      try {
        const [m, k] = await b.alternate(b.runs,
          () => connRate(p.a.net, p.b.net, '10.9.0.1', par, total),
          () => connRate(netNode, netNode, '127.0.0.1', par, total));
        b.record({ name: par === 1 ? 'sequential' : '64 in parallel', unit: 'conn/s', better: 'higher', m: m.rate, k: k.rate, target: ratioTarget(3), note: `${total} connections per run` });
      } finally {
        p.close();
      }
    }
  },
};

const udpCase: Case = {
  name: 'udp',
  title: 'UDP: 64-byte datagrams per second one way (loss reported), ping-pong rate',
  async run(b) {
    const count = b.quick ? 30_000 : 200_000;
    const secs = b.quick ? 1 : 3;
    const p = userPair(65535);
    try {
      const [m, k] = await b.alternate(b.runs,
        () => udpFlood(p.a.dgram, p.b.dgram, '10.9.0.1', count),
        () => udpFlood(dgramNode, dgramNode, '127.0.0.1', count));
      const pct = (f: Figure) => `${(f.median * 100).toFixed(1)}% [${(f.min * 100).toFixed(1)}..${(f.max * 100).toFixed(1)}]`;
      b.record({ name: '64 B datagrams delivered one way', unit: 'dgram/s', better: 'higher', m: m.rate, k: k.rate, target: ratioTarget(3), note: `${count} sent per run; lost: msockets ${pct(m.loss)}, kernel ${pct(k.loss)}` });
      const [pm, pk] = await b.alternate(b.runs,
        () => udpPingPong(p.a.dgram, p.b.dgram, '10.9.0.1', secs),
        () => udpPingPong(dgramNode, dgramNode, '127.0.0.1', secs));
      b.record({ name: 'ping-pong, 64 B', unit: 'rt/s', better: 'higher', m: pm.rate, k: pk.rate, note: `${secs} s per run` });
    } finally {
      p.close();
    }
  },
};

/** what one child run of `stacks` reports */
interface StacksChild { n: number; createUs: number; closeUs: number; kibPerStack: number; rssMiB: number; rssAfterCloseMiB: number }
/** what one child run of `idleconn` reports */
interface IdleChild { n: number; bytesPerSocket: number; heapPerSocket: number; sendQueued: number; recvQueued: number }
/** what one child run of `idlekernel` reports (slabs: bytes per socket of each cache counted) */
interface IdleKernelChild { n: number; bytesPerSocket: number; heapPerSocket: number; slabPerSocket: number | null; slabs: Record<string, number>; slabWhy?: string }

/** run this script as a child (a fresh process: its RSS is its own) and parse its JSON line */
function child<T>(args: string[], timeoutMs: number): T {
  const out = execFileSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', __filename, '--child', ...args], {
    encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20,
  });
  const line = out.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}

const stacksCase: Case = {
  name: 'stacks',
  title: 'user stacks: time to create and close one, RSS per idle stack over 10,000 and 100,000; kernel namespaces next to them',
  async run(b) {
    // time to create one, in batches of 1000 (in this process, warm)
    const batch = 1000;
    const create = await b.repeat(b.runs, async () => {
      const t0 = process.hrtime.bigint();
      const st: ms.UserStack[] = [];
      for (let i = 0; i < batch; i++) st.push(ms.newStack());
      const t1 = process.hrtime.bigint();
      for (const s of st) s.close();
      const t2 = process.hrtime.bigint();
      await sleep(10); // let the closed handles go
      return { create: Number(t1 - t0) / 1000 / batch, close: Number(t2 - t1) / 1000 / batch };
    });
    // a kernel namespace in this process the msockets way: clone, loopback up, helper handshake
    let nsFig: Record<'create' | 'close', Figure> | null = null;
    let nsWhy = '';
    const perRun = b.quick ? 5 : 10;
    try {
      nsFig = await b.repeat(b.runs, async () => {
        let create = 0;
        let close = 0;
        for (let i = 0; i < perRun; i++) {
          const t0 = process.hrtime.bigint();
          const s = ms.newStack({ kind: 'netns' });
          const t1 = process.hrtime.bigint();
          s.close();
          create += Number(t1 - t0) / 1000;
          close += Number(process.hrtime.bigint() - t1) / 1000;
        }
        return { create: create / perRun, close: close / perRun };
      });
    } catch (e) {
      nsWhy = `${errText(e)}; needs root/CAP_SYS_ADMIN or unprivileged user namespaces`;
    }
    const nsWhat = 'newStack({ kind: netns }): a new kernel network namespace with lo up, in this process';
    b.record({ name: `create one user stack, no interface (batches of ${batch})`, unit: 'µs', better: 'lower', m: create.create, k: nsFig?.create ?? null, kernelWhat: nsFig ? nsWhat : undefined, target: maxTarget(10, '<= 10 µs'), note: nsFig ? undefined : `kernel: ${nsWhy}` });
    b.record({ name: `close one user stack, no interface (batches of ${batch})`, unit: 'µs', better: 'lower', m: create.close, k: nsFig?.close ?? null, kernelWhat: nsFig ? 'close() of such a namespace stack' : undefined });
    // `ip netns add` / `del`: the kernel way most people know (the ip process included)
    if (!isRoot()) b.skip('ip netns add / del', 'needs root');
    else {
      try {
        const t = await b.repeat(b.runs, async () => {
          const name = `msb-${process.pid}`;
          const t0 = process.hrtime.bigint();
          must('ip', ['netns', 'add', name]);
          const t1 = process.hrtime.bigint();
          must('ip', ['netns', 'del', name]);
          const t2 = process.hrtime.bigint();
          return { add: Number(t1 - t0) / 1000, del: Number(t2 - t1) / 1000 };
        });
        b.record({ name: 'ip netns add (kernel only)', unit: 'µs', better: 'lower', m: null, k: t.add, kernelWhat: 'spawning ip(8) included' });
        b.record({ name: 'ip netns del (kernel only)', unit: 'µs', better: 'lower', m: null, k: t.del, kernelWhat: 'spawning ip(8) included' });
      } catch (e) {
        b.skip('ip netns add / del', errText(e));
      }
    }
    // memory per idle stack, each count in fresh child processes
    const counts = b.quick ? [10_000] : [10_000, 100_000];
    for (const n of counts) {
      const runs = n >= 100_000 ? b.fewRuns : b.runs;
      const rs: StacksChild[] = [];
      try {
        for (let i = 0; i < runs; i++) rs.push(child<StacksChild>(['stacks', String(n)], 600_000));
      } catch (e) {
        b.fail(`memory per idle stack, ${n.toLocaleString('en-US')} stacks`, e, maxTarget(16, '<= 16 KiB'));
        if (n >= 100_000) b.fail('100,000 stacks in one process', e, { text: '100,000 stacks', kind: 'ok', value: 1 });
        continue;
      }
      const f = (k: keyof StacksChild) => fig(rs.map((r) => r[k]));
      const label = `${n.toLocaleString('en-US')} stacks`;
      b.record({ name: `memory per idle stack, ${label}`, unit: 'KiB', better: 'lower', m: f('kibPerStack'), k: null, target: maxTarget(16, '<= 16 KiB'), note: `RSS growth / n in a fresh process, one interface on a hub:// each; RSS ${fmt(f('rssMiB').median)} MiB, ${fmt(f('rssAfterCloseMiB').median)} MiB after closing them all (glibc keeps what was freed)` });
      b.record({ name: `create one stack, ${label} in a row`, unit: 'µs', better: 'lower', m: f('createUs'), k: null, note: 'one interface on a hub:// each' });
      b.record({ name: `close one stack, ${label} in a row`, unit: 'µs', better: 'lower', m: f('closeUs'), k: null });
      if (n >= 100_000) b.record({ name: '100,000 stacks in one process', unit: 'stacks', better: 'higher', m: f('n'), k: null, target: { text: '100,000 stacks', kind: 'ok', value: 1 } });
    }
    if (b.quick) b.skip('memory per idle stack, 100,000 stacks', 'full run only (npm run bench -- stacks)');
  },
};

/** the soft limit on open files of this process (the kernel rows need two descriptors per connection) */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch { /* not Linux: assume enough */ }
  return Infinity;
}

const idleconnCase: Case = {
  name: 'idleconn',
  title: 'memory per idle established TCP connection on a user stack (10,000 connections): raw sockets, then net.Socket',
  async run(b) {
    const n = b.quick ? 2000 : 10_000;
    const runs = b.fewRuns;
    const label = `${n.toLocaleString('en-US')} connections`;
    // Node's net over kernel loopback: both ends in one process, two descriptors per connection
    const kn = Math.min(n, Math.floor((openFileLimit() - 256) / 2));
    const kLabel = kn === n ? '' : ` (${kn.toLocaleString('en-US')} connections: the open-file limit allows no more)`;
    const raw: IdleChild[] = [];
    const used: IdleChild[] = [];
    const net: IdleChild[] = [];
    const kern: IdleKernelChild[] = [];
    let kernWhy = '';
    const rawName = `memory per idle TCP socket, raw msocket handles (${label})`;
    const usedName = `memory per idle TCP socket, raw msocket handles after a 64-byte request and echo (${label})`;
    const netName = `memory per idle TCP socket, net.Socket on each end (${label})`;
    const target = maxTarget(2048, '<= 2 KiB beyond buffers');
    try {
      for (let i = 0; i < runs; i++) {
        raw.push(child<IdleChild>(['idleraw', String(n)], 300_000));
        used.push(child<IdleChild>(['idleused', String(n)], 300_000));
        net.push(child<IdleChild>(['idleconn', String(n)], 300_000));
        try {
          if (!kernWhy) kern.push(child<IdleKernelChild>(['idlekernel', String(kn)], 300_000));
        } catch (e) {
          kernWhy = errText(e);
        }
      }
    } catch (e) {
      b.fail(rawName, e, target);
      b.fail(usedName, e);
      b.fail(netName, e);
      return;
    }
    const queued = (rs: IdleChild[]) => Math.max(...rs.map((r) => r.sendQueued + r.recvQueued));
    const heap = (rs: { heapPerSocket: number }[]) => cell(fig(rs.map((r) => r.heapPerSocket)));
    const slabRuns = kern.filter((r) => r.slabPerSocket !== null);
    const slabWhy = kernWhy || kern.find((r) => r.slabWhy)?.slabWhy || '';
    let slabParts = '';
    if (slabRuns.length) {
      const caches = Object.keys(slabRuns[0].slabs);
      slabParts = caches.map((c) => `${c} ${Math.round(fig(slabRuns.map((r) => r.slabs[c] ?? 0)).median)}`).join(', ');
    }
    b.record({
      name: rawName, unit: 'B', better: 'lower', m: fig(raw.map((r) => r.bytesPerSocket)),
      k: slabRuns.length ? fig(slabRuns.map((r) => r.slabPerSocket as number)) : null,
      kernelWhat: slabRuns.length ? `the kernel's slab memory per socket over as many idle loopback connections made by Node's net${kLabel} (active objects x size, /proc/slabinfo, B: ${slabParts})` : undefined,
      target,
      note: `the stack's own cost: RSS growth / ${(2 * n).toLocaleString('en-US')} sockets in a fresh process, both ends on user stacks, engine and binding state and the JS handle of each socket included (of which JS heap: ${heap(raw)} B); bytes queued in buffers: ${queued(raw)}${slabRuns.length ? '' : `; kernel: ${slabWhy}`}`,
    });
    b.record({
      name: usedName, unit: 'B', better: 'lower', m: fig(used.map((r) => r.bytesPerSocket)), k: null,
      note: `as above, but each connection carried 64 bytes each way (buffers allocated, then drained and given back once the connection is quiet); RSS keeps some of what glibc's malloc freed; JS heap: ${heap(used)} B; bytes queued in buffers: ${queued(used)}`,
    });
    b.record({
      name: netName, unit: 'B', better: 'lower', m: fig(net.map((r) => r.bytesPerSocket)),
      k: kern.length ? fig(kern.map((r) => r.bytesPerSocket)) : null,
      kernelWhat: kern.length ? `RSS growth per socket of Node's own net over kernel loopback${kLabel} in a fresh process (JS heap ${heap(kern)} B); the kernel's memory is not in RSS` : undefined,
      note: `RSS growth / ${(2 * n).toLocaleString('en-US')} sockets in a fresh process, both ends on user stacks, JS objects included (of which JS heap: ${heap(net)} B); bytes queued in buffers: ${queued(net)}${kern.length ? '' : `; kernel: ${kernWhy}`}`,
    });
  },
};

const impairCase: Case = {
  name: 'impair',
  title: 'TCP under 1% loss and under 10 ms delay (each way): NewReno vs CUBIC, SACK on/off',
  async run(b) {
    const total = b.quick ? 16 * MiB : 64 * MiB;
    const cap = b.quick ? 1 : 8;
    const runs = b.fewRuns;
    const kernel = kernelImpairment();
    if (typeof kernel === 'string') b.skip('kernel under the same impairment', kernel);
    else if (kernel.why) console.log(`# impair: ${kernel.why}`);
    // the first row is the path without impairment: how fast it goes at best (with the relay,
    // the kernel column's ceiling)
    const variants: [string, ms.ImpairOptions, string[]][] = [['no impairment', {}, []], ['1% loss', { loss: 0.01 }, ['loss', '1%']], ['10 ms delay', { delay: 10 }, ['delay', '10ms']]];
    for (const [label, im, netem] of variants) {
      for (const cc of ['newreno', 'cubic'] as const) {
        for (const sack of [true, false]) {
          if (netem.length === 0 && (cc !== 'cubic' || !sack)) continue;
          const p = userPair(1500, { congestion: cc, sack }, im);
          let k: Figure | null = null;
          let m: Figure;
          try {
            m = (await b.repeat(runs, () => bulk(p.a.net, p.b.net, '10.9.0.1', total, cap))).mbs;
          } finally {
            p.close();
          }
          if (typeof kernel !== 'string') {
            const ks = kernel.open(netem, im, cc === 'newreno' ? 'reno' : 'cubic', sack);
            try {
              k = (await b.repeat(runs, () => bulk(ks.server, ks.client, ks.host, total, cap))).mbs;
            } finally {
              ks.close();
            }
          }
          b.record({
            name: `${label}, ${cc === 'newreno' ? 'NewReno' : 'CUBIC'}, SACK ${sack ? 'on' : 'off'}`, unit: 'MB/s', better: 'higher', m, k,
            kernelWhat: k && typeof kernel !== 'string' ? `${kernel.what(netem)}; ${cc === 'newreno' ? 'reno' : 'cubic'}, tcp_sack=${sack ? 1 : 0}` : undefined,
            note: `MTU 1500, up to ${total / MiB} MiB or ${cap} s`,
          });
        }
      }
    }
  },
};

/** a kernel impaired path: a TCP server and client in kernel stacks, through loss or delay */
interface KernelImpaired { server: Net; client: Net; host: string; close(): void }
interface KernelImpairment {
  open(netem: string[], im: ms.ImpairOptions, cc: string, sack: boolean): KernelImpaired;
  /** what the kernel column measured */
  what(netem: string[]): string;
  /** why this way and not netem, when so */
  why?: string;
}

/**
 * The kernel under the same impairment. With tc netem: a namespace of ours whose loopback has
 * it. Without (sch_netem is missing from some kernels): two namespaces of ours, each with a TAP
 * device, joined by a relay in this process that drops or delays frames as the user stacks'
 * impairment does. The congestion control and SACK are set by sysctl in the namespaces. A
 * reason string when neither can be had.
 */
function kernelImpairment(): string | KernelImpairment {
  if (!isRoot()) return 'needs root (namespaces, tc netem or TAP devices)';
  const avail = fs.readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8');
  if (!/\bcubic\b/.test(avail) || !/\breno\b/.test(avail)) return `kernel congestion controls: ${avail.trim()}`;
  const probe = `msb-netem-${process.pid}`;
  const made = sh('ip', ['netns', 'add', probe]);
  if (!made.ok) return made.err;
  let netemErr = '';
  try {
    const r = sh('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'loss', '1%']);
    if (!r.ok) netemErr = r.err;
  } finally {
    sh('ip', ['netns', 'del', probe]);
  }
  // SACK by sysctl in the namespace; the congestion control per socket (TCP_CONGESTION, with
  // CAP_NET_ADMIN): a namespace other than the first may only default to the allowed ones
  const sysctl = (ns: string, sack: boolean) =>
    must('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv4.tcp_sack=${sack ? 1 : 0}`]);
  if (!netemErr) {
    return {
      what: (netem) => `a namespace whose lo has MTU 1500, no GSO, tc netem ${netem.join(' ') || '(no impairment)'}`,
      open(netem, _im, cc, sack) {
        const name = `msb-imp-${process.pid}`;
        must('ip', ['netns', 'add', name]);
        let s: ms.Stack | null = null;
        try {
          // MTU 1500 like the user stacks, and no GSO: netem must see (and drop) single segments
          must('ip', ['-n', name, 'link', 'set', 'dev', 'lo', 'mtu', '1500', 'gso_max_size', '1500', 'gso_max_segs', '1', 'up']);
          must('ip', ['netns', 'exec', name, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', ...netem]);
          sysctl(name, sack);
          s = ms.stack(`netns:${name}`);
        } catch (e) {
          sh('ip', ['netns', 'del', name]);
          throw e;
        }
        const st = s;
        return { server: st.net as Net, client: withCongestion(st.net as Net, cc), host: '127.0.0.1', close() { st.close(); sh('ip', ['netns', 'del', name]); } };
      },
    };
  }
  return {
    why: `no tc netem here (${netemErr}): the kernel column is two namespaces joined through TAP devices by a relay in this process that applies the same loss or delay`,
    what: (netem) => `two namespaces, MTU 1500, TAP to TAP through a relay in this process (${netem.length ? `${netem.join(' ')} each way, as netem would` : 'no impairment'})`,
    open(_netem, im, cc, sack) {
      const names = [`msb-impa-${process.pid}`, `msb-impb-${process.pid}`];
      const stacks: ms.NetnsStack[] = [];
      const relays: Array<{ close(): void }> = [];
      const closeAll = () => {
        for (const r of relays) r.close();
        for (const st of stacks) st.close();
        for (const n of names) sh('ip', ['netns', 'del', n]);
      };
      try {
        const taps = names.map((name, i) => {
          must('ip', ['netns', 'add', name]);
          must('ip', ['-n', name, 'link', 'set', 'dev', 'lo', 'up']);
          sysctl(name, sack);
          const st = ms.stack(`netns:${name}`) as ms.NetnsStack;
          stacks.push(st);
          const tap = st.addInterface({ name: 'imp0', ip: `10.79.0.${i + 1}/24`, mtu: 1500 });
          // a long device queue: the relay reads in batches, and a sender's burst that outran
          // it would be dropped by the device, a loss the impairment did not ask for
          must('ip', ['-n', name, 'link', 'set', 'dev', 'imp0', 'txqueuelen', '10000']);
          return tap;
        });
        relays.push(impairRelay(taps[0], taps[1], im, 1), impairRelay(taps[1], taps[0], im, 2));
      } catch (e) {
        closeAll();
        throw e;
      }
      return { server: stacks[0].net as Net, client: withCongestion(stacks[1].net as Net, cc), host: '10.79.0.1', close: closeAll };
    },
  };
}

/** a kernel `net` whose client sockets use congestion control `cc` (set before any data is written) */
function withCongestion(n: Net, cc: string): Net {
  const TCP_CONGESTION = 13;
  const connect = (...args: unknown[]) => {
    const c = (n.connect as (...a: unknown[]) => netNode.Socket)(...args);
    c.prependOnceListener('connect', () => {
      const fd = (c as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
      const r = fd >= 0 ? native().kernel.setsockopt(fd, 6, TCP_CONGESTION, cc) : -1;
      if (r < 0) c.destroy(new Error(`setsockopt(TCP_CONGESTION, ${cc}) on fd ${fd}: ${r}`));
    });
    return c;
  };
  return { ...n, connect, createConnection: connect } as Net;
}

/**
 * Frames read from one TAP written to another, some dropped (im.loss, from a seeded generator)
 * or all held back im.delay ms. At most 65,536 frames wait; beyond, frames are dropped (as a
 * full netem queue would).
 */
function impairRelay(from: ms.NetnsTap, to: ms.NetnsTap, im: ms.ImpairOptions, seed: number): { close(): void } {
  let x = (0x9e3779b9 * seed) >>> 0 || 1;
  const rand = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x100000000; };
  const loss = im.loss ?? 0;
  const delayMs = im.delay ?? 0;
  const waiting: Array<{ at: number; frame: Buffer }> = [];
  let head = 0;
  let timer: NodeJS.Timeout | null = null;
  const write = (f: Buffer) => { try { to.send(f); } catch { /* the device went: the run fails on its own */ } };
  const release = () => {
    timer = null;
    const now = performance.now();
    while (head < waiting.length && waiting[head].at <= now) write(waiting[head++].frame);
    if (head === waiting.length) { waiting.length = 0; head = 0; } else if (head > 4096) { waiting.splice(0, head); head = 0; }
    if (head < waiting.length) timer = setTimeout(release, Math.max(0, waiting[head].at - now));
  };
  from.pump((frames) => {
    for (const f of frames) {
      if (loss > 0 && rand() < loss) continue;
      if (delayMs <= 0) { write(f); continue; }
      if (waiting.length - head >= 65_536) continue;
      waiting.push({ at: performance.now() + delayMs, frame: f });
      if (!timer) timer = setTimeout(release, delayMs);
    }
  });
  return { close() { from.stopPump(); if (timer) clearTimeout(timer); waiting.length = 0; } };
}

const CASES: Case[] = [bulkCase, reqresCase, connrateCase, udpCase, stacksCase, idleconnCase, impairCase];

// ---------------------------------------------------------------------------------------
// child processes: memory figures in a process of their own

/**
 * n idle connections between two user stacks in this (fresh) process; RSS and JS heap growth
 * per socket. raw: msocket() sockets on both ends (the stack's own cost, with the JS handle
 * each socket has), watched for reading with one shared listener, as an event loop would
 * hold them; otherwise a net.Socket on each end (lib/net.ts over such a handle). used (raw
 * only): each connection carries a 64-byte request and its echo before it goes idle, so that
 * buffers have been allocated and drained (an idle connection of a real program).
 */
async function idleUser(n: number, raw: boolean, settle: () => Promise<void>, used = false): Promise<IdleChild> {
  const p = userPair(65535);
  try {
    let opened: { close(): void }[] = [];
    let accepted: { close(): void }[] = [];
    let connectOne: () => Promise<void>;
    let stop: () => Promise<void>;
    let waitUsed = async (_count: number) => { /* only raw sockets exchange data */ };
    if (raw) {
      const l = ms.msocket(p.a, 'AF_INET', 'SOCK_STREAM');
      l.bind('10.9.0.1', 0);
      l.listen(4096);
      const port = l.localAddress().port;
      const request = Buffer.alloc(64, 'q');
      let echoed = 0;
      // one listener function for every socket (no closure per socket)
      const onData = function (this: RawSocket) { const d = this.recv(); if (d) echoed += d.length; };
      const onRequest = function (this: RawSocket) { const d = this.recv(); if (d && d.length) this.send(d); };
      l.on('readable', () => {
        for (let s = l.accept(); s; s = l.accept()) { s.on('readable', used ? onRequest : onData); s.watch(true, false); accepted.push(s); }
      });
      l.watch(true, false);
      connectOne = async () => {
        const c = ms.msocket(p.b, 'AF_INET', 'SOCK_STREAM');
        opened.push(c);
        await c.connect('10.9.0.1', port);
        c.on('readable', onData);
        c.watch(true, false);
        if (used) c.send(request);
      };
      waitUsed = async (count: number) => {
        if (!used) return;
        const end = Date.now() + 60_000;
        while (echoed < count * request.length) {
          if (Date.now() > end) throw new Error(`idle connections: ${echoed} of ${count * request.length} echoed bytes after 60 s`);
          await sleep(5);
        }
        echoed = 0;
      };
      stop = async () => { l.close(); };
    } else {
      const { server, port } = await listen(p.a.net, '10.9.0.1', (s) => { accepted.push({ close: () => s.destroy() }); });
      connectOne = () => new Promise<void>((resolve, reject) => {
        const c = p.b.net.connect(port, '10.9.0.1', () => resolve());
        c.on('error', reject);
        opened.push({ close: () => c.destroy() });
      });
      stop = () => closeServer(server);
    }
    // warm up: a few connections made and closed, so that the baseline holds the code
    await Promise.all(Array.from({ length: 50 }, connectOne));
    while (accepted.length < 50) await sleep(5);
    await waitUsed(50);
    for (const c of [...opened, ...accepted]) c.close();
    opened = [];
    accepted = [];
    await settle();
    const before = process.memoryUsage();
    for (let i = 0; i < n; i += 200) {
      await deadline(Promise.all(Array.from({ length: Math.min(200, n - i) }, connectOne)), 60_000, 'opening idle connections');
    }
    while (accepted.length < n) await sleep(5);
    await waitUsed(n);
    if (used) await sleep(500);  // delayed ACKs out, timers quiet: what an idle connection keeps
    await settle();
    const after = process.memoryUsage();
    let sendQueued = 0;
    let recvQueued = 0;
    for (const st of [p.a, p.b]) {
      for (const row of st.sockets()) {
        sendQueued += row.sendQueue;
        recvQueued += row.recvQueue;
      }
    }
    for (const c of [...opened, ...accepted]) c.close();
    await stop();
    return { n, bytesPerSocket: (after.rss - before.rss) / (2 * n), heapPerSocket: (after.heapUsed - before.heapUsed) / (2 * n), sendQueued, recvQueued };
  } finally {
    p.close();
  }
}

/** object bytes (active objects x object size) and active objects of every slab cache, or why not */
function readSlabs(): Map<string, { objs: number; bytes: number }> | string {
  let text: string;
  try {
    text = fs.readFileSync('/proc/slabinfo', 'utf8');
  } catch (e) {
    return `/proc/slabinfo: ${(e as NodeJS.ErrnoException).code ?? errText(e)} (needs root)`;
  }
  const out = new Map<string, { objs: number; bytes: number }>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || line.startsWith('#') || line.startsWith('slabinfo')) continue;
    const objs = Number(f[1]);
    const size = Number(f[3]);
    if (Number.isFinite(objs) && Number.isFinite(size)) out.set(f[0], { objs, bytes: objs * size });
  }
  return out;
}

/**
 * The slab caches that hold one object per open TCP socket: the socket (tcp_sock), its inode,
 * dentry and file, its epoll item and wait-queue head, the LSM blobs of inode and file, the
 * bind buckets of the connecting side's ports. Merged caches show under their root's name.
 */
const SOCKET_SLABS = ['TCP', 'TCPv6', 'sock_inode_cache', 'dentry', 'filp', 'eventpoll_epi', 'eventpoll_pwq', 'ep_head',
  'lsm_inode_cache', 'lsm_file_cache', 'tcp_bind_bucket', 'tcp_bind2_bucket'];

/**
 * The kernel's side: n idle connections over loopback made by Node's own net, both ends in this
 * (fresh) process. RSS and JS heap growth per socket (what Node and libuv cost: the kernel's
 * memory is not in RSS), and the kernel's slab memory per socket: the growth of SOCKET_SLABS'
 * active objects x object size (kernel buffers hold nothing: the connections are idle).
 */
async function idleKernel(n: number, settle: () => Promise<void>): Promise<IdleKernelChild> {
  const accepted: netNode.Socket[] = [];
  const opened: netNode.Socket[] = [];
  const { server, port } = await listen(netNode, '127.0.0.1', (s) => { accepted.push(s); });
  try {
    const connectOne = () => new Promise<void>((resolve, reject) => {
      const c = netNode.connect(port, '127.0.0.1', () => resolve());
      c.on('error', reject);
      opened.push(c);
    });
    await Promise.all(Array.from({ length: 50 }, connectOne));
    while (accepted.length < 50) await sleep(5);
    for (const c of [...opened.splice(0), ...accepted.splice(0)]) c.destroy();
    await settle();
    const slab0 = readSlabs();
    const before = process.memoryUsage();
    for (let i = 0; i < n; i += 200) {
      await deadline(Promise.all(Array.from({ length: Math.min(200, n - i) }, connectOne)), 60_000, 'opening idle connections');
    }
    while (accepted.length < n) await sleep(5);
    await settle();
    const after = process.memoryUsage();
    const slab1 = readSlabs();
    const out: IdleKernelChild = { n, bytesPerSocket: (after.rss - before.rss) / (2 * n), heapPerSocket: (after.heapUsed - before.heapUsed) / (2 * n), slabPerSocket: null, slabs: {} };
    if (typeof slab0 === 'string' || typeof slab1 === 'string') out.slabWhy = typeof slab0 === 'string' ? slab0 : slab1 as string;
    else {
      let total = 0;
      for (const name of SOCKET_SLABS) {
        const a = slab0.get(name);
        const b = slab1.get(name);
        if (!a || !b || b.objs <= a.objs) continue;
        // at most one object per socket: more is someone else's (other processes share the counts)
        const bytes = Math.min(b.objs - a.objs, 2 * n) * (b.bytes / b.objs);
        out.slabs[name] = bytes / (2 * n);
        total += bytes;
      }
      out.slabPerSocket = total / (2 * n);
    }
    return out;
  } finally {
    for (const c of [...opened, ...accepted]) c.destroy();
    await closeServer(server);
  }
}

async function runChild(args: string[]): Promise<void> {
  const [what, nText] = args;
  const n = Number(nText);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`bad child count ${nText}`);
  const settle = async () => { await sleep(50); gc(); gc(); await sleep(10); };
  if (what === 'stacks') {
    // warm up the code paths, so that the baseline holds the code, not the stacks
    for (const s of Array.from({ length: 200 }, (_, i) => ms.newStack({ interfaces: [{ link: `hub://warm-${i % 10}`, ip: `10.255.0.${i + 1}/16` }] }))) s.close();
    await settle();
    const before = process.memoryUsage().rss;
    const st: ms.UserStack[] = new Array(n);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      st[i] = ms.newStack({ interfaces: [{ link: `hub://idle-${i % 1000}`, ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) || 1}/8` }] });
    }
    const t1 = process.hrtime.bigint();
    await settle();
    const rss = process.memoryUsage().rss;
    const t2 = process.hrtime.bigint();
    for (const s of st) s.close();
    const t3 = process.hrtime.bigint();
    st.length = 0;
    await settle();
    const out: StacksChild = {
      n, createUs: Number(t1 - t0) / 1000 / n, closeUs: Number(t3 - t2) / 1000 / n,
      kibPerStack: (rss - before) / n / 1024, rssMiB: rss / MiB, rssAfterCloseMiB: process.memoryUsage().rss / MiB,
    };
    console.log(JSON.stringify(out));
  } else if (what === 'idleconn' || what === 'idleraw' || what === 'idleused') {
    console.log(JSON.stringify(await idleUser(n, what !== 'idleconn', settle, what === 'idleused')));
  } else if (what === 'idlekernel') {
    console.log(JSON.stringify(await idleKernel(n, settle)));
  } else {
    throw new Error(`unknown child ${what}`);
  }
}

// ---------------------------------------------------------------------------------------
// output: markdown table, JSON, SVG

function machine(): { cpu: string; cores: number; memGiB: number; kernel: string; node: string; load: number[] } {
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch { /* os.cpus() then */ }
  return { cpu, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version, load: os.loadavg().map((x) => Math.round(x * 100) / 100) };
}

function headerLines(quick: boolean, runs: number, m: ReturnType<typeof machine>, date: string): string[] {
  const few = runs === 3 ? '' : ' (3 for 100,000 stacks, idle connections and impairments)';
  return [
    `msockets bench${quick ? ' --quick' : ''}, ${date}`,
    `machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Linux ${m.kernel}; Node ${m.node}; load average at start ${m.load.join(' ')}`,
    `each figure: median [min..max] of ${runs} runs${few}, msockets and kernel runs alternated after one uncounted warm-up run of each; ratio: msockets/kernel for rates, kernel/msockets for times and memory, so > 1 means msockets did better; [..]: the worst and best pairing of the two spreads`,
  ];
}

function markdown(rows: Row[], header: string[]): string {
  const lines = header.map((h) => `${h}  `);
  lines.push('', `| ${HEAD.join(' | ')} |`, `|${HEAD.map(() => '---').join('|')}|`);
  for (const r of rows) lines.push(tableLine(r));
  return `${lines.join('\n')}\n`;
}

/** a horizontal bar chart on a log scale: ratios against the kernel, then the absolute budgets */
function svg(rows: Row[], title: string): string {
  const ratioRows = rows.filter((r) => r.ratio !== null);
  const budgetRows = rows.filter((r) => r.target?.kind === 'max' && r.msockets);
  const e = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const label = (r: Row, budget = false) => `${r.case}: ${r.name}${budget ? ` (${r.target!.text})` : ''}`;
  const labels = [...ratioRows.map((r) => label(r)), ...budgetRows.map((r) => label(r, true))];
  const labelW = Math.min(700, Math.max(200, ...labels.map((l) => l.length * 6.9)));
  const W = Math.round(labelW + 560);
  const plotL = labelW + 12;
  const plotR = W - 80;
  const bar = 16;
  const gap = 8;
  // one log axis for both panels, from the smallest to the largest value shown (1x always in)
  const vals: number[] = [1];
  for (const r of ratioRows) vals.push(r.ratio!, r.ratioMin!, r.ratioMax!, r.target?.kind === 'ratio' ? r.target.value : 1);
  for (const r of budgetRows) vals.push(r.target!.value / r.msockets!.median, r.target!.value / r.msockets!.max, r.target!.value / r.msockets!.min);
  const logs = vals.filter((v) => v > 0 && Number.isFinite(v)).map(Math.log10);
  const lo = Math.floor(Math.max(-4, Math.min(...logs)) * 2) / 2 - 0.25;
  const hi = Math.ceil(Math.min(4, Math.max(...logs)) * 2) / 2 + 0.25;
  const X = (v: number) => plotL + ((Math.max(lo, Math.min(hi, Math.log10(v))) - lo) / (hi - lo)) * (plotR - plotL);
  const parts: string[] = [];
  let y = 0;
  const fill = (met: boolean | null) => (met === true ? '#2e7d32' : met === false ? '#c62828' : '#78909c');
  const barRow = (text: string, v: number, vlo: number, vhi: number, met: boolean | null, tgt: number | null, valueText: string) => {
    const x0 = X(1);
    const x1 = X(v);
    parts.push(`<text x="${labelW}" y="${y + bar - 4}" text-anchor="end">${e(text)}</text>`);
    parts.push(`<rect x="${Math.min(x0, x1).toFixed(1)}" y="${y}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${bar}" fill="${fill(met)}"/>`);
    if (vlo !== vhi) parts.push(`<line x1="${X(vlo).toFixed(1)}" x2="${X(vhi).toFixed(1)}" y1="${y + bar / 2}" y2="${y + bar / 2}" stroke="black" stroke-width="1.2"/>`);
    if (tgt !== null) parts.push(`<line x1="${X(tgt).toFixed(1)}" x2="${X(tgt).toFixed(1)}" y1="${y - 3}" y2="${y + bar + 3}" stroke="#f9a825" stroke-width="3"><title>target ${tgt}x</title></line>`);
    parts.push(`<text x="${(Math.max(x0, x1, X(vhi)) + 5).toFixed(1)}" y="${y + bar - 4}">${e(valueText)}</text>`);
    y += bar + gap;
  };
  const axis = (from: number, to: number) => {
    for (let p = Math.ceil(lo); p <= Math.floor(hi); p++) {
      const v = 10 ** p;
      parts.push(`<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${from}" y2="${to}" stroke="${p === 0 ? 'black' : '#bbb'}" stroke-width="${p === 0 ? 1.5 : 1}"/>`);
      parts.push(`<text x="${X(v).toFixed(1)}" y="${to + 14}" text-anchor="middle" fill="#555">${p < 0 ? `1/${10 ** -p}` : `${v}`}x</text>`);
    }
  };
  parts.push(`<text x="10" y="22" font-size="15" font-weight="bold">${e(title)}</text>`);
  parts.push('<text x="10" y="40" fill="#444">bar: median (log scale, right of 1x: msockets better); whisker: spread of the runs; orange tick: the target; green: met, red: missed, grey: no target</text>');
  y = 62;
  parts.push(`<text x="10" y="${y}" font-weight="bold">msockets / kernel stack (Node's net and dgram), same process, same run</text>`);
  y += 14;
  const top1 = y;
  for (const r of ratioRows) {
    const isRatio = r.target?.kind === 'ratio';
    barRow(label(r), r.ratio!, r.ratioMin!, r.ratioMax!, isRatio ? r.met : null, isRatio ? r.target!.value : null, `${r.ratio!.toFixed(2)}x`);
  }
  axis(top1 - 4, y);
  y += 44;
  if (budgetRows.length) {
    parts.push(`<text x="10" y="${y}" font-weight="bold">absolute targets: budget / measured (right of 1x: within budget)</text>`);
    y += 14;
    const top2 = y;
    for (const r of budgetRows) {
      const m = r.msockets!;
      const t = r.target!;
      barRow(label(r, true), t.value / m.median, t.value / m.max, t.value / m.min, r.met, null, `${fmt(m.median)} ${r.unit}`);
    }
    axis(top2 - 4, y);
    y += 40;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}

// ---------------------------------------------------------------------------------------

type Meta = ReturnType<typeof machine> & { date: string; quick: boolean; runs: number; cases: string[]; seconds: number; secondsPerCase: Record<string, number> };

const resultsDir = () => path.join(__dirname, '..', '..', 'bench', 'results');

/** NAME.json, NAME.md and the chart (ratios.svg for the full run, NAME.svg otherwise); the chart's name */
function writeResults(base: string, meta: Meta, rows: Row[], json = true): string {
  const outDir = resultsDir();
  fs.mkdirSync(outDir, { recursive: true });
  const svgName = base === 'latest' ? 'ratios.svg' : `${base}.svg`;
  if (json) fs.writeFileSync(path.join(outDir, `${base}.json`), `${JSON.stringify({ meta, rows }, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, `${base}.md`), markdown(rows, headerLines(meta.quick, meta.runs, meta, meta.date)));
  fs.writeFileSync(path.join(outDir, svgName), svg(rows, `msockets bench${meta.quick ? ' --quick' : ''}: ${meta.cpu}, ${meta.cores} cores, Node ${meta.node}, ${meta.date.slice(0, 10)}`));
  return svgName;
}

/** the tables of a full run into README.md (short) and bench/README.md (whole), between their markers */
function updateReadmes(meta: Meta, rows: Row[]): void {
  const root = path.join(__dirname, '..', '..');
  const header = headerLines(meta.quick, meta.runs, meta, meta.date);
  const short = [
    `${header[1]}  `, `${header[2]}  `, '',
    '| case | msockets | kernel | ratio | target |', '|---|---|---|---|---|',
  ];
  const notes: string[] = [];
  for (const r of rows.filter((x) => x.ratio !== null || x.target || x.skipped || x.failed)) {
    let what = `${r.case}: ${r.name}${r.unit ? ` (${r.unit})` : ''}`;
    if (r.kernelWhat) { notes.push(r.kernelWhat); what += ` [${notes.length}]`; }
    const status = r.skipped ? `skipped: ${r.skipped}` : r.failed ? `FAILED: ${r.failed}` : metCell(r);
    short.push(`| ${[what, cell(r.msockets), cell(r.kernel), ratioCell(r), status].map(esc).join(' | ')} |`);
  }
  short.push('', ...notes.map((n, i) => `[${i + 1}] kernel column: ${n}  `));
  short.push('', 'Times to create and close 100,000 stacks, TCP under 1% loss and 10 ms delay (NewReno and CUBIC, SACK on and off), and the notes of every row: [bench/README.md](bench/README.md#latest-full-run).');
  const shortText = short.join('\n');
  const splice = (file: string, text: string) => {
    const f = path.join(root, file);
    const src = fs.readFileSync(f, 'utf8');
    const re = /(<!-- bench:latest:start -->\n)[\s\S]*?(<!-- bench:latest:end -->)/;
    if (!re.test(src)) throw new Error(`${file}: no <!-- bench:latest:start/end --> markers`);
    fs.writeFileSync(f, src.replace(re, (_, a: string, b: string) => `${a}${text}\n${b}`));
    console.log(`# ${file}: table updated`);
  };
  splice('README.md', shortText);
  splice('bench/README.md', markdown(rows, header).trimEnd());
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) { await runChild(o.child); return 0; }
  if (o.list) usage();
  if (o.render) {
    const { meta, rows } = JSON.parse(fs.readFileSync(path.join(resultsDir(), `${o.render}.json`), 'utf8')) as { meta: Meta; rows: Row[] };
    const name = writeResults(o.render, meta, rows, false);
    console.log(`# bench/results/${o.render}.md and ${name} written again from ${o.render}.json`);
    if (o.readme) {
      if (o.render !== 'latest') usage('--readme goes with a full run (--render latest)');
      updateReadmes(meta, rows);
    }
    return 0;
  }
  for (const c of o.cases) if (!CASES.some((k) => k.name === c)) usage(`no case '${c}'`);
  const selected = o.cases.length ? CASES.filter((c) => o.cases.includes(c.name)) : CASES;
  const b = new Bench(o.quick);
  const m = machine();
  const date = new Date().toISOString();
  const header = headerLines(o.quick, b.runs, m, date);
  for (const h of header) console.log(`# ${h}`);
  console.log(`| ${HEAD.join(' | ')} |`);
  console.log(`|${HEAD.map(() => '---').join('|')}|`);
  const started = Date.now();
  const timing: Record<string, number> = {};
  for (const c of selected) {
    b.current = c.name;
    const t0 = Date.now();
    await b.part('(the rest of the case)', () => c.run(b));
    timing[c.name] = Math.round((Date.now() - t0) / 100) / 10;
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  const base = o.cases.length ? (o.quick ? 'partial-quick' : 'partial') : o.quick ? 'quick' : 'latest';
  const meta: Meta = { date, quick: o.quick, runs: b.runs, cases: selected.map((c) => c.name), seconds, secondsPerCase: timing, ...m };
  const svgName = writeResults(base, meta, b.rows);
  if (o.readme && base === 'latest') updateReadmes(meta, b.rows);
  const missed = b.rows.filter((r) => r.met === false).length;
  const met = b.rows.filter((r) => r.met === true).length;
  console.log(`# ${seconds} s (${Object.entries(timing).map(([k, v]) => `${k} ${v}`).join(', ')}); targets: ${met} met, ${missed} missed; ${b.failures} part(s) failed`);
  console.log(`# results: bench/results/${base}.json, ${base}.md, chart bench/results/${svgName}`);
  return b.failures ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(1); });
