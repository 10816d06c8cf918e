// Every kind of bad request gets the right status and OpenAI's error shape, the API key is
// enforced, the router's failures become 503/504 naming the group, and nothing crashes
// the server: it still answers after all of it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { postJson, startApi, type ApiUnderTest } from './http-support.js';

const KEY = 'k'.repeat(20) + '-secret';
let t: ApiUnderTest;
let keyed: ApiUnderTest;

before(async () => {
  t = await startApi({ maxBodyBytes: 4096 });
  keyed = await startApi({ cors: { origins: ['https://ui.example'] } }, { apiKey: KEY });
});

after(async () => {
  await t.api.close();
  await keyed.api.close();
});

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

async function expectError(res: Response, status: number, param?: string | null, message?: RegExp): Promise<ErrorBody> {
  assert.equal(res.status, status);
  const body = await res.json() as ErrorBody;
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  if (param !== undefined) assert.equal(body.error.param, param, body.error.message);
  if (message) assert.match(body.error.message, message);
  return body;
}

const ok = { model: 'fake-char', prompt: 'x', max_tokens: 2 };
const post = (body: unknown, path = '/v1/completions') => postJson(t.base, path, body);

test('a body that is not JSON, or not an object, is a 400', async () => {
  const raw = (body: string) => fetch(`${t.base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await expectError(await raw('{"model": "fake-char",'), 400, null, /not valid JSON/);
  await expectError(await raw(''), 400, null, /empty/);
  await expectError(await raw('[1,2]'), 400, null, /JSON object/);
  await expectError(await raw('null'), 400, null, /JSON object/);
  await expectError(await raw('"text"'), 400, null, /JSON object/);
});

test('wrong types and missing fields are 400s that name the field', async () => {
  const cases: Array<[unknown, string, string?]> = [
    [{ prompt: 'x' }, 'model'],
    [{ model: 'fake-char' }, 'prompt'],
    [{ ...ok, prompt: 42 }, 'prompt'],
    [{ ...ok, prompt: ['a', 'b'] }, 'prompt'],
    [{ ...ok, prompt: [1, -2] }, 'prompt.1'],
    [{ ...ok, max_tokens: 'ten' }, 'max_tokens'],
    [{ ...ok, max_tokens: 0 }, 'max_tokens'],
    [{ ...ok, max_tokens: 1.5 }, 'max_tokens'],
    [{ ...ok, temperature: 3 }, 'temperature'],
    [{ ...ok, temperature: '0.5' }, 'temperature'],
    [{ ...ok, top_p: 0 }, 'top_p'],
    [{ ...ok, seed: -1 }, 'seed'],
    [{ ...ok, seed: 2 ** 32 }, 'seed'],
    [{ ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    [{ ...ok, stop: 5 }, 'stop'],
    [{ ...ok, stop: '' }, 'stop'],
    [{ ...ok, stream: 'yes' }, 'stream'],
    [{ ...ok, echo: true }, 'echo'],
    [{ ...ok, best_of: 3 }, 'best_of'],
    [{ ...ok, logprobs: 5 }, 'logprobs'],
    [{ ...ok, suffix: 'end' }, 'suffix'],
  ];
  for (const [body, param] of cases) await expectError(await post(body), 400, param);
  const chat = { model: 'fake-char', messages: [{ role: 'user', content: 'hi' }] };
  const chatCases: Array<[unknown, string]> = [
    [{ model: 'fake-char' }, 'messages'],
    [{ model: 'fake-char', messages: [] }, 'messages'],
    [{ model: 'fake-char', messages: 'hi' }, 'messages'],
    [{ model: 'fake-char', messages: [{ role: 'wizard', content: 'hi' }] }, 'messages.0.role'],
    [{ model: 'fake-char', messages: [{ role: 'user', content: 7 }] }, 'messages.0.content'],
    [{ model: 'fake-char', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 'messages.0.content'],
    [{ ...chat, max_completion_tokens: -4 }, 'max_completion_tokens'],
    [{ ...chat, tools: [{ type: 'function' }] }, 'tools'],
    [{ ...chat, n: 2 }, 'n'],
  ];
  for (const [body, param] of chatCases) await expectError(await post(body, '/v1/chat/completions'), 400, param);
  assert.equal(t.jobs.submitted.length, 0, 'no bad request reached the router');
});

test('n > 1 is refused: one completion per request', async () => {
  const body = await expectError(await post({ ...ok, n: 3 }), 400, 'n', /n = 1/);
  assert.equal(body.error.type, 'invalid_request_error');
});

test('an unknown model is a 404 that names the served one', async () => {
  const body = await expectError(await post({ ...ok, model: 'gpt-4o' }), 404, 'model', /fake-char/);
  assert.equal(body.error.code, 'model_not_found');
});

test('a body over http.maxBodyBytes is a 413, declared or chunked', async () => {
  const big = { ...ok, prompt: 'y'.repeat(10_000) };
  await expectError(await post(big), 413, null, /4096 bytes/);
  // Without Content-Length the limit applies as the bytes arrive.
  const chunked = new ReadableStream({
    start(c) {
      for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode(' '.repeat(1000)));
      c.close();
    },
  });
  const res = await fetch(`${t.base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunked, duplex: 'half' } as RequestInit);
  await expectError(res, 413);
  assert.equal((await post(ok)).status, 200, 'the server goes on after draining them');
});

