// Node death mid-generation, 50 times: on each of 50 jobs the serving node of one group
// dies at a seeded random token — most by dropping its line (the broker sends its will),
// some by going silent (the hop timeout finds it). Every job must complete, and its token
// ids and text must be identical to the undisturbed generation of the same request and seed
// (`heliomesh model generate --groups 3`: the same loop over in-process stages). The dead node is restarted before the next job.
// The hops are chained: the replacement's offer names the next group's node, and the node
// before it is told to send there, so only the hop that failed goes through the gateway.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompletionRequest } from '../../gateway/jobs.js';
import { Field } from '../support/field.js';
import { until } from '../../ground/until.js';
import { Reference, request } from '../gateway/e2e-reference.js';
import { Rng } from '../fuzz/generator.js';
import { captureLog, type Captured } from '../support/log.js';

const JOBS = 50;
/** Every fifth death is silence: each costs a hop timeout, so they are the rarer kind. */
const SILENT_EVERY = 5;
const HOP_TIMEOUT_MS = 1500;
const PROMPTS = ['The little robot', 'Once upon a time', 'A tree', 'The river', 'The moon', 'She said'];

let field: Field;
let cap: Captured;
let reference: Reference;

before(async () => {
  cap = captureLog();
  field = await Field.start({
    log: cap.log,
    gateway: { router: { hopTimeoutMs: HOP_TIMEOUT_MS, reportTimeoutMs: 500 } },
    // Every relay reaches the broker from 127.0.0.1: fifty restarts in a few minutes would
    // otherwise meet the per-address connect limit, which is for password guessers.
    broker: { connectsPerMinutePerAddress: 10_000 },
  });
  reference = Reference.load(3);
  await field.ready();
});

after(async () => {
  await field?.close();
  reference?.dispose();
});

interface Plan {
  req: CompletionRequest;
  expected: string;
  expectedIds: number[];
  group: string;
  /** Kill once this many tokens have been generated. */
  afterTokens: number;
  mode: 'will' | 'silence';
}

/** Seeded jobs, each with at least 3 tokens left after the kill, so the group is needed again. */
async function plans(rng: Rng): Promise<Plan[]> {
  const out: Plan[] = [];
  while (out.length < JOBS) {
    const req = request({
      prompt: rng.pick(PROMPTS), maxTokens: rng.int(12, 20), seed: rng.int(1, 1_000_000),
      temperature: rng.pick([0, 0.6, 0.8, 1]), topP: rng.pick([0.9, 1]),
    });
    const expected = await reference.generate(req);
    if (expected.ids.length < 6) continue; // ended early: too short to die in the middle of
    out.push({
      req, expected: expected.text, expectedIds: expected.ids, group: rng.pick(['g1', 'g2', 'g3']), afterTokens: rng.int(1, expected.ids.length - 3),
      mode: (out.length + 1) % SILENT_EVERY === 0 ? 'silence' : 'will',
    });
  }
  return out;
}

test(`the serving node of one group dies mid-generation on each of ${JOBS} jobs: all complete with the undisturbed text`, async (t) => {
  const rng = new Rng(50);
  const failures: string[] = [];
  let failovers = 0;
  const path = field.gateway.router.path;
  for (const [i, p] of (await plans(rng)).entries()) {
    const before = { ...path };
    const job = field.gateway.jobs.submit(p.req);
    const ids: number[] = [];
    job.onToken((t) => ids.push(t.id));
    let tokens = 0;
    let victim: string | undefined;
    let killed: Promise<void> | undefined;
    job.onToken(() => {
      tokens++;
      if (tokens !== p.afterTokens) return;
      victim = field.gateway.jobs.job(job.id)!.served.find((g) => g.group === p.group)!.nodes.at(-1)!;
      killed = field.node(victim).kill(p.mode);
    });
    const s = await job.done;
    await killed;
    assert.ok(victim, `job ${i}: the kill point was reached`);
    const served = s.served.find((g) => g.group === p.group)!.nodes;
    if (s.text !== p.expected) failures.push(`job ${i} (${p.mode} of ${victim} after ${p.afterTokens}): ${JSON.stringify(s.text)} != ${JSON.stringify(p.expected)}`);
    if (ids.join() !== p.expectedIds.join()) failures.push(`job ${i} (${p.mode} of ${victim} after ${p.afterTokens}): ids ${ids.join()} != ${p.expectedIds.join()}`);
    assert.equal(s.status, 'done');
    assert.ok(s.failovers >= 1, `job ${i}: the death cost a failover`);
    assert.equal(served[0], victim, `job ${i}: the victim served ${p.group} first`);
    assert.ok(served.length >= 2 && !served.slice(1).includes(victim), `job ${i}: another node took over (${served.join(', ')})`);
    failovers += s.failovers;
    // Without the route following the replacement, every later token of the group would go through the gateway.
    const forwards = ids.length + (s.finishReason === 'stop' ? 1 : 0);
    const unchained = 2 * (forwards - 1) - (path.handed - before.handed);
    assert.ok(unchained >= 0 && unchained <= s.failovers, `job ${i}: ${unchained} decode hops went through the gateway for ${s.failovers} failover(s)`);
    await field.node(victim).restart();
    await field.ready().catch((err: Error) => {
      const states = field.nodes.map((n) => {
        const r = field.gateway.registry.get(n.nodeId);
        return `${n.nodeId}: running=${n.running} online=${r?.online} gamma=${r?.gamma} solved=${r?.solved !== undefined}`;
      });
      const recs = cap.records.filter((r) => JSON.stringify(r).includes(victim!)).slice(-40).map((r) => JSON.stringify(r));
      throw new Error(`job ${i}, after restarting ${victim} (${p.mode}): ${err.message}\n${states.join('\n')}\n${recs.join('\n')}`);
    });
  }
  assert.deepEqual(failures, [], 'every job\'s ids and text equal the undisturbed generation');
  t.diagnostic(`${JOBS} jobs, ${failovers} failovers`);
  const c = field.gateway.jobs.counters();
  assert.equal(c.active, 0);
  assert.equal(c.failed, 0);
  await until('no node holds a job', () => field.nodes.every((n) => (n.agent?.worker?.queue() ?? 0) === 0));
  await until('no route grant outlives its job', () => field.gateway.broker.hops.size === 0);
});
