// The router against nodes emulated at the protocol level (unit tests: no broker): the
// offer/accept/frame exchange, failover on a failed report with the group's history
// replayed to the replacement, cancel and shutdown, and node messages that are garbage.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RealClock } from '../../ground/clock.js';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { loadGatewayModel } from '../../gateway/index.js';
import { JobError } from '../../gateway/jobs.js';
import { chainProfile } from '../../gateway/link.js';
import { Registry } from '../../gateway/registry.js';
import { Router, type GatewayModel } from '../../gateway/router/index.js';
import { NullStore, type Store, type StorePoint } from '../../gateway/store/index.js';
import { selectBackend } from '../../models/backend.js';
import { PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeJson, isFrame, parseJobControl, parseNodeTopic, type Frame, type JobReport } from '../../protocol/index.js';
import { paperProfile } from '../support/protocol-messages.js';

const quiet = pino({ level: 'silent' });
let model: GatewayModel;

before(async () => {
  await selectBackend({ backend: 'cpu' });
  model = loadGatewayModel(undefined, undefined, 0);
});

type Behaviour = (f: Frame) => 'answer' | 'fail' | 'ignore';

/** Nodes that speak the job protocol: accept every offer, and answer frames per `behaviour`. */
function emulated(nodesPerGroup: number, behaviour: (nodeId: string) => Behaviour = () => () => 'answer', maxFrameBytes = 1_000_000, queueTimeoutMs = 0,
  extra: { closeReportDelayMs?: Record<string, number>; store?: Store } = {}) {
  const registry = new Registry({ silenceMs: 60_000, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, { update() {}, forget() {} });
  for (const g of model.groups) {
    for (let i = 1; i <= nodesPerGroup; i++) {
      const id = `${g.name}-n${i}`;
      const shard = { model: 'bundled', firstBlock: g.from, lastBlock: g.to - 1, sha256: g.sha256 };
      registry.birth(id, chainProfile({ ...paperProfile(g.name), queueCapacity: 1, shard }, { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } }), Date.now());
      registry.state(id, { gamma: 1, powerMode: 3, batteryJ: 60_000 }, Date.now());
    }
  }
  const frames: Array<{ nodeId: string; frame: Frame; qos: number }> = [];
  const controls: Array<{ nodeId: string; type: string; qos: number; positions?: number }> = [];
  const router: Router = new Router(
    { fleet: 'f', policy: 'uniform', seed: 1, keepJobs: 10, hopTimeoutMs: 2000, queueTimeoutMs, reportTimeoutMs: 200, frameDtype: 'f32', maxFrameBytes },
    {
      model, registry, store: extra.store ?? new NullStore(quiet), clock: new RealClock(), log: quiet,
      publish(topic, payload, qos) {
        const nodeId = parseNodeTopic(topic)!.nodeId;
        const reply = (r: JobReport | Buffer) => setImmediate(() => router.jobOut(nodeId, Buffer.isBuffer(r) ? r : encodeJson(r)));
        if (!isFrame(payload)) {
          const c = parseJobControl(payload);
          assert.ok(c.ok);
          controls.push({ nodeId, type: c.value.type, qos, ...(c.value.type === 'offer' ? { positions: c.value.positions } : {}) });
          if (c.value.type === 'offer') reply({ v: PROTOCOL_VERSION, type: 'accepted', jobId: c.value.jobId });
          return;
        }
        const d = decodeFrame(payload);
        assert.ok(d.ok);
        const f = d.frame;
        frames.push({ nodeId, frame: f, qos });
        const report = (ok: boolean): JobReport => ({
          v: PROTOCOL_VERSION, type: 'report', jobId: f.jobId, sessionId: f.sessionId, ok, ...(ok ? {} : { error: 'out of memory' }),
          steps: 1, durationMs: 5, energyJ: 1.5, baselineW: 2, powerMode: 3, decode: { frames: 1, forwardMs: 0.25 },
        });
        if (f.close) {
          const delayMs = extra.closeReportDelayMs?.[nodeId];
          if (delayMs !== undefined) setTimeout(() => router.jobOut(nodeId, encodeJson(report(true))), delayMs);
          else reply(report(true));
          return;
        }
        if (f.replay) return;
        const what = behaviour(nodeId)(f);
        // An identity stage: the hidden states come back as they went.
        if (what === 'answer') reply(encodeFrame({ ...f, data: f.data }));
        else if (what === 'fail') reply(report(false));
      },
    },
  );
  return { router, registry, frames, controls };
}

