// User-space stacks: a complete TCP/IP stack inside this process (the C++ engine), plugged
// into virtual ethernets by links. One per newStack(); as many as you like per thread.
//
// Readiness comes from the native runtime in one batch per event-loop turn (an Int32Array of
// [stack id, descriptor, events] triples); data crosses in one Buffer per readable socket.
import { isIP } from 'net';
import { constants as osConstants } from 'os';

import { codedError, invalidArgType, invalidArgValue, systemError } from '../errors';
import { native } from '../native';
import {
  AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM,
  type LookupCallback, type RawSocket, type Stack,
} from '../raw';
import { HandleRawSocket, READABLE, WRITABLE, type SocketOps } from './handle-socket';
import { setTapLinkAttacher } from './netns';

const E = osConstants.errno;

// ---- options

export interface ImpairOptions {
  /** probability 0..1 that a frame is dropped */
  loss?: number;
  /** probability 0..1 that a frame is sent twice */
  duplicate?: number;
  /** probability 0..1 that a frame is held back behind the next ones */
  reorder?: number;
  /** probability 0..1 that a bit of the frame is flipped */
  corrupt?: number;
  /** added delay, ms */
  delay?: number;
  /** uniform extra delay in [0, jitter], ms */
  jitter?: number;
}

export interface InterfaceOptions {
  /** 'hub://NAME' (in-process virtual hub); more link kinds come with their drivers */
  link?: string;
  name?: string;
  /** 'aa:bb:cc:dd:ee:ff'; default: a random locally administered address */
  mac?: string;
  /** IP MTU, 68..65535 (default 1500) */
  mtu?: number;
  /** 'ADDR/LEN', IPv4 now (IPv6 comes with its issue) */
  ip?: string | string[];
  impair?: ImpairOptions;
  /** write every frame in and out of this interface to a pcap file */
  capture?: string;
  /** fill and verify checksums even on in-process links */
  forceChecksums?: boolean;
}

export interface RouteOptions {
  /** 'default' or 'ADDR/LEN' */
  to: string;
  via?: string;
  /** interface name */
  dev?: string;
}

export interface TcpOptions {
  congestion?: 'cubic' | 'newreno';
  /** initial send buffer per connection (bytes) */
  sendBuffer?: number;
  /** send-buffer autotuning grows it up to this (default 4 MiB; SO_SNDBUF turns autotuning off) */
  sendBufferMax?: number;
  receiveBuffer?: number;
  receiveBufferMax?: number;
  mss?: number;
  rtoMin?: number;
  sack?: boolean;
  windowScale?: boolean;
  timestamps?: boolean;
  keepalive?: { idle?: number; interval?: number; count?: number };
  timeWait?: number;
  synBacklog?: number;
}

export interface StackOptions {
  name?: string;
  interfaces?: InterfaceOptions[];
  routes?: RouteOptions[];
  dns?: string[];
  tcp?: TcpOptions;
  /** seed of the stack's random numbers (ports, ISN clock, impairment): runs repeat exactly */
  seed?: number;
}

/**
 * The one-line form: 'eth,ip=10.0.0.2/24,gw=10.0.0.1,dns=10.0.0.1,link=hub://lan,mtu=9000,name=a'
 * (iothconf-style keys; `vnl=` is accepted for `link=`; `ip=` may repeat).
 */
