// Kernel namespace stacks on virtual links: a namespace's TAP device bridged to hub://, a
// kernel TCP stack talking to a user-space stack on the same hub, and the gateway example
// forwarding from the kernel into a user stack.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { startGateway } from '../examples/gateway';
import * as ms from '../lib/msocket';

function echo(n: typeof net) {
  return n.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
}

describe('a kernel namespace stack on hub:// with a user stack', () => {
  let ns: ms.NetnsStack | undefined;
  let user: ms.UserStack | undefined;
  const hub = `hub://mix-${process.pid}`;
  before(() => {
    ns = ms.newStack({ kind: 'netns', interfaces: [{ link: hub, ip: ['10.7.0.1/24'] }] });
    user = ms.newStack({ interfaces: [{ link: hub, ip: '10.7.0.2/24' }] });
  });
  after(() => { user?.close(); ns?.close(); });

  it('the user stack pings the kernel in the namespace through the hub (ARP and ICMP answered by Linux)', async () => {
    assert.ok((await user!.ping('10.7.0.1')) >= 0, 'the user stack reaches the kernel');
    const arp = user!.stats().arp as Record<string, number>;
    assert.ok(arp.inReplies >= 1, 'Linux answered our ARP request');
  });

  it('TCP from the user stack to a kernel server in the namespace, 16 MiB byte-exact both ways', { timeout: 60_000 }, async () => {
    const srv = echo(ns!.net);
    await new Promise<void>((r) => srv.listen(7, '10.7.0.1', r));
    const data = randomBytes(16 << 20);
    const back = await new Promise<Buffer>((resolve, reject) => {
      const c = user!.net.connect(7, '10.7.0.1');
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      c.on('end', () => resolve(Buffer.concat(chunks)));
      c.on('error', reject);
      c.end(data);
    });
    assert.equal(back.length, data.length);
    assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(data).digest('hex'));
    await new Promise<void>((r) => srv.close(() => r()));
  });

  it('TCP from the kernel in the namespace to a user-stack server', { timeout: 30_000 }, async () => {
    const srv = echo(user!.net);
    await new Promise<void>((r) => srv.listen(8, '10.7.0.2', r));
    const reply = await new Promise<string>((resolve, reject) => {
      const c = ns!.net.connect(8, '10.7.0.2');
      let got = '';
      c.on('data', (d) => { got += d; });
      c.on('end', () => resolve(got));
      c.on('error', reject);
      c.end('from the kernel');
    });
    assert.equal(reply, 'from the kernel');
    await new Promise<void>((r) => srv.close(() => r()));
  });
});

describe('examples/gateway.ts: kernel -> user stack', () => {
  it('100 parallel connections through the gateway, byte-exact', { timeout: 60_000 }, async () => {
    const user = ms.newStack({ interfaces: [{ link: `hub://gw-${process.pid}`, ip: '10.8.0.1/24' }] });
    const target = echo(user.net);
    await new Promise<void>((r) => target.listen(9, '10.8.0.1', r));
    const g = await startGateway({ from: ms.kernelStack, listen: { host: '127.0.0.1', port: 0 }, to: user, target: { host: '10.8.0.1', port: 9 } });
    try {
      const one = async (i: number) => {
        const data = randomBytes(64 * 1024 + i * 997);
        const c = net.connect(g.address.port, '127.0.0.1');
        const chunks: Buffer[] = [];
        c.on('data', (d: Buffer) => chunks.push(d));
        c.end(data);
        await new Promise((r) => c.once('close', r));
        const back = Buffer.concat(chunks);
        assert.equal(back.length, data.length, `connection ${i}: length`);
        assert.ok(back.equals(data), `connection ${i}: content`);
      };
      await Promise.all(Array.from({ length: 100 }, (_, i) => one(i)));
      assert.equal(g.forwarded, 100);
    } finally {
      await g.close();
      await new Promise<void>((r) => target.close(() => r()));
      user.close();
    }
  });
});
