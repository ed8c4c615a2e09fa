// npm run bench [-- --quick] [-- case ...]
// msockets against the kernel stack (Node's own net/dgram), in the same process and run.
// Every figure is the median of several runs, with the spread; ratios are msockets / kernel
// (for times and memory, where less is better, the ratio is kernel / msockets, so > 1 is
// always "msockets better"). Prints a table, writes bench/results/latest.json and
// bench/results/ratios.svg.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as netNode from 'net';
import * as dgramNode from 'dgram';
import * as os from 'os';
import * as path from 'path';
import * as v8 from 'v8';
import * as vm from 'vm';

import * as ms from '../lib/msocket';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const only = argv.filter((a) => !a.startsWith('--'));
const RUNS = quick ? 3 : 5;
const MiB = 1 << 20;

type Better = 'higher' | 'lower';
interface Figure { median: number; min: number; max: number; runs: number[] }
interface Row { case: string; unit: string; better: Better; msockets: Figure | null; kernel: Figure | null; ratio: number | null; target?: string; note?: string }

const rows: Row[] = [];
const gc = (() => { v8.setFlagsFromString('--expose-gc'); return vm.runInNewContext('gc') as () => void; })();

function fig(runs: number[]): Figure {
  const s = [...runs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], runs };
}

async function repeat(n: number, fn: () => Promise<number>): Promise<Figure> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return fig(out);
}

function record(name: string, unit: string, better: Better, m: Figure | null, k: Figure | null, target?: string, note?: string): void {
  let ratio: number | null = null;
  if (m && k && m.median > 0 && k.median > 0) ratio = better === 'higher' ? m.median / k.median : k.median / m.median;
  const row: Row = { case: name, unit, better, msockets: m, kernel: k, ratio, target, note };
  rows.push(row);
  printRow(row);
}

