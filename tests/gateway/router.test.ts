// The router's parts without a fleet: the live scheduler over a registry fed with births
// (availability, the no-node message, seeded picks, decisions written), request checks,
// and the stop-sequence cutting of streamed text.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RealClock } from '../../ground/clock.js';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { loadGatewayModel } from '../../gateway/index.js';
import { JobError } from '../../gateway/jobs.js';
import { chainProfile } from '../../gateway/link.js';
import { Registry } from '../../gateway/registry.js';
import { Router, SchedulerService, type GatewayModel, type ModelGroup } from '../../gateway/router/index.js';
import { StopText } from '../../gateway/router/text.js';
import type { Store, StorePoint } from '../../gateway/store/index.js';
import { selectBackend } from '../../models/backend.js';
import type { NodeProfile } from '../../protocol/index.js';
import { paperProfile } from '../support/protocol-messages.js';

const quiet = pino({ level: 'silent' });
let model: GatewayModel;

before(async () => {
  await selectBackend({ backend: 'cpu' });
  model = loadGatewayModel(undefined, undefined, 0);
});

class CapturingStore implements Store {
  readonly points: StorePoint[] = [];
  write(p: StorePoint): void {
    this.points.push(p);
  }
  async flush(): Promise<void> {}
  stats() {
    return { buffered: 0, dropped: 0, written: 0, outage: false, refused: 0 };
  }
  async close(): Promise<void> {}
}

/** A registry with `n` nodes per group, each announcing its group's bundled shard, active. */
function fleet(n: number, over: (g: ModelGroup, i: number) => Partial<NodeProfile> = () => ({})) {
  const registry = new Registry({ silenceMs: 60_000, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, { update() {}, forget() {} });
  const now = Date.now();
  for (const g of model.groups) {
    for (let i = 1; i <= n; i++) {
      const p: NodeProfile = {
        ...paperProfile(g.name), queueCapacity: 1,
        shard: { model: 'bundled', firstBlock: g.from, lastBlock: g.to - 1, sha256: g.sha256 }, ...over(g, i),
      };
      registry.birth(`${g.name}-n${i}`, chainProfile(p, { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } }), now);
      registry.state(`${g.name}-n${i}`, { gamma: 1, powerMode: 3, batteryJ: 60_000 }, now);
    }
  }
  return registry;
}

function service(registry: Registry, seed = 1, policy = 'uniform', store: Store = new CapturingStore()) {
  return new SchedulerService({ fleet: 'f', policy, seed }, { registry, model, store, clock: new RealClock(), log: quiet });
}

test('the groups are the manifest\'s block ranges, named g1..g3 unless configured', () => {
  assert.deepEqual(model.groups.map((g) => [g.name, g.from, g.to]), [['g1', 0, 2], ['g2', 2, 4], ['g3', 4, 5]]);
  const g1 = model.groups[0]!;
  assert.ok(model.serves(g1, { model: 'bundled', firstBlock: 0, lastBlock: 1 }), 'by folder name without a sha256');
  assert.ok(!model.serves(g1, { model: 'other', firstBlock: 0, lastBlock: 1 }));
  assert.ok(!model.serves(g1, { model: 'bundled', firstBlock: 0, lastBlock: 1, sha256: '0'.repeat(64) }), 'the sha256 decides when given');
  assert.ok(!model.serves(g1, { model: 'bundled', firstBlock: 0, lastBlock: 2 }));
  assert.throws(() => loadGatewayModel(undefined, ['a', 'b'], 0), /model.groups names 2 groups, but the manifest has 3 block ranges/);
});

test('with nobody able to serve, the pick says which group and why', () => {
  const registry = fleet(3);
  const s = service(registry);
  const g2 = model.groups[1]!;
  registry.will('g2-n1', Date.now());
  registry.state('g2-n2', { gamma: 0, powerMode: 0 }, Date.now());
  registry.state('g2-n3', { gamma: 0, powerMode: 0 }, Date.now());
  const none = s.pick('job-1', g2, new Set(), 'dispatch');
  assert.deepEqual(none, { ok: false, why: 'none', message: 'group g2: all 3 nodes are offline or in power saving (1 offline, 2 in power saving)' });
  const lonely = service(fleet(0));
  const r = lonely.pick('job-1', model.groups[2]!, new Set(), 'dispatch');
  assert.ok(!r.ok && r.message === 'group g3: no node serves it; none has announced blocks 4-4 of model bundled');
  const wrong = service(fleet(1, (g) => ({ shard: { model: 'bundled', firstBlock: g.from, lastBlock: g.to } })));
  const w = wrong.pick('job-1', model.groups[0]!, new Set(), 'dispatch');
  assert.ok(!w.ok && /1 node\(s\) declare the group but hold another shard/.test(w.message));
});

