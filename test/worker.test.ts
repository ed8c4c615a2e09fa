// The addon in worker threads: each worker has its own defaults and its own sockets, and a
// worker that exits frees what it created (its descriptors are closed by the cleanup hook).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';
import { Worker } from 'node:worker_threads';

import * as ms from '../lib/msocket';

const entry = path.join(__dirname, '..', 'lib', 'msocket.js');
const fdCount = () => fs.readdirSync('/proc/self/fd').length;

function runWorker(code: string): Promise<{ result: unknown; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { entry } });
    let result: unknown;
    w.on('message', (m) => { result = m; });
    w.on('error', reject);
    w.on('exit', (exitCode) => resolve({ result, exitCode }));
  });
}

it('a worker uses kernel raw sockets, has its own default stack, and leaves nothing open', async () => {
  // warm up: load the addon in this thread first so only the worker's own fds vary
  ms.msocket('kernel', 'AF_INET', 'SOCK_DGRAM').close();
  const before = fdCount();
  const { result, exitCode } = await runWorker(`
    const { parentPort, workerData } = require('worker_threads');
    const ms = require(workerData.entry);
    (async () => {
      ms.setDefaultStack(ms.kernelStackWithOwnClasses());
      const a = ms.msocket(null, 'AF_INET', 'SOCK_DGRAM');
      a.bind('127.0.0.1', 0);
      const b = ms.msocket(null, 'AF_INET', 'SOCK_DGRAM');
      b.sendto(Buffer.from('from worker'), '127.0.0.1', a.localAddress().port);
      a.watch(true, false);
      await new Promise((r) => a.once('readable', r));
      const text = a.recvfrom().data.toString();
      // leave 20 sockets open on purpose: the environment's cleanup must close them
      const leaked = [];
      for (let i = 0; i < 20; i++) { const s = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM'); s.bind('127.0.0.1', 0); s.listen(); s.watch(true, false); leaked.push(s); }
      parentPort.postMessage({ text, ownDefault: ms.getDefaultStack() !== ms.kernelStack, stackOf: a.stack === ms.kernelStackWithOwnClasses() });
      process.exit(0);
    })();
  `);
  assert.equal(exitCode, 0);
  assert.deepEqual(result, { text: 'from worker', ownDefault: true, stackOf: true });
  assert.equal(ms.getDefaultStack(), ms.kernelStack, "the worker's default is not this thread's");
  // give the worker's teardown a moment to finish closing handles
  for (let i = 0; i < 50 && fdCount() > before; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(fdCount(), before, 'every descriptor the worker created is closed');
});

it('many workers load the addon concurrently', async () => {
  const runs = await Promise.all(Array.from({ length: 4 }, () => runWorker(`
    const { parentPort, workerData } = require('worker_threads');
    const ms = require(workerData.entry);
    const l = ms.msocket('kernel', 'AF_INET', 'SOCK_STREAM');
    l.bind('127.0.0.1', 0); l.listen();
    parentPort.postMessage(l.localAddress().port > 0);
    l.close();
  `)));
  for (const r of runs) { assert.equal(r.exitCode, 0); assert.equal(r.result, true); }
});
