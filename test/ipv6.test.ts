// IPv6 of the user stack against the Linux kernel: a user stack and a kernel namespace stack
// on the same hub://, the namespace's TAP bridged to the hub. Kernel ping -6 to the user
// stack and back, TCP both ways (16 MiB byte-exact, and curl to [addr]), UDP both ways, a
// capture that tshark decodes with no malformed frame and no bad checksum, then SLAAC from
// radvd running in the namespace: the user stack forms its address and default route and
// reaches the kernel through it.
//
// The test makes its namespaces, TAP devices, temp files and the radvd process, and removes
// them in after hooks, failed or not. Traffic stays inside the namespaces it made.
// Missing root, /dev/net/tun or a tool: the tests skip with the reason, or fail under CI=true.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';

import * as ms from '../lib/msocket';
import { checkCapture, tsharkFields } from './helpers/tshark';

const CI = process.env.CI === 'true';
const isRoot = process.getuid?.() === 0;
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function missingFor(tools: string[]): string | null {
  if (!isRoot) return 'not root: a namespace with a TAP device needs CAP_NET_ADMIN';
  if (!fs.existsSync('/dev/net/tun')) return '/dev/net/tun is missing';
  for (const t of tools) if (!has(t)) return `${t} is not installed`;
  return null;
}

function itNeeds(missing: string | null, name: string, fn: (t: TestContext) => Promise<void> | void, timeout = 60_000): void {
  if (!missing) { it(name, { timeout }, fn); return; }
  if (CI) { it(name, () => assert.fail(`${missing} (CI=true: a missing privilege or tool is a failure)`)); return; }
  it(name, { skip: missing }, () => undefined);
}

/** a command inside the namespace, asynchronously (the user stack runs on this loop meanwhile) */
function inNs(ns: ms.NetnsStack, cmd: string, args: string[], timeout = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('nsenter', [`--net=${ns.path}`, cmd, ...args], { timeout, encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: stdout.toString('latin1'), stderr: stderr.toString() });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** the kernel's IPv6 addresses on dev are past DAD */
async function kernelDadDone(ns: ms.NetnsStack, dev: string): Promise<boolean> {
  const r = await inNs(ns, 'ip', ['-6', 'addr', 'show', 'dev', dev, 'tentative']);
  return r.code === 0 && !/inet6/.test(r.stdout);
}

function echo(n: typeof net) {
  return n.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function tcpRoundTrip(n: typeof net, host: string, port: number, data: Buffer): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const c = n.connect(port, host);
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks)));
    c.on('error', reject);
    c.end(data);
  });
}