test('full queues make a group busy (wait); nodes the job failed on are skipped, silent ones while another could serve, until heard from', () => {
  const registry = fleet(2);
  const s = service(registry);
  const g1 = model.groups[0]!;
  s.hold('g1-n1');
  s.hold('g1-n2');
  const busy = s.pick('job-1', g1, new Set(), 'dispatch');
  assert.ok(!busy.ok && busy.why === 'busy', 'queue capacity 1 per node, counted by the router');
  assert.equal(s.servable(g1, new Set()), null, 'busy nodes can still serve later');
  s.release('g1-n1');
  const ok = s.pick('job-1', g1, new Set(), 'dispatch');
  assert.ok(ok.ok && ok.nodeId === 'g1-n1');
  s.release('g1-n2');
  const failed = s.pick('job-2', g1, new Set(['g1-n1']), 'failover');
  assert.ok(failed.ok && failed.nodeId === 'g1-n2', 'a node this job gave up on is not picked again');
  s.suspect('g1-n2', Date.now() + 10);
  const passed = s.pick('job-3', g1, new Set(), 'dispatch');
  assert.ok(passed.ok && passed.nodeId === 'g1-n1', 'a silent node is passed over while another could serve');
  s.hold('g1-n1');
  const waits = s.pick('job-3', g1, new Set(), 'dispatch');
  assert.ok(!waits.ok && waits.why === 'busy' && waits.message.includes('1 silent'), !waits.ok ? waits.message : '');
  s.release('g1-n1');
  const last = s.pick('job-2', g1, new Set(['g1-n1']), 'failover');
  assert.ok(last.ok && last.nodeId === 'g1-n2', 'when nobody else could serve, the silent node is tried rather than the job failed');
  registry.state('g1-n2', { gamma: 1, powerMode: 3 }, Date.now() + 20);
  assert.deepEqual(s.views(g1).reasons, ['', ''], 'heard from again after the deadline');
});

test('picks are drawn from a seeded generator: the same seed repeats them, and every decision is written', () => {
  const registry = fleet(3);
  const seq = (seed: number) => {
    const s = service(registry, seed);
    return Array.from({ length: 20 }, (_, i) => {
      const p = s.pick(`job-${i}`, model.groups[i % 3]!, new Set(), 'dispatch');
      return p.ok ? p.nodeId : '';
    });
  };
  assert.deepEqual(seq(3), seq(3));
  assert.notDeepEqual(seq(3), seq(4));
  assert.ok(new Set(seq(3)).size > 3, 'uniform spreads the jobs');
  const store = new CapturingStore();
  const s = service(registry, 1, 'long-term', store);
  const p = s.pick('job-9', model.groups[1]!, new Set(), 'dispatch');
  assert.ok(p.ok);
  assert.equal(store.points.length, 1);
  const point = store.points[0]!;
  assert.equal(point.measurement, 'scheduler_decision');
  assert.deepEqual(point.tags, { fleet: 'f', group: 'g2', policy: 'long-term', node: p.nodeId });
  assert.equal(point.fields.jobId, 'job-9');
  assert.equal(point.fields.candidates, 3);
  assert.equal(point.fields.available, 3);
  // No solved q_lim yet: long-term falls back to uniform over the available nodes.
  assert.ok(Math.abs((point.fields.probability as number) - 1 / 3) < 1e-12);
  const view = s.view();
  assert.equal(view.policy, 'long-term');
  assert.deepEqual(view.groups[1]!.lastDecision, p.decision);
  assert.deepEqual(Object.keys(p.decision.probabilities).sort(), ['g2-n1', 'g2-n2', 'g2-n3']);
  assert.equal(view.groups[0]!.nodes.length, 3);
});

test('requests that cannot run are refused at once with bad-request', () => {
  const router = new Router(
    { fleet: 'f', policy: 'uniform', seed: 1, keepJobs: 10, hopTimeoutMs: 1000, queueTimeoutMs: 0, reportTimeoutMs: 0, frameDtype: 'f32', maxFrameBytes: 1_000_000 },
    { model, registry: fleet(0), store: new CapturingStore(), clock: new RealClock(), log: quiet, publish() {} },
  );
  const base = { prompt: 'hi', maxTokens: 4, temperature: 0, topP: 1, seed: 1, stop: [] };
  const refused = (over: object, pattern: RegExp) => assert.throws(() => router.submit({ ...base, ...over }), (err: unknown) =>
    err instanceof JobError && err.kind === 'bad-request' && pattern.test(err.message));
  refused({ prompt: { ids: [1, 93] } }, /token id 93 is outside the vocabulary \[0, 93\)/);
  refused({ prompt: { ids: Array<number>(257).fill(5) } }, /257 tokens; the model's context is 256/);
  refused({ prompt: { ids: [] } }, /empty/);
  refused({ topP: 0 }, /topP/);
  refused({ maxTokens: 1.5 }, /maxTokens/);
  assert.deepEqual(router.encode('a'), [model.tokenizer!.bos, ...model.tokenizer!.encode('a')]);
  assert.equal(router.counters().submitted, 0);
});

test('streamed text stops before a stop sequence, holding back what may start one', () => {
  const tok = model.tokenizer!;
  const run = (text: string, stops: string[]) => {
    const cut = new StopText(tok, stops);
    const shown: string[] = [];
    let stopped = false;
    for (const [i, id] of tok.encode(text).entries()) {
      const r = cut.push(i, id);
      shown.push(...r.events.map((e) => e.text));
      if (r.stopped) {
        stopped = true;
        break;
      }
    }
    if (!stopped) shown.push(...cut.end().map((e) => e.text));
    return { shown: shown.join(''), final: cut.text, stopped };
  };
  assert.deepEqual(run('one. two. three', ['. t']), { shown: 'one', final: 'one', stopped: true });
  assert.deepEqual(run('a.b.c', ['..']), { shown: 'a.b.c', final: 'a.b.c', stopped: false });
  assert.deepEqual(run('say hello there', ['lo t', 'xyz']), { shown: 'say hel', final: 'say hel', stopped: true });
  assert.deepEqual(run('plain', []), { shown: 'plain', final: 'plain', stopped: false });
});
