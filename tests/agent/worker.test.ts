import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MeteredInterval } from '../../agent/energy.js';
import { BlockWorker, type JobMeter } from '../../agent/worker.js';
import type { Timer } from '../../ground/clock.js';
import { VirtualClock } from '../../hardware/clock.js';
import { selectBackend } from '../../models/backend.js';
import { BlockStack } from '../../models/forward.js';
import { readLlama2c } from '../../models/llama2c.js';
import { readManifest, writeShards } from '../../models/shards.js';
import { decodeFrame, encodeFrame, encodeJson, parseJobReport, type JobReport } from '../../protocol/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');
const quiet = { info() {}, warn() {}, error() {} };

function hidden(rows: number, dim: number, seed: number): Float32Array {
  const a = new Float32Array(rows * dim);
  let s = seed;
  for (let i = 0; i < a.length; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    a[i] = s / 2 ** 31 - 0.5;
  }
  return a;
}

/** Shards of stories260K in 2 groups in a temporary folder, and a worker over blocks [0, 0]. */
async function firstBlockWorker(t: TestContext, dtype: 'f16' | 'f32', sessionIdleMs: number, clock = new VirtualClock(0)) {
  await selectBackend({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-shards-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = readLlama2c(stories);
  writeShards(model.config, (part) => readLlama2c(stories, part), { groups: 2, outDir: dir, dtype });
  const worker = BlockWorker.load({ shardDir: dir, firstBlock: 0, lastBlock: 0, queueCapacity: 2, sessionIdleMs, clock, log: quiet });
  t.after(() => worker.close());
  return { model, clock, worker, dim: model.config.dim };
}

/** A meter whose intervals the test emits: constant power over each, 0.01 W resolution. */
class IntervalMeter implements JobMeter {
  private readonly listeners = new Set<(i: MeteredInterval) => void>();
  private atMs = 0;
  closingSamples = 0;
  onInterval(l: (i: MeteredInterval) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  emit(ms: number, w: number): void {
    const i = { fromMs: this.atMs, toMs: this.atMs + ms, fromW: w, toW: w, energyJ: (w * ms) / 1000, fromResolutionW: 0.01, toResolutionW: 0.01 };
    this.atMs += ms;
    for (const l of this.listeners) l(i);
  }
  async sampleNow(): Promise<void> {
    this.closingSamples++;
  }
}

test('the worker answers frames with exactly the layer range\'s in-process output, and reports the job', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-shards-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = readLlama2c(stories);
  writeShards(model.config, (part) => readLlama2c(stories, part), { groups: 2, outDir: dir, dtype: 'f32' });
  const second = readManifest(dir).blocks.at(-1)!;
  const range = { from: second.from, to: second.to };
  assert.ok(range.from > 0, 'the second group starts after layer 0');

  const clock = new VirtualClock(0);
  const meter = new IntervalMeter();
  const worker = BlockWorker.load({ shardDir: dir, firstBlock: range.from, lastBlock: range.to - 1, queueCapacity: 1, sessionIdleMs: 60_000, clock, log: quiet, meter, powerMode: () => 2 });
  t.after(() => worker.close());
  for (let i = 0; i < 5; i++) meter.emit(1000, 2); // idle at 2 W
  const reference = new BlockStack(model, range);
  const refSession = reference.openSession();
  const dim = model.config.dim;

  const out: Buffer[] = [];
  const send = (p: Buffer): void => { out.push(p); };
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 7, sessionId: 70 }), send, true);
  assert.deepEqual(parseJobReport(out.shift()!), { ok: true, value: { v: 1, type: 'accepted', jobId: 7 } });
  // Queue capacity 1: a second offer is refused with the reason.
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 8, sessionId: 80 }), send, true);
  const refused = parseJobReport(out.shift()!);
  assert.ok(refused.ok && refused.value.type === 'refused' && /queue full/.test(refused.value.reason));

  const steps = [{ rows: 5, position: 0 }, { rows: 1, position: 5 }, { rows: 1, position: 6 }];
  for (const [i, s] of steps.entries()) {
    const input = hidden(s.rows, dim, i + 1);
    await clock.advance(1000);
    meter.emit(1000, 3); // 3 W while the job is held: 1 J per second above the 2 W baseline (the first, before it started, is not its)
    await worker.handle(encodeFrame({ jobId: 7, sessionId: 70, step: i, position: s.position, rows: s.rows, dim, data: input, close: i === steps.length - 1 }), send, true);
    const frame = decodeFrame(out.shift()!);
    assert.ok(frame.ok, !frame.ok ? frame.error : '');
    assert.equal(frame.frame.step, i);
    assert.equal(frame.frame.rows, s.rows);
    const expected = reference.forward(refSession, input, s.rows);
    assert.deepEqual(frame.frame.data, expected, `step ${i}: worker output equals the in-process layers`);
  }
  const report = parseJobReport(out.shift()!);
  assert.ok(report.ok && report.value.type === 'report');
  const r = report.value as Extract<JobReport, { type: 'report' }>;
  assert.equal(r.ok, true);
  assert.equal(r.steps, 3);
  assert.equal(r.durationMs, 2000, 'from the first frame to the close');
  assert.ok(Math.abs(r.energyJ - 2 * (3 - 2)) < 1e-9, `energy ${r.energyJ}: two metered seconds at 3 W above the 2 W baseline`);
  // each charged second: the readings' 0.01 W resolution, no change of power, the baseline's 0.01 W
  assert.ok(Math.abs(r.energyUncertaintyJ! - 2 * (0.01 + 0.01)) < 1e-9, `uncertainty ${r.energyUncertaintyJ}`);
  assert.equal(meter.closingSamples, 1, 'the job\'s part ends with a sample of its own');
  assert.equal(r.powerMode, 2);
  // The two one-row frames are the session's decode forwards; the 5-row prompt is not one.
  assert.equal(r.decode?.frames, 2);
  assert.ok(r.decode.forwardMs > 0, `decode forwards took ${r.decode.forwardMs} ms`);
  assert.equal(worker.queue(), 0);
  refSession.close();
  reference.dispose();
});

