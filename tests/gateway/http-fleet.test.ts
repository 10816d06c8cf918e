// The HTTP API's read-only routes: models, nodes (from a real registry), jobs, scheduler,
// health, and /metrics in Prometheus' text format.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeView } from '../../gateway/http/index.js';
import type { JobSummary, SchedulerView } from '../../gateway/jobs.js';
import { postJson, startApi, type ApiUnderTest, type Completion, type ErrorBody } from './http-support.js';

let t: ApiUnderTest;

interface Health {
  status: string;
  broker: unknown;
  store: unknown;
  model: unknown;
  nodes: unknown;
}

before(async () => {
  t = await startApi();
});

after(() => t.api.close());

const get = (path: string) => fetch(`${t.base}${path}`);

test('GET /v1/models lists the served model in OpenAI\'s list shape', async () => {
  const res = await get('/v1/models');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    object: 'list',
    data: [{ id: 'fake-char', object: 'model', created: 1_790_000_000, owned_by: 'heliomesh', context_length: 256, vocab_size: 93 }],
  });
  assert.equal((await get('/v1/models/fake-char')).status, 200);
  const missing = await get('/v1/models/gpt-4');
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as ErrorBody).error.code, 'model_not_found');
});

test('GET /api/nodes shows every node\'s energy state, q_lim and weight', async () => {
  const res = await get('/api/nodes');
  assert.equal(res.status, 200);
  const { nodes } = await res.json() as { nodes: NodeView[] };
  assert.deepEqual(nodes.map((n) => [n.node, n.group, n.online]), [['pi-1', 'g0', true], ['pi-2', 'g1', false]]);
  const pi1 = nodes[0];
  assert.equal(pi1.batteryJ, 63_000);
  assert.equal(pi1.batteryPct, 63);
  assert.equal(pi1.capacityJ, 100_000);
  assert.equal(pi1.gamma, 1);
  assert.equal(pi1.powerMode, 3);
  assert.equal(pi1.mode, '60W');
  assert.equal(pi1.queue, 1);
  assert.equal(pi1.queueCapacity, 2);
  assert.equal(pi1.qLim, 0.42);
  assert.equal(pi1.weight, 1, 'the only online node of its group takes all of its weight');
  assert.equal(pi1.missedSlots, 2);
  assert.equal(pi1.shard, 'bundled:g0');
  assert.ok(Date.now() - pi1.lastSeenMs < 60_000);
  assert.equal(nodes[1].qLim, null, 'never solved');
  assert.equal(nodes[1].weight, 0);
});

test('GET /api/jobs lists the recent jobs, newest first; /api/jobs/:id shows one', async () => {
  const a = await (await postJson(t.base, '/v1/completions', { model: 'fake-char', prompt: 'a', max_tokens: 2 })).json() as Completion;
  const b = await (await postJson(t.base, '/v1/completions', { model: 'fake-char', prompt: 'b', max_tokens: 3 })).json() as Completion;
  const list = await (await get('/api/jobs?limit=2')).json() as { jobs: JobSummary[] };
  assert.deepEqual(list.jobs.map((j) => j.id), [b.id, a.id]);
  assert.equal((await (await get('/api/jobs?limit=1')).json() as { jobs: unknown[] }).jobs.length, 1);
  const one = await (await get(`/api/jobs/${encodeURIComponent(a.id)}`)).json() as JobSummary;
  assert.equal(one.id, a.id);
  assert.equal(one.status, 'done');
  assert.equal(one.text, 'ab');
  assert.equal(one.energyJ, 1);
  const missing = await get('/api/jobs/job-999');
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { error: { message: 'no job \'job-999\': GET /api/jobs lists the recent ones', type: 'not_found_error', param: 'id', code: 'job_not_found' } });
  for (const bad of ['0', '-1', 'ten', '1001', '2.5']) {
    const res = await get(`/api/jobs?limit=${bad}`);
    assert.equal(res.status, 400, bad);
    assert.equal(((await res.json()) as ErrorBody).error.param, 'limit');
  }
});

test('GET /api/scheduler is the job service\'s live view', async () => {
  const body = await (await get('/api/scheduler')).json() as SchedulerView;
  assert.equal(body.policy, 'foresight');
  assert.equal(body.groups[0]!.nodes[0]!.qLim, 0.4);
});

