// tshark over a test's pcap capture: every frame decodes (nothing malformed, no expert error),
// every checksum verifies, and the protocols the test produced are there.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

const CI = process.env.CI === 'true';
const big = { encoding: 'utf8' as const, maxBuffer: 1 << 28 };

let present: boolean | undefined;
/** tshark is installed */
export function hasTshark(): boolean {
  present ??= spawnSync('tshark', ['--version']).status === 0;
  return present;
}

export interface CaptureCheck {
  /** the capture holds at least this many frames */
  minFrames: number;
  /** ports whose payloads are test bytes: decoded as data, not guessed at by port heuristics */
  data?: { tcp?: number[]; udp?: number[] };
  /** strings each found in some frame's frame.protocols (e.g. 'eth:ethertype:ip:tcp') */
  protocols?: string[];
  /** a Linux peer is in the capture: a TCP checksum of 0xFFFF where 0x0000 is due (the same
      sum in ones' complement, RFC 1624) is not an error. Linux sends it now and then; our
      engine never writes it, so captures of our engine alone leave this off. */
  linuxPeer?: boolean;
  /** remove the file once it passed (a failing capture is kept, and the message says so) */
  removeIfClean?: boolean;
}

/** tshark's fields (tab-separated, one line a frame) of the frames matching filter ('' all);
    extra: more tshark options (decode-as rules) */
export function tsharkFields(file: string, filter: string, fields: string[], extra: string[] = []): string[] {
  const args = ['-r', file, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', ...extra];
  if (filter) args.push('-Y', filter);
  for (const f of fields) args.push('-e', f);
  return execFileSync('tshark', [...args, '-T', 'fields'], big).split('\n').filter(Boolean);
}

/** Check the capture as described (assertions). Returns false, having checked nothing, when
    tshark is not installed, which fails the test under CI=true. */
export function checkCapture(file: string, c: CaptureCheck): boolean {
  if (!hasTshark()) {
    if (CI) assert.fail('tshark is missing under CI');
    return false;
  }
  const frames = tsharkFields(file, '', ['frame.number']).length;
  assert.ok(frames >= c.minFrames, `${frames} frames captured in ${file}, expected at least ${c.minFrames}`);
  const asData = [
    ...(c.data?.tcp ?? []).flatMap((p) => ['-d', `tcp.port==${p},data`]),
    ...(c.data?.udp ?? []).flatMap((p) => ['-d', `udp.port==${p},data`]),
  ];
  const ffff = c.linuxPeer ? ' && !tcp.checksum.ffff' : '';
  const filter = `_ws.malformed || (_ws.expert.severity >= 0x00800000${ffff}) || ip.checksum.status == 0 || ` +
    `(tcp.checksum.status == 0${ffff}) || udp.checksum.status == 0 || icmp.checksum.status == 0 || icmpv6.checksum.status == 0`;
  const bad = tsharkFields(file, filter, ['frame.number', '_ws.col.Info'], asData).join('\n');
  assert.equal(bad, '', `frames with errors in ${file} (kept):\n${bad.split('\n').slice(0, 20).join('\n')}`);
  if (c.protocols?.length) {
    const protos = tsharkFields(file, '', ['frame.protocols']).join('\n');
    for (const p of c.protocols) assert.ok(protos.includes(p), `the capture ${file} holds ${p}`);
  }
  if (c.removeIfClean) fs.rmSync(file, { force: true });
  return true;
}
