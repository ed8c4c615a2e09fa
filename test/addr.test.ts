// Hash-based and OTIP addresses against the published test vectors of libioth's iothaddr and
// otip-utils, plus properties the vectors do not pin down.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';

import { eui64Address, hashAddress, hashEui64Address, hashMac, ipv6Bytes, ipv6Text, otipAddress, otipSlot } from '../lib/msocket';

describe('hash-based addresses (iothaddr)', () => {
  it('MD5 of the name is the one the vectors start from', () => {
    assert.equal(createHash('md5').update('test.v2.cs.unibo.it').digest('hex'), '69d62fac095a5a2ee4c2c79f211e57e3');
  });

  it('hash address: XOR into the base, universal/local and group bits cleared', () => {
    assert.equal(hashAddress('2000:760::', 'test.v2.cs.unibo.it'), '2000:760::68d6:2fac:95a:5a2e');
    assert.equal(hashAddress('fc00::', 'hash.test.local'), 'fc00::f4b7:a5a9:259b:fb70');
    // a trailing dot (fully qualified) names the same host
    assert.equal(hashAddress('fc00::', 'hash.test.local.'), 'fc00::f4b7:a5a9:259b:fb70');
    // the base's interface identifier is XORed, not replaced
    const a = ipv6Bytes(hashAddress('2000:760::', 'test.v2.cs.unibo.it'));
    const b = ipv6Bytes(hashAddress('2000:760::1:0:0:1', 'test.v2.cs.unibo.it'));
    assert.equal(a[9] ^ b[9], 1);
    assert.equal(a[15] ^ b[15], 1);
    assert.deepEqual(b.subarray(0, 8), ipv6Bytes('2000:760::1:0:0:1').subarray(0, 8));
  });

  it('hash MAC and hash EUI-64', () => {
    assert.equal(hashMac('test.v2.cs.unibo.it'), '6a:d6:2f:5a:5a:2e');
    assert.equal(hashEui64Address('2000:760::', 'test.v2.cs.unibo.it'), '2000:760::68d6:2fff:fe5a:5a2e');
    assert.equal(eui64Address('fe80::', '00:11:22:33:44:55'), 'fe80::211:22ff:fe33:4455');
    for (const name of ['a', 'b.example', 'x'.repeat(300)]) {
      const first = parseInt(hashMac(name).slice(0, 2), 16);
      assert.equal(first & 1, 0, 'unicast');
      assert.equal(first & 2, 2, 'locally administered');
    }
  });

  it('OTIP: the vector, the time slot, and the address moving each period', () => {
    const t = 1700000000 * 1000;
    assert.equal(otipSlot(32, 0, t), 53125000);
    assert.equal(otipAddress('fc01::', 'renzo.otip', 'mypassword', t), 'fc01::8ce3:a148:b648:6c83');
    assert.equal(otipAddress('fc01::', 'renzo.otip.', 'mypassword', t), 'fc01::8ce3:a148:b648:6c83');
    // the same slot gives the same address; the next slot another; another password another
    assert.equal(otipAddress('fc01::', 'renzo.otip', 'mypassword', t + 31_000), otipAddress('fc01::', 'renzo.otip', 'mypassword', t));
    assert.notEqual(otipAddress('fc01::', 'renzo.otip', 'mypassword', t + 32_000), otipAddress('fc01::', 'renzo.otip', 'mypassword', t));
    assert.notEqual(otipAddress('fc01::', 'renzo.otip', 'other', t), otipAddress('fc01::', 'renzo.otip', 'mypassword', t));
    // pre-activation: the offset moves the slot boundary
    assert.equal(otipSlot(32, 16, t + 16_000), 53125001);
    assert.equal(otipSlot(0, 0, t), 0);
  });

  it('IPv6 text both ways (RFC 5952)', () => {
    for (const [inp, out] of [['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['::', '::'], ['::1', '::1'], ['1::', '1::'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], ['::ffff:1.2.3.4', '::ffff:102:304'], ['fe80:0:0:0:0:0:0:0', 'fe80::']]) {
      assert.equal(ipv6Text(ipv6Bytes(inp)), out);
    }
  });

  it('bad arguments are Node-style errors', () => {
    assert.throws(() => hashAddress('10.0.0.1', 'x'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => hashAddress('fe80::1%eth0', 'x'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => hashAddress('fc00::', ''), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => hashAddress('fc00::', 42 as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => hashAddress('fc00::', 'x', undefined, -1), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => otipAddress('fc00::', 'x', undefined as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => eui64Address('fc00::', 'zz:11:22:33:44:55'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => otipSlot(-1), { code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('OTIP rotation (a clock the test drives)', () => {
  const { OtipAddress } = require('../lib/otip') as typeof import('../lib/otip');
  function fakeHost() {
    const up = new Set<string>();
    const log: string[] = [];
    return {
      up, log, closed: false,
      addAddress(cidr: string) { up.add(cidr.split('/')[0]); log.push(`+${cidr}`); },
      removeAddress(a: string) { if (!up.delete(a)) throw Object.assign(new Error('no'), { code: 'EADDRNOTAVAIL' }); log.push(`-${a}`); },
    };
  }
  const base = 'fc01::', name = 'renzo.otip', password = 'mypassword';
  const at = (sec: number) => otipAddress(base, name, password, sec * 1000);

  it('the address of the period; the next one from preactive before; the previous one until postactive after', () => {
    let now = 1700000000 * 1000;            // slot 53125000 starts exactly here
    const h = fakeHost();
    const o = new OtipAddress(h, { base, name, password, preactive: 4, postactive: 6, clock: () => now });
    const t0 = 1700000000;
    now = (t0 + 10) * 1000;
    assert.deepEqual(o.update(), [at(t0)]);
    assert.equal(at(t0), 'fc01::8ce3:a148:b648:6c83');
    assert.deepEqual([...h.up], [at(t0)]);
    now = (t0 + 28) * 1000;                 // 4 s before the next period: the next address too
    assert.deepEqual(new Set(o.update()), new Set([at(t0), at(t0 + 32)]));
    now = (t0 + 33) * 1000;                 // 1 s into the next period: both (post window)
    assert.deepEqual(new Set(o.update()), new Set([at(t0), at(t0 + 32)]));
    now = (t0 + 38) * 1000;                 // 6 s in: the old one is gone
    assert.deepEqual(o.update(), [at(t0 + 32)]);
    assert.deepEqual([...h.up], [at(t0 + 32)]);
    now = (t0 + 64 + 40) * 1000;            // two periods later, outside every window
    assert.deepEqual(o.update(), [at(t0 + 96)]);
    assert.equal(h.up.size, 1);
    o.stop();
    assert.equal(h.up.size, 0);
    assert.deepEqual(o.update(), [], 'stopped');
  });

  it('a client computing the address at its time finds the server; one with an old address does not', () => {
    let now = 1800000000 * 1000;
    const h = fakeHost();
    const o = new OtipAddress(h, { base, name, password, clock: () => now });
    o.update();
    const clientNow = otipAddress(base, name, password, now + 2000);   // 2 s of clock skew
    assert.ok(h.up.has(clientNow));
    const stale = otipAddress(base, name, password, now);
    now += 64 * 1000;
    o.update();
    assert.ok(!h.up.has(stale));
    o.stop();
  });

  it('bad options are Node-style errors', () => {
    const h = fakeHost();
    assert.throws(() => new OtipAddress(h, { base, name, password: 1 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new OtipAddress(h, { base, name, password, period: 0 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new OtipAddress(h, { base, name, password, preactive: 40 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => new OtipAddress(h, { base: '10.0.0.0', name, password }), { code: 'ERR_INVALID_ARG_VALUE' });
  });
});
