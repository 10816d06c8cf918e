// The HTTP API's routes over a job service that behaves like the router at its interface
// and a real registry: completions (plain and streamed, read with fetch), chat, the
// fleet's views, health, metrics, and a client leaving mid-stream.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RealClock } from '../../ground/clock.js';
import { CHAT_TURN_STOP, chatPrompt } from '../../gateway/http/index.js';
import { VirtualClock } from '../../hardware/clock.js';
import { FAKE_TEXT, postJson, readSse, startApi, type ApiUnderTest, type Completion } from './http-support.js';
import { until } from '../../ground/until.js';

let t: ApiUnderTest;

before(async () => {
  t = await startApi();
});

after(() => t.api.close());

test('POST /v1/completions answers in OpenAI\'s shape with usage and the job\'s energy and nodes', async () => {
  const res = await postJson(t.base, '/v1/completions', { model: 'fake-char', prompt: 'The sun', max_tokens: 5, temperature: 0, seed: 3, user: 'ignored' });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const body = await res.json() as Completion;
  assert.equal(body.object, 'text_completion');
  assert.equal(body.model, 'fake-char');
  assert.deepEqual(body.choices, [{ index: 0, text: 'abcde', logprobs: null, finish_reason: 'length' }]);
  assert.deepEqual(body.usage, { prompt_tokens: 8, completion_tokens: 5, total_tokens: 13 });
  assert.equal(body.heliomesh.job_id, body.id);
  assert.equal(body.heliomesh.energy_j, 2.5);
  assert.equal(body.heliomesh.failovers, 1);
  assert.equal(body.heliomesh.seed, 3);
  assert.ok(body.heliomesh.latency_ms >= 0);
  assert.deepEqual(body.heliomesh.served, [{ group: 'g0', nodes: ['pi-1'] }, { group: 'g1', nodes: ['pi-2', 'pi-3'] }]);
  const req = t.jobs.submitted.at(-1)!;
  assert.deepEqual(req, { prompt: 'The sun', maxTokens: 5, temperature: 0, topP: 1, seed: 3, stop: [] });
});

test('completion defaults follow OpenAI; token-id prompts and one-element prompt arrays are accepted', async () => {
  let res = await postJson(t.base, '/v1/completions', { model: 'fake-char', prompt: ['Hi'] });
  assert.equal(res.status, 200);
  assert.deepEqual(t.jobs.submitted.at(-1), { prompt: 'Hi', maxTokens: 16, temperature: 1, topP: 1, seed: 7, stop: [] });
  assert.equal(((await res.json()) as Completion).heliomesh.seed, 7, 'the drawn seed is reported');
  res = await postJson(t.base, '/v1/completions', { model: 'fake-char', prompt: [1, 40, 41], max_tokens: 2, stop: 'x', top_p: 0.5 });
  assert.equal(res.status, 200);
  assert.deepEqual(t.jobs.submitted.at(-1), { prompt: { ids: [1, 40, 41] }, maxTokens: 2, temperature: 1, topP: 0.5, seed: 7, stop: ['x'] });
});

test('a stop sequence ends the text before it, and the stream never runs past it', async () => {
  const body = { model: 'fake-char', prompt: 'x', max_tokens: 30, stop: ['efg', 'zzz'] };
  const plain = await (await postJson(t.base, '/v1/completions', body)).json() as Completion;
  assert.equal(plain.choices[0]!.text, 'abcd');
  assert.equal(plain.choices[0]!.finish_reason, 'stop');
  const sse = await readSse(await postJson(t.base, '/v1/completions', { ...body, stream: true }));
  const streamed = (sse.events as Completion[]).map((e) => e.choices[0]!.text!);
  assert.equal(streamed.join(''), 'abcd');
  assert.ok(!streamed.some((s) => s.includes('e')), 'the held-back "e" was never sent');
});

test('stream: true sends SSE chunks that a fetch client joins into the same text as the plain call', async () => {
  const body = { model: 'fake-char', prompt: 'Once', max_tokens: 40, temperature: 0, seed: 11 };
  const plain = await (await postJson(t.base, '/v1/completions', body)).json() as Completion;
  const res = await postJson(t.base, '/v1/completions', { ...body, stream: true });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const sse = await readSse(res);
  assert.ok(sse.done, 'the stream ends with data: [DONE]');
  assert.ok(sse.events.length >= 40, 'one chunk per token, then the final one');
  const events = sse.events as Completion[];
  assert.equal(events.map((e) => e.choices[0]!.text).join(''), plain.choices[0]!.text);
  assert.equal(plain.choices[0]!.text, (FAKE_TEXT + FAKE_TEXT).slice(0, 40));
  for (const e of events.slice(0, -1)) {
    assert.equal(e.object, 'text_completion');
    assert.equal(e.choices[0]!.finish_reason, null);
    assert.equal(e.usage, undefined);
  }
  const last = events.at(-1)!;
  assert.equal(last.choices[0]!.finish_reason, 'length');
  assert.deepEqual(last.usage, plain.usage);
  assert.equal(last.heliomesh.energy_j, plain.heliomesh.energy_j);
  assert.deepEqual(last.heliomesh.served, plain.heliomesh.served);
  assert.notEqual(last.heliomesh.job_id, plain.heliomesh.job_id);
});

