// Jobs and scheduler decisions reach a real influxd with the fields the dashboards read:
// one `scheduler_decision` point per group and job, one `job` point per job with its
// outcome, failovers, serving nodes, rate and head time, and one `job_group` point per
// group of a job that decoded, with its hop time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { JobError } from '../../gateway/jobs.js';
import { Field } from '../support/field.js';
import { until } from '../../ground/until.js';
import { TestInfluxd } from '../support/influxd.js';
import { request } from './e2e-reference.js';

let influxd: TestInfluxd;
let field: Field;

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  field = await Field.start({
    nodesPerGroup: 1,
    gateway: { store: { url: `${influxd.url}/jobs`, flushIntervalMs: 50 }, scheduler: { policy: 'long-term' }, router: { hopTimeoutMs: 3000 } },
  });
  await field.ready();
});

after(async () => {
  await field?.close();
  await influxd?.destroy();
});

type Series = { columns: string[]; values: unknown[][] };
async function rows(q: string): Promise<Array<Record<string, unknown>>> {
  const r = (await influxd.query('jobs', q)) as { results: Array<{ series?: Series[] }> };
  const s = r.results[0]?.series?.[0];
  return s ? s.values.map((v) => Object.fromEntries(s.columns.map((c, i) => [c, v[i]]))) : [];
}

test('a finished and a failed job, and their decisions, are in InfluxDB with the documented fields', async () => {
  const ok = await field.gateway.jobs.submit(request({ maxTokens: 16 })).done;
  await field.node('g3-n1').kill('stop');
  await until('g3 offline', () => field.gateway.registry.get('g3-n1')?.online === false);
  const failed = field.gateway.jobs.submit(request({ maxTokens: 16 }));
  await assert.rejects(failed.done, (err: unknown) => err instanceof JobError && err.kind === 'no-node' && err.group === 'g3');

  let jobs: Array<Record<string, unknown>> = [];
  let decisions: Array<Record<string, unknown>> = [];
  for (let i = 0; i < 100 && (jobs.length < 2 || decisions.length < 3); i++) {
    jobs = await rows('SELECT * FROM job');
    decisions = await rows('SELECT * FROM scheduler_decision');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(jobs.length, 2);
  const done = jobs.find((j) => j.jobId === ok.id);
  assert.ok(done, JSON.stringify(jobs));
  assert.equal(done.outcome, 'ok');
  assert.equal(done.model, 'bundled');
  assert.equal(done.fleet, 'field');
  assert.equal(done.failovers, 0);
  assert.equal(done.nodes, 'g1-n1,g2-n1,g3-n1');
  assert.equal(done.outputTokens, ok.completionTokens);
  assert.equal(done.promptTokens, ok.promptTokens);
  assert.equal(done.hops, 3 * ok.completionTokens, 'three groups per forward step');
  assert.ok((done.tokensPerS as number) > 0 && (done.latencyMs as number) > 0);
  assert.equal(done.energyJ, ok.energyJ);
  const lost = jobs.find((j) => j.jobId === failed.id);
  assert.ok(lost, JSON.stringify(jobs));
  assert.equal(lost.outcome, 'failed');
  assert.equal(lost.nodes, '', 'no node was asked to hold a job that g3 could not serve');
  assert.equal(lost.outputTokens, 0);
  // One decision per group for the first job; none for the failed one.
  assert.deepEqual(decisions.map((d) => `${d.jobId}:${d.group}:${d.node}`), [`${ok.id}:g1:g1-n1`, `${ok.id}:g2:g2-n1`, `${ok.id}:g3:g3-n1`]);
  for (const d of decisions) {
    assert.equal(d.policy, 'long-term');
    assert.equal(d.probability, 1);
    assert.equal(d.candidates, 1);
    assert.equal(d.available, 1);
  }
  // Where the finished job's decode tokens went, as its summary's timing says: the head on
  // the job's point, each group's hop on a job_group point; none for the failed job.
  const t = ok.timing!;
  assert.ok(t.decodeTokens > 0, JSON.stringify(t));
  assert.ok(Math.abs((done.headMsPerToken as number) - t.headDecodeMs / t.decodeTokens) < 1e-9, `head ${String(done.headMsPerToken)} ms per token`);
  assert.equal(lost.headMsPerToken, null, 'a job that decoded nothing has no head time');
  let groups: Array<Record<string, unknown>> = [];
  for (let i = 0; i < 100 && groups.length < 3; i++) {
    groups = await rows('SELECT * FROM job_group');
    await new Promise((r) => setTimeout(r, 100));
  }
  // One timestamp for all three: the rows come in the store's series order.
  groups.sort((a, b) => String(a.group).localeCompare(String(b.group)));
  assert.deepEqual(groups.map((g) => `${g.jobId}:${g.group}:${g.nodes}:${g.model}:${g.decodeTokens}`), ['g1', 'g2', 'g3'].map((g) => `${ok.id}:${g}:${g}-n1:bundled:${t.decodeTokens}`));
  groups.forEach((g, i) => assert.ok(Math.abs((g.hopMsPerToken as number) - t.stageDecodeMs[i]! / t.decodeTokens) < 1e-9, `g${i + 1}: ${String(g.hopMsPerToken)} ms per token`));
  // Each hop split into the node's own forward, as its report gave it, and the rest.
  groups.forEach((g, i) => {
    const served = ok.served[i]!;
    assert.ok(served.decode && served.decode.frames >= t.decodeTokens && served.decode.forwardMs > 0, JSON.stringify(served));
    const forward = g.forwardMsPerToken as number;
    assert.ok(Math.abs(forward - served.decode.forwardMs / served.decode.frames) < 1e-9, `g${i + 1}: forward ${forward} ms`);
    assert.ok(forward > 0 && forward < (g.hopMsPerToken as number), `g${i + 1}: forward ${forward} ms within the hop's ${String(g.hopMsPerToken)}`);
    assert.ok(Math.abs((g.linkMsPerToken as number) - ((g.hopMsPerToken as number) - forward)) < 1e-9, `g${i + 1}: link ${String(g.linkMsPerToken)} ms`);
  });
});
