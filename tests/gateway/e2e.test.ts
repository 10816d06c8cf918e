// End to end through a real field: 3 groups × 3 agents on virtual hardware, the gateway's
// broker, registry, scheduler and router. A completion must equal in-process generation
// with `--groups 3` token for token, also when the serving node of a group dies mid-job.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { JobError, type CompletionRequest, type JobHandle, type JobSummary } from '../../gateway/jobs.js';
import { Field } from '../support/field.js';
import { until } from '../../ground/until.js';
import { Reference, request, runJob } from './e2e-reference.js';

let field: Field;
let reference: Reference;

before(async () => {
  field = await Field.start({ gateway: { router: { hopTimeoutMs: 3000, reportTimeoutMs: 3000 } } });
  reference = Reference.load(3);
  await field.ready();
});

after(async () => {
  await field?.close();
  reference?.dispose();
});

test('a greedy completion through 3 groups × 3 nodes equals in-process generation with --groups 3', async () => {
  const req = request({ maxTokens: 48 });
  const expected = await reference.generate(req);
  const { s, tokens } = await runJob(field.gateway.jobs, req);
  assert.equal(s.status, 'done');
  assert.equal(s.text, expected.text);
  assert.equal(tokens.map((t) => t.text).join(''), expected.text, 'the token stream adds up to the text');
  assert.equal(s.completionTokens, expected.ids.length);
  assert.equal(s.failovers, 0);
  assert.deepEqual(s.served.map((g) => [g.group, g.nodes.length]), [['g1', 1], ['g2', 1], ['g3', 1]]);
  for (const g of s.served) assert.ok(g.nodes[0]!.startsWith(`${g.group}-`), `${g.nodes[0]} serves ${g.group}`);
  // Every report from a metering node carries a positive uncertainty (at least the INA219's LSBs over the job).
  assert.ok(s.energyUncertaintyJ !== undefined && Number.isFinite(s.energyUncertaintyJ) && s.energyUncertaintyJ > 0, `the nodes reported the job's energy: ${s.energyJ} ± ${s.energyUncertaintyJ} J`);
  assert.ok(s.energyJ >= 0, `energy ${s.energyJ} J`);
  assert.ok(s.latencyMs! > 0);
  // The loop's own timing: every decode token's hop through each group, and the head's share.
  const t = s.timing!;
  assert.equal(t.promptTokens, s.promptTokens);
  // Each token after the first took one decode step, and so did a stop id that ended the text unshown.
  assert.equal(t.decodeTokens, s.finishReason === 'stop' ? s.completionTokens : s.completionTokens - 1);
  assert.equal(t.stageDecodeMs.length, 3);
  for (const ms of t.stageDecodeMs) assert.ok(ms > 0 && ms < t.decodeMs, `a group's share ${ms} ms of ${t.decodeMs} ms`);
  assert.ok(t.headDecodeMs > 0 && Math.abs(t.headDecodeMs + t.stageDecodeMs.reduce((a, b) => a + b, 0) - t.decodeMs) < 1e-6 * t.decodeMs + 1e-9, `head ${t.headDecodeMs} ms + groups = ${t.decodeMs} ms`);
});

test('a sampled completion (temperature 0.9, top-p 0.95, seed 7) equals in-process generation with the same seed', async () => {
  const req = request({ prompt: 'Once upon a time', temperature: 0.9, topP: 0.95, seed: 7, maxTokens: 48 });
  const expected = await reference.generate(req);
  const s = await field.gateway.jobs.submit(req).done;
  assert.equal(s.text, expected.text);
  assert.equal(s.completionTokens, expected.ids.length);
});

/** Submits `req` and waits for five tokens: the job, its expected text and the node serving `group`. */
async function midJob(req: CompletionRequest, group: string): Promise<{ job: JobHandle; expected: string; node: string }> {
  const expected = (await reference.generate(req)).text;
  const job = field.gateway.jobs.submit(req);
  let tokens = 0;
  job.onToken(() => tokens++);
  await until('five tokens', () => tokens >= 5);
  const node = field.gateway.jobs.job(job.id)!.served.find((g) => g.group === group)!.nodes[0]!;
  return { job, expected, node };
}

/** Kills the node serving `group` of a long job after a few tokens, and returns the summary. */
async function killMidJob(group: string, mode: 'will' | 'silence'): Promise<{ s: JobSummary; expected: string; victim: string }> {
  const { job, expected, node } = await midJob(request({ prompt: 'A tree', temperature: 0.7, topP: 0.9, seed: 11, maxTokens: 80 }), group);
  await field.node(node).kill(mode);
  return { s: await job.done, expected, victim: node };
}

for (const [group, mode] of [['g2', 'will'], ['g3', 'silence']] as const) {
  test(`the serving node of ${group} lost mid-generation (${mode === 'will' ? 'hard stop: the will' : 'silence: the hop timeout'}): the job completes with the same text on another node`, async () => {
    const { s, expected, victim } = await killMidJob(group, mode);
    try {
      assert.equal(s.status, 'done');
      assert.equal(s.text, expected, 'the replayed history rebuilt the replacement\'s cache exactly');
      assert.ok(s.failovers >= 1, `${s.failovers} failovers`);
      const served = s.served.find((g) => g.group === group)!.nodes;
      assert.equal(served.length, 2, `served ${served.join(', ')}`);
      assert.equal(served[0], victim);
      assert.notEqual(served[1], victim);
      for (const g of s.served.filter((x) => x.group !== group)) assert.equal(g.nodes.length, 1, `${g.group} kept its node`);
    } finally {
      await field.node(victim).restart();
      await field.ready();
    }
  });
}