describe('IPv6: a user stack and the Linux kernel on one hub://', () => {
  const missing = missingFor(['nsenter', 'ping', 'ip']);
  let ns: ms.NetnsStack | undefined;
  let user: ms.UserStack | undefined;
  let tmp: string | undefined;
  const hub = `hub://v6-${process.pid}`;
  before(async () => {
    if (missing) return;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ms-ipv6-'));
    ns = ms.newStack({ kind: 'netns', interfaces: [{ link: hub, ip: ['fd00::1/64'] }] });
    // DAD on (the default): the address is usable once nobody objected
    user = ms.newStack({ interfaces: [{ link: hub, ip: ['fd00::2/64'] }] });
    user.capture(path.join(tmp, 'v6.pcap'));
    await until('the user stack to finish duplicate address detection', () => user!.interfaces[0].tentative.length === 0);
    await until('the kernel to finish duplicate address detection', () => kernelDadDone(ns!, ns!.interfaces[0].name));
  });
  after(() => {
    user?.close();
    ns?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  itNeeds(missing, 'the user stack pings the kernel first (ICMPv6 echo, NDP answered by Linux)', async () => {
    assert.ok((await user!.ping('fd00::1')) >= 0);
    const st = user!.stats().icmp6 as Record<string, number>;
    assert.ok(st.inNeighborAdverts >= 1, 'Linux answered a neighbour solicitation');
    // the kernel's link-local address, with the zone named by our interface
    const show = await inNs(ns!, 'ip', ['-6', '-o', 'addr', 'show', 'dev', ns!.interfaces[0].name, 'scope', 'link']);
    const m = /inet6 (fe80::[0-9a-f:]+)\//.exec(show.stdout);
    assert.ok(m, `the kernel's link-local address: ${show.stdout}`);
    assert.ok((await user!.ping(`${m![1]}%eth0`)) >= 0, 'ping to a link-local address with its zone');
    await assert.rejects(user!.ping('fd00::99', {}), { code: 'EHOSTUNREACH' });
  });

  itNeeds(missing, 'the kernel pings the user stack (ping -6), global and link-local', async () => {
    const r = await inNs(ns!, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', 'fd00::2']);
    assert.equal(r.code, 0, `ping -6 fd00::2 failed: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /3 received/);
    const ll = user!.interfaces[0].addresses.find((a) => a.startsWith('fe80:'))!.split('/')[0];
    const r2 = await inNs(ns!, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', `${ll}%${ns!.interfaces[0].name}`]);
    assert.equal(r2.code, 0, `ping -6 ${ll} failed: ${r2.stdout}${r2.stderr}`);
    const st = user!.stats().icmp6 as Record<string, number>;
    assert.ok(st.outEchoReps >= 5, 'the user stack answered the echoes');
  });

  itNeeds(missing, 'UDP both ways (udp6), byte-exact', async () => {
    const k = ns!.dgram.createSocket('udp6');
    const u = user!.dgram.createSocket('udp6');
    try {
      await new Promise<void>((r) => k.bind(5301, 'fd00::1', () => r()));
      await new Promise<void>((r) => u.bind(5302, () => r()));
      const payload = randomBytes(1200);
      const atKernel = new Promise<[Buffer, { address: string; port: number }]>((r) => k.once('message', (m, ri) => r([m, ri])));
      u.send(payload, 5301, 'fd00::1');
      const [m, ri] = await atKernel;
      assert.ok(m.equals(payload));
      assert.deepEqual([ri.address, ri.port], ['fd00::2', 5302]);
      // and back, a datagram larger than the MTU: fragmented by Linux, reassembled by us
      const big = randomBytes(4000);
      const atUser = new Promise<[Buffer, { address: string; port: number }]>((r) => u.once('message', (mm, rr) => r([mm, rr])));
      k.send(big, 5302, 'fd00::2');
      const [m2, r2] = await atUser;
      assert.ok(m2.equals(big));
      assert.deepEqual([r2.address, r2.port], ['fd00::1', 5301]);
      assert.ok((user!.stats().ip6 as Record<string, number>).reasmOks >= 1);
    } finally {
      k.close();
      u.close();
    }
  });

  itNeeds(missing, 'TCP from the kernel to a user-stack server: curl to [fd00::2], 1 MiB byte-exact', async () => {
    if (!has('curl')) { if (CI) assert.fail('curl is not installed'); return; }
    const body = randomBytes(1 << 20);
    const srv = user!.net.createServer((s) => {
      s.on('error', () => undefined);
      let req = '';
      s.on('data', (d) => {
        req += d.toString('latin1');
        if (!req.includes('\r\n\r\n')) return;
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
        s.end(body);
      });
    });
    await new Promise<void>((r) => srv.listen(8080, '::', r));
    try {
      const r = await inNs(ns!, 'curl', ['-sS', '-g', '--max-time', '15', 'http://[fd00::2]:8080/']);
      assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
      const got = Buffer.from(r.stdout, 'latin1');
      assert.equal(got.length, body.length);
      assert.equal(sha(got), sha(body));
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  itNeeds(missing, 'tshark reads the capture so far: no malformed frames, no bad checksums', async () => {
    user!.capture(null);
    const file = path.join(tmp!, 'v6.pcap');
    if (!checkCapture(file, { minFrames: 51, linuxPeer: true })) return;
    const types = new Set(tsharkFields(file, 'icmpv6.type == 143 || icmpv6.type == 135 || icmpv6.type == 136', ['icmpv6.type']));
    assert.ok(types.has('143') && types.has('135') && types.has('136'), `MLDv2 report, NS and NA on the wire (${[...types]})`);
  });

  itNeeds(missing, 'TCP from the user stack to a kernel server, 16 MiB byte-exact', async () => {
    const srv = echo(ns!.net);
    await new Promise<void>((r) => srv.listen(7, 'fd00::1', r));
    try {
      const data = randomBytes(16 << 20);
      const back = await tcpRoundTrip(user!.net, 'fd00::1', 7, data);
      assert.equal(back.length, data.length);
      assert.equal(sha(back), sha(data));
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  }, 120_000);

  itNeeds(missing, 'TCP from the kernel to a user-stack server, 16 MiB byte-exact', async () => {
    const srv = echo(user!.net);
    await new Promise<void>((r) => srv.listen(9, 'fd00::2', r));
    try {
      const data = randomBytes(16 << 20);
      const back = await tcpRoundTrip(ns!.net, 'fd00::2', 9, data);
      assert.equal(back.length, data.length);
      assert.equal(sha(back), sha(data));
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  }, 120_000);
});

describe('IPv6: SLAAC from radvd in a namespace', () => {
  const missing = missingFor(['nsenter', 'ip', 'radvd']);
  let ns: ms.NetnsStack | undefined;
  let user: ms.UserStack | undefined;
  let radvd: ChildProcess | undefined;
  let tmp: string | undefined;
  after(async () => {
    if (radvd && radvd.exitCode === null) {
      radvd.kill('SIGTERM');
      await new Promise((r) => { radvd!.once('exit', r); setTimeout(r, 3000); });
    }
    user?.close();
    ns?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  itNeeds(missing, 'the user stack forms an address from fd00:1::/64 and a default route, and reaches the kernel through it', async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ms-radvd-'));
    const hub = `hub://slaac-${process.pid}`;
    ns = ms.newStack({ kind: 'netns', interfaces: [{ link: hub, ip: ['fd00:1::1/64'] }] });
    const dev = ns.interfaces[0].name;
    // the router: forwarding on in its namespace, an address off the advertised prefix on lo
    for (const args of [['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1'], ['ip', '-6', 'addr', 'add', 'fd00:99::1/128', 'dev', 'lo']]) {
      const r = await inNs(ns, args[0], args.slice(1));
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    await until('the kernel to finish DAD', () => kernelDadDone(ns!, dev));
    const conf = path.join(tmp, 'radvd.conf');
    fs.writeFileSync(conf, `interface ${dev} {
  AdvSendAdvert on;
  MinRtrAdvInterval 3;
  MaxRtrAdvInterval 4;
  AdvDefaultLifetime 600;
  prefix fd00:1::/64 { AdvOnLink on; AdvAutonomous on; };
};
`);
    radvd = spawn('nsenter', [`--net=${ns.path}`, 'radvd', '-n', '-C', conf, '-p', path.join(tmp, 'radvd.pid'), '-m', 'stderr'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    radvd.stderr!.on('data', (d) => { log += d; });
    await sleep(300);
    assert.equal(radvd.exitCode, null, `radvd exited: ${log}`);
    user = ms.newStack({ interfaces: [{ link: hub, mac: '02:00:00:00:aa:01', slaac: true }] });
    const want = 'fd00:1::ff:fe00:aa01/64';  // EUI-64 of 02:00:00:00:aa:01
    await until('an autoconfigured address past DAD', () => {
      const i = user!.interfaces[0];
      return i.addresses.includes(want) && !i.tentative.includes(want);
    }, 20_000);
    const st = user.stats().icmp6 as Record<string, number>;
    assert.ok(st.outRouterSolicits >= 1 && st.inRouterAdverts >= 1, 'router solicitation answered');
    assert.equal(st.slaacAddresses, 1);
    // fd00:99::1 is only reachable through the default router
    assert.ok((await user.ping('fd00:99::1')) >= 0, 'ping through the default route');
    const srv = echo(ns.net);
    await new Promise<void>((r) => srv.listen(7, 'fd00:99::1', r));
    try {
      const data = randomBytes(256 << 10);
      const back = await tcpRoundTrip(user.net, 'fd00:99::1', 7, data);
      assert.equal(sha(back), sha(data));
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
    // the kernel sees us at the autoconfigured address
    const r = await inNs(ns, 'ping', ['-6', '-c', '1', '-W', '2', want.split('/')[0]]);
    assert.equal(r.code, 0, `kernel ping to the SLAAC address: ${r.stdout}${r.stderr}`);
  }, 60_000);
});

describe('IPv6 between two user stacks (no privileges needed)', () => {
  it('DAD, link-local ping with a zone, TCP and udp6, dual-stack servers, ss-style rows, option checks', { timeout: 30_000 }, async () => {
    const hub = `hub://v6u-${process.pid}`;
    const a = ms.newStack({ interfaces: [{ link: hub, ip: ['fd00::1/64', '10.9.0.1/24'], mac: '02:00:00:00:00:01' }] });
    const b = ms.newStack(`link=${hub},ip=fd00::2/64,ip=10.9.0.2/24,mac=02:00:00:00:00:02`);
    try {
      assert.equal(a.supports(ms.AF_INET6), true);
      assert.deepEqual(a.interfaces[0].tentative.sort(), ['fd00::1/64', 'fe80::ff:fe00:1/64'], 'tentative during DAD');
      const early = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        const c = a.net.connect(1, 'fd00::2');
        c.on('error', resolve);
        c.on('connect', () => { c.destroy(); resolve(null); });
      });
      assert.equal(early?.code, 'EADDRNOTAVAIL', 'no usable source address while tentative');
      await until('DAD on both stacks', () => a.interfaces[0].tentative.length === 0 && b.interfaces[0].tentative.length === 0);
      assert.ok((await a.ping('fe80::ff:fe00:2%eth0')) >= 0, 'link-local ping with a zone');
      // a server with no host is dual-stack: IPv6 and IPv4 clients, the latter as ::ffff:a.b.c.d
      const seen: string[] = [];
      const srv = b.net.createServer((s) => { seen.push(s.remoteAddress!); s.end('hi ' + s.remoteFamily); });
      await new Promise<void>((r) => srv.listen(80, r));
      assert.equal((srv.address() as net.AddressInfo).address, '::');
      const get = (host: string) => new Promise<string>((resolve, reject) => {
        let got = '';
        const c = a.net.connect(80, host);
        c.on('data', (d) => { got += d; });
        c.on('end', () => resolve(got));
        c.on('error', reject);
      });
      assert.equal(await get('fd00::2'), 'hi IPv6');
      assert.equal(await get('10.9.0.2'), 'hi IPv6');
      assert.deepEqual(seen, ['fd00::1', '::ffff:10.9.0.1']);
      const rows = b.sockets().filter((r) => r.type === 'tcp' && r.state === 'LISTEN');
      assert.deepEqual(rows.map((r) => r.local), ['[::]:80']);
      await new Promise<void>((r) => srv.close(() => r()));
      // udp6 with ipv6Only refuses IPv4-mapped peers
      const u = b.dgram.createSocket({ type: 'udp6', ipv6Only: true });
      await new Promise<void>((r) => u.bind(53, () => r()));
      const err = await new Promise<Error | null>((r) => u.send('x', 53, '::ffff:10.9.0.1', (e) => r(e)));
      assert.equal((err as NodeJS.ErrnoException | null)?.code, 'ENETUNREACH');
      u.close();
      assert.throws(() => ms.newStack({ ipv6: { secret: Buffer.alloc(3) } }), { code: 'ERR_INVALID_ARG_VALUE' });
      assert.throws(() => ms.newStack({ ipv6: 1 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    } finally {
      a.close();
      b.close();
    }
  });
});