/** Writes `head` (and `body`, if any) on a raw socket; resolves with all the server sends until it closes or `idleMs` pass. */
function rawExchange(port: number, head: string, body?: Buffer, idleMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(head);
      if (body) s.write(body);
    });
    let out = '';
    const done = () => {
      s.destroy();
      resolve(out);
    };
    let idle = setTimeout(done, idleMs);
    s.on('data', (b) => {
      out += b.toString();
      clearTimeout(idle);
      idle = setTimeout(done, idleMs);
    });
    s.on('close', () => {
      clearTimeout(idle);
      resolve(out);
    });
    s.on('error', reject);
  });
}

test('an oversized body gets its whole 413, with or without Expect: 100-continue', async () => {
  const size = 64 * 1024;
  const head = (extra: string) => `POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n${extra}\r\n`;
  // Expect: the 413 comes instead of 100 Continue, before any byte of the body, and the connection closes.
  const expecting = await rawExchange(t.api.port, head('expect: 100-continue\r\n'));
  assert.match(expecting, /^HTTP\/1.1 413 /);
  assert.doesNotMatch(expecting, /100 Continue/);
  assert.match(expecting, /"code":"body_too_large"\}\}$/);
  // Without Expect the client sends it all at once: the body is drained, not reset, so the answer arrives whole.
  const sent = await rawExchange(t.api.port, head(''), Buffer.alloc(size, 0x61));
  assert.match(sent, /^HTTP\/1.1 413 /);
  assert.match(sent, /"code":"body_too_large"\}\}$/);
});

test('a POST without a JSON content type is a 415; a wrong method a 405; an unknown route a 404', async () => {
  const asText = await fetch(`${t.base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(ok) });
  await expectError(asText, 415, null, /application\/json/);
  const form = await fetch(`${t.base}/v1/completions`, { method: 'POST', body: new URLSearchParams({ a: 'b' }) });
  await expectError(form, 415);
  const wrong = await fetch(`${t.base}/v1/completions`);
  await expectError(wrong, 405, null, /POST/);
  assert.equal(wrong.headers.get('allow'), 'POST');
  await expectError(await fetch(`${t.base}/api/nodes`, { method: 'DELETE' }), 405);
  await expectError(await fetch(`${t.base}/v2/anything`), 404);
  await expectError(await fetch(`${t.base}/api/jobs/%E0%A4%A`), 400, null, /percent-encoding/);
  // With JSON's own parameters the content type is still JSON.
  assert.equal((await post(ok)).status, 200);
  assert.equal((await fetch(`${t.base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(ok) })).status, 200);
});

