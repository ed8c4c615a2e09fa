// A gateway between stacks: accept TCP connections on one stack and forward each one, byte
// for byte in both directions (half-close included), to a target reached through another
// stack. Kernel -> network namespace, kernel -> user stack, namespace -> namespace: any two
// stacks, because both sides only use the stacks' Node-compatible `net`.
//
//   node dist/examples/gateway.js FROM LISTEN_HOST:PORT TO TARGET_HOST:PORT
//   e.g. node dist/examples/gateway.js kernel 127.0.0.1:8080 netns:blue 127.0.0.1:80
//        (FROM and TO are anything stack() accepts: 'kernel', 'netns:NAME', a namespace file,
//         a user stack's name)
import type * as net from 'net';

import * as ms from '../lib/msocket';

export interface Endpoint {
  host: string;
  port: number;
}

export interface GatewayOptions {
  /** the stack that accepts */
  from: ms.Stack;
  listen: Endpoint;
  /** the stack the connections to the target are made on */
  to: ms.Stack;
  target: Endpoint;
}

export interface Gateway {
  server: net.Server;
  /** the address it accepts on */
  address: net.AddressInfo;
  /** connections forwarded so far */
  readonly forwarded: number;
  /** connections open now */
  readonly active: number;
  /** stop accepting and cut every open connection */
  close(): Promise<void>;
}

export function startGateway(o: GatewayOptions): Promise<Gateway> {
  const open = new Set<net.Socket>();
  let forwarded = 0;
  const server = o.from.net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (down) => {
    const up = o.to.net.connect({ host: o.target.host, port: o.target.port, allowHalfOpen: true });
    open.add(down);
    open.add(up);
    const cut = () => {
      down.destroy();
      up.destroy();
    };
    down.on('error', cut);
    up.on('error', cut);
    // a clean close of one side comes after both directions ended through the pipes; the
    // other side then finishes flushing on its own
    down.on('close', (hadError) => { open.delete(down); if (hadError || up.connecting) up.destroy(); });
    up.on('close', (hadError) => { open.delete(up); if (hadError) down.destroy(); });
    up.once('connect', () => {
      forwarded++;
      // each direction ends on its own: a client that half-closes still gets the answer
      down.pipe(up);
      up.pipe(down);
      down.resume();
    });
  });
  return new Promise<Gateway>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve({
        server,
        address: server.address() as net.AddressInfo,
        get forwarded() { return forwarded; },
        get active() { return open.size; },
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          for (const s of open) s.destroy();
        }),
      });
    });
  });
}

function endpoint(text: string): Endpoint {
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(text.slice(i + 1));
  if (i < 0 || !host || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`not HOST:PORT: ${text}`);
  return { host, port };
}

async function main(argv: string[]): Promise<void> {
  if (argv.length !== 4) {
    console.error('usage: gateway FROM LISTEN_HOST:PORT TO TARGET_HOST:PORT   (FROM/TO: kernel, netns:NAME, a namespace file, a stack name)');
    process.exit(2);
  }
  const [from, listen, to, target] = argv;
  const g = await startGateway({ from: ms.stack(from), listen: endpoint(listen), to: ms.stack(to), target: endpoint(target) });
  console.log(`gateway: ${from} ${g.address.address}:${g.address.port} -> ${to} ${target}`);
  const stop = () => { void g.close().then(() => process.exit(0)); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
