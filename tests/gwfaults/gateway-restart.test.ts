// Gateway restart mid-job: 3 groups × 3 agents on virtual hardware talk straight to a
// gateway on a fixed port. With three jobs generating, the gateway is closed: each job
// fails at once with JobError 'shutdown' (and, through the HTTP API, an OpenAI-shaped 503
// naming the shutdown). A new gateway on the same port and files comes up; every agent
// reconnects and re-registers with its birth, holds no job of the old gateway, and the
// next jobs complete with the same text as in-process generation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig, type GatewayConfig } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { JobError, type JobHandle } from '../../gateway/jobs.js';
import { ScaledClock } from '../../hardware/clock.js';
import { bundledModelDir } from '../../models/bundled.js';
import { readManifest } from '../../models/shards.js';
import { exampleDoc } from '../agent/fixtures.js';
import { Reference, request } from '../gateway/e2e-reference.js';
import { freePort } from '../support/ports.js';
import { until } from '../faults/support.js';
import { writeCredentials } from './light-nodes.js';

const FLEET = 'restart';
const log = pino({ level: 'silent' });
const SLOT_MS = 4_000;

let dir: string;
let config: GatewayConfig;
let gateway: Gateway | undefined;
const agents: Agent[] = [];
let reference: Reference;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-gw-restart-'));
  const blocks = readManifest(bundledModelDir()).blocks;
  const specs = blocks.flatMap((b, g) => [1, 2, 3].map((i) => ({ nodeId: `g${g + 1}-n${i}`, group: `g${g + 1}`, from: b.from, to: b.to })));
  await writeCredentials(join(dir, 'nodes.json'), specs.map((s) => s.nodeId));
  const port = await freePort();
  config = parseGatewayConfig({
    fleet: FLEET,
    broker: { host: '127.0.0.1', port, credentialsPath: join(dir, 'nodes.json') },
    router: { hopTimeoutMs: 3000, reportTimeoutMs: 1000 },
    http: { host: '127.0.0.1', port: 0 },
  });
  gateway = await startGateway(config, { clock: new RealClock(), log });
  for (const s of specs) {
    agents.push(await Agent.start(parseAgentConfig({
      ...exampleDoc(),
      nodeId: s.nodeId, fleet: FLEET, group: s.group,
      gateway: { url: `mqtt://127.0.0.1:${port}`, username: s.nodeId, password: `pw-${s.nodeId}`, reconnectMinMs: 100, reconnectMaxMs: 500 },
      model: { shardDir: bundledModelDir(), firstBlock: s.from, lastBlock: s.to - 1 },
      worker: { queueCapacity: 1, sessionIdleMs: 60_000 },
      spool: { dir: join(dir, s.nodeId) },
      shutdownCommand: ['true'],
      // A birth carries no γ, so a new gateway learns that a node is active from its next
      // slot record or event; short slots keep that wait short here.
      slotMs: SLOT_MS,
    }), { clock: new ScaledClock(1), log, shutdown: async () => {} }));
  }
  reference = Reference.load(3);
});

after(async () => {
  for (const a of agents) await a.stop('test over');
  await gateway?.close();
  reference?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** POSTs to /v1/completions; resolves with the status and whole body, or the transport error. */
function post(port: number, body: object): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', (err) => resolve({ status: res.statusCode ?? 0, body: text, error: err.message }));
    });
    req.on('error', (err) => resolve({ status: 0, body: '', error: err.message }));
    req.end(JSON.stringify(body));
  });
}

/** Every agent online, active and solved at `gw`. */
async function ready(gw: Gateway, which: string): Promise<void> {
  await until(`every node online, active and solved at the ${which} gateway`, () => agents.every((a) => {
    const s = gw.registry.get(a.config.nodeId);
    return !!s && s.online && s.gamma === 1 && s.solved !== undefined;
  })).catch((err: Error) => {
    const states = agents.map((a) => {
      const s = gw.registry.get(a.config.nodeId);
      return `${a.config.nodeId}: connected=${a.link.connected} online=${s?.online} gamma=${s?.gamma} solved=${s?.solved !== undefined}`;
    });
    throw new Error(`${err.message}\n${states.join('\n')}`);
  });
}