const req = { prompt: { ids: [1, 20, 30, 40] }, maxTokens: 6, temperature: 0, topP: 1, seed: 1, stop: [] };

test('one hop per group per step, offers and close frames at QoS 1, activation frames at QoS 0, every report\'s energy summed', async () => {
  const { router, frames, controls } = emulated(1);
  const s = await router.submit(req).done;
  assert.equal(s.status, 'done');
  assert.equal(s.completionTokens + (s.finishReason === 'stop' ? 1 : 0), frames.filter((f) => !f.frame.close && f.nodeId === 'g1-n1').length);
  assert.deepEqual(controls.map((c) => `${c.nodeId}:${c.type}:${c.qos}`), ['g1-n1:offer:1', 'g2-n1:offer:1', 'g3-n1:offer:1']);
  // 4 prompt rows + 6 tokens − 1 (the last token is never fed back): the nodes size their caches to it.
  assert.ok(controls.every((c) => c.positions === 9), `offers: ${JSON.stringify(controls)}`);
  const g2 = frames.filter((f) => f.nodeId === 'g2-n1').map((f) => f.frame);
  assert.deepEqual(g2.map((f) => [f.position, f.rows, f.close]).slice(0, 2), [[0, 4, false], [4, 1, false]]);
  assert.equal(g2.at(-1)!.close, true);
  assert.equal(s.energyJ, 3 * 1.5);
  assert.ok(frames.every((f) => f.qos === (f.frame.close ? 1 : 0)));
  // The counters are updated once the job's run has settled.
  await new Promise<void>((r) => setImmediate(r));
  assert.deepEqual(router.counters(), { submitted: 1, completed: 1, failed: 0, cancelled: 0, failovers: 0, active: 0, promptTokens: 4, completionTokens: s.completionTokens, energyJ: 4.5 });
});

test('an energy report after reportTimeoutMs still counts: the finished job, the totals and its stored point take it', async () => {
  const points: StorePoint[] = [];
  const store: Store = {
    write: (p) => void points.push(p), flush: async () => {}, close: async () => {},
    stats: () => ({ buffered: 0, dropped: 0, written: points.length, outage: false, refused: 0 }),
  };
  // g2's node reports 400 ms after its close frame, past the router's 200 ms wait.
  const { router } = emulated(1, undefined, undefined, undefined, { closeReportDelayMs: { 'g2-n1': 400 }, store });
  const handle = router.submit(req);
  const s = await handle.done;
  assert.equal(s.status, 'done');
  assert.equal(s.energyJ, 2 * 1.5, 'the summary at the end has the two reports that came in time');
  const jobPoints = () => points.filter((p) => p.measurement === 'job');
  // The router writes the job once its run has settled.
  await new Promise<void>((r) => setImmediate(r));
  assert.equal(jobPoints().length, 1);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(router.job(handle.id)!.energyJ, 3 * 1.5, 'the kept job has all three');
  assert.equal(router.counters().energyJ, 3 * 1.5);
  const [first, again] = jobPoints();
  assert.ok(again, 'the job\'s point is written again');
  assert.equal(again.timestampMs, first!.timestampMs, 'at the same time, so the store replaces the first');
  assert.deepEqual(again.tags, first!.tags);
  assert.equal(again.fields.energyJ, 3 * 1.5);
  // The group's point too: its forward time came with the late report.
  const g2 = points.filter((p) => p.measurement === 'job_group' && p.tags.group === 'g2');
  assert.equal(g2.length, 2);
  assert.equal(g2[0]!.fields.forwardMsPerToken, undefined, 'nothing reported yet when the job ended');
  assert.equal(g2[1]!.fields.forwardMsPerToken, 0.25);
  assert.ok(Math.abs((g2[1]!.fields.linkMsPerToken as number) - ((g2[1]!.fields.hopMsPerToken as number) - 0.25)) < 1e-12);
  assert.deepEqual(router.job(handle.id)!.served.find((g) => g.group === 'g2'), { group: 'g2', nodes: ['g2-n1'], decode: { frames: 1, forwardMs: 0.25 } });
});

