// The user-space stack end to end, through the public API and the net/dgram classes:
// transfers under impairment, many connections, SYN flood, simultaneous open, half-close,
// keepalive, errors, capture decoded by tshark, workers, many stacks, hostile frames.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Worker } from 'node:worker_threads';

import * as ms from '../lib/msocket';
import type { RawSocket } from '../lib/raw';
import { checkCapture, hasTshark } from './helpers/tshark';
import { transfer, userPair } from './helpers/userpair';

const MiB = 1 << 20;
const onceEv = (raw: RawSocket, ev: 'readable' | 'writable') => new Promise<void>((r) => raw.once(ev, () => r()));

describe('user stack: 64 MiB TCP transfers both ways, byte-exact', () => {
  const cases: [string, ms.ImpairOptions | undefined][] = [
    ['clean', undefined],
    ['5% loss', { loss: 0.05 }],
    ['2% reordering + 1% duplication', { reorder: 0.02, duplicate: 0.01 }],
    ['0.5% corruption', { corrupt: 0.005 }],
    ['20 ms delay, 10 ms jitter', { delay: 20, jitter: 10 }],
  ];
  for (const [name, impair] of cases) {
    it(name, { timeout: 240_000 }, async () => {
      const p = userPair({ impair });
      try {
        const ab = await transfer(p.b.net, '10.0.0.2', p.a.net, 64 * MiB);
        assert.equal(ab.bytes, 64 * MiB);
        assert.equal(ab.got, ab.sent, 'a -> b content');
        const ba = await transfer(p.a.net, '10.0.0.1', p.b.net, 64 * MiB);
        assert.equal(ba.bytes, 64 * MiB);
        assert.equal(ba.got, ba.sent, 'b -> a content');
        const st = p.a.stats().tcp as Record<string, number>;
        if (impair?.loss) assert.ok(st.retransSegs > 0, 'loss was recovered by retransmission');
        console.log(`# ${name}: a->b ${ab.ms} ms, b->a ${ba.ms} ms, retransmitted ${st.retransSegs} segments`);
      } finally {
        p.close();
      }
    });
  }
});

describe('user stack: corruption on one side of a hub', () => {
  it('frames corrupted by a sender are caught by a receiver that has no impairment of its own', { timeout: 120_000 }, async () => {
    const p = userPair();
    try {
      p.a.impair('eth0', { corrupt: 0.01 });
      const r = await transfer(p.b.net, '10.0.0.2', p.a.net, 16 * MiB);
      assert.equal(r.bytes, 16 * MiB);
      assert.equal(r.got, r.sent);
      const corrupted = p.a.interfaces[0].stats.impairCorrupted;
      const caught = (p.b.stats().tcp as Record<string, number>).badCsum + (p.b.stats().ip as Record<string, number>).inCsumErrors;
      assert.ok(corrupted > 0, 'frames were corrupted');
      assert.ok(caught > 0, `the receiver counted bad checksums (${caught} of ${corrupted})`);
    } finally {
      p.close();
    }
  });
});