test('sessions time out when idle; power saving refuses offers and hands back jobs not started', async (t) => {
  const { clock, worker, dim } = await firstBlockWorker(t, 'f16', 5000);
  const out: JobReport[] = [];
  const send = (p: Buffer): void => {
    const r = parseJobReport(p);
    if (r.ok) out.push(r.value);
  };
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 1, sessionId: 1 }), send, true);
  await worker.handle(encodeFrame({ jobId: 1, sessionId: 1, step: 0, position: 0, rows: 2, dim, data: hidden(2, dim, 3) }), send, true);
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 2, sessionId: 2 }), send, true);
  assert.equal(worker.queue(), 2);
  const said = worker.enterSaving(send);
  assert.match(said, /finishing running job 1; handed back 2/);
  assert.ok(out.some((r) => r.type === 'handed-back' && r.jobId === 2));
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 3, sessionId: 3 }), send, true);
  assert.ok(out.some((r) => r.type === 'refused' && r.jobId === 3 && /power saving/.test(r.reason)));
  await clock.advance(6000);
  const timedOut = out.find((r) => r.type === 'report' && r.jobId === 1);
  assert.ok(timedOut && timedOut.type === 'report' && !timedOut.ok && /idle/.test(timedOut.error!));
  assert.equal(worker.queue(), 0);
  worker.leaveSaving();
  // A frame at the wrong position is refused and ends the job with the reason.
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 4, sessionId: 4 }), send, true);
  await worker.handle(encodeFrame({ jobId: 4, sessionId: 4, step: 0, position: 3, rows: 1, dim, data: hidden(1, dim, 1) }), send, true);
  const wrong = out.find((r) => r.type === 'report' && r.jobId === 4);
  assert.ok(wrong && wrong.type === 'report' && /position 3/.test(wrong.error!));
});

/** Counts the timers set on it. */
class CountingClock extends VirtualClock {
  timers = 0;
  override setTimeout(fn: () => void, ms: number): Timer {
    this.timers++;
    return super.setTimeout(fn, ms);
  }
}

test('frames set no timer of their own: the idle timeout still counts from the last frame', async (t) => {
  const clock = new CountingClock(0);
  const { worker, dim } = await firstBlockWorker(t, 'f32', 5000, clock);
  const out: JobReport[] = [];
  const send = (p: Buffer): void => {
    const r = parseJobReport(p);
    if (r.ok) out.push(r.value);
  };
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 1, sessionId: 1 }), send, true);
  const afterOffer = clock.timers;
  for (let step = 0; step < 10; step++) {
    await worker.handle(encodeFrame({ jobId: 1, sessionId: 1, step, position: step, rows: 1, dim, data: hidden(1, dim, step + 1) }), send, true);
    await clock.advance(500);
  }
  assert.equal(clock.timers - afterOffer, 1, 'ten frames 0.5 s apart: only the idle check re-armed itself, once, at 5 s');
  assert.equal(worker.queue(), 1, 'heard from 0.5 s ago: still held, 5 s after the offer');
  await clock.advance(4400);
  assert.equal(worker.queue(), 1, '4.9 s after the last frame');
  await clock.advance(200);
  assert.equal(worker.queue(), 0, '5.1 s after the last frame');
  const report = out.find((r) => r.type === 'report' && r.jobId === 1);
  assert.ok(report && report.type === 'report' && !report.ok && /idle for 5000 ms/.test(report.error!) && report.steps === 10);
});

