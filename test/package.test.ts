// The package works through both require('msockets') and import ... from 'msockets', and both
// give the same module state.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';

const root = path.join(__dirname, '..', '..');

it("require('msockets') and import from 'msockets' share one instance", () => {
  const file = path.join(root, 'dist', 'test', 'esm-check.mjs');
  fs.writeFileSync(file, `
    import { createRequire } from 'node:module';
    import * as esm from 'msockets';
    import def from 'msockets';
    const require = createRequire(import.meta.url);
    const cjs = require('msockets');
    const s = esm.msocket('kernel', 'AF_INET', 'SOCK_DGRAM');
    s.bind('127.0.0.1', 0);
    console.log(JSON.stringify({
      same: esm.msocket === cjs.msocket && def.stack === cjs.stack,
      kernel: esm.stack('kernel') === cjs.kernelStack,
      port: s.localAddress().port > 0,
      names: ['stack', 'msocket', 'setDefaultStack', 'getDefaultStack', 'withStack', 'net', 'dgram'].filter((n) => !(n in esm)),
    }));
    s.close();
  `);
  try {
    const out = JSON.parse(execFileSync(process.execPath, [file], { cwd: root, encoding: 'utf8' }));
    assert.deepEqual(out, { same: true, kernel: true, port: true, names: [] });
  } finally {
    fs.rmSync(file, { force: true });
  }
});
