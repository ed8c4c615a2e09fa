// The msockets demo: several network stacks in one process, no root and no network needed.
// Run: npm run demo
import * as http from 'http';

import * as ms from '../lib/msocket';

function get(createConnection: () => import('net').Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ path, createConnection: createConnection as never }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  // 1. Two user-space TCP/IP stacks, plugged into one in-process virtual ethernet
  const server = ms.newStack({ name: 'server', interfaces: [{ link: 'hub://demo', ip: '10.0.0.1/24' }] });
  const client = ms.newStack('name=client,link=hub://demo,ip=10.0.0.2/24');
  console.log(`stack "server": ${server.addresses.join(', ')}, stack "client": ${client.addresses.join(', ')}`);
  console.log(`ping 10.0.0.1 from "client": ${(await client.ping('10.0.0.1')).toFixed(3)} ms`);

  // 2. Node's own http, unchanged, over the server stack's net
  const web = http.createServer((req, res) => res.end(`hello from ${req.socket.localAddress}, you are ${req.socket.remoteAddress}\n`));
  const listener = server.net.createServer((sock) => web.emit('connection', sock));
  await new Promise<void>((r) => listener.listen(80, '10.0.0.1', r));
  process.stdout.write(`GET http://10.0.0.1/ -> ${await get(() => client.net.connect(80, '10.0.0.1'), '/')}`);

  // 3. A default stack for one async scope only: module-level net lands on "client" inside
  const body = await ms.withStack('client', () => get(() => ms.net.connect(80, '10.0.0.1'), '/scoped'));
  process.stdout.write(`GET inside withStack('client') -> ${body}`);
  console.log(`default stack outside the scope: ${ms.getDefaultStack().name}`);

  // 4. A raw Berkeley socket: msocket(stack, domain, type)
  const udp = ms.msocket('server', 'AF_INET', 'SOCK_DGRAM');
  udp.bind('10.0.0.1', 5353);
  console.log('raw UDP socket on "server" bound to', udp.localAddress());
  udp.close();

  // 5. What the engine saw, like netstat -s and ss
  const tcp = server.stats().tcp as Record<string, number>;
  console.log(`"server" TCP: ${tcp.inSegs} segments in, ${tcp.outSegs} out, ${tcp.passiveOpens} connections accepted`);
  console.log('"client" sockets:', client.sockets().map((s) => `${s.type} ${s.state} ${s.local} -> ${s.remote}`));

  await new Promise<void>((r) => listener.close(() => r()));
  server.close();
  client.close();
}

main().catch((err) => { console.error(err); process.exit(1); });
