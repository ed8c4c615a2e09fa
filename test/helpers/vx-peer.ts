// A peer in another Node process (possibly inside a network namespace, started through
// `ip netns exec`) for test/links-vx.test.ts: a user stack on the link it is told
// ({ op: 'start', link, ip, mac?, capture? } -> { ready, mac }), with a TCP echo server on port 7.
// { op: 'ping', host } -> { pinged: rtt ms }; { op: 'echo', host, port, bytes } sends that many
// pseudo-random bytes to an echo server, checks every byte that comes back and answers
// { echoed: { bytes, ms } }; { op: 'stats' } -> { stats }; { op: 'exit' } ends it. Errors:
// { error }.

import * as ms from '../../lib/msocket';
import { echoExact } from './userpair';

let stack: ms.UserStack | undefined;

function reply(m: object): void {
  if (process.send) process.send(m);
}


process.on('message', (m: { op: string; link?: string; ip?: string; mac?: string; capture?: string; host?: string; port?: number; bytes?: number }) => {
  (async () => {
    if (m.op === 'start') {
      stack = ms.newStack({ interfaces: [{ link: m.link!, ip: m.ip!, mac: m.mac, capture: m.capture }] });
      const srv = stack.net.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
      await new Promise<void>((r) => srv.listen(7, () => r()));
      reply({ ready: true, mac: stack.interfaces[0]?.mac });
    } else if (m.op === 'ping') {
      reply({ pinged: await stack!.ping(m.host!, { timeout: 5000 }) });
    } else if (m.op === 'echo') {
      const msec = await echoExact(stack!.net, m.host!, m.port!, m.bytes!, 9);
      reply({ echoed: { bytes: m.bytes!, ms: msec } });
    } else if (m.op === 'stats') {
      reply({ stats: stack!.stats() });
    } else if (m.op === 'exit') {
      stack?.close();
      process.exit(0);
    }
  })().catch((e: NodeJS.ErrnoException) => reply({ error: `${e.code ?? ''} ${e.message}` }));
});
process.on('disconnect', () => { stack?.close(); process.exit(0); });
reply({ hello: process.pid });