test('a stop sequence ends the job as its last token would: close frames to every node, their reports counted, nothing cancelled', async () => {
  const plain = await emulated(1).router.submit({ ...req, maxTokens: 12 }).done;
  assert.equal(plain.completionTokens, 12);
  const stop = plain.text.slice(2, 4);
  assert.equal(stop.length, 2);
  const { router, frames, controls } = emulated(1);
  const s = await router.submit({ ...req, maxTokens: 12, stop: [stop] }).done;
  assert.equal(s.status, 'done');
  assert.equal(s.finishReason, 'stop');
  assert.equal(s.text, plain.text.slice(0, plain.text.indexOf(stop)));
  assert.ok(s.completionTokens <= 4, `${s.completionTokens} tokens`);
  assert.deepEqual(frames.filter((f) => f.frame.close).map((f) => f.nodeId), ['g1-n1', 'g2-n1', 'g3-n1']);
  assert.deepEqual(controls.filter((c) => c.type === 'cancel'), []);
  assert.equal(s.energyJ, 3 * 1.5);
});

test('a failed report moves the group: the replacement gets the group\'s history as one replay frame, then the current step', async () => {
  let g2Frames = 0;
  const { router, frames, controls } = emulated(2, (nodeId) => () => (nodeId === 'g2-n1' && ++g2Frames === 3 ? 'fail' : 'answer'));
  // Uniform with seed 1 may start g2 on either node; steer it to n1 by making n2 busy first.
  router.scheduling.hold('g2-n2');
  const job = router.submit(req);
  await new Promise<void>((r) => setImmediate(r));
  router.scheduling.release('g2-n2');
  const s = await job.done;
  assert.equal(s.status, 'done');
  assert.deepEqual(s.served.find((g) => g.group === 'g2')!.nodes, ['g2-n1', 'g2-n2']);
  assert.equal(s.failovers, 1);
  assert.ok(controls.some((c) => c.nodeId === 'g2-n1' && c.type === 'cancel'), 'the failed node is told the job is gone');
  assert.equal(controls.find((c) => c.nodeId === 'g2-n2' && c.type === 'offer')!.positions, 9, 'the replacement is offered the whole job\'s positions');
  const n2 = frames.filter((f) => f.nodeId === 'g2-n2').map((f) => f.frame);
  // n1 answered steps 0 (4 prompt rows) and 1, and failed step 2 at position 5.
  assert.deepEqual([n2[0]!.replay, n2[0]!.position, n2[0]!.rows], [true, 0, 5]);
  const sentToN1 = frames.filter((f) => f.nodeId === 'g2-n1' && !f.frame.close).map((f) => f.frame.data);
  const history = new Float32Array(5 * model.config.dim);
  history.set(sentToN1[0]!, 0);
  history.set(sentToN1[1]!, 4 * model.config.dim);
  assert.deepEqual(n2[0]!.data, history, 'the replay is exactly what the group was sent before');
  assert.deepEqual([n2[1]!.replay, n2[1]!.position, n2[1]!.rows, n2[1]!.step], [false, 5, 1, 2]);
});

test('cancel and shutdown end a job with their kinds, and the serving node is told', async () => {
  const { router, controls } = emulated(1, () => () => 'ignore');
  const cancelled = router.submit(req);
  await new Promise((r) => setTimeout(r, 50));
  cancelled.cancel('user went away');
  await assert.rejects(cancelled.done, (e: unknown) => e instanceof JobError && e.kind === 'cancelled' && /user went away/.test(e.message));
  assert.equal(router.job(cancelled.id)!.status, 'cancelled');
  assert.ok(controls.some((c) => c.type === 'cancel' && c.nodeId === 'g1-n1'));
  const running = router.submit(req);
  await new Promise((r) => setTimeout(r, 50));
  await router.close();
  await assert.rejects(running.done, (e: unknown) => e instanceof JobError && e.kind === 'shutdown');
  assert.throws(() => router.submit(req), (e: unknown) => e instanceof JobError && e.kind === 'shutdown');
  assert.deepEqual([router.counters().cancelled, router.counters().failed, router.counters().active], [1, 1, 0]);
});