test('GET /healthz reports broker, store and model, and is 503 while the broker is down', async () => {
  let res = await get('/healthz');
  assert.equal(res.status, 200);
  const body = await res.json() as Health;
  assert.deepEqual(body.broker, { up: true, clients: 3 });
  assert.deepEqual(body.store, { configured: true, outage: true, buffered: 12, dropped: 3 });
  assert.deepEqual(body.model, { id: 'fake-char', contextLength: 256 });
  assert.deepEqual(body.nodes, { total: 2, online: 1 });
  assert.equal(body.status, 'ok');
  t.broker.up = false;
  try {
    res = await get('/healthz');
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as Health).status, 'broker down');
  } finally {
    t.broker.up = true;
  }
});

/** The value of one sample line, e.g. `heliomesh_node_q_lim{node="pi-1",group="g0"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('GET /metrics exposes jobs, nodes, broker, store, link and HTTP counters in text format 0.0.4', async () => {
  await postJson(t.base, '/v1/completions', { model: 'fake-char', prompt: 'm', max_tokens: 4 });
  await postJson(t.base, '/v1/completions', 'not an object');
  await get('/nowhere');
  const res = await get('/metrics');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const text = await res.text();
  const c = t.jobs.counters();
  assert.ok(c.completed >= 1);
  assert.equal(sample(text, 'heliomesh_jobs_submitted_total'), c.submitted);
  assert.equal(sample(text, 'heliomesh_jobs_finished_total{outcome="completed"}'), c.completed);
  assert.equal(sample(text, 'heliomesh_tokens_total{kind="completion"}'), c.completionTokens);
  assert.equal(sample(text, 'heliomesh_job_energy_joules'), c.energyJ);
  assert.equal(sample(text, 'heliomesh_job_failovers_total'), c.failovers);
  assert.equal(sample(text, 'heliomesh_node_battery_joules{node="pi-1",group="g0"}'), 63_000);
  assert.equal(sample(text, 'heliomesh_node_q_lim{node="pi-1",group="g0"}'), 0.42);
  assert.equal(sample(text, 'heliomesh_node_q_lim{node="pi-2",group="g1"}'), undefined, 'no q_lim yet: no sample');
  assert.equal(sample(text, 'heliomesh_node_online{node="pi-2",group="g1"}'), 0);
  assert.equal(sample(text, 'heliomesh_node_weight{node="pi-1",group="g0"}'), 1);
  assert.equal(sample(text, 'heliomesh_broker_refused_total{reason="auth"}'), 2);
  assert.equal(sample(text, 'heliomesh_broker_clients'), 3);
  assert.equal(sample(text, 'heliomesh_store_buffered_points'), 12);
  assert.equal(sample(text, 'heliomesh_store_dropped_points_total'), 3);
  assert.equal(sample(text, 'heliomesh_link_invalid_messages_total'), 4);
  assert.ok(sample(text, 'heliomesh_http_requests_total{route="/v1/completions",method="POST",status="200"}')! >= 1);
  assert.equal(sample(text, 'heliomesh_http_requests_total{route="unmatched",method="GET",status="404"}'), 1);
  assert.ok(sample(text, 'heliomesh_http_bad_requests_total{status="400"}')! >= 1);
  assert.match(text, /^# TYPE heliomesh_node_battery_percent gauge$/m);
  assert.match(text, /^# TYPE heliomesh_jobs_submitted_total counter$/m);
  assert.ok(sample(text, 'heliomesh_process_resident_memory_bytes')! > 0);
});

test('a negative energy sum (jobs below the idle baseline) is exposed, not an error', async () => {
  const cold = await startApi();
  try {
    assert.equal((await postJson(cold.base, '/v1/completions', { model: 'fake-char', prompt: 'COLD', max_tokens: 1 })).status, 200);
    const res = await fetch(`${cold.base}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.equal(sample(text, 'heliomesh_job_energy_joules'), -0.75);
    assert.match(text, /^# TYPE heliomesh_job_energy_joules gauge$/m);
  } finally {
    await cold.api.close();
  }
});
