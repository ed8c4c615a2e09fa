// The msockets demo: one program, several network stacks, no root and no network needed.
// Run: npm run demo
import * as http from 'http';

import * as ms from '../lib/msocket';

async function main(): Promise<void> {
  // 1. A raw Berkeley socket on a chosen stack: msocket(stack, domain, type)
  const raw = ms.msocket('kernel', 'AF_INET', 'SOCK_DGRAM');
  raw.bind('127.0.0.1', 0);
  console.log(`raw UDP socket on the kernel stack, fd ${raw.fd}, bound to`, raw.localAddress());
  raw.close();

  // 2. An HTTP server over msockets' own net classes on the kernel stack
  const own = ms.kernelStackWithOwnClasses();
  const server = http.createServer((req, res) => res.end(`hello from ${own.name} via msockets classes\n`));
  const listener = own.net.createServer((sock) => server.emit('connection', sock));
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const { port } = listener.address() as { port: number };

  // 3. A client whose default stack is chosen for one async scope only
  const body = await ms.withStack(own, () => new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, createConnection: (o) => ms.net.createConnection(o as never) as never }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end();
  }));
  process.stdout.write(`HTTP GET http://127.0.0.1:${port}/ -> ${body}`);
  console.log('default stack outside the scope:', ms.getDefaultStack().name);
  listener.close();
}

main().catch((err) => { console.error(err); process.exit(1); });