describe('user stack: connections', () => {
  it('1,000 concurrent connections on one listener', { timeout: 60_000 }, async () => {
    const p = userPair();
    try {
      const server = p.a.net.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
      await new Promise<void>((r) => server.listen({ port: 7000, host: '10.0.0.1', backlog: 2048 }, r));
      const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => new Promise<string>((resolve, reject) => {
        const c = p.b.net.connect(7000, '10.0.0.1');
        let got = '';
        c.on('data', (d) => { got += d; if (got.length >= 6) c.end(); });
        c.on('close', () => resolve(got));
        c.on('error', reject);
        c.write(`c${String(i).padStart(4, '0')}.`);
      })));
      results.forEach((r, i) => assert.equal(r, `c${String(i).padStart(4, '0')}.`));
      assert.equal(p.a.sockets().filter((s) => s.state === 'ESTABLISHED').length <= 1000, true);
      await new Promise<void>((r) => server.close(() => r()));
    } finally {
      p.close();
    }
  });

  it('a SYN flood does not keep real clients out', { timeout: 60_000 }, async () => {
    const p = userPair({ tcp: { synBacklog: 64 } });
    try {
      // connections still closing when the stacks go away end with ENETDOWN: expected
      const server = p.a.net.createServer((s) => { s.on('error', () => undefined); s.end('ok'); });
      await new Promise<void>((r) => server.listen(80, '10.0.0.1', r));
      const mac = p.a.interfaces[0].mac;
      // 20,000 SYNs from random spoofed sources in the subnet and beyond
      for (let i = 0; i < 20000; i++) p.a.inject(synFrame(mac, randomIp(), 1024 + (i % 60000), '10.0.0.1', 80));
      const replies = await Promise.all(Array.from({ length: 20 }, () => new Promise<string>((resolve, reject) => {
        const c = p.b.net.connect(80, '10.0.0.1');
        let got = '';
        c.on('data', (d) => { got += d; });
        c.on('end', () => resolve(got));
        c.on('error', reject);
        c.setTimeout(20_000, () => reject(new Error('client timed out')));
      })));
      assert.deepEqual(replies, Array(20).fill('ok'));
      const st = p.a.stats().tcp as Record<string, number>;
      assert.ok(st.synCookiesSent > 0, `SYN cookies were used (${st.synCookiesSent})`);
      await new Promise<void>((r) => server.close(() => r()));
    } finally {
      p.close();
    }
  });

  it('simultaneous open', { timeout: 20_000 }, async () => {
    const p = userPair();
    try {
      const x = ms.msocket(p.a, 'AF_INET', 'SOCK_STREAM');
      const y = ms.msocket(p.b, 'AF_INET', 'SOCK_STREAM');
      x.bind('10.0.0.1', 4001);
      y.bind('10.0.0.2', 4002);
      // ARP first, so both SYNs cross on the wire
      await p.a.ping('10.0.0.2');
      await Promise.all([x.connect('10.0.0.2', 4002), y.connect('10.0.0.1', 4001)]);
      assert.deepEqual(x.remoteAddress(), { address: '10.0.0.2', port: 4002, family: 'IPv4' });
      assert.equal(x.send(Buffer.from('x->y')), 4);
      y.watch(true, false);
      await onceEv(y, 'readable');
      assert.equal(y.recv()!.toString(), 'x->y');
      x.close(); y.close();
    } finally {
      p.close();
    }
  });

  it('half-close: the peer keeps writing after our FIN', { timeout: 20_000 }, async () => {
    const p = userPair();
    try {
      const server = p.a.net.createServer({ allowHalfOpen: true }, (s) => {
        let n = 0;
        s.on('data', (d) => { n += d.length; });
        s.on('end', () => { s.write(`got ${n}`); s.end(); });
      });
      await new Promise<void>((r) => server.listen(81, '10.0.0.1', r));
      const reply = await new Promise<string>((resolve, reject) => {
        const c = p.b.net.connect({ port: 81, host: '10.0.0.1', allowHalfOpen: true });
        let got = '';
        c.on('data', (d) => { got += d; });
        c.on('end', () => resolve(got));
        c.on('error', reject);
        c.end(Buffer.alloc(100_000, 1));
      });
      assert.equal(reply, 'got 100000');
      server.close();
    } finally {
      p.close();
    }
  });

  it('keepalive notices a peer stack that disappeared', { timeout: 30_000 }, async () => {
    const p = userPair({ tcp: { keepalive: { interval: 200, count: 3 } } });
    try {
      // the accepted socket ends with an error when the stacks are torn down: expected
      const server = p.a.net.createServer((s) => { s.on('error', () => undefined); });
      await new Promise<void>((r) => server.listen(82, '10.0.0.1', r));
      const c = p.b.net.connect(82, '10.0.0.1');
      await new Promise((r) => c.once('connect', r));
      c.setKeepAlive(true, 1000);  // Node floors the delay to whole seconds
      // the server's host vanishes: nothing it sends arrives any more
      p.a.impair('eth0', { loss: 1 });
      const t0 = Date.now();
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => c.once('error', resolve));
      assert.equal(err.code, 'ETIMEDOUT');
      assert.ok(Date.now() - t0 < 10_000);
      server.close();
    } finally {
      p.close();
    }
  });

  it('RST from a closed port gives ECONNREFUSED', async () => {
    const p = userPair();
    try {
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => p.b.net.connect(9, '10.0.0.1').once('error', resolve));
      assert.equal(err.code, 'ECONNREFUSED');
      assert.equal(err.syscall, 'connect');
      assert.equal(err.message, 'connect ECONNREFUSED 10.0.0.1:9');
    } finally {
      p.close();
    }
  });

  it('an address nobody answers ARP for gives EHOSTUNREACH', { timeout: 30_000 }, async () => {
    const p = userPair();
    try {
      const err = await new Promise<NodeJS.ErrnoException>((resolve) => p.b.net.connect(80, '10.0.0.99').once('error', resolve));
      assert.equal(err.code, 'EHOSTUNREACH');
      // the neighbour is now known to be unreachable: a datagram to it fails at once
      const u = ms.msocket(p.b, 'AF_INET', 'SOCK_DGRAM');
      assert.throws(() => u.sendto(Buffer.from('x'), '10.0.0.99', 53), { code: 'EHOSTUNREACH', syscall: 'send' });
      u.close();
    } finally {
      p.close();
    }
  });

  it('a server on a user stack opens no kernel descriptor or port', async () => {
    const p = userPair();
    try {
      const fds = fs.readdirSync('/proc/self/fd').length;
      const server = p.a.net.createServer();
      await new Promise<void>((r) => server.listen(8080, '10.0.0.1', r));
      assert.equal(fs.readdirSync('/proc/self/fd').length, fds);
      const kernelPorts = fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((l) => / 0A /.test(l) && l.includes(':1F90 '));
      assert.equal(kernelPorts.length, 0, 'no kernel socket listens on 8080');
      server.close();
    } finally {
      p.close();
    }
  });

  it('ping resolves to a round-trip time; s.close() ends sockets with an error', async () => {
    const p = userPair();
    const rtt = await p.b.ping('10.0.0.1');
    assert.ok(rtt >= 0 && rtt < 1000);
    // the peer's stack goes away: this end is reset, as expected
    const server = p.a.net.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
    await new Promise<void>((r) => server.listen(83, '10.0.0.1', r));
    const c = p.b.net.connect(83, '10.0.0.1');
    await new Promise((r) => c.once('connect', r));
    const closed = new Promise<boolean>((r) => c.once('close', r));
    const errored = new Promise<NodeJS.ErrnoException>((r) => c.once('error', r));
    p.b.close();
    assert.ok((await errored).code);
    assert.equal(await closed, true);
    assert.throws(() => ms.stack(p.b.name), { code: 'ENOENT' });
    await new Promise<void>((r) => server.close(() => r()));
    p.a.close();
  });
});