test('with every node of a group offline, a job fails at once with no-node naming the group', async () => {
  const g2 = field.group('g2');
  await Promise.all(g2.map((n) => n.kill('stop')));
  try {
    await until('g2 offline at the gateway', () => g2.every((n) => field.gateway.registry.get(n.nodeId)?.online === false));
    const job = field.gateway.jobs.submit(request());
    await assert.rejects(job.done, (err: unknown) => {
      assert.ok(err instanceof JobError);
      assert.equal(err.kind, 'no-node');
      assert.equal(err.group, 'g2');
      assert.match(err.message, /^group g2: all 3 nodes are offline or in power saving \(3 offline\)/);
      return true;
    });
    const s = field.gateway.jobs.job(job.id)!;
    assert.equal(s.status, 'failed');
    assert.equal(s.error?.group, 'g2');
  } finally {
    await Promise.all(g2.map((n) => n.start()));
    await field.ready();
  }
});

test('concurrent jobs: no node holds more than its queue capacity (1), and all complete as in-process', async () => {
  const sched = field.gateway.router.scheduling;
  const hold = sched.hold.bind(sched);
  let maxPerNode = 0;
  let maxInGroup = 0;
  sched.hold = (nodeId: string) => {
    hold(nodeId);
    maxPerNode = Math.max(maxPerNode, sched.inHand(nodeId));
    const group = field.node(nodeId).group;
    maxInGroup = Math.max(maxInGroup, field.group(group).reduce((sum, n) => sum + sched.inHand(n.nodeId), 0));
  };
  try {
    const reqs = [1, 2, 3, 4, 5].map((seed) => request({ prompt: 'The moon', temperature: 0.8, topP: 0.9, seed, maxTokens: 24 }));
    const jobs = reqs.map((r) => field.gateway.jobs.submit(r));
    const summaries = await Promise.all(jobs.map((j) => j.done));
    for (const [i, s] of summaries.entries()) assert.equal(s.text, (await reference.generate(reqs[i]!)).text, `job ${s.id}`);
    assert.equal(maxPerNode, 1, 'one job per node at a time');
    assert.equal(maxInGroup, 3, 'the three nodes of a group served three jobs at once');
    assert.equal(summaries.reduce((n, s) => n + s.failovers, 0), 0, 'no offer was refused for a full queue');
  } finally {
    sched.hold = hold;
  }
  assert.equal(field.gateway.jobs.counters().active, 0);
});

test('a node entering power saving mid-job: the group moves before its next hop, and the text is unchanged', async () => {
  const { job, expected, node } = await midJob(request({ prompt: 'The river', temperature: 0.6, topP: 0.9, seed: 5, maxTokens: 60 }), 'g1');
  // The event as the node's power policy sends it, through the link's entry point.
  const event = (gamma: 0 | 1) => Buffer.from(JSON.stringify({
    v: 1, nodeId: node, atMs: Date.now(), kind: gamma ? 'power-saving-exit' : 'power-saving-enter',
    batteryJ: 20_000, batteryPct: 7.5, gamma, powerMode: gamma, detail: 'test',
  }));
  const topic = `heliomesh/field/node/${node}/event`;
  field.gateway.link.onMessage(topic, event(0));
  try {
    const s = await job.done;
    assert.equal(s.text, expected);
    const served = s.served.find((g) => g.group === 'g1')!.nodes;
    assert.equal(served.length, 2, `served ${served.join(', ')}`);
    assert.equal(served[0], node);
    assert.ok(s.failovers >= 1);
  } finally {
    field.gateway.link.onMessage(topic, event(1));
  }
});

test('an offer refused for a full queue goes to another node of the group', async () => {
  const victim = 'g2-n1';
  const jobIn = `heliomesh/field/node/${victim}/job/in`;
  // A job the router does not know fills the node's only queue place.
  await field.gateway.client.publishAsync(jobIn, Buffer.from(JSON.stringify({ v: 1, type: 'offer', jobId: 999_999, sessionId: 1 })), { qos: 1 });
  await until('the foreign job is held', () => field.node(victim).agent!.worker!.queue() === 1);
  try {
    const sched = field.gateway.router.scheduling;
    const pick = sched.pick.bind(sched);
    // Steer the first pick of g2 to the full node, as any policy might.
    let steered = false;
    sched.pick = (jobId, group, exclude, reason) => {
      if (group.name === 'g2' && !steered) {
        steered = true;
        const others = field.group('g2').map((n) => n.nodeId).filter((id) => id !== victim);
        return pick(jobId, group, new Set([...exclude, ...others]), reason);
      }
      return pick(jobId, group, exclude, reason);
    };
    const req = request({ maxTokens: 12 });
    try {
      const s = await field.gateway.jobs.submit(req).done;
      assert.equal(s.text, (await reference.generate(req)).text);
      assert.equal(s.failovers, 1);
      const g2 = s.served.find((g) => g.group === 'g2')!.nodes;
      assert.equal(g2.length, 1, 'a refusing node never served');
      assert.notEqual(g2[0], victim);
    } finally {
      sched.pick = pick;
    }
  } finally {
    await field.gateway.client.publishAsync(jobIn, Buffer.from(JSON.stringify({ v: 1, type: 'cancel', jobId: 999_999, reason: 'test over' })), { qos: 1 });
    await until('the foreign job is gone', () => field.node(victim).agent!.worker!.queue() === 0);
  }
});