export function parseConfigString(text: string): StackOptions {
  const opts: StackOptions = {};
  const iface: InterfaceOptions = {};
  const ips: string[] = [];
  let gw: string | undefined;
  const dns: string[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    switch (key) {
      case 'eth': break;
      case 'stack': if (value !== 'user') throw invalidArgValue('config', text, `has stack=${value}; only 'user' is made here`); break;
      case 'name': opts.name = value; break;
      case 'vnl': case 'link': iface.link = value; break;
      case 'mac': case 'macaddr': iface.mac = value; break;
      case 'mtu': iface.mtu = Number(value); break;
      case 'ip': ips.push(value.includes('/') ? value : `${value}/${isIP(value) === 6 ? 64 : 24}`); break;
      case 'gw': gw = value; break;
      case 'dns': dns.push(value); break;
      case 'capture': iface.capture = value; break;
      default: throw codedError('ERR_INVALID_ARG_VALUE', `The argument 'config' is invalid: unknown key '${key}' in '${text}'`, TypeError);
    }
  }
  if (ips.length) iface.ip = ips;
  if (iface.link || ips.length || iface.mac) opts.interfaces = [iface];
  if (gw) opts.routes = [{ to: 'default', via: gw }];
  if (dns.length) opts.dns = dns;
  return opts;
}

// ---- the native side

interface NativeUserStack extends SocketOps {
  addInterface(o: { name?: string; mac?: string; mtu?: number; forceChecksums?: boolean }): number;
  attachHub(ifindex: number, hub: string): number;
  setImpair(ifindex: number, im: ImpairOptions): number;
  setCapture(ifindex: number, path: string | null): number;
  addAddress(ifindex: number, address: string, prefix: number): number;
  addRoute(to: string, prefix: number, via: string, ifindex?: number): number;
  interfaces(): InterfaceInfo[];
  socket(domain: number, type: number, protocol: number): number;
  events(sd: number): number;
  ref(sd: number): void;
  unref(sd: number): void;
  ping(address: string, size: number): number;
  stats(): StackStats;
  sockets(): NativeSocketRow[];
  closeStack(): void;
  inject(ifindex: number, frame: Uint8Array): number;
}

interface NativeUser {
  /** onPing: this stack's ping results; without it they go to the setPingHandler function */
  UserStack: new (id: number, config: object | undefined, onPing?: (key: number, status: number, rttUs: number, from: string, ttl: number, bytes: number) => void) => NativeUserStack;
  setDispatcher(fn: (events: Int32Array) => void): void;
  setPingHandler(fn: (id: number, key: number, status: number, rttUs: number, from: string, ttl: number, bytes: number) => void): void;
  HubPort: new (name: string, onFrames: (frames: Buffer[]) => void) => HubPort;
  hubs(): string[];
}

export interface InterfaceInfo {
  index: number;
  name: string;
  mac: string;
  mtu: number;
  addresses: string[];
  stats: Record<string, number>;
}

export type StackStats = Record<string, Record<string, number> | number>;

interface NativeSocketRow {
  sd: number; type: 'tcp' | 'udp'; state: string;
  local: [string, number, number]; remote: [string, number, number];
  sendQueue: number; recvQueue: number; drops: number;
  cwnd?: number; ssthresh?: number; srttUs?: number; rtoUs?: number; mss?: number; retransmits?: number;
}

export interface SocketRow {
  type: 'tcp' | 'udp';
  state: string;
  local: string;
  remote: string;
  sendQueue: number;
  recvQueue: number;
  drops: number;
  tcp?: { cwnd: number; ssthresh: number; srttMs: number; rtoMs: number; mss: number; retransmits: number };
}

const userNative = (): NativeUser => (native() as unknown as { user: NativeUser }).user;

// lazily loaded modules (they import this one): resolved once, not per call, since require()
// of a relative path walks package.json scopes each time
let registryMod: typeof import('../msocket') | undefined;
let netLib: typeof import('../net') | undefined;
let dgramLib: typeof import('../dgram') | undefined;
// eslint-disable-next-line @typescript-eslint/no-var-requires
const registry = (): typeof import('../msocket') => (registryMod ??= require('../msocket') as typeof import('../msocket'));

/** a hub port whose other end is JavaScript (frames in batches, once per loop turn) */
export interface HubPort {
  /** put one ethernet frame into the hub; -errno on failure */
  send(frame: Uint8Array): number;
  close(): void;
}

/**
 * Join the in-process hub NAME from JavaScript: onFrames gets every frame the hub sends this
 * port. Checksums are filled on that hub from then on, since frames may leave the process.
 */