test('an offer\'s positions size the session: outputs match a reference of that size, and a frame beyond it ends the job', async (t) => {
  const { model, worker, dim } = await firstBlockWorker(t, 'f32', 60_000);
  const reference = new BlockStack(model, { from: 0, to: 1 });
  t.after(() => reference.dispose());
  const refSession = reference.openSession({ capacity: 6 });
  t.after(() => refSession.close());
  const frames: Buffer[] = [];
  const reports: JobReport[] = [];
  const send = (p: Buffer): void => {
    const r = parseJobReport(p);
    if (r.ok) reports.push(r.value);
    else frames.push(p);
  };

  // More positions than the model has are clamped to its context, not refused.
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 2, sessionId: 2, positions: 1_000_000 }), send, true);
  await worker.handle(encodeFrame({ jobId: 2, sessionId: 2, step: 0, position: 0, rows: 1, dim, data: hidden(1, dim, 9) }), send, true);
  assert.equal(frames.length, 1, 'the clamped session computed');
  frames.length = 0;

  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 1, sessionId: 1, positions: 6 }), send, true);
  for (const [i, s] of [{ rows: 5, position: 0 }, { rows: 1, position: 5 }].entries()) {
    const input = hidden(s.rows, dim, i + 1);
    await worker.handle(encodeFrame({ jobId: 1, sessionId: 1, step: i, position: s.position, rows: s.rows, dim, data: input }), send, true);
    const frame = decodeFrame(frames.shift()!);
    assert.ok(frame.ok, !frame.ok ? frame.error : '');
    assert.deepEqual(frame.frame.data, reference.forward(refSession, input, s.rows), `step ${i}: equals a 6-position session in-process`);
  }
  await worker.handle(encodeFrame({ jobId: 1, sessionId: 1, step: 2, position: 6, rows: 1, dim, data: hidden(1, dim, 3) }), send, true);
  const full = reports.find((r) => r.type === 'report' && r.jobId === 1);
  assert.ok(full && full.type === 'report' && !full.ok && /capacity of 6/.test(full.error!), `report: ${JSON.stringify(full)}`);
  assert.equal(frames.length, 0, 'nothing computed past the offered positions');
  assert.equal(worker.queue(), 1, 'only the clamped job is still held');
});

test('a chained job\'s outputs go to the successor its offer names, under the successor\'s session; a route message moves them', async (t) => {
  const { worker, dim } = await firstBlockWorker(t, 'f32', 60_000);
  const sent: Array<{ to: string | undefined; payload: Buffer }> = [];
  const send = (payload: Buffer, hopTo?: string) => void sent.push({ to: hopTo, payload });
  await worker.handle(encodeJson({ v: 1, type: 'offer', jobId: 3, sessionId: 30, next: { nodeId: 'node-b', sessionId: 77 } }), send, true);
  const accept = sent.shift()!;
  const r = parseJobReport(accept.payload);
  assert.ok(r.ok && r.value.type === 'accepted' && accept.to === undefined, 'the accept goes to the gateway');
  const frameAt = (position: number) => encodeFrame({ jobId: 3, sessionId: 30, step: position, position, rows: 1, dim, data: hidden(1, dim, position + 1) });
  const output = () => {
    const { to, payload } = sent.shift()!;
    const d = decodeFrame(payload);
    assert.ok(d.ok);
    return { to, sessionId: d.frame.sessionId, step: d.frame.step, position: d.frame.position };
  };

  await worker.handle(frameAt(0), send, true);
  assert.deepEqual(output(), { to: 'node-b', sessionId: 77, step: 0, position: 0 });
  await worker.handle(encodeJson({ v: 1, type: 'route', jobId: 3, next: { nodeId: 'node-c', sessionId: 90 } }), send, true);
  await worker.handle(frameAt(1), send, true);
  assert.deepEqual(output(), { to: 'node-c', sessionId: 90, step: 1, position: 1 });
  await worker.handle(encodeJson({ v: 1, type: 'route', jobId: 3 }), send, true);
  await worker.handle(frameAt(2), send, true);
  assert.deepEqual(output(), { to: undefined, sessionId: 30, step: 2, position: 2 }, 'no successor: back to the gateway on job/out');
  await worker.handle(encodeJson({ v: 1, type: 'route', jobId: 4 }), send, true);
  assert.equal(worker.counters.routed, 2);
  assert.equal(worker.counters.notHeld, 1, 'a route for a job not held is dropped');
  assert.equal(sent.length, 0);
});
