// The HTTP API over the real thing: a field of 3 groups of virtual agents behind the
// gateway's broker, registry, scheduler and router. Completions through HTTP equal
// in-process generation (`heliomesh model generate --groups 3`), streamed or not; a client
// leaving mid-stream cancels the job in the router; `heliomesh status` reads the fleet.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { JobSummary } from '../../gateway/jobs.js';
import { Field } from '../support/field.js';
import { until } from '../../ground/until.js';
import { Reference, request } from './e2e-reference.js';
import { json, postJson, readSse, type Completion } from './http-support.js';

const run = promisify(execFile);
let field: Field;
let reference: Reference;
let base: string;
let model: string;

before(async () => {
  field = await Field.start({ nodesPerGroup: 2, gateway: { http: { host: '127.0.0.1', port: 0 }, router: { hopTimeoutMs: 3000, reportTimeoutMs: 3000 } } });
  reference = Reference.load(3);
  await field.ready();
  base = `http://127.0.0.1:${field.gateway.http!.port}`;
  model = (await json<{ data: Array<{ id: string }> }>(fetch(`${base}/v1/models`))).data[0]!.id;
});

after(async () => {
  await field?.close();
  reference?.dispose();
});


/** Reads a server-sent event stream until it holds `n` data events; the text read so far. */
async function readEvents(reader: ReadableStreamDefaultReader<Uint8Array>, n: number): Promise<string> {
  let got = '';
  while ((got.match(/^data: /gm) ?? []).length < n) {
    const { value, done } = await reader.read();
    if (done) assert.fail(`the stream ended early: ${got}`);
    got += new TextDecoder().decode(value);
  }
  return got;
}
test('a completion over HTTP equals in-process generation, plain and streamed', async () => {
  const req = request({ prompt: 'The little robot', maxTokens: 32, temperature: 0.8, topP: 0.95, seed: 5 });
  const expected = (await reference.generate(req)).text;
  const body = { model, prompt: req.prompt, max_tokens: req.maxTokens, temperature: req.temperature, top_p: req.topP, seed: req.seed };
  const plain = await json<Completion>(postJson(base, '/v1/completions', body));
  assert.equal(plain.choices[0]!.text, expected);
  assert.equal(plain.usage.completion_tokens, 32);
  assert.deepEqual(plain.heliomesh.served.map((s) => s.group), ['g1', 'g2', 'g3']);
  const { energy_j: energyJ, energy_uncertainty_j: uncertaintyJ } = plain.heliomesh;
  assert.ok(typeof uncertaintyJ === 'number' && Number.isFinite(uncertaintyJ) && uncertaintyJ > 0, `the nodes reported the job's energy: ${energyJ} ± ${uncertaintyJ} J`);
  assert.ok(energyJ >= 0, `energy ${energyJ} J`);

  const sse = await readSse(await postJson(base, '/v1/completions', { ...body, stream: true }));
  assert.ok(sse.done);
  const chunks = sse.events as Completion[];
  assert.equal(chunks.map((c) => c.choices[0]!.text).join(''), expected);
  assert.deepEqual(chunks.at(-1)!.usage, plain.usage);
  const job = await json<JobSummary>(fetch(`${base}/api/jobs/${chunks[0]!.id}`));
  assert.equal(job.status, 'done');
  assert.equal(job.text, expected);
});

test('a chat completion runs through the fleet with the documented template', async () => {
  const messages = [{ role: 'user', content: 'Tell me about the sun.' }];
  const res = await json<Completion>(postJson(base, '/v1/chat/completions', { model, messages, max_tokens: 12, temperature: 0, seed: 1 }));
  const expected = (await reference.generate(request({ prompt: 'user: Tell me about the sun.\nassistant:', maxTokens: 12, stop: ['\nuser:'] }))).text;
  // Generation ends before the next "\nuser:" turn, when the model writes one.
  const cut = expected.indexOf('\nuser:');
  assert.equal(res.choices[0]!.message!.content, cut >= 0 ? expected.slice(0, cut) : expected);
  assert.equal(res.choices[0]!.message!.role, 'assistant');
});

test('a client that disconnects mid-stream cancels its job in the router', async () => {
  const abort = new AbortController();
  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal: abort.signal,
    body: JSON.stringify({ model, prompt: 'Once upon a time', max_tokens: 200, temperature: 0.9, seed: 3, stream: true }),
  });
  const reader = res.body!.getReader();
  const got = await readEvents(reader, 3);
  const id = (JSON.parse(/^data: (.*)$/m.exec(got)![1]!) as Completion).id;
  abort.abort();
  await until('the job is cancelled', () => field.gateway.jobs.job(id)?.status === 'cancelled');
  const job = await json<JobSummary>(fetch(`${base}/api/jobs/${id}`));
  assert.equal(job.status, 'cancelled');
  assert.ok(job.completionTokens < 200);
  await until('no job active', () => field.gateway.jobs.counters().active === 0);
});

test('heliomesh status, /healthz and /metrics show the live fleet', async () => {
  const { stdout } = await run('node', ['dist/cli/index.js', 'status', '--gateway', base], { env: { ...process.env, HELIOMESH_API_KEY: '' } });
  const rows = stdout.trimEnd().split('\n').slice(1);
  assert.equal(rows.length, 6, stdout);
  for (const g of ['g1', 'g2', 'g3']) assert.equal(rows.filter((r) => new RegExp(`^${g}-\\S+\\s+${g}\\s+yes\\s`).test(r)).length, 2, stdout);
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.equal((await health.json() as { status: string }).status, 'ok');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const c = field.gateway.jobs.counters();
  assert.match(metrics, new RegExp(`^heliomesh_jobs_finished_total\\{outcome="completed"\\} ${c.completed}$`, 'm'));
  assert.ok(c.completed >= 3);
  assert.equal((metrics.match(/^heliomesh_node_online\{.*\} 1$/gm) ?? []).length, 6);
});

test('a group lost mid-stream ends the stream with an error naming it; a plain request then gets 503', async () => {
  const g2 = field.group('g2');
  const res = await postJson(base, '/v1/completions', { model, prompt: 'A tree', max_tokens: 200, temperature: 0.7, seed: 4, stream: true });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let got = await readEvents(reader, 3);
  await Promise.all(g2.map((n) => n.kill('will')));
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      got += new TextDecoder().decode(value);
    }
    const last = got.trimEnd().split('\n\n').at(-1)!;
    assert.doesNotMatch(got, /\[DONE\]/);
    const { error } = JSON.parse(last.slice('data: '.length)) as { error: { message: string; code: string } };
    assert.equal(error.code, 'no_available_node');
    assert.match(error.message, /group g2/);
    const plain = await postJson(base, '/v1/completions', { model, prompt: 'A tree', max_tokens: 4 });
    assert.equal(plain.status, 503);
    assert.match((await plain.json() as { error: { message: string } }).error.message, /^group g2: all 2 nodes are offline/);
  } finally {
    await Promise.all(g2.map((n) => n.start()));
    await field.ready();
  }
});