test('a gateway restart with three jobs generating (one over the job service, two over HTTP): each fails with shutdown; nodes re-register with the new gateway and the next jobs succeed', async (t) => {
  const first = gateway!;
  await ready(first, 'first');
  // One job through the job service and two over HTTP: one per node of each group.
  const reqs = [3].map((seed) => request({ prompt: 'Once upon a time', temperature: 0.8, topP: 0.9, seed, maxTokens: 200 }));
  const jobs: JobHandle[] = reqs.map((r) => first.jobs.submit(r));
  const tokens = jobs.map(() => 0);
  jobs.forEach((j, i) => j.onToken(() => tokens[i]!++));
  // Two callers over HTTP as well, one waiting for the whole answer, one streaming.
  const body = (stream: boolean) => ({ model: first.jobs.model.id, prompt: 'The moon', max_tokens: 200, temperature: 0.8, seed: 9, stream });
  const plain = post(first.http!.port, body(false));
  const streamed = post(first.http!.port, body(true));
  await until('every job generating', () => first.jobs.counters().active === 3 && first.jobs.recent(3).every((j) => j.completionTokens >= 3));
  const outcomes = Promise.allSettled(jobs.map((j) => j.done));
  await first.close();
  gateway = undefined;

  // The HTTP callers get an answer, in OpenAI's error shape, that says what happened.
  const p = await plain;
  assert.equal(p.status, 503, `plain caller: ${JSON.stringify(p)}`);
  assert.equal((JSON.parse(p.body) as { error: { code: string } }).error.code, 'shutdown');
  const s = await streamed;
  assert.equal(s.status, 200, 'the stream had started');
  const events = s.body.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  assert.ok(events.length >= 2, `tokens streamed before the shutdown: ${events.length - 1}`);
  assert.equal((JSON.parse(events.at(-1)!) as { error?: { code: string } }).error?.code, 'shutdown', `stream ended with: ${events.at(-1)}`);

  for (const [i, o] of (await outcomes).entries()) {
    assert.equal(o.status, 'rejected', `job ${i} did not complete`);
    const err = (o as PromiseRejectedResult).reason as unknown;
    assert.ok(err instanceof JobError, `job ${i}: a JobError`);
    assert.equal(err.kind, 'shutdown');
    assert.match(err.message, /shutting down/);
    assert.ok(tokens[i]! < 200, `job ${i} stopped mid-generation after ${tokens[i]} tokens`);
  }
  assert.deepEqual(first.jobs.recent(3).map((j) => [j.status, j.error?.message.includes('shutting down')]), [['failed', true], ['failed', true], ['failed', true]]);
  assert.equal(first.jobs.counters().active, 0);

  const restartedAt = Date.now();
  const second = await startGateway(config, { clock: new RealClock(), log });
  gateway = second;
  await ready(second, 'second');
  t.diagnostic(`every node available at the new gateway ${Date.now() - restartedAt} ms after its start (slots of ${SLOT_MS} ms)`);
  assert.deepEqual(second.registry.all().map((n) => n.nodeId).sort(), agents.map((a) => a.config.nodeId).sort(), 'every node re-registered');
  await until('no node holds a job of the old gateway', () => agents.every((a) => a.worker!.queue() === 0));

  const next = [6, 7, 8].map((seed) => request({ prompt: 'The river', temperature: 0.7, topP: 0.9, seed, maxTokens: 24 }));
  const done = await Promise.all(next.map((r) => second.jobs.submit(r).done));
  for (const [i, s] of done.entries()) {
    assert.equal(s.status, 'done');
    assert.equal(s.text, (await reference.generate(next[i]!)).text, `job ${s.id} equals in-process generation`);
  }
  assert.equal(second.jobs.counters().failed, 0);
});
