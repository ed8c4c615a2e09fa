// `npm run prebuild` makes prebuilds/linux-x64/*.node; a package without a local build
// (as users get it) must load that prebuild and work.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { it } from 'node:test';

const root = path.join(__dirname, '..', '..');
const prebuilds = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const have = fs.existsSync(prebuilds) && fs.readdirSync(prebuilds).some((f) => f.endsWith('.node'));
const skip = have ? false : 'no prebuild: run `npm run prebuild` first';
if (!have && process.env.CI === 'true') {
  it('prebuild exists under CI', () => assert.fail('prebuilds/ is missing: .ci/run must run `npm run prebuild` before the tests'));
}

it('a package without build/ loads the prebuild and works', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msockets-prebuild-'));
  try {
    fs.cpSync(path.join(root, 'dist', 'lib'), path.join(dir, 'dist', 'lib'), { recursive: true });
    fs.cpSync(path.join(root, 'prebuilds'), path.join(dir, 'prebuilds'), { recursive: true });
    fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'));
    const script = `
      const ms = require(${JSON.stringify(path.join(dir, 'dist', 'lib', 'msocket.js'))});
      const where = require('node-gyp-build').resolve(${JSON.stringify(dir)});
      const a = ms.msocket('kernel', 'AF_INET', 'SOCK_DGRAM');
      a.bind('127.0.0.1', 0);
      console.log(JSON.stringify({ where, port: a.localAddress().port }));
      a.close();
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8' }));
    assert.ok(out.where.startsWith(path.join(dir, 'prebuilds')), `loaded ${out.where}`);
    assert.ok(out.port > 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
