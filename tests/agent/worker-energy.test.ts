// The worker meters the CPU time of its forwards (ForwardCpuMeter) and tells the node when
// it starts and stops computing; wired to the virtual plant as agent/index.ts wires it, the
// node draws compute power for that CPU time, not for the time a job is held.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BlockWorker, ForwardCpuMeter, type WorkerOptions } from '../../agent/worker.js';
import { VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { buildNode } from '../../hardware/node.js';
import { selectBackend } from '../../models/backend.js';
import { encodeFrame, encodeJson, isFrame, parseJobReport, type JobReport } from '../../protocol/index.js';
import { Ledger } from '../../agent/ledger.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bundled = join(root, 'models', 'bundled');
const quiet = { info() {}, warn() {}, error() {} };

/** Spins until this process has spent `ms` of CPU time: on a shared core that takes longer than `ms` of wall time. */
function spin(ms: number): number {
  const start = process.cpuUsage();
  let x = 0;
  for (;;) {
    for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + 1);
    const d = process.cpuUsage(start);
    if (d.user + d.system >= ms * 1000) return x;
  }
}

test('the meter counts CPU time inside timed work only, as a share of the cores', async () => {
  const meter = new ForwardCpuMeter(2);
  const t0 = performance.now();
  meter.sample();
  meter.time(() => spin(60));
  const busy = meter.busyCpuS;
  assert.ok(busy >= 0.06 && busy < 0.3, `60 ms of spinning: ${busy} CPU s`);
  const share = meter.sample();
  const wallS = (performance.now() - t0) / 1000;
  // That CPU time over at most this wall time × the cores: about 0.5 on an idle host, less
  // when other processes share the cores (the spin then takes longer than 60 ms of wall time).
  assert.ok(share >= busy / (wallS * 2) && share <= 1, `one busy thread of two cores: share ${share}, ${busy} CPU s in ${wallS} s`);
  spin(30); // not inside time(): not the forwards' work
  await sleep(30);
  assert.ok(meter.sample() < 0.05, 'work outside the forwards and idle time count for nothing');
  assert.equal(meter.busyCpuS, busy);
  assert.throws(() => meter.time(() => { throw new Error('boom'); }), /boom/);
  assert.throws(() => new ForwardCpuMeter(0), /cores must be a positive integer/);
});

