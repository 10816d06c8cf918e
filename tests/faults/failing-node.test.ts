// A node that accepts every job and then fails it loses its standing the way a silent one
// does: after the one failover it costs, the group's other node serves, and the failing
// node gets a job again only when nobody in good standing could serve one. A clean run —
// a job served to its close frame and reported ok — gives its standing back.
//
// Real agents on virtual hardware behind a real gateway (tests/support/field.ts); the
// failing node's block worker throws on every frame, as a worker that runs out of memory
// would, so the agent reports each job it accepted as failed. Nodes emulated at the
// protocol level show the other cases: a wrong-shaped answer is failing, a refusal is not.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RealClock } from '../../ground/clock.js';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { loadGatewayModel } from '../../gateway/index.js';
import type { CompletionRequest } from '../../gateway/jobs.js';
import { chainProfile } from '../../gateway/link.js';
import { Registry } from '../../gateway/registry.js';
import { Router } from '../../gateway/router/index.js';
import { NullStore } from '../../gateway/store/index.js';
import { PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeJson, isFrame, parseJobControl, parseNodeTopic } from '../../protocol/index.js';
import { Field } from '../support/field.js';
import { until } from '../../ground/until.js';
import { paperProfile } from '../support/protocol-messages.js';

const GROUP = 'g2';
const req: CompletionRequest = { prompt: { ids: [1, 20, 30, 40] }, maxTokens: 4, temperature: 0, topP: 1, seed: 1, stop: [] };

let field: Field;

before(async () => {
  // A job that waits for a queue place gives up after queueTimeoutMs: short, so a wrong wait shows as a failure, not a hang.
  field = await Field.start({ nodesPerGroup: 2, gateway: { router: { queueTimeoutMs: 3000 } } });
  await field.ready();
});

after(async () => {
  await field?.close();
});

const servedIn = (nodes: { group: string; nodes: string[] }[]) => nodes.find((g) => g.group === GROUP)!.nodes;

const standing = (nodeId: string) => {
  const g = field.gateway.jobs.scheduler().groups.find((x) => x.group === GROUP)!;
  return g.nodes.find((n) => n.nodeId === nodeId)!.available;
};

test('a node that fails every job it accepts is chosen at most once in 4 jobs, and again after a clean run', async () => {
  // Whichever node of the group is given the first job is the failing one, so the test
  // does not depend on which of two equal nodes the policy prefers.
  let failing: string | undefined;
  let behaves = false;
  for (const n of field.group(GROUP)) {
    const worker = n.agent!.worker!;
    const run = worker.run.bind(worker);
    worker.run = (job, f) => {
      failing ??= n.nodeId;
      if (n.nodeId === failing && !behaves) throw new Error('out of memory');
      return run(job, f);
    };
  }
  let chosen = 0;
  for (let i = 0; i < 4; i++) {
    const s = await field.gateway.jobs.submit(req).done;
    assert.equal(s.status, 'done', `job ${i + 1} completes`);
    if (servedIn(s.served).includes(failing!)) chosen++;
  }
  assert.ok(failing, 'a node of the group was given a job');
  const good = field.group(GROUP).find((n) => n.nodeId !== failing)!.nodeId;
  assert.equal(chosen, 1, `the failing node ${failing} was chosen ${chosen} of 4 times`);
  assert.equal(standing(failing!), false, 'it has lost its standing while it is online and active');

  // It behaves again; with the other node gone it is the group's last resort, and runs a job cleanly.
  behaves = true;
  await field.node(good).kill('stop');
  await until(`${good} offline`, () => field.gateway.registry.get(good)?.online === false);
  const clean = await field.gateway.jobs.submit(req).done;
  assert.equal(clean.status, 'done');
  assert.deepEqual(servedIn(clean.served), [failing]);
  assert.equal(clean.failovers, 0);
  await until(`${failing} in good standing`, () => standing(failing!));

  // With the other node back and busy, a node in good standing is chosen (a suspect would be passed over: the job would wait).
  await field.node(good).start();
  await field.ready();
  field.gateway.router.scheduling.hold(good);
  try {
    const again = await field.gateway.jobs.submit(req).done;
    assert.deepEqual(servedIn(again.served), [failing]);
  } finally {
    field.gateway.router.scheduling.release(good);
  }
});

test('standing: messages clear silence but not failing; a clean run or a new birth clears failing', async () => {
  const { gateway } = field;
  const s = gateway.router.scheduling;
  const g1 = gateway.model.groups[0]!;
  const [a, b] = field.group('g1').map((n) => n.nodeId) as [string, string];
  const reasons = () => s.views(g1).reasons;
  const now = () => Date.now();
  await until('g1 idle', () => reasons().every((r) => r === ''));
  s.suspect(a, now(), 'failing');
  assert.deepEqual(reasons(), ['failing', '']);
  s.heard(a);
  // A state report from the node, as its events bring: it does not clear a failing node.
  const n = gateway.registry.get(a)!;
  gateway.registry.state(a, { gamma: n.gamma, powerMode: n.powerMode }, now() + 1);
  assert.deepEqual(reasons(), ['failing', '']);
  s.cleanRun(a);
  assert.deepEqual(reasons(), ['', '']);
  s.suspect(b, now(), 'silent');
  assert.deepEqual(reasons(), ['', 'silent']);
  s.heard(b);
  assert.deepEqual(reasons(), ['', '']);
  // A failing node that then misses a deadline is still failing once it is heard from.
  s.suspect(a, now(), 'failing');
  s.suspect(a, now(), 'silent');
  s.heard(a);
  assert.deepEqual(reasons(), ['failing', '']);
  // The agent starts again: a new birth.
  await field.node(a).restart();
  await field.ready();
  assert.deepEqual(reasons(), ['', '']);
});

