// A conformance target: a pair of endpoints (server side, client side) on some stack kind.
// The suite in this folder is written once against this shape and run against every target.
export interface Side {
  /** net-compatible module (Node's own `net`, or a stack's `s.net`) */
  net: typeof import('net');
  /** dgram-compatible module */
  dgram: typeof import('dgram');
  /** the address this side binds and listens on, and that the other side reaches it at */
  host: string;
}

export interface Target {
  /** shown in test names, e.g. 'kernel (node classes)' */
  name: string;
  /** 4 or 6 */
  family: 4 | 6;
  server: Side;
  client: Side;
  /** an address on the server's network that nobody answers (no host there): connect times out or EHOSTUNREACH */
  blackhole?: string;
  /** create whatever the target needs (stacks, hubs); called once before its cases */
  setup?(): Promise<void> | void;
  /** free everything setup made */
  teardown?(): Promise<void> | void;
}
