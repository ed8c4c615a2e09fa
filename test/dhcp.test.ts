// The DHCPv4 client of user stacks against Debian's dnsmasq serving a kernel namespace that
// shares a hub with the user stack: lease obtained and applied, renewed, rebound, released;
// names resolve through the DNS server the lease named. Plus the message parser on any bytes.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';

import { DhcpFormatError, parseDhcp } from '../lib/dhcp';
import * as ms from '../lib/msocket';

const CI = process.env.CI === 'true';
function missing(): string | null {
  if (process.getuid && process.getuid() !== 0) return 'needs root (network namespaces, TAP devices)';
  for (const cmd of ['dnsmasq', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) return `${cmd} is not installed (Debian: ${cmd === 'dnsmasq' ? 'dnsmasq-base' : 'util-linux'})`;
  }
  if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  return null;
}
const why = missing();
if (why && CI) describe('dhcp with dnsmasq', () => { it('has its peers', () => { assert.fail(`under CI=true this test needs its peer: ${why}`); }); });

describe('iothconf strings', () => {
  it('keys, defaults and errors', () => {
    const o = ms.parseConfigString('eth,iface=vde0,ip=10.1.0.2,ip=10.2.0.2/16,gw=10.1.0.1,dns=10.1.0.1,dns=10.1.0.2,domain=a.test,link=hub://x,dhcp,fqdn=h.a.test');
    assert.deepEqual(o.interfaces, [{ name: 'vde0', link: 'hub://x', ip: ['10.1.0.2/24', '10.2.0.2/16'], mac: ms.hashMac('h.a.test') }]);
    assert.deepEqual(o.routes, [{ to: 'default', via: '10.1.0.1' }]);
    assert.deepEqual(o.dns, ['10.1.0.1', '10.1.0.2']);
    assert.deepEqual(o.search, ['a.test']);
    assert.deepEqual(o.dhcp, { hostname: 'h' });
    assert.equal(ms.parseConfigString('eth,fqdn=h.a.test,mac=02:00:00:00:00:01').interfaces![0].mac, '02:00:00:00:00:01', 'mac= wins over the hash');
    assert.equal(ms.parseConfigString('auto4').dhcp, true);
    assert.equal(ms.parseConfigString('rd,slaac').interfaces![0].slaac, true);
    assert.throws(() => ms.parseConfigString('rd'), { code: 'ENOTSUP' });
    assert.throws(() => ms.parseConfigString('dhcp6'), { code: 'ENOTSUP' });
    const auto = ms.parseConfigString('auto,link=hub://x');
    assert.equal(auto.dhcp, true);
    assert.equal(auto.interfaces![0].slaac, true);
    assert.throws(() => ms.parseConfigString('-ip=10.0.0.1'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => ms.parseConfigString('nonsense'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => ms.parseConfigString(42 as never), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('dhcp messages', () => {
  it('the parser refuses what is not DHCP and never reads out of bounds', () => {
    const good = Buffer.alloc(300);
    good[0] = 2; good[1] = 1; good[2] = 6;
    good.writeUInt32BE(0x63825363, 236);
    Buffer.from([53, 1, 2, 1, 4, 255, 255, 255, 0, 52, 1, 3, 255]).copy(good, 240);
    // overload: options in the file and sname fields too
    Buffer.from([3, 4, 10, 0, 0, 1, 255]).copy(good, 108);
    Buffer.from([6, 4, 10, 0, 0, 53, 255]).copy(good, 44);
    const m = parseDhcp(good);
    assert.equal(m.options.get(53)![0], 2);
    assert.deepEqual([...m.options.get(3)!], [10, 0, 0, 1]);
    assert.deepEqual([...m.options.get(6)!], [10, 0, 0, 53]);
    assert.throws(() => parseDhcp(good.subarray(0, 239)), DhcpFormatError);
    const noCookie = Buffer.from(good); noCookie[236] = 0;
    assert.throws(() => parseDhcp(noCookie), DhcpFormatError);
    for (let i = 0; i < 20000; i++) {
      const b = i % 2 ? Buffer.concat([good.subarray(0, 240), randomBytes(i % 200)]) : Buffer.from(good);
      if (i % 2 === 0) for (let k = 0; k < 4; k++) b[240 + Math.floor(Math.random() * 60)] = Math.floor(Math.random() * 256);
      try { parseDhcp(b); } catch (e) { assert.ok(e instanceof DhcpFormatError, String(e)); }
    }
  });
});

describe('dhcp with dnsmasq', { skip: why ? `skipped: ${why}` : false }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ms-dhcp-'));
  const leases = path.join(dir, 'leases');
  const hub = `dhcp-${process.pid}`;
  const closers: (() => void)[] = [];
  after(() => {
    for (const c of closers.reverse()) { try { c(); } catch { /* best effort */ } }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lease obtained and applied, renewed, rebound, released; DNS from the lease', async () => {
    const kns = ms.newStack({ kind: 'netns', interfaces: [{ link: `hub://${hub}`, ip: ['10.67.0.1/24'], name: 'lan0' }] });
    closers.push(() => kns.close());
    const d: ChildProcess = spawn('nsenter', [`--net=${kns.path}`, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
      '--bind-interfaces', '--interface=lan0', '--except-interface=lo', '--pid-file=', '--user=root', '--log-facility=-', '--log-dhcp',
      `--dhcp-leasefile=${leases}`, '--dhcp-range=10.67.0.50,10.67.0.60,255.255.255.0,2m', '--dhcp-option=option:router,10.67.0.1',
      '--dhcp-option=option:dns-server,10.67.0.1', '--domain=lab.test', '--local=/lab.test/', '--host-record=db.lab.test,10.67.0.9',
      '--dhcp-authoritative', '--no-ping'], { stdio: ['ignore', 'ignore', 'pipe'] });
    closers.push(() => d.kill('SIGKILL'));
    let log = '';
    d.stderr!.on('data', (x) => { log += x; });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(d.exitCode, null, `dnsmasq is running: ${log}`);

    const u = ms.newStack({ interfaces: [{ link: `hub://${hub}`, mac: '02:00:5e:10:00:07' }] });
    closers.push(() => u.close());
    assert.deepEqual(u.addresses, []);
    const onStack = new Promise<{ interface: string; address: string }>((r) => u.once('lease', r));
    const lease = await u.dhcp({ hostname: 'alpha', retransmit: 300 });
    const ev = await onStack;
    assert.equal(ev.interface, 'eth0');
    assert.equal(ev.address, lease.address, "the stack emits 'lease' too");
    assert.match(lease.address, /^10\.67\.0\.(5\d|60)$/);
    assert.equal(lease.prefix, 24);
    assert.equal(lease.server, '10.67.0.1');
    assert.deepEqual(lease.routers, ['10.67.0.1']);
    assert.deepEqual(lease.dns, ['10.67.0.1']);
    assert.equal(lease.domain, 'lab.test');
    assert.equal(lease.leaseTime, 120);
    assert.deepEqual(u.addresses, [`${lease.address}/24`]);
    assert.match(fs.readFileSync(leases, 'utf8'), new RegExp(`02:00:5e:10:00:07 ${lease.address.replace(/\./g, '\\.')} alpha`));
    // applied: the route and DNS work
    assert.ok(await u.ping('10.67.0.1') >= 0);
    assert.deepEqual(await u.dns.promises.resolve4('db.lab.test'), ['10.67.0.9']);
    assert.deepEqual(await u.dns.promises.lookup('db', { family: 4 }), { address: '10.67.0.9', family: 4 }, 'the search domain from the lease');

    const c = u.dhcpClients.get(1)!;
    const renewed = await c.renew();
    assert.equal(renewed.address, lease.address);
    assert.ok(renewed.obtained >= lease.obtained);
    const rebound = await c.rebind();
    assert.equal(rebound.address, lease.address);
    assert.deepEqual(u.addresses, [`${lease.address}/24`], 'still one address after renewals');
    assert.ok(c.stats.sent >= 4);

    await c.release();
    assert.deepEqual(u.addresses, []);
    await new Promise((r) => setTimeout(r, 300));
    assert.doesNotMatch(fs.readFileSync(leases, 'utf8'), /02:00:5e:10:00:07/, 'the server took the lease back');
    assert.match(log, /DHCPRELEASE/);
  });

  it('iothconf strings: eth,fqdn=...,dhcp at creation; static items and removals at run time', async () => {
    const u = ms.newStack(`eth,fqdn=beta.lab.test,link=hub://${hub},dhcp`);
    closers.push(() => u.close());
    assert.equal(u.interfaces[0].mac, ms.hashMac('beta.lab.test'), 'eth with fqdn: the MAC hashed from the name');
    const c = u.dhcpClients.get(1)!;
    const lease = c.lease ?? await new Promise<import('../lib/dhcp').DhcpLease>((r) => c.once('lease', r));
    assert.match(fs.readFileSync(leases, 'utf8'), new RegExp(`${ms.hashMac('beta.lab.test')} ${lease.address.replace(/\./g, '\\.')} beta`));
    assert.deepEqual(u.addresses, [`${lease.address}/24`]);
    await u.config('-dhcp');
    assert.deepEqual(u.addresses, []);
    assert.equal(u.dhcpClients.size, 0);
    await u.config('ip=10.67.0.30,gw=10.67.0.1,dns=10.67.0.1,domain=lab.test');
    assert.deepEqual(u.addresses, ['10.67.0.30/24']);
    assert.ok(await u.ping('10.67.0.1') >= 0);
    assert.deepEqual(await u.dns.promises.lookup('db', { family: 4 }), { address: '10.67.0.9', family: 4 });
    await u.config('-dns=10.67.0.1');
    assert.deepEqual(u.dns.getServers(), []);
    await u.config('-static');
    assert.deepEqual(u.addresses, []);
    assert.deepEqual(u.dns.getSearch(), []);
    await assert.rejects(u.config('rd'), { code: 'ENOTSUP' });
    await assert.rejects(u.config('bogus=1'), { code: 'ERR_INVALID_ARG_VALUE' });
    await assert.rejects(u.config('-ip=10.9.9.9'), { code: 'EADDRNOTAVAIL', syscall: 'removeAddress' });
  });

  it('no server: start() rejects with ETIMEDOUT after its tries', async () => {
    const u = ms.newStack({ interfaces: [{ link: `hub://dhcp-empty-${process.pid}` }] });
    closers.push(() => u.close());
    await assert.rejects(u.dhcp({ retransmit: 50, tries: 2 }), { code: 'ETIMEDOUT', syscall: 'dhcp' });
    assert.throws(() => new (require('../lib/dhcp').DhcpClient)(u, { iface: 'nope' }), { code: 'ENODEV' });
  });
});
