// What a socket costs in another network namespace, next to the same thing in this one.
//
//   npx tsc -p tsconfig.json && node dist/bench/netns-socket.js [samples]
//
// - socket(): a plain socket(2) through the addon, against one created by the namespace
//   stack's helper process (one round trip over its socketpair, the descriptors coming back
//   by SCM_RIGHTS). A new namespace (newStack({ kind: 'netns' })), and, as root with
//   iproute2, an existing one entered with setns (`ip netns add`).
//   Three ways: "round trip": back to back, one round trip each (protocol IPPROTO_TCP
//   given explicitly, which the batching leaves alone) - the cost of creating one socket
//   over there; "burst": back to back with protocol 0, where the helper answers with
//   batches of up to 32 sockets (the mean per socket, misses included); "alone": one socket
//   now and then (11 ms apart: cold caches, idle CPUs), a full round trip each.
// - msocket(): the same through the public API (raw socket object included).
// - echo round trip over an established connection: the data path, which is the kernel's
//   and libuv's in both cases (no per-byte cost is expected).
// Each figure is the median of many individually timed samples.
import { spawnSync } from 'child_process';
import { once } from 'events';
import * as net from 'net';

import * as ms from '../lib/msocket';
import { native } from '../lib/native';
import { newNetnsStack, type NetnsStack } from '../lib/stacks/netns';

const N = Number(process.argv[2] ?? 20000);

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** µs per call of fn over N samples (after a warm-up): the median, or the mean; `after` runs untimed */
function timeEach<T>(fn: () => T, after: (v: T) => void, stat: 'median' | 'mean' = 'median'): number {
  for (let i = 0; i < Math.min(1000, N); i++) after(fn());
  const xs: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    const v = fn();
    xs.push(Number(process.hrtime.bigint() - t) / 1000);
    after(v);
  }
  return stat === 'median' ? median(xs) : xs.reduce((a, b) => a + b, 0) / xs.length;
}

async function echoRoundTrip(s: ms.Stack, rounds: number): Promise<number> {
  const server = s.net.createServer((c) => c.pipe(c));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const c = s.net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  c.setNoDelay(true);
  await once(c, 'connect');
  const xs: number[] = [];
  const msg = Buffer.alloc(64, 1);
  for (let i = 0; i < rounds + 200; i++) {
    const t = process.hrtime.bigint();
    c.write(msg);
    let got = 0;
    while (got < msg.length) {
      const [d] = await once(c, 'data') as [Buffer];
      got += d.length;
    }
    if (i >= 200) xs.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  c.destroy();
  await new Promise((r) => server.close(r));
  return median(xs);
}

const fmt = (us: number) => `${us.toFixed(2).padStart(8)} µs`;
const row = (what: string, here: number, there: number) =>
  console.log(`${what.padEnd(44)} ${fmt(here)} ${fmt(there)}   x${(there / here).toFixed(1)}`);

async function main(): Promise<void> {
  const k = native().kernel;
  const AF_INET = ms.AF_INET;
  const SOCK_STREAM = ms.SOCK_STREAM;
  const fresh = newNetnsStack();
  let joined: NetnsStack | null = null;
  let nsName: string | null = null;
  if (process.getuid?.() === 0 && spawnSync('ip', ['netns', 'add', `msbench-${process.pid}`]).status === 0) {
    nsName = `msbench-${process.pid}`;
    joined = ms.stack(`netns:${nsName}`) as NetnsStack;
  }
  try {
    console.log(`per-socket cost, ${N} samples each (node ${process.version}, ${process.arch})`);
    console.log(`${''.padEnd(44)} ${'this ns'.padStart(11)} ${'other ns'.padStart(11)}   ratio`);
    const TCP = 6;
    const plain = timeEach(() => k.socket(AF_INET, SOCK_STREAM, 0), (fd) => k.close(fd));
    const label = fresh.userNamespace ? 'new ns (user ns)' : 'new ns';
    row(`socket(), round trip - ${label}`, plain, timeEach(() => fresh.createFd(AF_INET, SOCK_STREAM, TCP), (fd) => k.close(fd)));
    if (joined) row('socket(), round trip - existing ns (setns)', plain, timeEach(() => joined!.createFd(AF_INET, SOCK_STREAM, TCP), (fd) => k.close(fd)));
    const plainMean = timeEach(() => k.socket(AF_INET, SOCK_STREAM, 0), (fd) => k.close(fd), 'mean');
    row(`socket(), burst, mean - ${label}`, plainMean, timeEach(() => fresh.createFd(AF_INET, SOCK_STREAM, 0), (fd) => k.close(fd), 'mean'));
    const alone = async (make: () => number): Promise<number> => {
      const xs: number[] = [];
      for (let i = 0; i < 200; i++) {
        await new Promise((r) => setTimeout(r, 11));
        const t = process.hrtime.bigint();
        const fd = make();
        xs.push(Number(process.hrtime.bigint() - t) / 1000);
        k.close(fd);
      }
      return median(xs);
    };
    row('socket(), alone (200 samples 11 ms apart)', await alone(() => k.socket(AF_INET, SOCK_STREAM, 0)),
      await alone(() => fresh.createFd(AF_INET, SOCK_STREAM, 0)));
    const rawHere = timeEach(() => ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM', TCP), (s) => s.close());
    const rawThere = timeEach(() => ms.msocket(fresh, 'AF_INET', 'SOCK_STREAM', TCP), (s) => s.close());
    row('msocket() raw socket object, round trip', rawHere, rawThere);
    // what a stack costs to make: clone, namespace, loopback up, the helper dropping the
    // memory it inherited, the handshake; and to open an existing namespace (setns)
    const made: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t = process.hrtime.bigint();
      const s = newNetnsStack();
      made.push(Number(process.hrtime.bigint() - t) / 1e6);
      s.close();
    }
    console.log(`newStack({ kind: 'netns' }) + close: median ${median(made).toFixed(2)} ms to make (30 samples)`);
    if (joined && nsName) {
      const opened: number[] = [];
      for (let i = 0; i < 30; i++) {
        joined.close();
        const t = process.hrtime.bigint();
        joined = ms.stack(`/var/run/netns/${nsName}`) as NetnsStack;
        opened.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      console.log(`stack('/var/run/netns/NAME'): median ${median(opened).toFixed(2)} ms to open (30 samples)`);
    }
    // interleaved, after a warm-up of both: JIT and CPU frequency settle over the first runs
    const rounds = Math.min(N, 3000);
    const here: number[] = [];
    const there: number[] = [];
    for (let i = 0; i < 8; i++) {
      const a = await echoRoundTrip(ms.kernelStack, rounds);
      const b = await echoRoundTrip(fresh, rounds);
      if (i >= 3) { here.push(a); there.push(b); }
    }
    row(`echo round trip, 64 B (median of 5x${rounds})`, median(here), median(there));
  } finally {
    fresh.close();
    joined?.close();
    if (nsName) spawnSync('ip', ['netns', 'del', nsName]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