export function openHubPort(name: string, onFrames: (frames: Buffer[]) => void): HubPort {
  if (typeof name !== 'string' || name === '') throw invalidArgType('name', 'string', name);
  if (typeof onFrames !== 'function') throw invalidArgType('onFrames', 'function', onFrames);
  return new (userNative().HubPort)(name, onFrames);
}

// a namespace stack's TAP device on hub://NAME: its frames are bridged to the hub
setTapLinkAttacher((tap, link) => {
  const m = /^([a-z0-9]+):\/\/(.*)$/.exec(link);
  if (!m || m[1] !== 'hub' || !m[2]) {
    throw systemError('EPROTONOSUPPORT', 'attach', link, undefined, `no '${m ? m[1] : link}' link driver for namespace interfaces yet`);
  }
  const port = openHubPort(m[2], (frames) => { for (const f of frames) tap.send(f); });
  tap.pump((frames) => { for (const f of frames) port.send(f); });
  return { close() { tap.stopPump(); port.close(); } };
});

// ---- event dispatch: stack id -> stack, descriptor -> socket

const stacksById = new Map<number, UserStack>();
let nextId = 1;
let dispatcherSet = false;

function dispatch(events: Int32Array): void {
  for (let i = 0; i < events.length; i += 3) {
    const s = stacksById.get(events[i]);
    if (!s) continue;
    const sock = s.socketsBySd.get(events[i + 1]);
    if (!sock) continue;
    const ev = events[i + 2];
    // error and hang-up make the next call report: readable and writable
    sock.deliver((ev & 1 ? READABLE : 0) | (ev & 2 ? WRITABLE : 0) | (ev & 12 ? READABLE | WRITABLE : 0));
  }
}

function dispatchPing(id: number, key: number, status: number, rttUs: number, from: string): void {
  stacksById.get(id)?.onPing(key, status, rttUs, from);
}

/** A socket of a user stack: an engine descriptor; readiness pushed by the runtime. */
export class UserRawSocket extends HandleRawSocket {
  private readonly owner: UserStack;
  private levelScheduled = false;

  constructor(owner: UserStack, sd: number, domain: number, type: number, protocol: number) {
    super(owner, owner.native, sd, domain, type, protocol);
    this.owner = owner;
    owner.socketsBySd.set(sd, this);
    owner.native.ref(sd);
  }

  override get fd(): number { return -1; }

  protected adopt(sd: number): RawSocket {
    return new UserRawSocket(this.owner, sd, this.domain, SOCK_STREAM, this.protocol);
  }

  /** readiness from the dispatcher */
  deliver(events: number): void {
    if (this._fd < 0) return;
    this.onReady(0, events);
    this.scheduleLevel();
  }

  // level-triggered: while a watched condition still holds after the handlers ran, report
  // it again on the next turn
  private scheduleLevel(): void {
    if (this.levelScheduled || this._fd < 0) return;
    const want = this.wanted();
    if (!want) return;
    if (!(this.owner.native.events(this._fd) & (want | 12))) return;
    this.levelScheduled = true;
    setImmediate(() => {
      this.levelScheduled = false;
      if (this._fd < 0) return;
      const want2 = this.wanted();
      const ev = this.owner.native.events(this._fd);
      const ready = (ev & 1 ? READABLE : 0) | (ev & 2 ? WRITABLE : 0) | (ev & 12 ? READABLE | WRITABLE : 0);
      if (ready & want2) this.deliver(ready);
    });
  }

  protected updatePoller(): void {
    this.scheduleLevel();
  }

  protected stopWatching(): void {
    this.owner.socketsBySd.delete(this._fd);
  }

  protected applyRef(): void {
    if (this._fd < 0) return;
    if (this.refed) this.owner.native.ref(this._fd);
    else this.owner.native.unref(this._fd);
  }

