// Running node as uid/gid 65534 (nobody), for tests of what an unprivileged user gets. The
// package must be readable by that user: this checkout when it is (e.g. under /home or /check),
// else a world-readable copy of what a child needs (a private mktemp clone is not readable).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..', '..');
let nobodyPkg: string | null = null;
let nobodyTmp: string | null = null;

/** a package directory uid 65534 can read: this one, or a copy of what it needs */
export function packageForNobody(): string {
  if (nobodyPkg) return nobodyPkg;
  const needed = ['package.json', 'dist/lib/msocket.js', 'dist/lib/stacks/netns.js', 'node_modules/node-gyp-build/index.js',
    fs.existsSync(path.join(ROOT, 'build/Release/msockets.node')) ? 'build/Release/msockets.node' : 'prebuilds/linux-x64/msockets.node'];
  const test = needed.map((f) => `test -r '${path.join(ROOT, f)}'`).join(' && ');
  // MSOCKETS_TEST_COPY_PACKAGE=1 takes the copy path even when this directory is readable
  const ok = process.env.MSOCKETS_TEST_COPY_PACKAGE !== '1' &&
    spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', test]).status === 0;
  if (ok) return (nobodyPkg = ROOT);
  nobodyTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'msockets-nobody-'));
  fs.chmodSync(nobodyTmp, 0o755);
  for (const rel of ['package.json', 'dist/lib', 'node_modules/node-gyp-build', 'build/Release/msockets.node', 'prebuilds']) {
    const from = path.join(ROOT, rel);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(nobodyTmp, rel), { recursive: true });
  }
  execFileSync('chmod', ['-R', 'a+rX', nobodyTmp]);
  return (nobodyPkg = nobodyTmp);
}
process.on('exit', () => { if (nobodyTmp) fs.rmSync(nobodyTmp, { recursive: true, force: true }); });

/** run a script as uid/gid 65534 (PKG is the package directory); it prints one JSON line */
export function runAsNobody(script: string, env: Record<string, string> = {}): Record<string, unknown> {
  const pkg = packageForNobody();
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', `const PKG = ${JSON.stringify(pkg)};\n${script}`], {
    cwd: '/', encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
  });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}