test('whatever a node sends on job/out, the router counts what it cannot use and never throws', () => {
  const { router } = emulated(1);
  const good = encodeFrame({ jobId: 1, sessionId: 1, step: 0, position: 0, rows: 1, dim: 4, data: new Float32Array(4) });
  const corrupt = Buffer.from(good);
  corrupt[40] = corrupt[40]! ^ 0xff;
  const payloads = [
    Buffer.alloc(0), Buffer.from('not json'), Buffer.from('{"v":1,"type":"report"}'), Buffer.from('null'),
    corrupt, good.subarray(0, 20), Buffer.alloc(64 * 1024, 0x7b),
  ];
  for (const p of payloads) assert.doesNotThrow(() => router.jobOut('g1-n1', p));
  assert.equal(router.stats.invalid, payloads.length);
  router.jobOut('g1-n1', good);
  router.jobOut('g1-n1', encodeJson({ v: 1, type: 'accepted', jobId: 424242 }));
  assert.equal(router.stats.stale, 2, 'valid messages for jobs that do not exist');
});

test('rows beyond maxFrameBytes go in several frames, for the prompt and for a replay, with the same result', async () => {
  const long = { ...req, prompt: { ids: [1, 20, 30, 40, 50, 60, 70, 80] }, maxTokens: 5 };
  const whole = await emulated(1).router.submit(long).done;
  // 3 rows of 192 f32 values and the header per frame.
  const maxFrameBytes = 36 + 3 * 192 * 4;
  let g1Frames = 0;
  const { router, frames } = emulated(2, (nodeId) => () => (nodeId === 'g1-n1' && ++g1Frames === 5 ? 'fail' : 'answer'), maxFrameBytes);
  router.scheduling.hold('g1-n2');
  const job = router.submit(long);
  await new Promise<void>((r) => setImmediate(r));
  router.scheduling.release('g1-n2');
  const s = await job.done;
  assert.equal(s.text, whole.text);
  assert.ok(frames.every((f) => f.frame.rows <= 3), 'no frame over the limit');
  const g2 = frames.filter((f) => f.nodeId.startsWith('g2-') && !f.frame.close).map((f) => [f.frame.position, f.frame.rows]);
  assert.deepEqual(g2.slice(0, 3), [[0, 3], [3, 3], [6, 2]], 'the prompt in three frames');
  // g1-n1 answered the 3 prompt frames and step 1, then failed step 2 (position 9): the
  // replacement replays 9 rows in three frames before the step's own frame.
  const n2 = frames.filter((f) => f.nodeId === 'g1-n2').map((f) => [f.frame.replay, f.frame.position, f.frame.rows]);
  assert.deepEqual(n2.slice(0, 4), [[true, 0, 3], [true, 3, 3], [true, 6, 3], [false, 9, 1]]);
  assert.throws(() => emulated(1, undefined, 36 + 100), /router.maxFrameBytes 136 cannot hold one row of 768 bytes/);
});

test('a job waits while every node of a group is busy, runs when a place frees, and gives up after queueTimeoutMs', async () => {
  const { router } = emulated(1, undefined, undefined, 5000);
  const first = router.submit({ ...req, maxTokens: 20 });
  const second = router.submit(req);
  // Looked at as soon as the first job holds the node (a fixed delay lets a fast machine finish it).
  const firstTokens: number[] = [];
  first.onToken((t) => firstTokens.push(t.index));
  while (firstTokens.length === 0) await new Promise((r) => setImmediate(r));
  assert.equal(router.job(first.id)!.status, 'running');
  assert.equal(router.job(second.id)!.status, 'queued', 'queue capacity 1: the second job waits for g1-n1');
  const [a, b] = await Promise.all([first.done, second.done]);
  assert.equal(a.status, 'done');
  assert.equal(b.status, 'done');
  assert.ok(b.finishedMs! >= a.finishedMs!, 'the second ran after the first freed its places');

  const stuck = emulated(1, () => () => 'ignore', undefined, 300);
  const holder = stuck.router.submit(req);
  const waiter = stuck.router.submit(req);
  await assert.rejects(waiter.done, (e: unknown) => e instanceof JobError && e.kind === 'no-node' && e.group === 'g1' &&
    e.message === 'group g1: its only node is busy (queue full) for 300 ms; retry later');
  holder.cancel('test over');
  await assert.rejects(holder.done);
});