/**
 * A router over nodes emulated at the protocol level (no broker), two per group: every
 * offer is accepted and every frame answered, except by g2-n1, which refuses every offer
 * or answers every frame with one row too many.
 */
function emulated(g2n1: 'refuses' | 'wrong-shape') {
  const quiet = pino({ level: 'silent' });
  const model = loadGatewayModel(undefined, undefined, 0);
  const registry = new Registry({ silenceMs: 60_000, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, { update() {}, forget() {} });
  for (const g of model.groups) {
    for (const id of [`${g.name}-n1`, `${g.name}-n2`]) {
      const shard = { model: 'bundled', firstBlock: g.from, lastBlock: g.to - 1, sha256: g.sha256 };
      registry.birth(id, chainProfile({ ...paperProfile(g.name), queueCapacity: 1, shard }, { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } }), Date.now());
      registry.state(id, { gamma: 1, powerMode: 3, batteryJ: 60_000 }, Date.now());
    }
  }
  const offers = new Map<string, number>();
  const router: Router = new Router(
    { fleet: 'f', policy: 'uniform', seed: 1, keepJobs: 10, hopTimeoutMs: 5000, queueTimeoutMs: 5000, reportTimeoutMs: 200, frameDtype: 'f32', maxFrameBytes: 1_000_000 },
    {
      model, registry, store: new NullStore(quiet), clock: new RealClock(), log: quiet,
      publish(topic, payload) {
        const nodeId = parseNodeTopic(topic)!.nodeId;
        const odd = nodeId === 'g2-n1';
        const reply = (b: Buffer) => setImmediate(() => router.jobOut(nodeId, b));
        if (!isFrame(payload)) {
          const c = parseJobControl(payload);
          if (!c.ok || c.value.type !== 'offer') return;
          offers.set(nodeId, (offers.get(nodeId) ?? 0) + 1);
          const { jobId } = c.value;
          reply(encodeJson(odd && g2n1 === 'refuses' ? { v: PROTOCOL_VERSION, type: 'refused', jobId, reason: 'queue full (1)' } : { v: PROTOCOL_VERSION, type: 'accepted', jobId }));
          return;
        }
        const d = decodeFrame(payload);
        assert.ok(d.ok);
        const f = d.frame;
        if (f.close) {
          reply(encodeJson({ v: PROTOCOL_VERSION, type: 'report', jobId: f.jobId, sessionId: f.sessionId, ok: true, steps: 1, durationMs: 5, energyJ: 1, baselineW: 2, powerMode: 3 }));
          return;
        }
        if (f.replay) return;
        const rows = odd && g2n1 === 'wrong-shape' ? f.rows + 1 : f.rows;
        reply(encodeFrame({ ...f, rows, data: new Float32Array(rows * f.dim) }));
      },
    },
  );
  return { router, g2: model.groups[1]!, offers };
}

/** Runs one job with g2-n1 offered the group first: uniform may pick either, so n2 is busy until n1 has had its offer. */
async function firstOnN1(router: Router, offers: Map<string, number>) {
  router.scheduling.hold('g2-n2');
  const job = router.submit(req);
  await until('g2-n1 offered the job', () => (offers.get('g2-n1') ?? 0) > 0);
  // The failover waits for n2's place, which frees now.
  router.scheduling.release('g2-n2');
  return job.done;
}

test('a node that answers a frame with one of the wrong shape is failing too', async () => {
  const { router, g2, offers } = emulated('wrong-shape');
  const s1 = await firstOnN1(router, offers);
  assert.equal(s1.status, 'done');
  assert.deepEqual(servedIn(s1.served), ['g2-n1', 'g2-n2']);
  assert.deepEqual(router.scheduling.views(g2).reasons, ['failing', '']);
  for (let i = 0; i < 3; i++) {
    const s = await router.submit(req).done;
    assert.deepEqual(servedIn(s.served), ['g2-n2'], `job ${i + 2} avoids the failing node`);
  }
});

test('a node that refuses an offer keeps its standing: it said in time that it would not serve', async () => {
  const { router, g2, offers } = emulated('refuses');
  const s1 = await firstOnN1(router, offers);
  assert.equal(s1.status, 'done');
  assert.equal(s1.failovers, 1);
  assert.deepEqual(servedIn(s1.served), ['g2-n2']);
  assert.deepEqual(router.scheduling.views(g2).reasons, ['', '']);
});