test('the router\'s failures: 400 bad request, 503 naming the group with no node, 504 timeout, 500 internal', async () => {
  await expectError(await post({ ...ok, prompt: 'LONG '.repeat(60), max_tokens: 100 }), 400, null, /context/);
  const noNode = await expectError(await post({ ...ok, prompt: 'NO-NODE', max_tokens: 10 }), 503, null, /group g1/);
  assert.equal(noNode.error.code, 'no_available_node');
  await expectError(await post({ ...ok, prompt: 'TIMEOUT', max_tokens: 10 }), 504, null, /did not answer/);
  const crash = await expectError(await post({ ...ok, prompt: 'CRASH', max_tokens: 10 }), 500);
  assert.doesNotMatch(crash.error.message, /bug in the router/, 'internals stay in the log');
  assert.ok(t.cap.records.some((r) => r.msg === 'HTTP request failed' && String(r.err).includes('bug in the router')));
  // Mid-stream, the status line is out: the error travels as an event in the same shape.
  const res = await post({ ...ok, prompt: 'NO-NODE', max_tokens: 10, stream: true });
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /"text":"a"/);
  assert.match(text, /data: \{"error":\{"message":"group g1 has no available node/);
  assert.doesNotMatch(text, /\[DONE\]/);
});

test('a job that finds its group asleep is a 503 with Retry-After: the seconds to the group\'s first planned wake', async () => {
  const res = await post({ ...ok, prompt: 'ASLEEP', max_tokens: 10 });
  assert.equal(res.headers.get('retry-after'), '90');
  const asleep = await expectError(res, 503, null, /group g1.*asleep.*wake.*in 90 s.*retry then/);
  assert.equal(asleep.error.code, 'group_asleep');
  const other = await post({ ...ok, prompt: 'NO-NODE', max_tokens: 10 });
  assert.equal(other.headers.get('retry-after'), null, 'a group with no node at all has no time to come back at');
  await other.body?.cancel();
});

test('with an API key, every route but /healthz wants the bearer token', async () => {
  const base = keyed.base;
  const missing = await expectError(await fetch(`${base}/api/nodes`), 401, null, /Authorization: Bearer/);
  assert.equal(missing.error.code, 'missing_api_key');
  const wrong = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.headers.get('www-authenticate'), 'Bearer realm="heliomesh"');
  assert.equal((await expectError(wrong, 401)).error.code, 'invalid_api_key');
  await expectError(await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${KEY}x` } }), 401);
  await expectError(await fetch(`${base}/metrics`, { headers: { authorization: `Basic ${KEY}` } }), 401);
  await expectError(await postJson(base, '/v1/completions', ok), 401);
  assert.equal(keyed.jobs.submitted.length, 0);
  assert.equal((await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).status, 200);
  assert.equal((await postJson(base, '/v1/completions', ok, { authorization: `bearer ${KEY}` })).status, 200);
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
});

test('CORS: allowed origins get the header and a preflight without the key', async () => {
  const pre = await fetch(`${keyed.base}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://ui.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://ui.example');
  assert.match(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);
  const other = await fetch(`${keyed.base}/healthz`, { headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  await expectError(await fetch(`${t.base}/v1/models`, { method: 'OPTIONS' }), 405, null, /GET/);
});

test('malformed HTTP and junk never crash the server, and every refusal is counted', async () => {
  const raw = (bytes: string) => new Promise<string>((resolve, reject) => {
    const s = connect(t.api.port, '127.0.0.1', () => s.end(bytes));
    let out = '';
    s.on('data', (b) => (out += b.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
  assert.match(await raw('GARBAGE\r\n\r\n'), /^HTTP\/1.1 400/);
  assert.match(await raw(`GET /api/nodes HTTP/1.1\r\nhost: x\r\n${'x-long: y\r\n'.repeat(4000)}\r\n`), /^HTTP\/1.1 431/);
  // A client that announces a body and goes away before sending it.
  await new Promise<void>((resolve) => {
    const req = request({ port: t.api.port, host: '127.0.0.1', method: 'POST', path: '/v1/completions', headers: { 'content-type': 'application/json', 'content-length': '100' } });
    req.on('error', () => resolve());
    req.write('{"model"');
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 50);
  });
  for (const junk of ['{"a":' + '['.repeat(100_000), '\u0000\u0001', '{"__proto__": {"polluted": 1}, "model": "fake-char", "prompt": "x"}']) {
    const res = await fetch(`${t.base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: junk });
    assert.ok(res.status === 400 || res.status === 413 || res.status === 200, String(res.status));
    await res.arrayBuffer();
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal((await fetch(`${t.base}/healthz`)).status, 200, 'still serving');
  const metrics = await (await fetch(`${t.base}/metrics`)).text();
  const bad = (status: number) => Number(new RegExp(`^heliomesh_http_bad_requests_total\\{status="${status}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
  assert.ok(bad(400) >= 20, `400s counted: ${bad(400)}`);
  assert.ok(bad(413) >= 2);
  assert.ok(bad(431) >= 1);
});