  override close(): void {
    if (this._fd >= 0) this.owner.socketsBySd.delete(this._fd);
    super.close();
  }

  override abort(): void {
    if (this._fd >= 0) this.owner.socketsBySd.delete(this._fd);
    super.abort();
  }

  /** the stack closed under this socket */
  stackClosed(): void {
    if (this._fd < 0) return;
    this.onReady(-E.ENETDOWN, READABLE | WRITABLE);
  }
}

function randomMac(): string {
  const b = Array.from({ length: 6 }, () => Math.floor(Math.random() * 256));
  b[0] = (b[0] & 0xfe) | 0x02;  // unicast, locally administered
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function parsePrefix(cidr: string, what: string): { address: string; prefix: number; family: number } {
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(address);
  if (!family) throw codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${address}`, TypeError);
  const prefix = slash < 0 ? (family === 6 ? 128 : 32) : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
    throw invalidArgValue(what, cidr, 'has an invalid prefix length');
  }
  return { address, prefix, family };
}

function check(r: number, syscall: string, address?: string): number {
  if (r < 0) throw systemError(r, syscall, address);
  return r;
}

/** A user-space TCP/IP stack in this thread. */
export class UserStack implements Stack {
  readonly kind = 'user' as const;
  readonly name: string;
  readonly native: NativeUserStack;
  readonly socketsBySd = new Map<number, UserRawSocket>();
  readonly id: number;
  private _closed = false;
  private netMod?: typeof import('net');
  private dgramMod?: typeof import('dgram');
  // created on first use: most stacks never ping, and creating a stack must stay cheap
  private pings?: Map<number, { resolve: (ms: number) => void; reject: (e: Error) => void; address: string }>;
  private ifByName?: Map<string, number>;
  readonly dnsServers: string[];

  constructor(options: StackOptions = {}) {
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'Object', options);
    const u = userNative();
    if (!dispatcherSet) { u.setDispatcher(dispatch); u.setPingHandler(dispatchPing); dispatcherSet = true; }
    this.id = nextId++;
    this.name = options.name ?? `user${this.id}`;
    const tcp = options.tcp;
    // no seed and no tcp options: the engine's defaults, with nothing to read natively
    let config: object | undefined;
    if (options.seed !== undefined || tcp !== undefined) {
      const t = tcp ?? {};
      config = {
        seed: options.seed,
        tcp: {
          ...t,
          keepaliveIdle: t.keepalive?.idle,
          keepaliveInterval: t.keepalive?.interval,
          keepaliveCount: t.keepalive?.count,
        },
      };
      if (t.congestion !== undefined && t.congestion !== 'cubic' && t.congestion !== 'newreno') {
        throw invalidArgValue('options.tcp.congestion', t.congestion, "must be 'cubic' or 'newreno'");
      }
    }
    this.native = new u.UserStack(this.id, config);
    stacksById.set(this.id, this);
    this.dnsServers = options.dns ?? [];
    try {
      for (const ifo of options.interfaces ?? []) this.addInterface(ifo);
      for (const r of options.routes ?? []) this.addRoute(r);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  get closed(): boolean { return this._closed; }

  get net(): typeof import('net') {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return (this.netMod ??= (netLib ??= require('../net') as typeof import('../net')).createNet(this));
  }

  get dgram(): typeof import('dgram') {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return (this.dgramMod ??= (dgramLib ??= require('../dgram') as typeof import('../dgram')).createDgram(this));
  }

  supports(domain: number): boolean {
    return domain === AF_INET;
  }

  /** add an interface; returns its index */
  addInterface(o: InterfaceOptions): number {
    if (typeof o !== 'object' || o === null) throw invalidArgType('interface', 'Object', o);
    if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535)) {
      throw codedError('ERR_OUT_OF_RANGE', `The value of "mtu" is out of range. It must be >= 68 && <= 65535. Received ${o.mtu}`, RangeError);
    }
    const name = o.name ?? `eth${this.ifByName?.size ?? 0}`;
    const ifindex = check(this.native.addInterface({ name, mac: o.mac ?? randomMac(), mtu: o.mtu ?? 1500, forceChecksums: o.forceChecksums }), 'addInterface');
    (this.ifByName ??= new Map()).set(name, ifindex);
    if (o.link !== undefined) this.attach(ifindex, o.link);
    if (o.impair) this.impair(ifindex, o.impair);
    if (o.capture) check(this.native.setCapture(ifindex, o.capture), 'capture', o.capture);
    const ips = o.ip === undefined ? [] : Array.isArray(o.ip) ? o.ip : [o.ip];
    for (const cidr of ips) {
      const { address, prefix, family } = parsePrefix(cidr, 'ip');
      if (family !== 4) throw systemError('EAFNOSUPPORT', 'addAddress', address, undefined, 'IPv6 is not in the user stack yet');
      check(this.native.addAddress(ifindex, address, prefix), 'addAddress', address);
    }
    return ifindex;
  }

  private attach(ifindex: number, link: string): void {
    if (typeof link !== 'string') throw invalidArgType('link', 'string', link);
    const m = /^([a-z0-9]+):\/\/(.*)$/.exec(link);
    if (!m) throw invalidArgValue('link', link, 'is not a link URL such as hub://NAME');
    if (m[1] === 'hub') {
      if (!m[2]) throw invalidArgValue('link', link, 'needs a hub name');
      check(this.native.attachHub(ifindex, m[2]), 'attach', link);
      return;
    }
    throw systemError('EPROTONOSUPPORT', 'attach', link, undefined, `no '${m[1]}' link driver yet`);
  }

  private ifindexOf(nameOrIndex: string | number | undefined): number {
    if (nameOrIndex === undefined) return 1;
    if (typeof nameOrIndex === 'number') return nameOrIndex;
    const i = this.ifByName?.get(nameOrIndex);
    if (!i) throw systemError('ENODEV', 'interface', nameOrIndex);
    return i;
  }

  /** fault injection on frames leaving an interface */
  impair(iface: string | number, im: ImpairOptions): void {
    for (const k of ['loss', 'duplicate', 'reorder', 'corrupt'] as const) {
      const v = im[k];
      if (v !== undefined && (typeof v !== 'number' || !(v >= 0 && v <= 1))) {
        throw codedError('ERR_OUT_OF_RANGE', `The value of "impair.${k}" is out of range. It must be >= 0 && <= 1. Received ${v}`, RangeError);
      }
    }
    check(this.native.setImpair(this.ifindexOf(iface), im), 'impair');
  }

  /** write every frame of an interface (default: the first) to a pcap file; null stops */
  capture(path: string | null, iface?: string | number): void {
    check(this.native.setCapture(this.ifindexOf(iface), path), 'capture', path ?? undefined);
  }

  addRoute(r: RouteOptions): void {
    const to = r.to === 'default' ? '0.0.0.0/0' : r.to;
    const { address, prefix } = parsePrefix(to, 'route.to');
    if (r.via !== undefined && !isIP(r.via)) throw codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${r.via}`, TypeError);
    check(this.native.addRoute(address, prefix, r.via ?? '', r.dev !== undefined ? this.ifindexOf(r.dev) : 0), 'addRoute', r.to);
  }

  get interfaces(): InterfaceInfo[] {
    return this.native.interfaces();
  }

  /** every address of the stack, 'ADDR/LEN' */
  get addresses(): string[] {
    return this.interfaces.flatMap((i) => i.addresses);
  }

  socket(domain: number, type: number, protocol = 0): RawSocket {
    if (this._closed) throw systemError('ENETDOWN', 'socket');
    if (domain === AF_INET6) throw systemError('EAFNOSUPPORT', 'socket', undefined, undefined, 'IPv6 is not in the user stack yet');
    if (domain !== AF_INET) throw systemError('EAFNOSUPPORT', 'socket');
    if (type !== SOCK_STREAM && type !== SOCK_DGRAM) throw systemError('EPROTONOSUPPORT', 'socket');
    const sd = check(this.native.socket(domain, type, protocol), 'socket');
    return new UserRawSocket(this, sd, domain, type, protocol);
  }

  lookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void {
    const fam = isIP(hostname);
    const answer = (address: string, family: number) => {
      process.nextTick(() => options.all ? callback(null, [{ address, family }]) : callback(null, address, family));
    };
    if (fam) { answer(hostname, fam); return; }
    if (hostname === 'localhost') { answer('127.0.0.1', 4); return; }
    const err = systemError('ENOTFOUND', 'getaddrinfo', hostname) as NodeJS.ErrnoException & { hostname?: string };
    err.hostname = hostname;
    process.nextTick(() => callback(err, ''));
  }

  /** ICMP echo: resolves to the round-trip time in ms */
  ping(address: string, options: { size?: number; timeout?: number } = {}): Promise<number> {
    if (typeof address !== 'string' || isIP(address) !== 4) {
      return Promise.reject(codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${address}`, TypeError));
    }
    const key = this.native.ping(address, options.size ?? 56);
    if (key < 0) return Promise.reject(systemError(key, 'ping', address));
    return new Promise((resolve, reject) => (this.pings ??= new Map()).set(key, { resolve, reject, address }));
  }

  /** @internal a ping result, from the environment's ping handler */
  onPing(key: number, status: number, rttUs: number, _from: string): void {
    const p = this.pings?.get(key);
    if (!p) return;
    this.pings!.delete(key);
    if (status === 0) p.resolve(rttUs / 1000);
    else p.reject(systemError(status, 'ping', p.address));
  }

  /** a raw ethernet frame arrives on an interface as if from its link (for tests and fuzzing) */
  inject(frame: Uint8Array, iface?: string | number): void {
    if (!(frame instanceof Uint8Array)) throw invalidArgType('frame', ['Buffer', 'Uint8Array'], frame);
    check(this.native.inject(this.ifindexOf(iface), frame), 'inject');
  }

  /** counters per protocol, like netstat -s */
  stats(): StackStats {
    return this.native.stats();
  }

  /** open sockets with state and queue sizes, like ss */
  sockets(): SocketRow[] {
    return this.native.sockets().map((r) => {
      const row: SocketRow = {
        type: r.type, state: r.state,
        local: `${r.local[0]}:${r.local[1]}`, remote: `${r.remote[0]}:${r.remote[1]}`,
        sendQueue: r.sendQueue, recvQueue: r.recvQueue, drops: r.drops,
      };
      if (r.cwnd !== undefined) {
        row.tcp = { cwnd: r.cwnd, ssthresh: r.ssthresh!, srttMs: r.srttUs! / 1000, rtoMs: r.rtoUs! / 1000, mss: r.mss!, retransmits: r.retransmits! };
      }
      return row;
    });
  }

  /** tear down the stack: every socket ends with an error, everything is freed */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    this.native.closeStack();
    stacksById.delete(this.id);
    if (this.socketsBySd.size) {
      const socks = [...this.socketsBySd.values()];
      this.socketsBySd.clear();
      for (const s of socks) s.stackClosed();
    }
    if (this.pings) {
      for (const [, p] of this.pings) p.reject(systemError('ENETDOWN', 'ping', p.address));
      this.pings.clear();
    }
    registry().unregisterStack(this);
  }
}

/** newStack(options | 'config,string'): a user-space stack in this thread, findable by name */
export function newUserStack(options: StackOptions | string = {}): UserStack {
  const opts = typeof options === 'string' ? parseConfigString(options) : options;
  const s = new UserStack(opts);
  try {
    registry().registerStack(s);
  } catch (e) {
    s.close();
    throw e;
  }
  return s;
}

export function hubNames(): string[] {
  return userNative().hubs();
}

void E;
