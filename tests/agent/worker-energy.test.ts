// The worker meters the CPU time of its forwards (ForwardCpuMeter) and tells the node when
// it starts and stops computing; wired to the virtual plant as agent/index.ts wires it, the
// node draws compute power for that CPU time, not for the time a job is held.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BlockWorker, ForwardCpuMeter, type WorkerOptions } from '../../agent/worker.js';
import { VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { buildNode } from '../../hardware/node.js';
import { selectBackend } from '../../models/backend.js';
import { readLlama2c } from '../../models/llama2c.js';
import { writeShards } from '../../models/shards.js';
import { encodeFrame, encodeJson } from '../../protocol/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');
const quiet = { info() {}, warn() {} };

function spin(ms: number): number {
  const until = performance.now() + ms;
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  return x;
}

test('the meter counts CPU time inside timed work only, as a share of the cores', async () => {
  const meter = new ForwardCpuMeter(2);
  meter.sample();
  meter.time(() => spin(60));
  const busy = meter.busyCpuS;
  assert.ok(busy > 0.03 && busy < 0.3, `60 ms of spinning: ${busy} CPU s`);
  const share = meter.sample();
  // about 0.5; the process's other threads (GC, the runtime's helpers) count too
  assert.ok(share > 0.2 && share <= 1, `one busy thread of two cores: share ${share}`);
  spin(30); // not inside time(): not the forwards' work
  await sleep(30);
  assert.ok(meter.sample() < 0.05, 'work outside the forwards and idle time count for nothing');
  assert.equal(meter.busyCpuS, busy);
  assert.throws(() => meter.time(() => { throw new Error('boom'); }), /boom/);
  assert.throws(() => new ForwardCpuMeter(0), /cores must be a positive integer/);
});

async function worker(t: TestContext, o: Partial<WorkerOptions>) {
  await selectBackend({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-shards-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = readLlama2c(stories);
  writeShards(model.config, (part) => readLlama2c(stories, part), { groups: 2, outDir: dir, dtype: 'f32' });
  const clock = o.clock ?? new VirtualClock(0);
  const w = BlockWorker.load({ shardDir: dir, firstBlock: 0, lastBlock: 0, queueCapacity: 2, sessionIdleMs: 60_000, clock, log: quiet, ...o });
  t.after(() => w.close());
  return { w, dim: model.config.dim };
}

test('onBusy follows the first job starting and the last one ending, with the forwards\' meter', async (t) => {
  const calls: boolean[] = [];
  let seen: ForwardCpuMeter | undefined;
  const { w, dim } = await worker(t, { onBusy: (busy, cpu) => { calls.push(busy); seen = cpu; } });
  const send = () => {};
  const frame = (jobId: number, position: number, close = false) =>
    encodeFrame({ jobId, sessionId: jobId, step: position, position, rows: 1, dim, data: new Float32Array(dim).fill(0.1), close });
  await w.handle(encodeJson({ v: 1, type: 'offer', jobId: 1, sessionId: 1 }), send, true);
  await w.handle(encodeJson({ v: 1, type: 'offer', jobId: 2, sessionId: 2 }), send, true);
  assert.deepEqual(calls, [], 'accepting is not computing');
  await w.handle(frame(1, 0), send, true);
  await w.handle(frame(2, 0), send, true);
  assert.deepEqual(calls, [true]);
  assert.equal(seen, w.cpu);
  await w.handle(frame(1, 1, true), send, true);
  assert.deepEqual(calls, [true], 'job 2 still computes');
  await w.handle(frame(2, 1, true), send, true);
  assert.deepEqual(calls, [true, false]);
  assert.ok(w.cpu.busyCpuS > 0, 'the forwards were metered');
});

test('wired to the virtual plant, a held job draws for its forwards, and idles between them', async (t) => {
  const clock = new VirtualClock(Date.parse('2024-06-21T22:00:00Z'));
  const node = await buildNode(referenceHardwareConfig('virtual'), { clock });
  t.after(() => node.close());
  await node.applyPowerMode('high');
  const v = node.virtual!;
  // as agent/index.ts wires it
  const onBusy = (busy: boolean, cpu: ForwardCpuMeter) => {
    if (busy) v.plant.setComputeLoad(cpu);
    v.setJobRunning(busy);
    if (!busy) v.plant.setComputeLoad(undefined);
  };
  const { w, dim } = await worker(t, { clock, onBusy });
  const send = () => {};
  await w.handle(encodeJson({ v: 1, type: 'offer', jobId: 1, sessionId: 1 }), send, true);
  const rows = 8;
  await w.handle(encodeFrame({ jobId: 1, sessionId: 1, step: 0, position: 0, rows, dim, data: new Float32Array(rows * dim).fill(0.1) }), send, true);
  assert.equal(v.plant.state().jobRunning, true);
  await clock.advance(1000);
  v.plant.advanceTo(clock.now());
  const afterForward = v.plant.state();
  assert.ok(afterForward.busyCoreShare > 0 && afterForward.busyCoreShare <= 1, `share after a forward ${afterForward.busyCoreShare}`);
  // held but waiting for the next frame: the cores idle, so does the draw
  await sleep(50);
  await clock.advance(1000);
  v.plant.advanceTo(clock.now());
  const waiting = v.plant.state();
  assert.ok(waiting.busyCoreShare < 0.1, `share while waiting ${waiting.busyCoreShare}`);
  assert.ok(waiting.loadDemandW < 2.7 + 0.1 * 3.6, `draw while waiting ${waiting.loadDemandW} W`);
  await w.handle(encodeFrame({ jobId: 1, sessionId: 1, step: 1, position: rows, rows: 0, dim, data: new Float32Array(0), close: true }), send, true);
  assert.equal(v.plant.state().jobRunning, false);
  assert.equal(v.plant.state().busyCoreShare, 1, 'no meter once the job is over');
});