describe('user stack: capture', () => {
  const tshark = hasTshark();
  const skip = tshark ? false : 'tshark is not installed (apt-get install tshark)';
  if (!tshark && process.env.CI === 'true') it('tshark is installed', () => assert.fail('tshark is missing under CI'));
  it('a transfer with loss decodes in tshark: no malformed frames, no bad checksums', { skip, timeout: 120_000 }, async () => {
    const file = path.join(os.tmpdir(), `msockets-capture-${process.pid}.pcap`);
    const p = userPair({ impair: { loss: 0.02 }, capture: file, forceChecksums: true });
    try {
      const r = await transfer(p.b.net, '10.0.0.2', p.a.net, 4 * MiB);
      assert.equal(r.got, r.sent);
      const u = ms.msocket(p.a, 'AF_INET', 'SOCK_DGRAM');
      u.sendto(Buffer.from('udp in the capture'), '10.0.0.2', 9999);
      await p.a.ping('10.0.0.2');
      u.close();
    } finally {
      p.close();
    }
    try {
      checkCapture(file, {
        minFrames: 1001,
        protocols: ['eth:ethertype:arp', 'eth:ethertype:ip:tcp', 'eth:ethertype:ip:udp', 'eth:ethertype:ip:icmp'],
      });
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});

describe('user stack: scale and isolation', () => {
  it('stacks in worker threads', { timeout: 30_000 }, async () => {
    const entry = path.join(__dirname, '..', 'lib', 'msocket.js');
    const code = `
      const { parentPort, workerData } = require('worker_threads');
      const ms = require(workerData.entry);
      const a = ms.newStack({ interfaces: [{ link: 'hub://w', ip: '10.1.0.1/24' }] });
      const b = ms.newStack({ interfaces: [{ link: 'hub://w', ip: '10.1.0.2/24' }] });
      const server = a.net.createServer((s) => s.pipe(s)).listen(1, '10.1.0.1', () => {
        const c = b.net.connect(1, '10.1.0.1', () => c.end('from a worker'));
        let got = '';
        c.on('data', (d) => { got += d; });
        c.on('close', () => { parentPort.postMessage(got); server.close(); a.close(); b.close(); });
      });
    `;
    const got = await Promise.all([1, 2].map(() => new Promise<string>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { entry } });
      let msg = '';
      w.on('message', (m) => { msg = m; });
      w.on('error', reject);
      w.on('exit', (c) => (c === 0 ? resolve(msg) : reject(new Error(`exit ${c}`))));
    })));
    assert.deepEqual(got, ['from a worker', 'from a worker']);
  });

  it('10,000 stacks created and closed; memory returns to where it was', { timeout: 60_000 }, async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const settle = async () => { for (let i = 0; i < 4; i++) { gc(); await new Promise((r) => setImmediate(r)); } };
    const round = () => {
      const stacks = Array.from({ length: 10000 }, (_, i) => ms.newStack({ interfaces: [{ link: `hub://many-${i % 100}`, ip: `10.${(i >> 8) & 255}.${i & 255}.1/8` }] }));
      for (const s of stacks) s.close();
    };
    round();  // warm up allocators and code
    await settle();
    const before = process.memoryUsage().rss;
    round();
    await settle();
    const after = process.memoryUsage().rss;
    console.log(`# rss before ${(before / MiB).toFixed(1)} MiB, after 10,000 stacks ${(after / MiB).toFixed(1)} MiB`);
    assert.ok(after - before < 16 * MiB, `rss grew by ${((after - before) / MiB).toFixed(1)} MiB`);
  });

  it('random and truncated frames do not break a stack', { timeout: 60_000 }, async () => {
    const p = userPair();
    try {
      const mac = Buffer.from(p.a.interfaces[0].mac.split(':').map((h) => parseInt(h, 16)));
      const good = synFrame(p.a.interfaces[0].mac, '10.0.0.2', 5555, '10.0.0.1', 80);
      let seed = 12345;
      const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
      for (let i = 0; i < 100_000; i++) {
        const kind = i % 4;
        let f: Buffer;
        if (kind === 0) {  // pure noise
          f = Buffer.alloc(rnd() % 1600);
          for (let j = 0; j < f.length; j++) f[j] = rnd() & 255;
        } else if (kind === 1) {  // a good frame, truncated
          f = good.subarray(0, rnd() % good.length);
        } else {  // a good frame with random bytes flipped, addressed to the stack
          f = Buffer.from(good);
          for (let k = 0; k < 1 + (rnd() % 6); k++) f[14 + (rnd() % (f.length - 14))] = rnd() & 255;
          if (kind === 3) f[12 + (rnd() % 2)] = rnd() & 255;
        }
        if (f.length >= 6 && kind !== 0) mac.copy(f, 0);
        p.a.inject(f);
      }
      const st = p.a.stats();
      const ip = st.ip as Record<string, number>;
      const eth = st.eth as Record<string, number>;
      assert.ok(eth.malformed + ip.inHdrErrors + ip.inTruncated + eth.unknownType > 0, 'bad frames were counted');
      // still works
      assert.ok((await p.b.ping('10.0.0.1')) >= 0);
      const r = await transfer(p.a.net, '10.0.0.1', p.b.net, MiB);
      assert.equal(r.got, r.sent);
    } finally {
      p.close();
    }
  });
});

