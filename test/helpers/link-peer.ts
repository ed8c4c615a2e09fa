// A peer in another Node process for test/links.test.ts: a user stack on the link it is
// told (IPC message { op: 'start', link, ip, capture? }), with a TCP echo server and a UDP
// echo socket on port 7. It reports { ready }, each 'linkdown' as { linkdown }, and on
// { op: 'send', host, port, bytes } connects to host:port, sends that many pseudo-random
// bytes and answers { sent: sha256 }. { op: 'stats' } answers { stats }; { op: 'exit' } ends it.
import { createHash } from 'node:crypto';

import * as ms from '../../lib/msocket';
import { payload } from './userpair';

let stack: ms.UserStack | undefined;

function reply(m: object): void {
  if (process.send) process.send(m);
}

process.on('message', (m: { op: string; link?: string; ip?: string; capture?: string; host?: string; port?: number; bytes?: number }) => {
  try {
    if (m.op === 'start') {
      stack = ms.newStack({ interfaces: [{ link: m.link!, ip: m.ip!, capture: m.capture }] });
      stack.on('linkdown', (ev) => reply({ linkdown: ev }));
      const srv = stack.net.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
      const u = stack.dgram.createSocket('udp4');
      u.on('message', (msg, rinfo) => u.send(msg, rinfo.port, rinfo.address));
      u.bind(7, () => srv.listen(7, () => reply({ ready: true })));
    } else if (m.op === 'send') {
      const h = createHash('sha256');
      const c = stack!.net.connect(m.port!, m.host!);
      c.on('error', (e) => reply({ error: String(e) }));
      c.on('connect', async () => {
        for (const chunk of payload(m.bytes!, 1 << 16, 7)) {
          h.update(chunk);
          if (!c.write(chunk)) await new Promise((r) => c.once('drain', r));
        }
        c.end(() => reply({ sent: h.digest('hex') }));
      });
    } else if (m.op === 'stats') {
      reply({ stats: stack!.stats() });
    } else if (m.op === 'exit') {
      stack?.close();
      process.exit(0);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    reply({ error: `${err.code}: ${err.message}` });
  }
});
process.on('disconnect', () => { stack?.close(); process.exit(0); });
reply({ hello: process.pid });