test('chat completions use the documented template, plain and streamed with deltas', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hello' }] }];
  assert.equal(chatPrompt(messages as never), 'system: Be brief.\nuser: Hello\nassistant:');
  const res = await postJson(t.base, '/v1/chat/completions', { model: 'fake-char', messages, max_completion_tokens: 6, seed: 1 });
  assert.equal(res.status, 200);
  const body = await res.json() as Completion;
  assert.equal(body.object, 'chat.completion');
  assert.deepEqual(body.choices, [{ index: 0, message: { role: 'assistant', content: 'abcdef' }, logprobs: null, finish_reason: 'length' }]);
  assert.deepEqual(t.jobs.submitted.at(-1), { prompt: 'system: Be brief.\nuser: Hello\nassistant:', maxTokens: 6, temperature: 1, topP: 1, seed: 1, stop: [CHAT_TURN_STOP] });
  assert.equal(body.heliomesh.job_id, body.id);

  const sse = await readSse(await postJson(t.base, '/v1/chat/completions', { model: 'fake-char', messages, max_tokens: 6, seed: 1, stream: true }));
  const events = sse.events as Completion[];
  assert.ok(sse.done);
  assert.deepEqual(events[0]!.choices[0]!.delta, { role: 'assistant', content: '' });
  assert.ok(events.every((e) => e.object === 'chat.completion.chunk'));
  assert.equal(events.map((e) => e.choices[0]!.delta!.content ?? '').join(''), 'abcdef');
  assert.equal(events.at(-1)!.choices[0].finish_reason, 'length');
  assert.deepEqual(events.at(-1)!.usage, body.usage);
  assert.ok(events.at(-1)!.heliomesh.energy_j > 0);
});

test('a chat without a limit may fill the rest of the context', async () => {
  const messages = [{ role: 'user', content: 'Hi' }];
  const res = await postJson(t.base, '/v1/chat/completions', { model: 'fake-char', messages, stream: true });
  await res.body?.cancel();
  const prompt = 'user: Hi\nassistant:';
  assert.equal(t.jobs.submitted.at(-1)!.maxTokens, 256 - t.jobs.encode(prompt).length);
});

test('a client that disconnects mid-stream cancels its job', async () => {
  const slow = await startApi({}, { tokenMs: 20 });
  try {
    const abort = new AbortController();
    const res = await fetch(`${slow.base}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: abort.signal,
      body: JSON.stringify({ model: 'fake-char', prompt: 'x', max_tokens: 200, stream: true }),
    });
    const reader = res.body!.getReader();
    let got = '';
    while (!got.includes('"text":"c"')) {
      const { value, done } = await reader.read();
      if (done) assert.fail(`the stream ended early: ${got}`);
      got += new TextDecoder().decode(value);
    }
    abort.abort();
    await until('the job cancelled', () => slow.jobs.cancelled.size > 0, 5000, 10);
    assert.deepEqual([...slow.jobs.cancelled.values()], ['the client disconnected']);
    const job = slow.jobs.job([...slow.jobs.cancelled.keys()][0]!)!;
    assert.equal(job.status, 'cancelled');
    assert.ok(job.completionTokens < 200);
    assert.equal(slow.jobs.counters().active, 0);
  } finally {
    await slow.api.close();
  }
});

test('a stream whose job is slow sends heartbeat comments, which SSE clients skip', async () => {
  // The API's clock runs its intervals 1000 times faster: the 15 s heartbeat comes every 15 ms.
  const fast = new (class extends RealClock { override setInterval(fn: () => void, ms: number) { return super.setInterval(fn, ms / 1000); } })();
  const slow = await startApi({}, { tokenMs: 40, clock: fast });
  try {
    const res = await postJson(slow.base, '/v1/completions', { model: 'fake-char', prompt: 'x', max_tokens: 5, stream: true });
    const text = await res.clone().text();
    assert.match(text, /^: waiting$/m);
    const sse = await readSse(res);
    assert.ok(sse.done);
    assert.equal((sse.events as Completion[]).map((e) => e.choices[0]!.text).join(''), 'abcde');
  } finally {
    await slow.api.close();
  }
});

test('the close waits for a stream in flight on the API\'s clock: its grace ends when the clock says, not after real time', async () => {
  const clock = new VirtualClock(Date.now());
  // 240 tokens 50 ms apart: the stream goes on for 12 s of real time.
  const slow = await startApi({}, { tokenMs: 50, clock });
  const res = await postJson(slow.base, '/v1/completions', { model: 'fake-char', prompt: 'x', max_tokens: 240, stream: true });
  assert.equal(res.status, 200, 'the stream is open');
  const realStart = performance.now();
  let closed = false;
  const closing = slow.api.close(30_000).then(() => { closed = true; });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(closed, false, 'the grace is waiting for the stream');
  await clock.advance(30_000);
  await closing;
  const realMs = performance.now() - realStart;
  assert.ok(realMs < 5_000, `${realMs.toFixed(0)} ms of real time for a 30 s grace`);
  assert.equal(slow.jobs.cancelled.size, 1, 'the stream still open at the end of the grace cancels its job');
  await res.body?.cancel().catch(() => {});
});
