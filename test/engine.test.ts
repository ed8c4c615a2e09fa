// The engine's C++ tests (test/engine/*_test.cc: parsers, ARP, IP, UDP, impairment, capture,
// hub, the cmd:// and udp:// link drivers, TCP under loss/reordering/corruption, fuzzing), built
// with AddressSanitizer and UBSan by test/engine/run.sh; each C++ case becomes one test here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

const script = path.join(__dirname, '..', '..', 'test', 'engine', 'run.sh');

function run(): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('close', (code) => resolve({ code, out }));
  });
}

test('engine C++ tests (ASan + UBSan)', { timeout: 1_200_000 }, async (t) => {
  const { code, out } = await run();
  let binary = '';
  let details: string[] = [];
  let cases = 0;
  for (const line of out.split('\n')) {
    const bin = /^== (\S+)/.exec(line);
    if (bin) { binary = bin[1]; details = []; continue; }
    const res = /^(ok|not ok) - (.*)$/.exec(line);
    if (res) {
      cases++;
      const failed = res[1] === 'not ok';
      const why = details.join('\n');
      await t.test(`${binary}: ${res[2]}`, () => { if (failed) assert.fail(why || 'failed'); });
      details = [];
      continue;
    }
    if (line.startsWith('  ') || line.includes('ERROR') || line.includes('error')) details.push(line);
  }
  assert.ok(cases > 0, `no engine test ran:\n${out.slice(-4000)}`);
  assert.equal(code, 0, `run.sh failed:\n${out.slice(-4000)}`);
});
