// The per-stack resolver: message parsing safe on any bytes, then real queries to Debian's
// dnsmasq running inside network namespaces the test creates — through a kernel namespace
// stack (its UDP is the namespace's, not ours), and through a user stack on a hub shared with
// a namespace (the user stack's own UDP and TCP carry the queries).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { DnsFormatError, encodeQuery, parseMessage, StackResolver } from '../lib/dns';
import * as ms from '../lib/msocket';

const CI = process.env.CI === 'true';

function missing(): string | null {
  if (process.getuid && process.getuid() !== 0) return 'needs root (network namespaces)';
  for (const cmd of ['ip', 'dnsmasq', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) return `${cmd} is not installed (Debian: ${cmd === 'dnsmasq' ? 'dnsmasq-base' : cmd === 'ip' ? 'iproute2' : 'util-linux'})`;
  }
  return null;
}
const why = missing();
if (why && CI) {
  describe('dns with dnsmasq', () => { it('has its peers', () => { assert.fail(`under CI=true this test needs its peer: ${why}`); }); });
}
const skip = why ? `skipped: ${why}` : false;

describe('dns messages', () => {
  it('a query encodes as RFC 1035 says; names DNS cannot carry are refused', () => {
    const q = encodeQuery(0x1234, 'www.Example.test.', 1);
    assert.equal(q.readUInt16BE(0), 0x1234);
    assert.equal(q.readUInt16BE(2), 0x0100);
    assert.deepEqual([...q.subarray(12, 12 + 18)], [3, 119, 119, 119, 7, 69, 120, 97, 109, 112, 108, 101, 4, 116, 101, 115, 116, 0]);
    assert.equal(q.readUInt16BE(q.length - 4), 1);
    assert.throws(() => encodeQuery(1, 'a..b', 1), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => encodeQuery(1, 'x'.repeat(64), 1), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => encodeQuery(1, Array(60).fill('abcd').join('.'), 1), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('compression pointers, loops and truncation: parsed or refused, never read out of bounds', () => {
    // a response with the question and an answer whose name is a pointer to the question
    const q = encodeQuery(7, 'a.test', 1);
    const ans = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    const resp = Buffer.concat([q, ans]);
    resp.writeUInt16BE(0x8180, 2);
    resp.writeUInt16BE(1, 6);
    const m = parseMessage(resp);
    assert.equal(m.id, 7);
    assert.equal(m.answers[0].name, 'a.test');
    assert.equal(m.answers[0].ttl, 60);
    // a pointer to itself
    const loop = Buffer.from(resp);
    loop[q.length] = 0xc0; loop[q.length + 1] = q.length;
    assert.throws(() => parseMessage(loop), DnsFormatError);
    // every truncation of a good message is refused cleanly
    for (let n = 0; n < resp.length; n++) assert.throws(() => parseMessage(resp.subarray(0, n)), DnsFormatError);
    // random bytes, and random damage to a good message
    for (let i = 0; i < 20000; i++) {
      const b = i % 2 ? randomBytes(i % 600) : Buffer.from(resp);
      if (i % 2 === 0) for (let k = 0; k < 3; k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
      try { parseMessage(b); } catch (e) { assert.ok(e instanceof DnsFormatError, String(e)); }
    }
  });
});

describe('dns with dnsmasq in a namespace', { skip }, () => {
  const tag = `ms-dns-${process.pid}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ms-dns-'));
  const hostsFile = path.join(dir, 'hosts');
  const procs: ChildProcess[] = [];
  const stacks: { close(): void }[] = [];

  function startDnsmasq(nsPath: string, listen: string): Promise<ChildProcess> {
    const p = spawn('nsenter', [`--net=${nsPath}`, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
      `--addn-hosts=${hostsFile}`, '--local=/test/', '--bind-interfaces', `--listen-address=${listen}`, '--port=53', '--pid-file=',
      '--user=root', '--log-facility=-', '--host-record=web.test,10.1.2.3,fd00::3', '--host-record=only4.test,10.1.2.4',
      '--cname=alias.test,web.test'], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(p);
    let err = '';
    p.stderr!.on('data', (d) => { err += d; });
    return new Promise((resolve, reject) => {
      p.on('exit', (code) => reject(new Error(`dnsmasq exited with ${code}: ${err}`)));
      // dnsmasq logs 'started' once its sockets are bound
      const poll = setInterval(() => { if (/started/.test(err)) { clearInterval(poll); resolve(p); } }, 20);
      setTimeout(() => { clearInterval(poll); resolve(p); }, 3000);
    });
  }

  before(() => {
    // 60 addresses for one name: more than fit in 512 bytes, so the answer comes back truncated
    fs.writeFileSync(hostsFile, Array.from({ length: 60 }, (_, i) => `10.9.${i >> 8}.${(i & 255) + 1} big.test`).join('\n') + '\n');
    spawnSync('ip', ['netns', 'add', tag]);
  });
  after(() => {
    for (const s of stacks) s.close();
    for (const p of procs) p.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', tag]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('through a kernel namespace stack: A, AAAA, CNAME, ttl, NXDOMAIN, ENODATA, TCP after truncation, search domains, static hosts', async () => {
    spawnSync('ip', ['-n', tag, 'link', 'set', 'lo', 'up']);
    await startDnsmasq(`/var/run/netns/${tag}`, '127.0.0.1');
    const ns = ms.stack(`netns:${tag}`);
    const r = new StackResolver(ns, { servers: ['127.0.0.1'], search: ['test'], hosts: { 'fixed.name': ['192.0.2.7', '2001:db8::7'] }, timeout: 1000 });
    const p = r.promises;
    assert.deepEqual(await p.resolve4('web.test'), ['10.1.2.3']);
    assert.deepEqual(await p.resolve6('web.test'), ['fd00::3']);
    const withTtl = await p.resolve4('web.test', { ttl: true }) as { address: string; ttl: number }[];
    assert.equal(withTtl[0].address, '10.1.2.3');
    assert.equal(typeof withTtl[0].ttl, 'number');
    assert.deepEqual(await p.resolve4('alias.test'), ['10.1.2.3'], 'the CNAME is followed');
    await assert.rejects(p.resolve4('nosuch.test'), { code: 'ENOTFOUND', syscall: 'queryA', hostname: 'nosuch.test' });
    await assert.rejects(p.resolve6('only4.test'), { code: 'ENODATA', syscall: 'queryAaaa' });
    // truncated over UDP, complete over TCP
    const before = r.stats.tcpQueries;
    const big = await p.resolve4('big.test') as string[];
    assert.equal(big.length, 60);
    assert.equal(r.stats.tcpQueries, before + 1);
    // lookup: search list, both families, static entries, Node's error for an unknown name
    assert.deepEqual(await p.lookup('web', { family: 4 }), { address: '10.1.2.3', family: 4 });
    const all = await p.lookup('web.test', { all: true }) as { address: string; family: number }[];
    assert.deepEqual(all.map((a) => a.address).sort(), ['10.1.2.3', 'fd00::3']);
    assert.deepEqual(await p.lookup('fixed.name', { family: 6 }), { address: '2001:db8::7', family: 6 });
    await assert.rejects(p.lookup('nosuch'), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname: 'nosuch' });
    // a server that does not answer: Node's codes for a timeout
    const silent = new StackResolver(ns, { servers: ['127.0.0.9'], timeout: 200, tries: 1 });
    await assert.rejects(silent.promises.resolve4('web.test'), (e: NodeJS.ErrnoException) => e.code === 'ETIMEOUT' || e.code === 'ECONNREFUSED');
    await assert.rejects(silent.promises.lookup('web.test'), { code: 'EAI_AGAIN', syscall: 'getaddrinfo' });
  });

  it('a user stack resolves through its own UDP and TCP: s.dns, lookup, net.connect({ host })', async () => {
    const kns = ms.newStack({ kind: 'netns', interfaces: [{ link: `hub://${tag}`, ip: ['10.53.0.1/24'] }] });
    stacks.push(kns);
    await startDnsmasq(kns.path, '10.53.0.1');
    const u = ms.newStack({ interfaces: [{ link: `hub://${tag}`, ip: '10.53.0.2/24' }], dns: ['10.53.0.1'], search: ['test'] });
    stacks.push(u);
    assert.deepEqual(await u.dns.promises.resolve4('web.test'), ['10.1.2.3']);
    assert.equal((await u.dns.promises.resolve4('big.test') as string[]).length, 60);
    assert.ok(u.dns.stats.tcpQueries >= 1, 'the truncated answer was fetched over the user stack TCP');
    await assert.rejects(u.dns.promises.resolve4('nosuch.test'), { code: 'ENOTFOUND' });
    // net.connect({ host }) on the user stack goes through its resolver: a server in the namespace
    fs.appendFileSync(hostsFile, '10.53.0.1 gateway.test\n');
    spawnSync('pkill', ['-HUP', '-f', `addn-hosts=${hostsFile}`]);
    await new Promise((r) => setTimeout(r, 200));
    const srv = kns.net.createServer((c) => c.end('hello from the namespace'));
    await new Promise<void>((r) => srv.listen(8053, '10.53.0.1', r));
    try {
      const c = u.net.connect({ host: 'gateway', port: 8053 });
      let got = '';
      let looked: unknown[] = [];
      c.on('lookup', (...a) => { looked = a; });
      c.on('data', (d) => { got += d; });
      await new Promise((r, j) => { c.on('close', r); c.on('error', j); });
      assert.equal(got, 'hello from the namespace');
      assert.deepEqual(looked.slice(0, 4), [null, '10.53.0.1', 4, 'gateway']);
      const bad = u.net.connect({ host: 'nosuch', port: 1 });
      await assert.rejects(new Promise((_, j) => bad.on('error', j)), { code: 'ENOTFOUND', syscall: 'getaddrinfo' });
    } finally {
      srv.close();
    }
  });
});
