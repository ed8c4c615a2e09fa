// User-space stacks: a complete TCP/IP stack inside this process (the C++ engine), plugged
// into virtual ethernets by links. One per newStack(); as many as you like per thread.
//
// Readiness comes from the native runtime in one batch per event-loop turn (an Int32Array of
// [stack id, descriptor, events] triples); data crosses in one Buffer per readable socket.
import { EventEmitter } from 'events';
import { isIP } from 'net';
import { constants as osConstants } from 'os';

import { codedError, invalidArgType, invalidArgValue, systemError } from '../errors';
import { native } from '../native';
import {
  AF_INET, AF_INET6, RECVMMSG_MAX, SOCK_DGRAM, SOCK_STREAM,
  type Datagram, type LookupCallback, type RawSocket, type Stack,
} from '../raw';
import { F_SUBCLASS, HandleRawSocket, READABLE, WRITABLE, familyName, type SocketOps } from './handle-socket';
import { setTapLinkAttacher } from './netns';
import { StackResolver } from '../dns';
import { DhcpClient, type DhcpLease, type DhcpOptions } from '../dhcp';
import { hashMac } from '../addr';
import { OtipAddress, type OtipOptions } from '../otip';

const E = osConstants.errno;
/** UserRawSocket flag: a level-triggered report is queued for the next turn */
const LEVEL_SCHEDULED = F_SUBCLASS;

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
  /**
   * The virtual ethernet the interface is plugged into, by URL (the VDE locators):
   * - 'hub://NAME': the in-process hub NAME of this thread (no system calls);
   * - 'vde:///path/to/switch[port]': a vde_switch (or vde_plug switch://) control directory;
   * - 'vxvde://GROUP[/opts]': distributed ethernet on UDP multicast (vdeplug4's vxvde);
   * - 'vxlan://GROUP[/opts]': VXLAN, as Linux vxlan devices (dstport 4789);
   * - 'tap://NAME': a kernel TAP device, created when absent (needs CAP_NET_ADMIN); the link
   *   does not bring it up: configure its kernel side yourself (`ip link set NAME up`);
   * - 'udp://[LOCAL:]PORT->HOST:PORT': point to point, one frame per datagram (vdeplug4's udp);
   * - 'cmd://"COMMAND ARGS"': frames over a command's stdin/stdout with 2-byte big-endian
   *   lengths, e.g. cmd://"ssh host vde_plug /tmp/vde.ctl"; its exit takes the link down.
   * Opening failures throw from newStack (err.code ENOENT, EPERM, EINVAL, EPROTONOSUPPORT...,
   * err.syscall 'newStack'). A link that goes down later emits 'linkdown' on the stack
   * ({ interface, ifindex, reason }); stats().links[NAME] has its counters and reason.
   */
  link?: string;
  name?: string;
  /** 'aa:bb:cc:dd:ee:ff'; default: a random locally administered address */
  mac?: string;
  /** IP MTU, 68..65535 (default 1500) */
  mtu?: number;
  /** 'ADDR/LEN', IPv4 or IPv6 ('10.0.0.2/24', 'fd00::2/64'); an IPv6 one also gives the
   *  interface its link-local address (EUI-64 from the MAC) */
  ip?: string | string[];
  /** IPv6 on this interface even without an IPv6 address (link-local address, NDP) */
  ipv6?: boolean;
  /** IPv6 stateless autoconfiguration: addresses and a default route from router advertisements */
  slaac?: boolean;
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
  /** name servers of the stack's own resolver ('ADDR' or 'ADDR:PORT'), queried through this stack */
  dns?: string[];
  /** search domains for short names (lookup, net.connect({ host }), dgram) */
  search?: string[];
  /** static host entries, checked before DNS: name -> address(es) */
  hosts?: Record<string, string | string[]>;
  tcp?: TcpOptions;
  /** start a DHCPv4 client on the first interface (the lease comes later: dhcpClients, 'lease') */
  dhcp?: boolean | DhcpOptions;
  /**
   * IPv6 settings. dad: false skips duplicate address detection (addresses usable at once).
   * stableAddresses: SLAAC forms RFC 7217 stable opaque interface identifiers instead of
   * EUI-64 ones, keyed by secret (16 bytes; without one, a key drawn from the stack's seed).
   */
  ipv6?: { dad?: boolean; stableAddresses?: boolean; secret?: Uint8Array };
  /** seed of the stack's random numbers (ports, ISN clock, impairment): runs repeat exactly */
  seed?: number;
}

