// HTTP fuzz at the gateway: generated bad requests to every endpoint — no key or a wrong
// one, wrong methods, unknown paths, bodies that are not JSON, of the wrong type or shape,
// too large (declared or chunked), prompts past the context, bad queries and path escapes,
// HTTP the parser refuses, and clients that close half-way. Every request gets a 4xx (a
// body in OpenAI's error shape when it reached a route) and every one is counted in
// /metrics, exactly; the gateway stays up and serves a valid completion afterwards.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Field } from '../support/field.js';
import { Reference } from '../gateway/e2e-reference.js';
import { Rng } from './generator.js';
import { exchange, requestBytes, samples, type RawRequestOptions } from './http-raw.js';

const KEY = 'fuzz-key-0123456789abcdef';
const MAX_BODY = 64 * 1024;
const ROUNDS = 12;

let field: Field;
let port: number;
let modelId: string;
let contextLength: number;

before(async () => {
  field = await Field.start({ nodesPerGroup: 1, gateway: { http: { host: '127.0.0.1', port: 0, apiKey: KEY, maxBodyBytes: MAX_BODY } } });
  await field.ready();
  port = field.gateway.http!.port;
  modelId = field.gateway.jobs.model.id;
  contextLength = field.gateway.jobs.model.contextLength;
});

after(async () => {
  await field?.close();
});

interface Case {
  what: string;
  req: RawRequestOptions;
  /** The metric's labels: the route pattern ('unmatched', 'unparsed'), the method label and the status. */
  route: string;
  method: string;
  status: number;
  /** The answer is a route's: it carries OpenAI's error shape. */
  shaped: boolean;
}

const auth = { authorization: `Bearer ${KEY}` };
const json = { ...auth, 'content-type': 'application/json' };

interface RouteSpec { name: string; path: () => string; methods: string[]; open?: boolean }

function routes(): RouteSpec[] {
  return [
    { name: '/v1/completions', path: () => '/v1/completions', methods: ['POST'] },
    { name: '/v1/chat/completions', path: () => '/v1/chat/completions', methods: ['POST'] },
    { name: '/v1/models', path: () => '/v1/models', methods: ['GET'] },
    { name: '/v1/models/:id', path: () => `/v1/models/${modelId}`, methods: ['GET'] },
    { name: '/api/nodes', path: () => '/api/nodes', methods: ['GET'] },
    { name: '/api/jobs', path: () => '/api/jobs', methods: ['GET'] },
    { name: '/api/jobs/:id', path: () => '/api/jobs/job-1', methods: ['GET'] },
    { name: '/api/scheduler', path: () => '/api/scheduler', methods: ['GET'] },
    { name: '/healthz', path: () => '/healthz', methods: ['GET'], open: true },
    { name: '/metrics', path: () => '/metrics', methods: ['GET'] },
  ];
}

const validCompletion = () => ({ model: modelId, prompt: 'The little robot', max_tokens: 8, temperature: 0, seed: 1 });
const validChat = () => ({ model: modelId, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8 });