// ---- frames

function randomIp(): string {
  return `10.${(Math.random() * 256) | 0}.${(Math.random() * 256) | 0}.${1 + ((Math.random() * 250) | 0)}`;
}

describe('user stack: datagrams several at a time (recvmmsg)', () => {
  /** poll until `raw` has something to read (the hub delivers within the sending call or soon after) */
  const readable = async (raw: RawSocket) => {
    raw.watch(true, false);
    await onceEv(raw, 'readable');
    raw.watch(false, false);
  };

  it('takes queued datagrams in order, each a Buffer of its own, with its source; respects max', async () => {
    const p = userPair();
    const rx = ms.msocket(p.a, 'AF_INET', 'SOCK_DGRAM');
    const s1 = ms.msocket(p.b, 'AF_INET', 'SOCK_DGRAM');
    const s2 = ms.msocket(p.b, 'AF_INET', 'SOCK_DGRAM');
    try {
      rx.bind('10.0.0.1', 0);
      s1.bind('10.0.0.2', 0);
      s2.bind('10.0.0.2', 0);
      const port = rx.localAddress().port;
      const sent: Array<[string, number]> = [];
      const send = (s: RawSocket, text: string) => {
        assert.equal(s.sendto(Buffer.from(text), '10.0.0.1', port), Buffer.byteLength(text));
        sent.push([text, s.localAddress().port]);
      };
      for (let i = 0; i < 10; i++) send(s1, `one-${i}`);
      send(s2, '');  // an empty datagram in the middle
      for (let i = 0; i < 5; i++) send(s2, `two-${i}`);
      for (let i = 0; i < 3; i++) send(s1, `one-again-${i}`);
      await readable(rx);
      const first = rx.recvmmsg!(4)!;
      assert.equal(first.length, 4);
      const copy = first.map((d) => Buffer.from(d.data));
      const rest = rx.recvmmsg!(64)!;
      // the second call reused the binding's scratch: the first call's datagrams are their own copies
      assert.deepEqual(first.map((d) => d.data), copy);
      const all = [...first, ...rest];
      assert.deepEqual(all.map((d) => [d.data.toString(), d.port]), sent);
      for (const d of all) {
        assert.equal(d.address, '10.0.0.2');
        assert.equal(d.family, 'IPv4');
        assert.equal(d.truncated, undefined);
      }
      assert.equal(rx.recvmmsg!(64), null);
    } finally {
      rx.close(); s1.close(); s2.close(); p.close();
    }
  });

  it('large datagrams: a batch stops before one that would not fit and the next call takes it whole', async () => {
    const p = userPair({ mtu: 65535 });
    const rx = ms.msocket(p.a, 'AF_INET', 'SOCK_DGRAM');
    const tx = ms.msocket(p.b, 'AF_INET', 'SOCK_DGRAM');
    try {
      rx.bind('10.0.0.1', 0);
      rx.setOption('SO_RCVBUF', 1 << 20);
      const port = rx.localAddress().port;
      // first resolve the neighbour: a queue waiting for ARP keeps fewer bytes (as Linux's)
      tx.sendto(Buffer.from('hello'), '10.0.0.1', port);
      await readable(rx);
      assert.equal(rx.recvmmsg!(64)!.length, 1);
      const sent: Buffer[] = [];
      // 262,600 bytes: more than the 256 KiB scratch, less than the default receive buffer
      const sizes = [65_000, 200, 65_000, 200, 65_000, 200, 65_000, 2000];
      for (let i = 0; i < sizes.length; i++) {
        const d = Buffer.alloc(sizes[i], i + 1);
        assert.equal(tx.sendto(d, '10.0.0.1', port), d.length);
        sent.push(d);
      }
      await readable(rx);
      const got: Buffer[] = [];
      let calls = 0;
      for (let b = rx.recvmmsg!(64); b; b = rx.recvmmsg!(64)) {
        calls++;
        got.push(...b.map((d) => d.data));
      }
      assert.equal(got.length, sent.length);
      got.forEach((d, i) => assert.ok(d.equals(sent[i]), `datagram ${i}: ${d.length} bytes, expected ${sent[i].length}`));
      assert.ok(calls >= 2, `262,600 bytes of datagrams in ${calls} call(s): more than the 256 KiB scratch holds, so two were expected`);
    } finally {
      rx.close(); tx.close(); p.close();
    }
  });

  it('a pending error with nothing queued throws as recvfrom does; a stream socket refuses', async () => {
    const p = userPair();
    const c = ms.msocket(p.b, 'AF_INET', 'SOCK_DGRAM');
    const t = ms.msocket(p.b, 'AF_INET', 'SOCK_STREAM');
    try {
      await c.connect('10.0.0.1', 9);  // nobody there: ICMP port unreachable comes back
      c.send(Buffer.from('anyone?'));
      await readable(c);
      assert.throws(() => c.recvmmsg!(8), { code: 'ECONNREFUSED', syscall: 'recvmsg' });
      assert.equal(c.recvmmsg!(8), null);
      assert.throws(() => t.recvmmsg!(8), { syscall: 'recvmsg' });
    } finally {
      c.close(); t.close(); p.close();
    }
  });
});

