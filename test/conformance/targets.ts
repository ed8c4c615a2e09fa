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

import { createDgram } from '../../lib/dgram';
import { createNet } from '../../lib/net';
import { kernelStack } from '../../lib/stacks/kernel';
import { newNetnsStack, type NetnsStack } from '../../lib/stacks/netns';
import { newStack, type UserStack } from '../../lib/msocket';
import type { Side, Target } from './target';

/** msockets' own net/dgram classes over the kernel stack, made when a case first asks for them */
let ownNet: typeof net | undefined;
let ownDgram: typeof dgram | undefined;
function ownKernelSide(host: string): Side {
  return {
    get net() { return (ownNet ??= createNet(kernelStack)); },
    get dgram() { return (ownDgram ??= createDgram(kernelStack)); },
    host,
  };
}

export const targets: Target[] = [
  {
    // Node's own classes over the kernel: proves the suite itself right.
    name: 'kernel (node classes)',
    family: 4,
    server: { net, dgram, host: '127.0.0.1' },
    client: { net, dgram, host: '127.0.0.1' },
  },

  {
    // msockets' own classes (lib/net.ts, lib/dgram.ts) over the kernel stack's raw sockets
    // (lib/stacks/kernel.ts): createNet(kernelStack), createDgram(kernelStack).
    name: 'kernel (msockets classes)',
    family: 4,
    server: ownKernelSide('127.0.0.1'),
    client: ownKernelSide('127.0.0.1'),
  },

  // ---- netns (lib/stacks/netns.ts) ---------------------------------------------------------
  // Node's own classes with descriptors from a network namespace the suite makes
  // (newStack({ kind: 'netns' }): loopback up; unprivileged through a user namespace when
  // needed), server and client both on 127.0.0.1 inside it.
  (() => {
    let ns: NetnsStack | undefined;
    const side = (): Side => {
      if (!ns) throw new Error('netns target: setup() has not run');
      return { net: ns.net, dgram: ns.dgram, host: '127.0.0.1' };
    };
    const t: Target = {
      name: 'netns (node classes in a new namespace)',
      family: 4,
      get server() { return side(); },
      get client() { return side(); },
      setup() { ns = newNetnsStack({ name: `conformance-netns-${process.pid}` }); },
      teardown() { ns?.close(); ns = undefined; },
    };
    return t;
  })(),
  // ---- end netns --------------------------------------------------------------------------

  // ---- user stacks (lib/stacks/user.ts) -----------------------------------------------------
  // Two user-space stacks on an in-process hub: the server side 10.0.0.1, the client side
  // 10.0.0.2, both using msockets' classes over the engine's raw sockets.
  (() => {
    let a: UserStack | undefined;
    let b: UserStack | undefined;
    const side = (s: UserStack | undefined, host: string): Side => {
      if (!s) throw new Error('user target: setup() has not run');
      return { net: s.net, dgram: s.dgram, host };
    };
    const t: Target = {
      name: 'user stacks on hub://',
      family: 4,
      blackhole: '10.0.0.99',
      get server() { return side(a, '10.0.0.1'); },
      get client() { return side(b, '10.0.0.2'); },
      setup() {
        const hub = `hub://conformance-${process.pid}`;
        a = newStack({ name: `conformance-a-${process.pid}`, interfaces: [{ link: hub, ip: '10.0.0.1/24' }] });
        b = newStack({ name: `conformance-b-${process.pid}`, interfaces: [{ link: hub, ip: '10.0.0.2/24' }] });
      },
      teardown() { a?.close(); b?.close(); a = b = undefined; },
    };
    return t;
  })(),

  // The same over IPv6: fd00::1 and fd00::2 (duplicate address detection off, so the suite
  // does not wait for it), NDP between the stacks.
  (() => {
    let a: UserStack | undefined;
    let b: UserStack | undefined;
    const side = (s: UserStack | undefined, host: string): Side => {
      if (!s) throw new Error('user IPv6 target: setup() has not run');
      return { net: s.net, dgram: s.dgram, host };
    };
    const t: Target = {
      name: 'user stacks on hub:// (IPv6)',
      family: 6,
      blackhole: 'fd00::99',
      get server() { return side(a, 'fd00::1'); },
      get client() { return side(b, 'fd00::2'); },
      setup() {
        const hub = `hub://conformance6-${process.pid}`;
        a = newStack({ name: `conformance6-a-${process.pid}`, ipv6: { dad: false }, interfaces: [{ link: hub, ip: 'fd00::1/64' }] });
        b = newStack({ name: `conformance6-b-${process.pid}`, ipv6: { dad: false }, interfaces: [{ link: hub, ip: 'fd00::2/64' }] });
      },
      teardown() { a?.close(); b?.close(); a = b = undefined; },
    };
    return t;
  })(),
];

/** `targets`, filtered by CONFORMANCE_TARGETS when it is set */
export function selectedTargets(): Target[] {
  const want = (process.env.CONFORMANCE_TARGETS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (want.length === 0) return targets;
  return targets.filter((t) => want.some((w) => t.name.includes(w)));
}