async function worker(t: TestContext, o: Partial<WorkerOptions>) {
  await selectBackend({ backend: 'cpu' });
  const clock = o.clock ?? new VirtualClock(0);
  // the bundled model's first shard (blocks 0-1), as a demo node of group 1 holds it
  const w = BlockWorker.load({ shardDir: bundled, firstBlock: 0, lastBlock: 1, queueCapacity: 2, sessionIdleMs: 60_000, clock, log: quiet, ...o });
  t.after(() => w.close());
  return { w, dim: w.stack.geometry.dim };
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

// Per-job energy (docs/agent.md "Per-job energy"): the ledger samples on its own period, so
// a job's frames fall between samples; a job's energy is what the meter integrated over the
// samples around its part, above the idle draw measured over the same samples.
async function meteredRig(t: TestContext, draw: boolean) {
  const clock = new VirtualClock(Date.parse('2024-06-21T22:00:00Z')); // night: the panel gives nothing
  const node = await buildNode(referenceHardwareConfig('virtual'), { clock });
  t.after(() => node.close());
  await node.applyPowerMode('high');
  const v = node.virtual!;
  // With `draw`, the plant draws its full compute power while a job computes (no CPU meter:
  // on a virtual clock the host's CPU time bears no relation to simulated time), so the
  // truth is known; without, the jobs cost nothing the meter could see.
  const onBusy = (busy: boolean) => {
    if (draw) v.setJobRunning(busy);
  };
  const { w, dim } = await worker(t, { clock, onBusy });
  const ledger = new Ledger({
    nodeId: 'e', clock, source: node, policy: { gamma: () => 1, powerMode: () => 3, queue: () => w.queue() },
    slotMs: 3_600_000, samplePeriodMs: 1000, firstSeq: 0, onSlot: () => {},
  });
  attach(w, ledger);
  await ledger.start();
  t.after(() => ledger.stop());
  /** Advances the clock in sampling steps, letting each sample finish. */
  const run = async (ms: number, stepMs = 1000) => {
    for (let done = 0; done < ms; done += stepMs) {
      await clock.advance(Math.min(stepMs, ms - done));
      await ledger.settled();
    }
  };
  return { clock, v, w, dim, ledger, run };
}

/** As agent/index.ts wires the worker to the ledger. */
function attach(w: BlockWorker, ledger: Ledger): void {
  w.meter = ledger;
}

type Report = Extract<JobReport, { type: 'report' }> & { energyUncertaintyJ?: number };

/** Six jobs, each ending between two of the ledger's samples; returns their reports and the plant's energy above idle over them. */
async function sixJobs(t: TestContext, draw: boolean): Promise<{ reports: Report[]; trueAboveIdleJ: number }> {
  const { v, w, dim, run } = await meteredRig(t, draw);
  await run(20_000); // the idle baseline settles
  const out: Buffer[] = [];
  const send = (p: Buffer): void => { out.push(p); };
  const truthFrom = v.plant.ledger.consumedJ;
  const elapsedFrom = v.plant.ledger.elapsedMs;
  const reports: Report[] = [];
  for (let job = 1; job <= 6; job++) {
    await w.handle(encodeJson({ v: 1, type: 'offer', jobId: job, sessionId: job }), send, true);
    await run(300, 300);
    const rows = 4;
    await w.handle(encodeFrame({ jobId: job, sessionId: job, step: 0, position: 0, rows, dim, data: new Float32Array(rows * dim).fill(0.1) }), send, true);
    // The job's clock interval ends between two samples of the ledger, as it does on a busy node.
    await run(2300 + 400 * job, 700);
    await w.handle(encodeFrame({ jobId: job, sessionId: job, step: 1, position: rows, rows: 0, dim, data: new Float32Array(0), close: true }), send, true);
    await run(3000);
  }
  for (const p of out) {
    if (isFrame(p)) continue;
    const r = parseJobReport(p);
    assert.ok(r.ok, r.ok ? '' : r.error);
    if (r.value.type === 'report') reports.push(r.value as Report);
  }
  assert.equal(reports.length, 6);
  v.plant.advanceTo(v.plant.state().timeMs);
  // Everything above the plant's 2.7 W idle draw (hardware/config.ts virtual.load.idleW) was the jobs' compute.
  const trueAboveIdleJ = v.plant.ledger.consumedJ - truthFrom - 2.7 * ((v.plant.ledger.elapsedMs - elapsedFrom) / 1000);
  return { reports, trueAboveIdleJ };
}

function assertHonest(reports: Report[], trueAboveIdleJ: number): void {
  let sumJ = 0;
  let sumU = 0;
  for (const r of reports) {
    assert.ok(r.energyJ >= 0, `job ${r.jobId}: ${r.energyJ} J`);
    assert.ok(typeof r.energyUncertaintyJ === 'number' && Number.isFinite(r.energyUncertaintyJ) && r.energyUncertaintyJ >= 0, `job ${r.jobId}: uncertainty ${r.energyUncertaintyJ}`);
    // The uncertainty is the meter's (LSBs and sampling), not a blanket: well under the idle draw over the job.
    assert.ok(r.energyUncertaintyJ < 0.5 * 2.7 * (r.durationMs / 1000), `job ${r.jobId}: uncertainty ${r.energyUncertaintyJ} J over ${r.durationMs} ms`);
    sumJ += r.energyJ;
    sumU += r.energyUncertaintyJ;
  }
  assert.ok(Math.abs(sumJ - trueAboveIdleJ) <= sumU, `jobs ${sumJ.toFixed(4)} J, plant ${trueAboveIdleJ.toFixed(4)} J above idle, ± ${sumU.toFixed(4)} J`);
}

test('a job\'s energy is metered over the samples around it, above the idle draw over the same samples, within its uncertainty of the plant\'s truth', async (t) => {
  const { reports, trueAboveIdleJ } = await sixJobs(t, true);
  assert.ok(trueAboveIdleJ > 10, `the jobs drew ${trueAboveIdleJ} J above idle`);
  assertHonest(reports, trueAboveIdleJ);
});

test('jobs that cost less than the meter can see report 0 J or more, within their uncertainty of nothing', async (t) => {
  const { reports, trueAboveIdleJ } = await sixJobs(t, false);
  assert.ok(Math.abs(trueAboveIdleJ) < 1e-6, `nothing above idle: ${trueAboveIdleJ} J`);
  assertHonest(reports, trueAboveIdleJ);
  for (const r of reports) assert.ok(r.energyJ <= r.energyUncertaintyJ!, `job ${r.jobId}: ${r.energyJ} ± ${r.energyUncertaintyJ} J`);
});