function csum(buf: Buffer, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += buf.readUInt16BE(i);
  if ((end - start) & 1) sum += buf[end - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** an Ethernet + IPv4 + TCP SYN frame with correct checksums */
function synFrame(dstMac: string, src: string, sport: number, dst: string, dport: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 24);
  Buffer.from(dstMac.split(':').map((h) => parseInt(h, 16))).copy(f, 0);
  Buffer.from([0x02, 0, 0, 0xaa, 0xbb, 0xcc]).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ip = 14;
  f[ip] = 0x45; f.writeUInt16BE(44, ip + 2); f[ip + 8] = 64; f[ip + 9] = 6;
  src.split('.').forEach((o, i) => { f[ip + 12 + i] = Number(o); });
  dst.split('.').forEach((o, i) => { f[ip + 16 + i] = Number(o); });
  f.writeUInt16BE(csum(f, ip, ip + 20), ip + 10);
  const t = ip + 20;
  f.writeUInt16BE(sport, t); f.writeUInt16BE(dport, t + 2);
  f.writeUInt32BE((Math.random() * 0xffffffff) >>> 0, t + 4);
  f[t + 12] = 6 << 4; f[t + 13] = 0x02; f.writeUInt16BE(65535, t + 14);
  f[t + 20] = 2; f[t + 21] = 4; f.writeUInt16BE(1460, t + 22);  // MSS option
  let pseudo = 0;
  for (let i = 0; i < 8; i += 2) pseudo += f.readUInt16BE(ip + 12 + i);
  pseudo += 6 + 24;
  f.writeUInt16BE(csum(f, t, t + 24, pseudo), t + 16);
  return f;
}
