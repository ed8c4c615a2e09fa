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
// A test that hangs must fail, not stall CI: each test has TEST_TIMEOUT_MS (default 10 min; the
// engine's sanitizer build is the longest single test at about 4 min), a file whose tests are done
// exits even if it left a handle open (--test-force-exit), and the whole run has a watchdog.
const testTimeout = Number(process.env.TEST_TIMEOUT_MS || 600000);
const runTimeout = Number(process.env.TEST_RUN_TIMEOUT_MS || 25 * 60000);
const args = [
  '--test', '--test-concurrency=1', `--test-timeout=${testTimeout}`, '--test-force-exit',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  `--test-reporter=${path.join(__dirname, 'summary-reporter.mjs')}`, '--test-reporter-destination=stdout',
  ...files,
];
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root, timeout: runTimeout, killSignal: 'SIGKILL' });
if (r.error && r.error.code === 'ETIMEDOUT') {
  console.error(`the test run did not end within ${runTimeout / 60000} min and was killed`);
  process.exit(1);
}
process.exit(r.status === null ? 1 : r.status);
