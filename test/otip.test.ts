// One-Time IP on user stacks: with a clock the test drives, the service's address moves every
// period; a client that computes the address connects; an expired address no longer answers;
// a connection made before survives two rotations.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';

import * as ms from '../lib/msocket';

describe('OTIP service on a user stack', () => {
  it('moves each period; computed address reachable, expired one not; established connection survives', async () => {
    const hub = `otip-${process.pid}`;
    const base = 'fd00:7::', name = 'svc.otip.test', password = 'sesame';
    let now = 1_900_000_000_000 + 10_000;   // 10 s into a period: outside the grace windows
    const srv = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: 'fd00:7::1/64' }], ipv6: { dad: false } });
    const cli = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: 'fd00:7::2/64' }], ipv6: { dad: false } });
    let server: import('net').Server | undefined;
    try {
      const rot = srv.addOtipAddress({ base, name, password, period: 32, preactive: 4, postactive: 4, clock: () => now });
      server = srv.net.createServer((c) => c.on('data', (d) => c.write(d)));
      await new Promise<void>((r) => server!.listen(7000, '::', r));

      const first = ms.otipAddress(base, name, password, now);
      assert.deepEqual(rot.addresses, [first]);
      assert.ok(srv.addresses.includes(`${first}/64`));

      // a client computing the address now connects and talks
      const c = cli.net.connect({ host: first, port: 7000 });
      await once(c, 'connect');
      const echo = async (msg: string) => { c.write(msg); const [d] = await once(c, 'data'); return String(d); };
      assert.equal(await echo('one'), 'one');

      // two periods later: two rotations; the first address no longer takes new connections
      // but drains: the connection made to it lives on
      now += 32_000 + 10_000;
      rot.update();
      now += 32_000;
      rot.update();
      const third = ms.otipAddress(base, name, password, now);
      assert.notEqual(third, first);
      assert.deepEqual(rot.addresses, [third]);
      assert.deepEqual(rot.drainingAddresses, [first]);
      assert.equal(await echo('two'), 'two');

      // a new client on the current address connects; one on the expired address is refused
      const c2 = cli.net.connect({ host: third, port: 7000 });
      await once(c2, 'connect');
      c2.destroy();
      const stale = cli.net.connect({ host: first, port: 7000 });
      const [err] = await once(stale, 'error') as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNREFUSED', 'expired address');
      // and a client that never talked to it finds nobody there once the last connection ended
      c.destroy();
      for (let i = 0; i < 100 && rot.drainingAddresses.length; i++) { await new Promise((r) => setTimeout(r, 20)); rot.reap(); }
      assert.deepEqual(rot.drainingAddresses, []);
      assert.ok(!srv.addresses.some((a) => a.startsWith(`${first}/`)), 'the drained address is gone');
      const fresh = ms.newStack({ interfaces: [{ link: `hub://${hub}`, ip: 'fd00:7::3/64' }], ipv6: { dad: false } });
      try {
        const late = fresh.net.connect({ host: first, port: 7000 });
        const [e2] = await once(late, 'error') as [NodeJS.ErrnoException];
        assert.equal(e2.code, 'EHOSTUNREACH', 'nobody answers for the expired address');
      } finally {
        fresh.close();
      }
      server.close();
      rot.stop();
      assert.ok(!srv.addresses.some((a) => a.startsWith(`${third}/`)), 'stop() takes the address down');
    } finally {
      server?.close();
      srv.close();
      cli.close();
    }
  });
});
