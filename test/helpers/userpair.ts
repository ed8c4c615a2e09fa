// Two user stacks on one in-process hub, and byte-exact transfers between them.
import { createHash, randomBytes } from 'node:crypto';
import type * as netTypes from 'node:net';

import * as ms from '../../lib/msocket';
import type { ImpairOptions, StackOptions, UserStack } from '../../lib/msocket';

let hubSerial = 0;

export interface Pair {
  a: UserStack;
  b: UserStack;
  hub: string;
  close(): void;
}

/** stacks a (10.0.0.1) and b (10.0.0.2) on a fresh hub */
export function userPair(opts: { impair?: ImpairOptions; mtu?: number; tcp?: StackOptions['tcp']; capture?: string; forceChecksums?: boolean } = {}): Pair {
  const hub = `test-${process.pid}-${++hubSerial}`;
  const iface = (ip: string, capture?: string) => ({
    link: `hub://${hub}`, ip: `${ip}/24`, mtu: opts.mtu, impair: opts.impair, capture, forceChecksums: opts.forceChecksums,
  });
  const a = ms.newStack({ interfaces: [iface('10.0.0.1', opts.capture)], tcp: opts.tcp });
  const b = ms.newStack({ interfaces: [iface('10.0.0.2')], tcp: opts.tcp });
  return { a, b, hub, close() { a.close(); b.close(); } };
}

/** a deterministic pseudo-random payload generator: chunks of `chunk` bytes, `total` in all */
export function* payload(total: number, chunk = 1 << 16, seed = 1): Generator<Buffer> {
  const block = randomBytes(1 << 20);
  block.writeUInt32LE(seed, 0);
  let sent = 0;
  let off = 0;
  while (sent < total) {
    const n = Math.min(chunk, total - sent);
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n;) {
      const take = Math.min(n - i, block.length - off);
      block.copy(out, i, off, off + take);
      i += take;
      off = (off + take) % block.length;
    }
    // vary the content with the position so a lost or repeated block shows
    out.writeUInt32LE(sent >>> 0, 0);
    sent += n;
    yield out;
  }
}

/**
 * Send `total` bytes from `from` to `to` over TCP with net-compatible classes, return
 * [sha256 sent, sha256 received, bytes received, ms].
 */
export async function transfer(server: typeof netTypes, serverHost: string, client: typeof netTypes, total: number): Promise<{ sent: string; got: string; bytes: number; ms: number }> {
  const t0 = Date.now();
  const rx = createHash('sha256');
  let bytes = 0;
  const srv = server.createServer();
  const done = new Promise<void>((resolve, reject) => {
    srv.on('connection', (sock) => {
      sock.on('data', (d: Buffer) => { rx.update(d); bytes += d.length; });
      sock.on('end', () => { sock.end(); resolve(); });
      sock.on('error', reject);
    });
  });
  await new Promise<void>((r) => srv.listen(0, serverHost, r));
  const { port } = srv.address() as netTypes.AddressInfo;
  const tx = createHash('sha256');
  const sock = client.connect(port, serverHost);
  const failed = new Promise<never>((_, reject) => sock.on('error', reject));
  await Promise.race([new Promise((r) => sock.once('connect', r)), failed]);
  for (const chunk of payload(total)) {
    tx.update(chunk);
    if (!sock.write(chunk)) await Promise.race([new Promise((r) => sock.once('drain', r)), failed]);
  }
  sock.end();
  await Promise.race([done, failed]);
  await new Promise<void>((r) => { if (sock.destroyed) r(); else sock.once('close', () => r()); });
  await new Promise<void>((r) => srv.close(() => r()));
  return { sent: tx.digest('hex'), got: rx.digest('hex'), bytes, ms: Date.now() - t0 };
}

/**
 * Send `total` pseudo-random bytes to an echo server at host:port over `n` (a stack's net) and
 * check that every byte comes back, in order; resolves to the milliseconds taken. Throws when
 * bytes are missing or differ.
 */
export async function echoExact(n: typeof netTypes, host: string, port: number, total: number, seed = 5): Promise<number> {
  const t0 = process.hrtime.bigint();
  const c = n.connect(port, host);
  const tx = createHash('sha256');
  const rx = createHash('sha256');
  let got = 0;
  c.on('data', (d: Buffer) => { rx.update(d); got += d.length; });
  const ended = new Promise<void>((resolve, reject) => { c.on('end', resolve); c.on('error', reject); });
  await Promise.race([new Promise((r) => c.once('connect', r)), ended]);
  for (const chunk of payload(total, 1 << 16, seed)) {
    tx.update(chunk);
    if (!c.write(chunk)) await Promise.race([new Promise((r) => c.once('drain', r)), ended]);
  }
  c.end();
  await ended;
  if (got !== total) throw new Error(`${got} of ${total} bytes came back`);
  if (rx.digest('hex') !== tx.digest('hex')) throw new Error('the bytes that came back differ (not byte-exact)');
  return Number(process.hrtime.bigint() - t0) / 1e6;
}