/** Bodies that are JSON objects but break the endpoint's schema: 400 each. */
function schemaBreaks(rng: Rng): Array<[string, object]> {
  const c = validCompletion();
  const h = validChat();
  const pick = <T>(xs: T[]) => rng.pick(xs);
  return [
    ['/v1/completions', { ...c, model: undefined }],
    ['/v1/completions', { ...c, model: pick([5, null, '', ['x'], {}]) }],
    ['/v1/completions', { ...c, prompt: pick([5, null, true, {}, [1, 'a'], ['a', 'b'], [], [-1]]) }],
    ['/v1/completions', { ...c, max_tokens: pick(['ten', 0, -1, 1.5, true]) }],
    ['/v1/completions', { ...c, temperature: pick([-0.1, 2.5, 'hot', []]) }],
    ['/v1/completions', { ...c, top_p: pick([0, 1.5, -1, 'all']) }],
    ['/v1/completions', { ...c, seed: pick([-1, 1.5, 2 ** 40, 'x']) }],
    ['/v1/completions', { ...c, stream: pick(['yes', 1, {}]) }],
    ['/v1/completions', { ...c, stop: pick(['', 5, ['a', 'b', 'c', 'd', 'e'], [''], [3]]) }],
    ['/v1/completions', { ...c, echo: true }],
    ['/v1/completions', { ...c, suffix: 'and then' }],
    ['/v1/completions', { ...c, best_of: 3 }],
    ['/v1/completions', { ...c, prompt: Array.from({ length: contextLength + rng.int(1, 50) }, () => 1) }], // past the context
    ['/v1/chat/completions', { ...h, messages: undefined }],
    ['/v1/chat/completions', { ...h, messages: pick(['hi', 5, {}, null]) }],
    ['/v1/chat/completions', { ...h, messages: [{ role: pick(['robot', '', 5]), content: 'x' }] }],
    ['/v1/chat/completions', { ...h, messages: [{ role: 'user', content: pick([5, {}, [{ type: 'image_url', image_url: 'x' }]]) }] }],
    ['/v1/chat/completions', { ...h, max_tokens: pick([0, 'many', -3]) }],
    ['/v1/chat/completions', { ...h, temperature: 9 }],
    ['/v1/chat/completions', { ...h, messages: [{ role: 'user', content: 'x'.repeat(contextLength + rng.int(1, 200)) }] }], // past the context
  ];
}

function cases(rng: Rng): Case[] {
  const out: Case[] = [];
  const add = (what: string, req: RawRequestOptions, route: string, method: string, status: number, shaped = true) =>
    out.push({ what, req, route, method, status, shaped });
  const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];
  for (const r of routes()) {
    // The key is checked on every route but /healthz, before the method and the body.
    if (!r.open) {
      for (const header of [undefined, `Bearer ${rng.bytes(12).toString('hex')}`, `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}`, 'Bearer', `bearer ${KEY} extra`, `Bearer ${KEY.slice(0, -1)}`]) {
        add(`no or wrong key: ${header}`, { method: r.methods[0]!, path: r.path(), headers: header === undefined ? {} : { authorization: header } }, r.name, r.methods[0]!, 401);
      }
    }
    for (const m of METHODS.filter((x) => !r.methods.includes(x))) {
      add(`${m} on ${r.name}`, { method: m, path: r.path(), headers: auth }, r.name, m, 405, m !== 'HEAD');
    }
  }
  for (const path of ['/', '/v1', '/v2/completions', '/v1/completion', '/v1/models/', '/api/nodes/x', '/metrics/', '/api', `/${rng.bytes(6).toString('hex')}`, '/v1/chat/completions/x']) {
    const method = rng.pick(['GET', 'POST']);
    add(`unknown path ${path}`, { method, path, headers: auth }, 'unmatched', method, 404);
  }
  for (const path of ['/v1/completions', '/v1/chat/completions']) {
    const valid = JSON.stringify(path === '/v1/completions' ? validCompletion() : validChat());
    for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'application/jsonx', 'multipart/form-data; boundary=x']) {
      add(`content-type ${type}`, { method: 'POST', path, headers: type === undefined ? auth : { ...auth, 'content-type': type }, body: valid }, path, 'POST', 415);
    }
    add('empty body', { method: 'POST', path, headers: json, body: '' }, path, 'POST', 400);
    add('truncated JSON', { method: 'POST', path, headers: json, body: valid.slice(0, rng.int(1, valid.length - 1)) }, path, 'POST', 400);
    add('binary garbage', { method: 'POST', path, headers: json, body: Buffer.concat([Buffer.from([0xff]), rng.bytes(rng.int(1, 2000))]) }, path, 'POST', 400);
    add('not an object', { method: 'POST', path, headers: json, body: rng.pick(['null', '[]', '42', '"prompt"', 'true', `[${valid}]`]) }, path, 'POST', 400);
    add('unknown model', { method: 'POST', path, headers: json, body: JSON.stringify({ ...JSON.parse(valid) as object, model: `gpt-${rng.int(1, 9)}` }) }, path, 'POST', 404);
    add('declared too large', { method: 'POST', path, headers: json, body: valid, contentLength: MAX_BODY + rng.int(1, 10 * MAX_BODY) }, path, 'POST', 413);
    add('sent too large', { method: 'POST', path, headers: json, body: JSON.stringify({ ...JSON.parse(valid) as object, pad: 'x'.repeat(MAX_BODY) }) }, path, 'POST', 413);
    const chunk = 'x'.repeat(16 * 1024);
    const chunks = Array.from({ length: MAX_BODY / chunk.length + 1 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('') + '0\r\n\r\n';
    add('chunked too large', { method: 'POST', path, headers: { ...json, 'transfer-encoding': 'chunked' }, body: chunks, contentLength: null }, path, 'POST', 413);
  }
  for (const [path, body] of schemaBreaks(rng)) add(`schema: ${JSON.stringify(body).slice(0, 80)}`, { method: 'POST', path, headers: json, body: JSON.stringify(body) }, path, 'POST', 400);
  for (const q of ['0', '-1', 'abc', '1001', '1.5', '']) add(`limit=${q}`, { method: 'GET', path: `/api/jobs?limit=${q}`, headers: auth }, '/api/jobs', 'GET', 400);
  add('no such job', { method: 'GET', path: `/api/jobs/job-${rng.int(100_000, 999_999)}`, headers: auth }, '/api/jobs/:id', 'GET', 404);
  add('no such model', { method: 'GET', path: '/v1/models/gpt-4', headers: auth }, '/v1/models/:id', 'GET', 404);
  const escaped = rng.pick(['/api/jobs/%E0%A4%A', '/api/jobs/%ZZ', '/v1/models/%C3']);
  add('bad percent-encoding', { method: 'GET', path: escaped, headers: auth }, escaped.startsWith('/v1') ? '/v1/models/:id' : '/api/jobs/:id', 'GET', 400);
  return out;
}

