#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner: the spec
// reporter for people, then one closing line `N passed, N failed, N skipped`.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const only = process.argv.slice(2);
function walk(dir, out) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
let files = walk(path.join(root, 'dist', 'test'), []).sort();
if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
if (files.length === 0) {
  console.error('no test files found under dist/test');
  process.exit(1);
}
// A test that hangs must fail, not stall CI. Each file runs in its own `node --test` with a
// per-test timeout (TEST_TIMEOUT_MS, default 15 min; the engine's sanitizer build is the longest
// single test, about 4-6 min) and a per-file watchdog (TEST_FILE_TIMEOUT_MS, default 20 min) that
// also catches a file whose tests are done but which a leaked handle keeps alive. The summary
// reporter writes each file's counts to a temporary file; the closing line adds them up.
const os = require('os');
const testTimeout = Number(process.env.TEST_TIMEOUT_MS || 15 * 60000);
const fileTimeout = Number(process.env.TEST_FILE_TIMEOUT_MS || 20 * 60000);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'msockets-tests-'));
const total = { passed: 0, failed: 0, skipped: 0 };
const broken = [];
for (const [i, file] of files.entries()) {
  const sumFile = path.join(tmp, `${i}.txt`);
  const args = [
    '--test', `--test-timeout=${testTimeout}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    `--test-reporter=${path.join(__dirname, 'summary-reporter.mjs')}`, `--test-reporter-destination=${sumFile}`,
    file,
  ];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root, timeout: fileTimeout, killSignal: 'SIGKILL' });
  const rel = path.relative(root, file);
  const m = fs.existsSync(sumFile) ? /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(fs.readFileSync(sumFile, 'utf8')) : null;
  if (m) {
    total.passed += Number(m[1]);
    total.failed += Number(m[2]);
    total.skipped += Number(m[3]);
  }
  if (r.error && r.error.code === 'ETIMEDOUT') {
    console.log(`\u2716 ${rel}: did not end within ${fileTimeout / 60000} min (a test hung or a handle was left open); killed`);
    total.failed++;
    broken.push(rel);
  } else if (!m || (r.status !== 0 && Number(m[2]) === 0)) {
    console.log(`\u2716 ${rel}: the test process ended with ${r.status === null ? r.signal : `status ${r.status}`} without a failing test to show for it`);
    total.failed++;
    broken.push(rel);
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
if (broken.length) console.log(`\nfiles that did not finish cleanly: ${broken.join(', ')}`);
console.log(`\n${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(total.failed > 0 ? 1 : 0);
