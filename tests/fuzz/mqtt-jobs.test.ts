// MQTT fuzz against live jobs: while jobs run through a field of agents, an authenticated
// node that serves none of them floods its own topics with bad messages and with
// well-formed job/out traffic aimed at the running jobs — forged acceptances, refusals,
// hand-backs, frames and energy reports. None of it may touch a job: every job completes
// with the text of in-process generation, without a failover, and with only its serving
// nodes' energy; the router counts what it refused and what it ignored.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connectAsync, type MqttClient } from 'mqtt';
import { encodeFrame, encodeJson, nodeTopics } from '../../protocol/index.js';
import { Field } from '../support/field.js';
import { until } from '../../ground/until.js';
import { Reference, request } from '../gateway/e2e-reference.js';
import { Rng, badMessages } from './generator.js';

/** A node of the field whose agent is stopped; its credentials are the fuzzer's. */
const FUZZER = 'g3-n2';
const BAD = 2_000;

let field: Field;
let reference: Reference;
let fuzzer: MqttClient | undefined;

before(async () => {
  field = await Field.start({ nodesPerGroup: 2, gateway: { router: { hopTimeoutMs: 5000, reportTimeoutMs: 1000 } } });
  reference = Reference.load(3);
  await field.ready();
  await field.node(FUZZER).kill('stop');
  await until('the fuzzer\'s node offline', () => field.gateway.registry.get(FUZZER)?.online === false);
});

after(async () => {
  await fuzzer?.endAsync(true);
  await field?.close();
  reference?.dispose();
});

test('forged job/out traffic and bad messages from a node that serves no job leave running jobs untouched', async () => {
  const cfg = field.node(FUZZER).config.gateway;
  fuzzer = await connectAsync(`mqtt://127.0.0.1:${field.gateway.broker.ports.mqtt}`, {
    clientId: FUZZER, username: FUZZER, password: cfg.password, reconnectPeriod: 0,
  });
  const own = nodeTopics('field', FUZZER);
  const rng = new Rng(4242);
  const bad = badMessages(BAD, { self: FUZZER, others: ['g1-n1', 'g2-n1', 'g3-n1'] }, rng);

  const reqs = [21, 22, 23, 24].map((seed) => request({ prompt: 'The moon', temperature: 0.8, topP: 0.9, seed, maxTokens: 40 }));
  const before = { ...field.gateway.router.stats };
  const handles = reqs.map((r) => field.gateway.jobs.submit(r));
  const nums = handles.map((h) => Number(h.id.slice('job-'.length)));

  // Forged traffic for the live jobs, interleaved with the bad messages, while they run.
  let forged = 0;
  const forge = (jobId: number): Buffer => {
    forged++;
    const sessionId = rng.int(0, 40);
    switch (rng.int(0, 4)) {
      case 0: return encodeJson({ v: 1, type: 'accepted', jobId });
      case 1: return encodeJson({ v: 1, type: 'refused', jobId, reason: 'forged' });
      case 2: return encodeJson({ v: 1, type: 'handed-back', jobId, reason: 'forged' });
      case 3: return encodeFrame({ jobId, sessionId, step: rng.int(0, 40), position: rng.int(0, 40), rows: 1, dim: 4, data: [1, 2, 3, 4] });
      default: return encodeJson({ v: 1, type: 'report', jobId, sessionId, ok: rng.next() < 0.5, error: 'forged', steps: 1, durationMs: 1, energyJ: 1e6, baselineW: 0, powerMode: 1 });
    }
  };
  const done = Promise.all(handles.map((h) => h.done));
  let settled = false;
  void done.finally(() => (settled = true));
  const sends: Array<Promise<unknown>> = [];
  for (const [i, m] of bad.entries()) {
    sends.push(fuzzer.publishAsync(own[m.kind], m.payload, { qos: 1 }));
    if (i % 4 === 0 && !settled) sends.push(fuzzer.publishAsync(own.jobOut, forge(rng.pick(nums)), { qos: 1 }));
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5)); // spread over the jobs' lifetime
  }
  await Promise.all(sends);
  const summaries = await done;

  for (const [i, s] of summaries.entries()) {
    assert.equal(s.status, 'done');
    assert.equal(s.text, (await reference.generate(reqs[i]!)).text, `${s.id}: the text of in-process generation`);
    assert.equal(s.failovers, 0, `${s.id}: forged refusals and hand-backs moved nothing`);
    assert.ok(!s.served.some((g) => g.nodes.includes(FUZZER)), `${s.id}: never served by the fuzzer`);
    assert.ok(Math.abs(s.energyJ) < 1_000, `${s.id}: energy ${s.energyJ} J holds only its serving nodes' reports`);
  }
  assert.ok(forged >= 20, `${forged} forged job/out messages reached the running jobs`);
  await until('the link to take every message', () => field.gateway.link.counters.invalid >= BAD, 20_000);
  assert.equal(field.gateway.link.counters.invalid, BAD, 'each bad state, slot or event message refused');
  assert.equal(field.gateway.registry.get(FUZZER)?.online, false, 'no bad birth brought the fuzzer\'s node online');
  assert.equal(field.gateway.router.stats.invalid, before.invalid, 'the forged messages were well-formed');
  assert.equal(field.gateway.router.stats.stale - before.stale, forged, 'and each was counted as not about any hop of the job');
  assert.equal(field.gateway.jobs.counters().failed, 0);
});