const fmt = (v: number) => (v >= 1000 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
function cell(f: Figure | null): string {
  if (!f) return '-';
  return `${fmt(f.median)} [${fmt(f.min)}..${fmt(f.max)}]`;
}
function printRow(r: Row): void {
  const ratio = r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`;
  console.log(`| ${r.case.padEnd(46)} | ${r.unit.padEnd(10)} | ${cell(r.msockets).padEnd(28)} | ${cell(r.kernel).padEnd(28)} | ${ratio.padStart(7)} | ${r.target ?? ''} ${r.note ?? ''}`);
}

// ---- helpers over any net-compatible module

let hubN = 0;
function pair(mtu: number, tcp?: ms.TcpOptions, impair?: ms.ImpairOptions): { a: ms.UserStack; b: ms.UserStack; close(): void } {
  const hub = `bench-${++hubN}`;
  const a = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: '10.9.0.1/24', mtu, impair }], tcp });
  const b = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: '10.9.0.2/24', mtu, impair }], tcp });
  return { a, b, close() { a.close(); b.close(); } };
}

async function listen(net: typeof netNode, host: string, onConn: (s: netNode.Socket) => void): Promise<{ server: netNode.Server; port: number }> {
  const server = net.createServer(onConn);
  await new Promise<void>((r) => server.listen({ port: 0, host, backlog: 4096 }, r));
  return { server, port: (server.address() as netNode.AddressInfo).port };
}
const closeServer = (s: netNode.Server) => new Promise<void>((r) => s.close(() => r()));

/** MB/s of one stream of 64 KiB writes */
async function bulk(server: typeof netNode, client: typeof netNode, host: string, total: number): Promise<number> {
  let got = 0;
  let t0 = 0;
  const done = new Promise<number>((resolve) => {
    void listen(server, host, (s) => {
      s.on('data', (d) => { got += d.length; });
      s.on('end', () => { s.end(); resolve(Date.now()); });
    }).then(({ server: srv, port }) => {
      const chunk = Buffer.alloc(64 * 1024, 0x5a);
      const c = client.connect(port, host, () => {
        t0 = Date.now();
        let sent = 0;
        const pump = () => {
          while (sent < total) {
            sent += chunk.length;
            if (!c.write(chunk)) { c.once('drain', pump); return; }
          }
          c.end();
        };
        pump();
      });
      c.on('close', () => srv.close(() => closed()));
    });
  });
  let closed: () => void = () => undefined;
  const serverClosed = new Promise<void>((r) => { closed = r; });
  const t1 = await done;
  await serverClosed;
  return got / MiB / Math.max(0.001, (t1 - t0) / 1000);
}

/** round trips per second and latency percentiles for `conns` connections, 64-byte messages */
async function reqres(server: typeof netNode, client: typeof netNode, host: string, conns: number, seconds: number): Promise<{ rate: number; p50: number; p99: number }> {
  const { server: srv, port } = await listen(server, host, (s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); });
  const msg = Buffer.alloc(64, 1);
  const lat: number[] = [];
  let count = 0;
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: conns }, () => new Promise<void>((resolve) => {
    const c = client.connect(port, host);
    c.setNoDelay(true);
    let pending = 0;
    let t = 0n;
    c.on('connect', () => { t = process.hrtime.bigint(); c.write(msg); });
    c.on('data', (d) => {
      pending += d.length;
      if (pending < 64) return;
      pending -= 64;
      const now = process.hrtime.bigint();
      if (lat.length < 200000) lat.push(Number(now - t) / 1000);
      count++;
      if (Date.now() < deadline) { t = now; c.write(msg); } else c.end();
    });
    c.on('close', () => resolve());
  })));
  await closeServer(srv);
  lat.sort((a, b) => a - b);
  return { rate: count / seconds, p50: lat[Math.floor(lat.length / 2)], p99: lat[Math.floor(lat.length * 0.99)] };
}

/** connections opened and closed per second */
async function connRate(server: typeof netNode, client: typeof netNode, host: string, parallel: number, total: number): Promise<number> {
  const { server: srv, port } = await listen(server, host, (s) => s.end());
  const t0 = Date.now();
  let started = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (started < total) {
      started++;
      await new Promise<void>((resolve, reject) => {
        const c = client.connect(port, host);
        c.on('error', reject);
        c.on('close', () => resolve());
        c.resume();
      });
    }
  }));
  const rate = total / ((Date.now() - t0) / 1000);
  await closeServer(srv);
  return rate;
}

/** 64-byte datagrams per second delivered one way, and the share lost */
async function udpFlood(dgram: typeof dgramNode, clientDgram: typeof dgramNode, host: string, count: number): Promise<{ rate: number; loss: number }> {
  const rx = dgram.createSocket('udp4');
  await new Promise<void>((r) => rx.bind(0, host, r));
  const port = rx.address().port;
  let got = 0;
  let last = Date.now();
  rx.on('message', () => { got++; last = Date.now(); });
  const tx = clientDgram.createSocket('udp4');
  const msg = Buffer.alloc(64, 2);
  const t0 = Date.now();
  for (let i = 0; i < count; i += 64) {
    await Promise.all(Array.from({ length: Math.min(64, count - i) }, () => new Promise<void>((r) => tx.send(msg, port, host, () => r()))));
    // let the loop poll, so the receiver reads (send callbacks alone never yield to I/O)
    await new Promise((r) => setImmediate(r));
  }
  last = Date.now();
  while (got < count && Date.now() - last < 200) await new Promise((r) => setTimeout(r, 10));
  const t1 = last;
  tx.close(); rx.close();
  return { rate: got / Math.max(0.001, (t1 - t0) / 1000), loss: 1 - got / count };
}

/** UDP ping-pong round trips per second */
async function udpPingPong(dgram: typeof dgramNode, clientDgram: typeof dgramNode, host: string, seconds: number): Promise<number> {
  const srv = dgram.createSocket('udp4');
  await new Promise<void>((r) => srv.bind(0, host, r));
  srv.on('message', (m, ri) => srv.send(m, ri.port, ri.address));
  const c = clientDgram.createSocket('udp4');
  const msg = Buffer.alloc(64, 3);
  let n = 0;
  const deadline = Date.now() + seconds * 1000;
  await new Promise<void>((resolve) => {
    c.on('message', () => { n++; if (Date.now() < deadline) c.send(msg, srv.address().port, host); else resolve(); });
    c.send(msg, srv.address().port, host);
  });
  c.close(); srv.close();
  return n / seconds;
}

const want = (name: string) => only.length === 0 || only.some((o) => name.includes(o));

async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  console.log(`# msockets bench ${quick ? '(quick)' : ''}: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}`);
  console.log(`# each figure: median [min..max] of ${RUNS} runs; ratio > 1 means msockets is better`);
  console.log(`| ${'case'.padEnd(46)} | ${'unit'.padEnd(10)} | ${'msockets'.padEnd(28)} | ${'kernel (Node net/dgram)'.padEnd(28)} | ${'ratio'.padStart(7)} | target`);
  console.log(`|${'-'.repeat(48)}|${'-'.repeat(12)}|${'-'.repeat(30)}|${'-'.repeat(30)}|${'-'.repeat(9)}|-------`);
  const bulkBytes = quick ? 128 * MiB : 1024 * MiB;
  const secs = quick ? 1 : 3;

  if (want('bulk')) {
    const kernel = await repeat(RUNS, () => bulk(netNode, netNode, '127.0.0.1', bulkBytes));
    for (const mtu of [65535, 1500]) {
      const p = pair(mtu);
      const m = await repeat(RUNS, () => bulk(p.a.net, p.b.net, '10.9.0.1', bulkBytes));
      p.close();
      record(`bulk TCP, hub MTU ${mtu}`, 'MB/s', 'higher', m, kernel, mtu === 65535 ? '>= 1.5x' : '>= 0.5x');
    }
  }
  if (want('reqres')) {
    for (const conns of [1, 64]) {
      const p = pair(65535);
      const mm = await repeat(RUNS, async () => (await reqres(p.a.net, p.b.net, '10.9.0.1', conns, secs)).rate);
      const kk = await repeat(RUNS, async () => (await reqres(netNode, netNode, '127.0.0.1', conns, secs)).rate);
      record(`request/response 64 B, ${conns} conn`, 'rt/s', 'higher', mm, kk, conns === 1 ? '>= 2x' : undefined);
      const ml = await reqres(p.a.net, p.b.net, '10.9.0.1', conns, secs);
      const kl = await reqres(netNode, netNode, '127.0.0.1', conns, secs);
      record(`  latency p50, ${conns} conn`, 'us', 'lower', fig([ml.p50]), fig([kl.p50]));
      record(`  latency p99, ${conns} conn`, 'us', 'lower', fig([ml.p99]), fig([kl.p99]));
      p.close();
    }
  }
  if (want('connrate')) {
    for (const par of [1, 64]) {
      const total = quick ? 2000 : 10000;
      const p = pair(65535);
      const m = await repeat(RUNS, () => connRate(p.a.net, p.b.net, '10.9.0.1', par, total));
      p.close();
      const k = await repeat(RUNS, () => connRate(netNode, netNode, '127.0.0.1', par, total));
      record(`connections open+close, ${par === 1 ? 'sequential' : '64 parallel'}`, 'conn/s', 'higher', m, k, '>= 3x');
    }
  }
  if (want('udp')) {
    const count = quick ? 50_000 : 200_000;
    const p = pair(65535);
    let lossM = 0;
    let lossK = 0;
    const m = await repeat(RUNS, async () => { const r = await udpFlood(p.a.dgram, p.b.dgram, '10.9.0.1', count); lossM = r.loss; return r.rate; });
    const k = await repeat(RUNS, async () => { const r = await udpFlood(dgramNode, dgramNode, '127.0.0.1', count); lossK = r.loss; return r.rate; });
    record('UDP 64 B datagrams one way', 'dgram/s', 'higher', m, k, '>= 3x', `loss ${(lossM * 100).toFixed(1)}% vs ${(lossK * 100).toFixed(1)}%`);
    const pm = await repeat(RUNS, () => udpPingPong(p.a.dgram, p.b.dgram, '10.9.0.1', secs));
    const pk = await repeat(RUNS, () => udpPingPong(dgramNode, dgramNode, '127.0.0.1', secs));
    record('UDP ping-pong', 'rt/s', 'higher', pm, pk);
    p.close();
  }
  if (want('stacks')) {
    const n = quick ? 10_000 : 100_000;
    const create = await repeat(RUNS, async () => {
      const t0 = process.hrtime.bigint();
      const st = Array.from({ length: 1000 }, () => ms.newStack());
      const us = Number(process.hrtime.bigint() - t0) / 1000 / 1000;
      for (const s of st) s.close();
      return us;
    });
    const ns = nsCreateMicros();
    record('create one user stack', 'us', 'lower', create, ns, '<= 10 us', ns ? 'kernel: ip netns add + del' : 'kernel: needs root for ip netns');
    gc(); gc();
    const before = process.memoryUsage().rss;
    const idle = Array.from({ length: n }, (_, i) => ms.newStack({ interfaces: [{ link: `hub://idle-${i % 1000}`, ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) || 1}/8` }] }));
    gc(); gc();
    const per = (process.memoryUsage().rss - before) / n / 1024;
    record(`memory per idle stack (${n.toLocaleString()} stacks)`, 'KiB', 'lower', fig([per]), null, '<= 16 KiB');
    for (const s of idle) s.close();
    gc(); gc();
  }
  if (want('idleconn')) {
    const n = quick ? 2000 : 10_000;
    const p = pair(65535, { receiveBuffer: 64 * 1024 });
    const { server } = await listen(p.a.net, '10.9.0.1', () => { /* idle */ });
    const port = (server.address() as netNode.AddressInfo).port;
    gc(); gc();
    const before = process.memoryUsage().rss;
    const socks: netNode.Socket[] = [];
    for (let i = 0; i < n; i += 200) {
      await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => new Promise<void>((r) => { const c = p.b.net.connect(port, '10.9.0.1', () => r()); socks.push(c); })));
    }
    gc(); gc();
    const per = (process.memoryUsage().rss - before) / n;
    for (const c of socks) c.destroy();
    await closeServer(server);
    p.close();
    record(`memory per idle connection (${n}, both ends, JS objects included)`, 'B', 'lower', fig([per]), null, '<= 2 KiB beyond buffers');
  }
  if (want('impair')) {
    const total = quick ? 16 * MiB : 64 * MiB;
    for (const [label, im] of [['1% loss', { loss: 0.01 }], ['10 ms delay', { delay: 10 }]] as [string, ms.ImpairOptions][]) {
      const res: Record<string, Figure> = {};
      for (const cc of ['newreno', 'cubic'] as const) {
        for (const sack of [true, false]) {
          const p = pair(1500, { congestion: cc, sack }, im);
          res[`${cc}${sack ? '+sack' : ''}`] = await repeat(quick ? 1 : 3, () => bulk(p.a.net, p.b.net, '10.9.0.1', total));
          p.close();
        }
      }
      for (const [k, f] of Object.entries(res)) record(`TCP under ${label}: ${k}`, 'MB/s', 'higher', f, null);
    }
  }

  const outDir = path.join(__dirname, '..', '..', 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const meta = { date: new Date().toISOString(), quick, node: process.version, cpu, cores: os.cpus().length, kernel: os.release() };
  fs.writeFileSync(path.join(outDir, quick ? 'quick.json' : 'latest.json'), JSON.stringify({ meta, rows }, null, 2));
  fs.writeFileSync(path.join(outDir, quick ? 'quick.svg' : 'ratios.svg'), svg(rows.filter((r) => r.ratio !== null)));
  console.log(`# results: bench/results/${quick ? 'quick' : 'latest'}.json, chart: bench/results/${quick ? 'quick' : 'ratios'}.svg`);
}

function nsCreateMicros(): Figure | null {
  if (process.getuid?.() !== 0) return null;
  try {
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const name = `msb-${process.pid}-${i}`;
      const t0 = process.hrtime.bigint();
      execFileSync('ip', ['netns', 'add', name]);
      const t1 = process.hrtime.bigint();
      execFileSync('ip', ['netns', 'del', name]);
      runs.push(Number(t1 - t0) / 1000);
    }
    return fig(runs);
  } catch {
    return null;
  }
}

/** a horizontal bar chart of the ratios, log scale, 1x marked */
function svg(rs: Row[]): string {
  const w = 760; const bar = 22; const left = 330; const top = 40;
  const h = top + rs.length * (bar + 6) + 30;
  const maxLog = Math.max(1, ...rs.map((r) => Math.abs(Math.log10(r.ratio!))));
  const scale = (w - left - 60) / 2 / maxLog;
  const mid = left + (w - left - 60) / 2;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  let out = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">\n`;
  out += `<rect width="100%" height="100%" fill="white"/>\n<text x="10" y="20" font-size="14" font-weight="bold">msockets / kernel stack (same run; &gt; 1x: msockets better; log scale)</text>\n`;
  rs.forEach((r, i) => {
    const y = top + i * (bar + 6);
    const lg = Math.log10(r.ratio!);
    const x = lg >= 0 ? mid : mid + lg * scale;
    out += `<text x="${left - 8}" y="${y + bar * 0.7}" text-anchor="end">${esc(r.case.trim())}</text>\n`;
    out += `<rect x="${x.toFixed(1)}" y="${y}" width="${Math.max(1, Math.abs(lg) * scale).toFixed(1)}" height="${bar}" fill="${lg >= 0 ? '#2e7d32' : '#c62828'}"/>\n`;
    out += `<text x="${(lg >= 0 ? x + Math.abs(lg) * scale + 4 : x - 4).toFixed(1)}" y="${y + bar * 0.7}" text-anchor="${lg >= 0 ? 'start' : 'end'}">${r.ratio!.toFixed(2)}x</text>\n`;
  });
  out += `<line x1="${mid}" y1="${top - 6}" x2="${mid}" y2="${h - 24}" stroke="black"/>\n<text x="${mid}" y="${h - 8}" text-anchor="middle">1x</text>\n</svg>\n`;
  return out;
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
