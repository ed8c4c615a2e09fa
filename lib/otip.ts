// One-Time IP addresses on a user stack: the service's address is otipAddress(base, name,
// password, now) and moves to the next one every period. The stack holds the current address,
// the next one from `preactive` seconds before the change, and the previous one for `postactive`
// seconds after it (clock skew between client and server). Removing an address does not end the
// connections made to it: they live on until they close, as on Linux.
import { EventEmitter } from 'events';

import { OTIP_PERIOD, otipAddress, otipSlot } from './addr';
import { invalidArgType, invalidArgValue } from './errors';

export interface OtipOptions {
  /** the network, an IPv6 prefix such as 'fc01::' (the low 64 bits are replaced by the hash) */
  base: string;
  name: string;
  password: string;
  /** seconds (default 32) */
  period?: number;
  /** seconds before a period starts when its address is already up (default 8) */
  preactive?: number;
  /** seconds after a period ends while its address is still up (default 8) */
  postactive?: number;
  /** prefix length of the addresses (default 64) */
  prefix?: number;
  /** the interface (default: the first) */
  iface?: string | number;
  /** the clock, ms since the epoch (default Date.now): tests drive it and call update() */
  clock?: () => number;
}

/** what an OTIP rotation needs from a stack */
export interface OtipHost {
  addAddress(cidr: string, iface?: string | number): void;
  removeAddress(address: string, iface?: string | number): void;
  readonly closed: boolean;
  /** where the stack has them (user stacks): an address that moved on drains first, so its
      connections live on while new ones are refused, and goes when the last one ends */
  drainAddress?(address: string, iface?: string | number, draining?: boolean): void;
  connectionsOn?(address: string): number;
}

/** Events: 'change' (addresses now up: string[]), 'error'. */
export class OtipAddress extends EventEmitter {
  readonly options: Required<Omit<OtipOptions, 'iface'>> & { iface?: string | number };
  private active = new Set<string>();
  /** addresses that moved on but still carry connections */
  private draining = new Set<string>();
  private drainTimer: NodeJS.Timeout | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly host: OtipHost, options: OtipOptions) {
    super();
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'Object', options);
    for (const k of ['base', 'name', 'password'] as const) {
      if (typeof options[k] !== 'string') throw invalidArgType(`options.${k}`, 'string', options[k]);
    }
    const period = options.period ?? OTIP_PERIOD;
    const pre = options.preactive ?? 8;
    const post = options.postactive ?? 8;
    if (!Number.isInteger(period) || period <= 0) throw invalidArgValue('options.period', period, 'must be a positive integer (seconds)');
    if (!(pre >= 0 && pre < period)) throw invalidArgValue('options.preactive', pre, 'must be in [0, period)');
    if (!(post >= 0 && post < period)) throw invalidArgValue('options.postactive', post, 'must be in [0, period)');
    const prefix = options.prefix ?? 64;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 128) throw invalidArgValue('options.prefix', prefix, 'must be an integer in 0..128');
    this.options = { ...options, period, preactive: pre, postactive: post, prefix, clock: options.clock ?? Date.now };
    // fails early on a bad base or name
    otipAddress(options.base, options.name, options.password, 0, period);
  }

  /** the addresses that should be up at time t (ms): current, plus next/previous in their windows */
  addressesAt(t: number): string[] {
    const { base, name, password, period, preactive, postactive } = this.options;
    const slot = otipSlot(period, 0, t);
    const at = (s: number) => otipAddress(base, name, password, s * period * 1000, period);
    const out = [at(slot)];
    if (otipSlot(period, preactive, t) !== slot) out.push(at(slot + 1));
    if (otipSlot(period, -postactive, t) !== slot) out.push(at(slot - 1));
    return [...new Set(out)];
  }

  /** the addresses up now */
  get addresses(): string[] { return [...this.active]; }

  /** bring the stack's addresses in line with the clock; returns the addresses up */
  update(): string[] {
    if (this.stopped || this.host.closed) return [];
    const want = new Set(this.addressesAt(this.options.clock()));
    let changed = false;
    for (const a of want) {
      if (this.active.has(a)) continue;
      if (this.draining.delete(a)) {
        // wanted again (a clock set back): usable again
        try { this.host.drainAddress!(a, this.options.iface, false); this.active.add(a); changed = true; continue; } catch { /* add it anew */ }
      }
      try {
        this.host.addAddress(`${a}/${this.options.prefix}`, this.options.iface);
        this.active.add(a);
        changed = true;
      } catch (e) {
        if (this.listenerCount('error')) this.emit('error', e);
      }
    }
    for (const a of [...this.active]) {
      if (want.has(a)) continue;
      this.active.delete(a);
      changed = true;
      if (this.host.connectionsOn && this.host.drainAddress && this.host.connectionsOn(a) > 0) {
        try { this.host.drainAddress(a, this.options.iface, true); this.draining.add(a); continue; } catch { /* remove it */ }
      }
      try { this.host.removeAddress(a, this.options.iface); } catch { /* already gone */ }
    }
    this.reap();
    if (changed) this.emit('change', this.addresses);
    return this.addresses;
  }

  /** addresses still draining (connections made before the move, still open) */
  get drainingAddresses(): string[] { return [...this.draining]; }

  /** remove draining addresses whose last connection ended; checks again each second while any drain */
  reap(): void {
    for (const a of [...this.draining]) {
      if (this.host.closed || (this.host.connectionsOn?.(a) ?? 0) === 0) {
        this.draining.delete(a);
        if (!this.host.closed) { try { this.host.removeAddress(a, this.options.iface); } catch { /* gone */ } }
        if (!this.active.has(a)) this.emit('change', this.addresses);
      }
    }
    if (this.draining.size && !this.drainTimer && !this.stopped) {
      this.drainTimer = setTimeout(() => { this.drainTimer = null; this.reap(); }, 1000);
      this.drainTimer.unref();
    }
  }

  /** keep updating at every window edge (real time); returns this */
  start(): this {
    this.update();
    this.schedule();
    return this;
  }

  private schedule(): void {
    if (this.stopped) return;
    const { period, preactive, postactive } = this.options;
    const now = this.options.clock();
    const sec = now / 1000;
    // the next instant at which the wanted set changes: a period edge shifted by pre or post
    const edges = [0, -preactive, postactive].map((shift) => {
      const k = Math.floor((sec - shift) / period) + 1;
      return (k * period + shift) * 1000;
    });
    const next = Math.min(...edges.filter((e) => e > now));
    this.timer = setTimeout(() => { this.update(); this.schedule(); }, Math.max(1, next - now + 5));
    this.timer.unref();
  }

  /** stop moving and take every address down */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = null;
    if (!this.host.closed) for (const a of [...this.active, ...this.draining]) { try { this.host.removeAddress(a, this.options.iface); } catch { /* gone */ } }
    this.active.clear();
    this.draining.clear();
  }
}
