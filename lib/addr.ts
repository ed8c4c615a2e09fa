// Hash-based addresses and One-Time IP (OTIP) addresses, as libioth's iothaddr computes them:
// an IPv6 address (or a MAC) derived from a name, an optional password and an optional time
// slot, so that a host or a service sits where only those who know the name (and password, and
// the clock) will look. The hash is MD5: this is an addressing scheme, not a secret store.
import { createHash } from 'crypto';
import { isIPv6 } from 'net';

import { invalidArgType, invalidArgValue } from './errors';

/** default OTIP period, seconds */
export const OTIP_PERIOD = 32;

function checkName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string') throw invalidArgType(what, 'string', name);
  if (name.length === 0) throw invalidArgValue(what, name, 'must not be empty');
  return name;
}

/** the 16 bytes of an IPv6 address in any of its text forms (no scope id) */
export function ipv6Bytes(address: string): Buffer {
  if (typeof address !== 'string') throw invalidArgType('address', 'string', address);
  if (!isIPv6(address) || address.includes('%')) throw invalidArgValue('address', address, 'is not an IPv6 address');
  let text = address;
  const out = Buffer.alloc(16);
  // a trailing dotted quad (::ffff:1.2.3.4) becomes two groups
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const n = v4.slice(1).map(Number);
    text = text.slice(0, v4.index) + ((n[0] << 8) | n[1]).toString(16) + ':' + ((n[2] << 8) | n[3]).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const hg = head ? head.split(':') : [];
  const tg = tail ? tail.split(':') : [];
  const groups = tail === undefined ? hg : [...hg, ...Array(8 - hg.length - tg.length).fill('0'), ...tg];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** the RFC 5952 text of 16 address bytes (lower case, longest run of two or more zero groups as ::) */
export function ipv6Text(bytes: Uint8Array): string {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 16) throw invalidArgValue('bytes', bytes, 'must be 16 bytes');
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((bytes[i] << 8) | bytes[i + 1]);
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
}

function md5(name: string, password?: string, slot?: number): Buffer {
  const h = createHash('md5');
  h.update(name.endsWith('.') ? name.slice(0, -1) : name);
  if (password !== undefined) h.update(password);
  if (slot) {
    const t = Buffer.alloc(4);
    t.writeUInt32BE(slot >>> 0);
    h.update(t);
  }
  return h.digest();
}

/**
 * The hash-based address of `name` on the network `base` (an IPv6 address, typically a /64
 * prefix): the interface identifier (the low 64 bits of base) is XORed with the first 8 bytes of
 * MD5(name ‖ password ‖ slot as 4 bytes big-endian, when not 0), then its universal/local and
 * group bits are cleared. A trailing dot of a fully qualified name is ignored.
 */
export function hashAddress(base: string, name: string, password?: string, slot = 0): string {
  const addr = ipv6Bytes(base);
  checkName(name);
  if (password !== undefined && typeof password !== 'string') throw invalidArgType('password', 'string', password);
  if (!Number.isInteger(slot) || slot < 0 || slot > 0xffffffff) throw invalidArgValue('slot', slot, 'must be an integer in 0..2^32-1');
  const h = md5(name, password, slot);
  for (let i = 0; i < 8; i++) addr[8 + i] ^= h[i];
  addr[8] &= ~0x03;
  return ipv6Text(addr);
}

/** the OTIP time slot of a moment: floor((seconds + offset) / period); 0 when period is 0 */
export function otipSlot(period = OTIP_PERIOD, offset = 0, nowMs = Date.now()): number {
  if (!Number.isInteger(period) || period < 0) throw invalidArgValue('period', period, 'must be a non-negative integer (seconds)');
  if (!Number.isFinite(offset)) throw invalidArgValue('offset', offset, 'must be a number of seconds');
  if (period === 0) return 0;
  return Math.floor((Math.floor(nowMs / 1000) + offset) / period);
}

/**
 * The One-Time IP address of service `name` with `password` at time `timeMs` (default now):
 * what a client dials, and where a server listens during that period.
 */
export function otipAddress(base: string, name: string, password: string, timeMs = Date.now(), period = OTIP_PERIOD): string {
  if (typeof password !== 'string') throw invalidArgType('password', 'string', password);
  if (!Number.isFinite(timeMs)) throw invalidArgValue('time', timeMs, 'must be milliseconds since the epoch');
  return hashAddress(base, name, password, otipSlot(period, 0, timeMs));
}

/** A MAC derived from a name (locally administered, unicast): bytes 0,1,2,5,6,7 of MD5(name ‖ password). */
export function hashMac(name: string, password?: string): string {
  checkName(name);
  if (password !== undefined && typeof password !== 'string') throw invalidArgType('password', 'string', password);
  const h = md5(name, password);
  const mac = [h[0], h[1], h[2], h[5], h[6], h[7]];
  mac[0] = (mac[0] | 0x02) & ~0x01;
  return mac.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The modified EUI-64 address of a MAC on the network `base`. */
export function eui64Address(base: string, mac: string): string {
  const addr = ipv6Bytes(base);
  if (typeof mac !== 'string') throw invalidArgType('mac', 'string', mac);
  const m = /^([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})$/i.exec(mac);
  if (!m) throw invalidArgValue('mac', mac, 'is not a MAC address');
  const b = m.slice(1).map((x) => parseInt(x, 16));
  addr[8] = b[0]; addr[9] = b[1]; addr[10] = b[2];
  addr[11] = 0xff; addr[12] = 0xfe;
  addr[13] ^= b[3]; addr[14] ^= b[4]; addr[15] ^= b[5];
  addr[8] ^= 0x02;
  return ipv6Text(addr);
}

/** eui64Address(base, hashMac(name, password)) */
export function hashEui64Address(base: string, name: string, password?: string): string {
  return eui64Address(base, hashMac(name, password));
}
