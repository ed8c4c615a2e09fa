// The targets the conformance suite runs against. Each is a pair of endpoints (server side,
// client side) on one kind of stack; the suite in net-cases.ts and dgram-cases.ts is the same
// for all of them.
//
// To add a target: append an object of type Target (see target.ts) to `targets` below —
//   name     shown in test names
//   family   4 or 6: the family of both hosts
//   server   { net, dgram, host }: the modules of the server-side stack and the address it
//            listens on (and that the client reaches it at)
//   client   { net, dgram, host }: the modules of the client-side stack and its own address
//   blackhole (optional) an address on the server's network that nobody answers
//   setup/teardown (optional) create and free stacks, hubs, ...; called once around the cases.
// Run only some targets with CONFORMANCE_TARGETS=substring[,substring...] (matched on name).
import * as dgram from 'dgram';
import * as net from 'net';

import type { Target } from './target';

export const targets: Target[] = [
  {
    // Node's own classes over the kernel: proves the suite itself right.
    name: 'kernel (node classes)',
    family: 4,
    server: { net, dgram, host: '127.0.0.1' },
    client: { net, dgram, host: '127.0.0.1' },
  },

  // ----------------------------------------------------------------------------------------
  // LEAD: add the msockets targets here.
  //
  // 1. 'kernel (msockets classes)': our own lib/net.ts and lib/dgram.ts over lib/stacks/kernel.ts
  //      import { createNet } from '../../lib/net';
  //      import { createDgram } from '../../lib/dgram';
  //      import { kernelStack } from '../../lib/stacks/kernel';
  //      const ownNet = createNet(kernelStack), ownDgram = createDgram(kernelStack);
  //      { name: 'kernel (msockets classes)', family: 4,
  //        server: { net: ownNet, dgram: ownDgram, host: '127.0.0.1' },
  //        client: { net: ownNet, dgram: ownDgram, host: '127.0.0.1' } },
  //
  // 2. user stacks on a virtual hub (server 10.0.0.1, client 10.0.0.2), created in setup():
  //      let a: Stack, b: Stack;   // newStack({ interfaces: [{ link: 'hub://conf', ip: ['10.0.0.1/24'] }] }) ...
  //      { name: 'user stacks on hub://', family: 4,
  //        get server() { return { net: a.net, dgram: a.dgram, host: '10.0.0.1' }; },
  //        get client() { return { net: b.net, dgram: b.dgram, host: '10.0.0.2' }; },
  //        blackhole: '10.0.0.99',
  //        setup() { a = newStack(...); b = newStack(...); },
  //        teardown() { a.close(); b.close(); } },
  //    (the cases read target.server / target.client only while they run, never when they are
  //     registered, so getters over stacks made in setup() work; name, family and blackhole are
  //     read at registration.)
  // ----------------------------------------------------------------------------------------
];

/** `targets`, filtered by CONFORMANCE_TARGETS when it is set */
export function selectedTargets(): Target[] {
  const want = (process.env.CONFORMANCE_TARGETS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (want.length === 0) return targets;
  return targets.filter((t) => want.some((w) => t.name.includes(w)));
}
