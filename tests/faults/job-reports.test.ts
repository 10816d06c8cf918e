// What a node reports for jobs it could not run: a job accepted but never started (its
// frames never came, or the gateway gave up on it) reports no energy and no duration when
// its session times out, not the node's whole consumption since it started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MeteredInterval } from '../../agent/energy.js';
import { BlockWorker } from '../../agent/worker.js';
import { VirtualClock } from '../../hardware/clock.js';
import { selectBackend } from '../../models/backend.js';
import { encodeJson, parseJobReport } from '../../protocol/index.js';
import { BUNDLED } from './support.js';

test('a job that never started reports 0 J and 0 ms when its session times out', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const clock = new VirtualClock(0);
  // The meter's intervals, as the ledger hands them to the worker.
  const listeners: Array<(i: MeteredInterval) => void> = [];
  const meter = { onInterval: (l: (i: MeteredInterval) => void) => (listeners.push(l), () => {}), sampleNow: async () => {} };
  const worker = BlockWorker.load({
    shardDir: BUNDLED, firstBlock: 0, lastBlock: 1, queueCapacity: 1, sessionIdleMs: 60_000, clock, log: { info() {}, warn() {}, error() {} }, meter,
  });
  t.after(() => worker.close());
  const out: Buffer[] = [];
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 4, sessionId: 40 }), (p) => { out.push(p); }, true);
  // a minute at 2.7 W, none of it for job 4
  for (const l of listeners) l({ fromMs: 0, toMs: 60_000, fromW: 2.7, toW: 2.7, energyJ: 162, fromResolutionW: 0.01, toResolutionW: 0.01 });
  await clock.advance(60_000);
  await new Promise((r) => setImmediate(r));
  const reports = out.map((p) => parseJobReport(p)).map((r) => (assert.ok(r.ok), r.value));
  assert.equal(reports[0]!.type, 'accepted');
  const report = reports[1]!;
  assert.ok(report.type === 'report');
  assert.equal(report.ok, false);
  assert.match(report.error ?? '', /idle/);
  assert.equal(report.steps, 0);
  assert.equal(report.durationMs, 0);
  assert.equal(report.energyJ, 0);
  assert.equal(worker.queue(), 0);
});
