// The addon's contract, typed. Loaded once per environment (main thread or worker) through
// node-gyp-build: a prebuild from prebuilds/ when present, else build/Release.
import * as path from 'path';

/** [address, port, family] */
export type NativeAddr = [string, number, number];

export interface NativePoller {
  /** events: 1 readable, 2 writable, 0 none. Returns a libuv status. */
  start(events: number): number;
  stop(): void;
  close(): void;
  ref(): void;
  unref(): void;
}

/** kernel socket calls: each returns its result or -errno */
export interface NativeKernel {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, family: number, address: string, port: number): number;
  listen(fd: number, backlog: number): number;
  accept(fd: number): number;
  connect(fd: number, family: number, address: string, port: number): number;
  getsockname(fd: number): NativeAddr | number;
  getpeername(fd: number): NativeAddr | number;
  send(fd: number, data: Uint8Array): number;
  sendv(fd: number, chunks: Uint8Array[]): number;
  sendto(fd: number, data: Uint8Array, family: number, address: string, port: number): number;
  /** data, or a number: 0 at end of stream (the user stack; the kernel's gives an empty Buffer), or -errno */
  recv(fd: number): Buffer | number;
  /** [data, address, port, family, truncated] */
  recvfrom(fd: number): [Buffer, string, number, number, boolean] | number;
  shutdown(fd: number, how: number): number;
  close(fd: number): number;
  /** stop owning fd (handed to Node's own handles) */
  release(fd: number): void;
  abort(fd: number): number;
  /** a string value is passed as its bytes (TCP_CONGESTION) */
  setsockopt(fd: number, level: number, name: number, value: number | string): number;
  /** [value] or -errno */
  getsockopt(fd: number, level: number, name: number): [number] | number;
  membership(fd: number, family: number, add: boolean, group: string, iface?: string): number;
  multicastInterface(fd: number, family: number, iface: string): number;
  Poller: new (fd: number, callback: (status: number, events: number) => void) => NativePoller;
}

// ---- network namespaces (native/binding/netns.cc)

/** the helper process of one namespace stack (native/kernel/netns_helper.cc) */
export interface NativeNsHelper {
  /** socket(2) inside the namespace: fd (owned by this environment) or -errno */
  socket(domain: number, type: number, protocol: number): number;
  /** a TAP device inside the namespace: [fd, name, ifindex] or -errno */
  tap(name: string, flags?: number): [number, string, number] | number;
  /** close the channel, kill and reap the helper */
  close(): void;
  /** the helper's pid, -1 once closed */
  readonly pid: number;
  /** whether the helper made a user namespace (no CAP_SYS_ADMIN) */
  readonly userns: boolean;
}

export interface NativeNetns {
  /** 'join': enter the namespace file at path; 'new': a new namespace ('user': in a new user namespace). [-errno, stage, nstype] on failure */
  spawn(path: string | null, mode: 'join' | 'new' | 'user'): NativeNsHelper | [number, string, number];
  /** rtnetlink over a NETLINK_ROUTE socket made inside the namespace; each 0 or -errno */
  linkSet(nlfd: number, ifindex: number, up: number, mtu: number, mac: Buffer | null): number;
  addrAdd(nlfd: number, ifindex: number, family: number, address: string, prefix: number): number;
  routeAdd(nlfd: number, family: number, dst: string, prefix: number, gateway: string, ifindex: number): number;
  /** the frames readable now (up to max), or -errno */
  tapRead(fd: number, max: number): Buffer[] | number;
  /** one frame: bytes written or -errno */
  tapWrite(fd: number, frame: Uint8Array): number;
}

export interface NativeAddon {
  kernel: NativeKernel;
  netns: NativeNetns;
  /** kernel descriptors this environment still owns */
  ownedFds(): number;
}

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!addon) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    addon = load(path.join(__dirname, '..', '..'));
  }
  return addon;
}