/** split at the commas that are not inside "..." or '...' (a cmd:// link may hold commas) */
function splitConfig(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote = '';
  for (const ch of text) {
    if (quote) { if (ch === quote) quote = ''; cur += ch; continue; }
    if (ch === '"' || ch === "'") { quote = ch; cur += ch; continue; }
    if (ch === ',') { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out;
}

/**
 * The one-line form, with iothconf's keys: 'eth,ip=10.0.0.2/24,gw=10.0.0.1,dns=10.0.0.1,
 * domain=lab.test,fqdn=h.lab.test,mac=...,link=hub://lan,mtu=9000,name=a' (`vnl=` is `link=`,
 * `ip=` and `dns=` may repeat; without a length an IPv4 address is /24, an IPv6 one /64).
 * `dhcp` (or `dhcp4`, `dhcpv4`, `auto4`) starts a DHCPv4 client on the interface; `eth` with
 * `fqdn=` and no `mac=` takes the MAC hashed from the name (as iothconf). `slaac` (with or
 * without `rd`) forms IPv6 addresses and the default route from router advertisements. There is
 * no DHCPv6 client: `dhcp6` is ENOTSUP, and `auto` (`auto6`) means eth, dhcp (v4) and rd,slaac.
 * Removals (`-ip=`, `-dhcp`, ...) apply to a running stack: see UserStack.config(). Commas
 * inside quotes, as in link=cmd://"ssh h vde_plug /tmp/a,b", do not split.
 */
export function parseConfigString(text: string): StackOptions {
  if (typeof text !== 'string') throw invalidArgType('config', 'string', text);
  const opts: StackOptions = {};
  const iface: InterfaceOptions = {};
  const ips: string[] = [];
  let gw: string | undefined;
  const dns: string[] = [];
  const search: string[] = [];
  let eth = false;
  let fqdn: string | undefined;
  let dhcp = false;
  let slaac = false;
  let rd = false;
  for (const raw of splitConfig(text)) {
    const item = raw.trim();
    if (!item) continue;
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    switch (key) {
      case 'eth': eth = true; break;
      case 'stack': if (value !== 'user') throw invalidArgValue('config', text, `has stack=${value}; only 'user' is made here`); break;
      case 'name': opts.name = value; break;
      case 'vnl': case 'link': iface.link = value; break;
      case 'iface': iface.name = value; break;
      case 'mac': case 'macaddr': iface.mac = value; break;
      case 'mtu': iface.mtu = Number(value); break;
      case 'ip': ips.push(value.includes('/') && !value.endsWith('/0') ? value : `${value.replace(/\/0$/, '')}/${isIP(value.replace(/\/0$/, '')) === 6 ? 64 : 24}`); break;
      case 'gw': gw = value; break;
      case 'dns': dns.push(value); break;
      case 'domain': search.push(value); break;
      case 'fqdn': fqdn = value; break;
      case 'dhcp': case 'dhcp4': case 'dhcpv4': dhcp = true; break;
      case 'auto4': case 'autov4': eth = true; dhcp = true; break;
      case 'capture': iface.capture = value; break;
      case 'debug': break;
      case 'slaac': slaac = true; break;
      case 'rd': case 'rd6': rd = true; break;
      // auto: iothconf's eth,dhcp,dhcp6,rd; without a DHCPv6 client here, IPv6 comes from router
      // discovery with SLAAC (documented); dhcp6 itself is refused
      case 'auto': eth = true; dhcp = true; rd = true; slaac = true; break;
      case 'auto6': case 'autov6': eth = true; rd = true; slaac = true; break;
      case 'dhcp6': case 'dhcpv6':
        throw systemError('ENOTSUP', 'newStack', key, undefined, `'${key}': the user stack has no DHCPv6 client (IPv6 addresses come from rd,slaac)`);
      default:
        if (key.startsWith('-')) throw invalidArgValue('config', text, `has the removal '${key}', which applies to a running stack (stack.config())`);
        throw codedError('ERR_INVALID_ARG_VALUE', `The argument 'config' is invalid: unknown key '${key}' in '${text}'`, TypeError);
    }
  }
  if (eth && !iface.mac && fqdn) iface.mac = hashMac(fqdn);
  if (ips.length) iface.ip = ips;
  if (rd && !slaac) throw systemError('ENOTSUP', 'newStack', 'rd', undefined, "router discovery comes with SLAAC in this engine: write 'rd,slaac' (or 'slaac')");
  if (slaac) iface.slaac = true;
  if (iface.link || ips.length || iface.mac || iface.name || dhcp || iface.slaac) opts.interfaces = [iface];
  if (gw) opts.routes = [{ to: 'default', via: gw }];
  if (dns.length) opts.dns = dns;
  if (search.length) opts.search = search;
  if (dhcp) opts.dhcp = fqdn ? { hostname: fqdn.split('.')[0] } : true;
  return opts;
}

// ---- the native side

interface NativeUserStack extends SocketOps {
  /**
   * a UDP socket's queued datagrams in one call, copied back to back into buf; for datagram i,
   * meta[4i..4i+3] = bytes copied, its whole size, port, family << 16 | index into addrs (filled
   * with the sources' texts). The count, 0 when none is queued, or -errno.
   */
  recvmany(sd: number, buf: Uint8Array, meta: Int32Array, addrs: string[]): number;
  addInterface(o: { name?: string; mac?: string; mtu?: number; forceChecksums?: boolean; ipv6?: boolean; slaac?: boolean }): number;
  attachHub(ifindex: number, hub: string): number;
  attachLink(ifindex: number, url: string): number | [number, string];
  setImpair(ifindex: number, im: ImpairOptions): number;
  setCapture(ifindex: number, path: string | null): number;
  addAddress(ifindex: number, address: string, prefix: number): number;
  addRoute(to: string, prefix: number, via: string, ifindex?: number): number;
  removeAddress(ifindex: number, address: string): number;
  removeRoute(to: string, prefix: number): number;
  setAddressDraining(ifindex: number, address: string, draining: boolean): number;
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

interface NativeLinkPort extends LinkPort {
  error(): [number, string] | null;
}

interface NativeUser {
  /** onPing: this stack's ping results (without it they go to the setPingHandler function);
      onLinkDown: a descriptor link of this stack went down */
  UserStack: new (id: number, config: object | undefined,
    onPing?: (key: number, status: number, rttUs: number, from: string, ttl: number, bytes: number) => void,
    onLinkDown?: (ifindex: number, reason: string) => void) => NativeUserStack;
  setDispatcher(fn: (events: Int32Array) => void): void;
  setPingHandler(fn: (id: number, key: number, status: number, rttUs: number, from: string, ttl: number, bytes: number) => void): void;
  HubPort: new (name: string, onFrames: (frames: Buffer[]) => void) => HubPort;
  LinkPort: new (url: string, onFrames: (frames: Buffer[]) => void, onDown: (reason: string) => void, mac?: string, mtu?: number) => NativeLinkPort;
  hubs(): string[];
}

/** counters of a descriptor link (stats().links[NAME], LinkPort.stats()) */
export interface LinkStats {
  kind: string;
  url?: string;
  up: boolean;
  downReason?: string;
  rxFrames: number; rxBytes: number; txFrames: number; txBytes: number;
  rxMalformed: number; rxFiltered: number; txDropped: number; txErrors: number;
}

export interface InterfaceInfo {
  index: number;
  name: string;
  mac: string;
  mtu: number;
  addresses: string[];
  /** IPv6 addresses still in duplicate address detection (not usable yet) */
  tentative: string[];
  stats: Record<string, number>;
}

export interface StackStats {
  /** counters per protocol (eth, arp, ip, icmp, udp, tcp) and socketsOpen */
  [group: string]: Record<string, number> | number | Record<string, LinkStats> | undefined;
  /** per interface on a descriptor link (not hub://): the link's counters and state */
  links?: Record<string, LinkStats>;
}

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

/** a descriptor link (vde, vxvde, vxlan, tap, udp, cmd) whose other end is JavaScript */
export interface LinkPort {
  /** transmit one ethernet frame; 0, or -errno (-ENETDOWN once the link is down) */
  send(frame: Uint8Array): number;
  /** counters, null if it never opened */
  stats(): LinkStats | null;
  close(): void;
}

/**
 * Open any descriptor link from JavaScript ('vde:///tmp/sw', 'udp://5000->10.0.0.1:5000',
 * ...): onFrames gets the frames read from it, in batches (one call per readable event);
 * onDown(reason) is called once if the link goes down (the switch hung up, the command
 * exited). Throws like newStack when the link cannot be opened.
 */
export function openLinkPort(url: string, onFrames: (frames: Buffer[]) => void,
  onDown?: (reason: string) => void, options: { mac?: string; mtu?: number } = {}): LinkPort {
  if (typeof url !== 'string') throw invalidArgType('url', 'string', url);
  if (typeof onFrames !== 'function') throw invalidArgType('onFrames', 'function', onFrames);
  if (onDown !== undefined && typeof onDown !== 'function') throw invalidArgType('onDown', 'function', onDown);
  if (/^hub:\/\//.test(url)) throw invalidArgValue('url', url, 'is a hub; use openHubPort()');
  const port = new (userNative().LinkPort)(url, onFrames, onDown ?? (() => undefined), options.mac, options.mtu);
  const err = port.error();
  if (err) throw systemError(err[0], 'newStack', url, undefined, err[1]);
  return port;
}

// a namespace stack's TAP device on a link: its frames are bridged to the hub or to the
// descriptor link (a link that goes down is emitted as 'linkdown' on the TAP)
setTapLinkAttacher((tap, link) => {
  if (link.startsWith('hub://')) {
    const hub = link.slice(6);
    if (!hub) throw systemError('EINVAL', 'newStack', link, undefined, 'hub:// needs a hub name');
    const port = openHubPort(hub, (frames) => { for (const f of frames) tap.send(f); });
    tap.pump((frames) => { for (const f of frames) port.send(f); });
    return { close() { tap.stopPump(); port.close(); } };
  }
  const port = openLinkPort(link, (frames) => { for (const f of frames) tap.send(f); }, (reason) => {
    tap.stopPump();
    tap.emit('linkdown', { interface: tap.name, reason });
  });
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

/** recvmmsg's scratch, one per thread: each call's datagrams are copied out before the next.
 * Larger than any datagram (64 KiB), so the first one queued always fits whole. */
const SCRATCH_BYTES = 256 * 1024;
let scratch: Buffer | null = null;
const scratchMeta = new Int32Array(4 * RECVMMSG_MAX);
const scratchAddrs: string[] = [];

/** A socket of a user stack: an engine descriptor; readiness pushed by the runtime. */
export class UserRawSocket extends HandleRawSocket {
  private readonly owner: UserStack;

  constructor(owner: UserStack, sd: number, domain: number, type: number, protocol: number) {
    super(sd, domain, type, protocol);
    this.owner = owner;
    owner.socketsBySd.set(sd, this);
    owner.native.ref(sd);
  }

  get stack(): UserStack { return this.owner; }
  protected get k(): SocketOps { return this.owner.native; }
  override get fd(): number { return -1; }
  private get levelScheduled(): boolean { return (this.flags & LEVEL_SCHEDULED) !== 0; }
  private set levelScheduled(v: boolean) { this.flags = v ? this.flags | LEVEL_SCHEDULED : this.flags & ~LEVEL_SCHEDULED; }

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

  /** up to `max` queued datagrams in one native call */
  recvmmsg(max: number): Datagram[] | null {
    const fd = this.check('recvmsg');
    scratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES);
    const meta = scratchMeta;
    const want = Math.max(1, Math.min(RECVMMSG_MAX, max | 0));
    const n = this.owner.native.recvmany(fd, scratch, want < RECVMMSG_MAX ? meta.subarray(0, 4 * want) : meta, scratchAddrs);
    if (n <= 0) {
      if (n === 0 || n === -E.EAGAIN) return null;
      throw systemError(n, 'recvmsg');
    }
    const out: Datagram[] = new Array(n);
    let off = 0;
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      const len = meta[j];
      // a copy of its own (small ones from Node's Buffer pool), never a view of the scratch
      const data = Buffer.allocUnsafe(len);
      if (len) scratch.copy(data, 0, off, off + len);
      off += len;
      const tag = meta[j + 3];
      const d: Datagram = { data, address: scratchAddrs[tag & 0xffff], port: meta[j + 2], family: familyName(tag >>> 16) };
      if (meta[j + 1] > len) d.truncated = true;
      out[i] = d;
    }
    return out;
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

/** 'ADDR:PORT', '[ADDR]:PORT' for IPv6 (as ss prints them) */
function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function check(r: number, syscall: string, address?: string): number {
  if (r < 0) throw systemError(r, syscall, address);
  return r;
}

/** what 'linkdown' carries */
export interface LinkDownEvent {
  /** the interface's name */
  interface: string;
  ifindex: number;
  /** the driver's explanation ("cmd: 'vde_plug /tmp/sw' was killed by signal SIGKILL") */
  reason: string;
}

/**
 * A user-space TCP/IP stack in this thread. Events: 'linkdown' (LinkDownEvent) when the
 * link of an interface fails for good.
 */
export class UserStack extends EventEmitter implements Stack {
  readonly kind = 'user' as const;
  readonly name: string;
  readonly native: NativeUserStack;
  readonly socketsBySd = new Map<number, UserRawSocket>();
  readonly id: number;
  private _closed = false;
  private netMod?: typeof import('net');
  private dgramMod?: typeof import('dgram');
  // created on first use: most stacks never ping, resolve or rotate addresses, and creating a
  // stack must stay cheap
  private pings?: Map<number, { resolve: (ms: number) => void; reject: (e: Error) => void; address: string }>;
  private ifByName?: Map<string, number>;
  private _dns?: StackResolver;
  private _dhcpClients?: Map<number, DhcpClient>;
  private _otipAddresses?: Set<OtipAddress>;

  constructor(options: StackOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) throw invalidArgType('options', 'Object', options);
    const u = userNative();
    if (!dispatcherSet) { u.setDispatcher(dispatch); u.setPingHandler(dispatchPing); dispatcherSet = true; }
    this.id = nextId++;
    this.name = options.name ?? `user${this.id}`;
    const tcp = options.tcp;
    if (options.ipv6 !== undefined && (typeof options.ipv6 !== 'object' || options.ipv6 === null)) {
      throw invalidArgType('options.ipv6', 'Object', options.ipv6);
    }
    const secret = options.ipv6?.secret;
    if (secret !== undefined && (!(secret instanceof Uint8Array) || secret.length !== 16)) {
      throw invalidArgValue('options.ipv6.secret', secret, 'must be a Buffer of 16 bytes');
    }
    // no seed, tcp or ipv6 options: the engine's defaults, with nothing to read natively
    let config: object | undefined;
    if (options.seed !== undefined || tcp !== undefined || options.ipv6 !== undefined) {
      const t = tcp ?? {};
      config = {
        seed: options.seed,
        ipv6: options.ipv6 ? { ...options.ipv6, secret: secret ? Buffer.from(secret) : undefined } : undefined,
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
    this.native = new u.UserStack(this.id, config, undefined, (ifindex, reason) => this.onLinkDown(ifindex, reason));
    stacksById.set(this.id, this);
    try {
      if (options.dns !== undefined || options.search !== undefined || options.hosts !== undefined) {
        this._dns = new StackResolver(this, { servers: options.dns ?? [], search: options.search, hosts: options.hosts });
      }
      for (const ifo of options.interfaces ?? []) this.addInterface(ifo);
      for (const r of options.routes ?? []) this.addRoute(r);
      if (options.dhcp) {
        const c = this.adoptDhcp(new DhcpClient(this, options.dhcp === true ? {} : options.dhcp));
        // no one awaits this start: the client keeps trying; its events tell the outcome
        c.start().catch(() => { /* reported through the client's events */ });
      }
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
    return domain === AF_INET || domain === AF_INET6;
  }

  /** add an interface; returns its index */
  addInterface(o: InterfaceOptions): number {
    if (typeof o !== 'object' || o === null) throw invalidArgType('interface', 'Object', o);
    if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535)) {
      throw codedError('ERR_OUT_OF_RANGE', `The value of "mtu" is out of range. It must be >= 68 && <= 65535. Received ${o.mtu}`, RangeError);
    }
    const name = o.name ?? `eth${this.ifByName?.size ?? 0}`;
    const ifindex = check(this.native.addInterface({
      name, mac: o.mac ?? randomMac(), mtu: o.mtu ?? 1500, forceChecksums: o.forceChecksums, ipv6: o.ipv6 === true, slaac: o.slaac === true,
    }), 'addInterface');
    (this.ifByName ??= new Map()).set(name, ifindex);
    if (o.link !== undefined) this.attach(ifindex, o.link);
    if (o.impair) this.impair(ifindex, o.impair);
    if (o.capture) check(this.native.setCapture(ifindex, o.capture), 'capture', o.capture);
    const ips = o.ip === undefined ? [] : Array.isArray(o.ip) ? o.ip : [o.ip];
    for (const cidr of ips) {
      const { address, prefix } = parsePrefix(cidr, 'ip');
      check(this.native.addAddress(ifindex, address, prefix), 'addAddress', address);
    }
    return ifindex;
  }

  private attach(ifindex: number, link: string): void {
    if (typeof link !== 'string') throw invalidArgType('link', 'string', link);
    if (link.startsWith('hub://')) {
      const hub = link.slice(6);
      if (!hub) throw invalidArgValue('link', link, 'needs a hub name');
      check(this.native.attachHub(ifindex, hub), 'attach', link);
      return;
    }
    // every other URL, well-formed or not, is judged by the native link drivers
    const r = this.native.attachLink(ifindex, link);
    if (Array.isArray(r)) throw systemError(r[0], 'newStack', link, undefined, r[1]);
    check(r, 'newStack', link);
  }

  private onLinkDown(ifindex: number, reason: string): void {
    let name = String(ifindex);
    for (const [n, i] of this.ifByName ?? []) if (i === ifindex) name = n;
    const ev: LinkDownEvent = { interface: name, ifindex, reason };
    this.emit('linkdown', ev);
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
    const to = r.to === 'default' ? (r.via !== undefined && isIP(r.via) === 6 ? '::/0' : '0.0.0.0/0') : r.to;
    const { address, prefix } = parsePrefix(to, 'route.to');
    if (r.via !== undefined && !isIP(r.via)) throw codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${r.via}`, TypeError);
    check(this.native.addRoute(address, prefix, r.via ?? '', r.dev !== undefined ? this.ifindexOf(r.dev) : 0), 'addRoute', r.to);
  }

  /** an address on an interface (default: the first), 'ADDR/LEN' */
  addAddress(cidr: string, iface?: string | number): void {
    const { address, prefix } = parsePrefix(cidr, 'address');
    check(this.native.addAddress(this.ifindexOf(iface), address, prefix), 'addAddress', address);
  }

  /** remove an address (and the on-link route it brought) from an interface (default: the first) */
  removeAddress(address: string, iface?: string | number): void {
    const a = address.replace(/\/\d+$/, '');
    if (!isIP(a)) throw codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${address}`, TypeError);
    check(this.native.removeAddress(this.ifindexOf(iface), a), 'removeAddress', a);
  }

  /**
   * iothconf-style configuration of a running stack: 'ip=10.0.0.9/24,gw=10.0.0.1,dns=10.0.0.1,
   * domain=lab.test', 'dhcp' (resolves once the lease is applied), and the removals '-ip=ADDR',
   * '-gw', '-dns=ADDR', '-domain=NAME', '-dhcp' (releases the lease), '-static' (every address,
   * default route, server and domain not from DHCP). 'iface=NAME' picks the interface (default:
   * the first). Removals run first, then DHCP, then static items, as iothconf orders them.
   */
  async config(text: string): Promise<void> {
    if (typeof text !== 'string') throw invalidArgType('config', 'string', text);
    if (this._closed) throw systemError('ENETDOWN', 'config');
    const items = splitConfig(text).map((x) => x.trim()).filter(Boolean).map((item) => {
      const eq = item.indexOf('=');
      return { key: eq < 0 ? item : item.slice(0, eq), value: eq < 0 ? '' : item.slice(eq + 1) };
    });
    let iface: string | number | undefined;
    const removals: typeof items = [], statics: typeof items = [];
    let dhcp = false;
    for (const it of items) {
      switch (it.key) {
        case 'iface': iface = it.value; break;
        case 'ifindex': iface = Number(it.value); break;
        case 'ip': case 'gw': case 'dns': case 'domain': statics.push(it); break;
        case 'dhcp': case 'dhcp4': case 'dhcpv4': case 'auto4': case 'autov4': dhcp = true; break;
        case '-ip': case '-gw': case '-dns': case '-domain': case '-static': case '-dhcp': case '-dhcp4': case '-dhcpv4':
        case '-auto4': case '-autov4': case '-all': removals.push(it); break;
        case 'debug': break;
        case 'eth': case 'mac': case 'macaddr': case 'fqdn':
          throw systemError('ENOTSUP', 'config', it.key, undefined, 'the MAC of an interface is set when it is made (newStack options or string)');
        case 'rd': case 'rd6': case 'slaac':
          throw systemError('ENOTSUP', 'config', it.key, undefined, 'SLAAC is chosen when the interface is made (newStack: slaac)');
        case 'dhcp6': case 'dhcpv6': case 'auto': case 'auto6': case 'autov6':
          throw systemError('ENOTSUP', 'config', it.key, undefined, `'${it.key}' needs DHCPv6, which the user stack does not have yet`);
        default:
          throw codedError('ERR_INVALID_ARG_VALUE', `The argument 'config' is invalid: unknown key '${it.key}' in '${text}'`, TypeError);
      }
    }
    const ifindex = this.ifindexOf(iface);
    const client = this.dhcpClients.get(ifindex);
    const leased = client?.lease?.address;
    for (const { key, value } of removals) {
      if (key === '-ip') this.removeAddress(value, ifindex);
      else if (key === '-gw') this.removeRoute('default');
      else if (key === '-dns') this.dns.setServers(this.dns.getServers().filter((x) => x !== value));
      else if (key === '-domain') this.dns.setSearch(this.dns.getSearch().filter((x) => x !== value.toLowerCase()));
      else if (key === '-static' || key === '-all') {
        const mine = this.interfaces.find((i) => i.index === ifindex)?.addresses ?? [];
        for (const a of mine) if (a.split('/')[0] !== leased) this.removeAddress(a, ifindex);
        if (!client?.lease) { try { this.removeRoute('default'); } catch { /* none */ } }
        this.dns.setServers(client?.lease?.dns ?? []);
        this.dns.setSearch(client?.lease?.domain ? [client.lease.domain] : []);
      }
      if (key === '-all' || key.startsWith('-dhcp') || key.startsWith('-auto')) {
        if (client) { await client.release(); client.stop(); this.dhcpClients.delete(ifindex); }
      }
    }
    if (dhcp) await this.dhcp({ iface: ifindex });
    for (const { key, value } of statics) {
      if (key === 'ip') {
        const a = value.replace(/\/0$/, '');
        this.addAddress(a.includes('/') ? a : `${a}/${isIP(a) === 6 ? 64 : 24}`, ifindex);
      } else if (key === 'gw') this.addRoute({ to: 'default', via: value });
      else if (key === 'dns') this.dns.setServers([...this.dns.getServers(), value]);
      else if (key === 'domain') this.dns.setSearch([...this.dns.getSearch(), value]);
    }
  }

  /** the One-Time IP addresses kept by addOtipAddress() */
  get otipAddresses(): Set<OtipAddress> { return (this._otipAddresses ??= new Set()); }

  /**
   * Keep a One-Time IP address on this stack: the address of (base, name, password) for the
   * current period, moving every period, with the pre/post-activation windows. A server
   * listening on '::' (or the unspecified address) is reachable on it; connections made to an
   * address outlive its removal. Returns the rotation (addresses, update(), stop(), 'change').
   */
  addOtipAddress(options: OtipOptions): OtipAddress {
    const o = new OtipAddress(this, options);
    this.otipAddresses.add(o);
    return o.start();
  }

  /** the DHCP clients started with dhcp(), by interface index */
  get dhcpClients(): Map<number, DhcpClient> { return (this._dhcpClients ??= new Map()); }

  /** this stack's resolver: Node's dns.Resolver surface, queries through this stack */
  get dns(): StackResolver { return (this._dns ??= new StackResolver(this)); }

  /**
   * Configure an interface (default: the first) by DHCPv4: resolves with the lease once the
   * address, the default route and the DNS servers are on the stack. The client keeps
   * renewing; `dhcpClients.get(ifindex)` has renew(), rebind(), release() and its events.
   */
  dhcp(options: DhcpOptions = {}): Promise<DhcpLease> {
    if (this._closed) return Promise.reject(systemError('ENETDOWN', 'dhcp'));
    const c = this.adoptDhcp(new DhcpClient(this, options));
    return c.start();
  }

  /** keep a DHCP client (replacing the interface's previous one) and repeat its lease events
      on the stack: 'lease', 'renew', 'expire' with { interface, ifindex, ...lease } */
  private adoptDhcp(c: DhcpClient): DhcpClient {
    const old = this.dhcpClients.get(c.ifindex);
    if (old) old.stop();
    this.dhcpClients.set(c.ifindex, c);
    let name = String(c.ifindex);
    for (const [n, i] of this.ifByName ?? []) if (i === c.ifindex) name = n;
    for (const ev of ['lease', 'renew', 'expire'] as const) {
      c.on(ev, (l: DhcpLease | null) => this.emit(ev, { interface: name, ifindex: c.ifindex, ...(l ?? {}) }));
    }
    return c;
  }

  /**
   * Let an address drain: connections already made to it go on, new ones are refused, and it is
   * not chosen as a source. drainAddress(a, iface, false) makes it usable again.
   */
  drainAddress(address: string, iface?: string | number, draining = true): void {
    const a = address.replace(/\/\d+$/, '');
    if (!isIP(a.replace(/%.*$/, ''))) throw codedError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${address}`, TypeError);
    check(this.native.setAddressDraining(this.ifindexOf(iface), a, draining), 'drainAddress', a);
  }

  /** how many TCP connections (not listeners, not TIME-WAIT) have local address `address` */
  connectionsOn(address: string): number {
    const a = address.replace(/\/\d+$/, '');
    let n = 0;
    for (const r of this.sockets()) {
      if (r.type !== 'tcp' || r.state === 'LISTEN' || r.state === 'TIME-WAIT' || r.state === 'TIME_WAIT') continue;
      const local = r.local.startsWith('[') ? r.local.slice(1, r.local.lastIndexOf(']')) : r.local.slice(0, r.local.lastIndexOf(':'));
      if (local === a) n++;
    }
    return n;
  }

  /** remove the route to a prefix ('default' or 'ADDR/LEN') */
  removeRoute(to: string): void {
    const { address, prefix } = parsePrefix(to === 'default' ? '0.0.0.0/0' : to, 'route.to');
    check(this.native.removeRoute(address, prefix), 'removeRoute', to);
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
    if (domain !== AF_INET && domain !== AF_INET6) throw systemError('EAFNOSUPPORT', 'socket');
    if (type !== SOCK_STREAM && type !== SOCK_DGRAM) throw systemError('EPROTONOSUPPORT', 'socket');
    const sd = check(this.native.socket(domain, type, protocol), 'socket');
    return new UserRawSocket(this, sd, domain, type, protocol);
  }

  lookup(hostname: string, options: { family?: number; all?: boolean }, callback: LookupCallback): void {
    this.dns.lookup(hostname, options, callback as never);
  }

  /** ICMP (or ICMPv6) echo: resolves to the round-trip time in ms */
  ping(address: string, options: { size?: number; timeout?: number } = {}): Promise<number> {
    if (typeof address !== 'string' || !isIP(address)) {
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
        local: hostPort(r.local[0], r.local[1]), remote: hostPort(r.remote[0], r.remote[1]),
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
    this._dns?.cancel();
    for (const c of this._dhcpClients?.values() ?? []) c.stop();
    for (const o of this._otipAddresses ?? []) o.stop();
    this._otipAddresses?.clear();
    this._dhcpClients?.clear();
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