/** Requests Node's HTTP parser refuses before any route sees them: a bare 400 (431 for headers too large). */
interface Unparsable {
  what: string;
  bytes: Buffer;
  status: number;
  endEarly?: boolean;
  /** The route that had started reading the request when the client left: it counts a 499 too. */
  alsoLeft?: string;
  uncounted?: boolean;
}

function unparsable(rng: Rng): Unparsable[] {
  const b = (s: string) => Buffer.from(s, 'latin1');
  return [
    { what: 'garbage request line', bytes: Buffer.concat([b('GARBAGE '), rng.bytes(20).map((x) => 0x41 + (x % 26)), b('\r\n\r\n')]), status: 400 },
    { what: 'unknown method', bytes: b('BREW /healthz HTTP/1.1\r\nhost: x\r\n\r\n'), status: 400 },
    { what: 'space in a header name', bytes: b('GET /healthz HTTP/1.1\r\nhost: x\r\nbad header: 1\r\n\r\n'), status: 400 },
    { what: 'content-length not a number', bytes: b('POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n'), status: 400 },
    { what: 'both content-length and chunked', bytes: b('POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'), status: 400 },
    // Node's server answers this one itself (requireHostHeader), before any hook of ours
    // runs, so /metrics never sees it: the one bad request here that goes uncounted.
    { what: 'HTTP/1.1 without host', bytes: b('GET /healthz HTTP/1.1\r\n\r\n'), status: 400, uncounted: true },
    { what: 'headers over 16 KiB', bytes: b(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(17 * 1024 + rng.int(0, 4096))}\r\n\r\n`), status: 431 },
    { what: 'control byte in the path', bytes: b('GET /heal\x01thz HTTP/1.1\r\nhost: x\r\n\r\n'), status: 400 },
    // Slowloris-ish: headers cut off, then the client closes.
    { what: 'headers cut off, then closed', bytes: b(`POST /v1/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\ncontent-`), status: 400, endEarly: true },
    // A body shorter than its Content-Length, then the client closes. The parser answers 400,
    // and the route that was reading the body records the request as left (499) as well.
    {
      what: 'body cut off, then closed', status: 400, endEarly: true, alsoLeft: '/v1/completions',
      bytes: requestBytes({ method: 'POST', path: '/v1/completions', headers: json, body: '{"model":"x","prompt":"', contentLength: rng.int(100, 5000) }),
    },
  ];
}

async function scrape(): Promise<string> {
  const r = await exchange(port, requestBytes({ method: 'GET', path: '/metrics', headers: auth }));
  assert.equal(r.status, 200);
  return r.body;
}

const key = (route: string, method: string, status: number) => `route="${route}",method="${method}",status="${status}"`;

test('bad HTTP to every endpoint: each gets a 4xx, in OpenAI\'s error shape when a route answered, and each is counted in /metrics', async () => {
  const rng = new Rng(8080);
  const before = await scrape();
  const expected = new Map<string, number>();
  const bump = (k: string, n = 1) => expected.set(k, (expected.get(k) ?? 0) + n);
  let sent = 0;
  let uncounted = 0;
  const mismatches: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases(rng)) {
      const r = await exchange(port, requestBytes(c.req));
      sent++;
      if (r.status !== c.status) {
        mismatches.push(`${c.what} (${c.req.method} ${c.req.path}): ${r.status} ${r.body.slice(0, 200)}, expected ${c.status}`);
        continue;
      }
      bump(key(c.route, c.method, c.status));
      if (!c.shaped) continue;
      const e = (JSON.parse(r.body) as { error?: { message?: unknown; type?: unknown; code?: unknown } }).error;
      assert.ok(typeof e?.message === 'string' && e.message.length > 0 && typeof e.type === 'string' && typeof e.code === 'string', `${c.what}: OpenAI error shape: ${r.body}`);
    }
    for (const u of unparsable(rng)) {
      const r = await exchange(port, u.bytes, u.endEarly);
      sent++;
      if (r.status !== u.status) mismatches.push(`${u.what}: ${r.status}, expected ${u.status}`);
      else if (u.uncounted) uncounted++;
      else {
        bump(key('unparsed', 'other', u.status));
        if (u.alsoLeft) bump(key(u.alsoLeft, 'POST', 499));
      }
    }
  }
  assert.deepEqual(mismatches, [], 'every request got the expected status');
  const after = await scrape();
  bump(key('/metrics', 'GET', 200)); // the first scrape, counted once its answer was out

  const was = samples(before, 'heliomesh_http_requests_total');
  const now = samples(after, 'heliomesh_http_requests_total');
  const delta = new Map([...now].map(([k, v]) => [k, v - (was.get(k) ?? 0)]).filter(([, d]) => d !== 0) as Array<[string, number]>);
  assert.deepEqual(Object.fromEntries([...delta].sort()), Object.fromEntries([...expected].sort()), 'heliomesh_http_requests_total counts each request once, by route, method and status');
  const bad = (s: string) => [...samples(s, 'heliomesh_http_bad_requests_total').values()].reduce((a, b) => a + b, 0);
  const expectedBad = [...expected].filter(([k]) => /status="4\d\d"/.test(k) && !k.includes('status="499"')).reduce((a, [, n]) => a + n, 0);
  assert.equal(bad(after) - bad(before), expectedBad);
  assert.equal(expectedBad + uncounted, sent, `all ${sent} requests were bad, and all but ${uncounted} counted as such`);
  assert.equal(field.gateway.jobs.counters().active, 0, 'no bad request left a job behind');
});

test('after the fuzz the gateway is healthy and serves a valid completion equal to in-process generation', async () => {
  const health = await exchange(port, requestBytes({ method: 'GET', path: '/healthz' }));
  assert.equal(health.status, 200);
  const body = { model: modelId, prompt: 'The little robot', max_tokens: 16, temperature: 0, seed: 1 };
  const r = await exchange(port, requestBytes({ method: 'POST', path: '/v1/completions', headers: json, body: JSON.stringify(body) }), false, 60_000);
  assert.equal(r.status, 200, r.body);
  const reference = Reference.load(3);
  try {
    const expected = await reference.generate({ prompt: body.prompt, maxTokens: 16, temperature: 0, topP: 1, seed: 1, stop: [] });
    assert.equal((JSON.parse(r.body) as { choices: Array<{ text: string }> }).choices[0]!.text, expected.text);
  } finally {
    reference.dispose();
  }
});
