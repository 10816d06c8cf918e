// Fuzz of a node's inbound topics: over 10,000 generated bad payloads on the agent's cmd
// and job/in topics (malformed, wrong-schema, oversized, meant for the other topic, frames
// damaged or for jobs the node does not hold), plus publishes on topics beside them. The
// agent stays up, answers every command and drops every job message, counts each exactly
// in the metrics ping reports, changes no setting, holds no job, and serves a valid job
// afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { ScaledClock } from '../../hardware/clock.js';
import { selectBackend } from '../../models/backend.js';
import {
  decodeFrame, encodeFrame, encodeJson, isFrame, nodeTopics, parseCommand, parseCommandReply, parseJobControl, parseJobReport, type CommandReply,
} from '../../protocol/index.js';
import { aedesWithFolder } from '../agent/brokers.js';
import { Rng } from '../fuzz/generator.js';
import { BUNDLED, agentConfig, startAgent, until } from './support.js';
import { CMD_CATEGORIES, JOB_CATEGORIES, NOT_HELD, badCommand, badJobMessage, type JobCategory } from './node-fuzz.js';

const COMMANDS = 4500;
const JOB_MESSAGES = 6300;
/** Publishes on topics next to the node's own, which the agent must never see. */
const BESIDE = 300;
const BATCH = 300;

test('10,000+ bad payloads on cmd and job/in: the agent answers or drops and counts each, changes nothing, and still serves a job', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const { broker, dir } = await aedesWithFolder(t, 'fuzz');
  const config = agentConfig({
    gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, spool: { dir },
    model: { shardDir: BUNDLED, firstBlock: 0, lastBlock: 1 },
  });
  const agent = await startAgent(config, new ScaledClock(1));
  t.after(() => agent.stop('test over', false));
  const topics = nodeTopics(config.fleet, config.nodeId);
  const replies: CommandReply[] = [];
  const jobOut: Buffer[] = [];
  const fuzzer = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'fuzzer' });
  t.after(() => fuzzer.endAsync());
  fuzzer.on('message', (topic, payload) => {
    if (topic === topics.cmdReply) {
      const r = parseCommandReply(payload);
      assert.ok(r.ok, r.ok ? '' : r.error);
      replies.push(r.value);
    } else {
      jobOut.push(payload);
    }
  });
  await fuzzer.subscribeAsync([topics.cmdReply, topics.jobOut], { qos: 1 });
  await until('connected and taking jobs', () => agent.link.connected && agent.policy.acceptsJobs());
  const settingsBefore = JSON.stringify({ t: agent.policy.thresholds, m: agent.policy.modeTable });

  const rng = new Rng(20261201);
  const dim = agent.worker!.stack.geometry.dim;
  const messages: Array<{ topic: string; payload: Buffer }> = [];
  const jobCounts = new Map<JobCategory, number>();
  for (let i = 0; i < COMMANDS; i++) {
    const payload = badCommand(CMD_CATEGORIES[i % CMD_CATEGORIES.length]!, rng, dim);
    assert.equal(parseCommand(payload).ok, false, `command ${i} is bad by construction`);
    messages.push({ topic: topics.cmd, payload });
  }
  for (let i = 0; i < JOB_MESSAGES; i++) {
    const category = JOB_CATEGORIES[i % JOB_CATEGORIES.length]!;
    const payload = badJobMessage(category, rng, dim);
    jobCounts.set(category, (jobCounts.get(category) ?? 0) + 1);
    if (isFrame(payload)) assert.equal(decodeFrame(payload).ok, NOT_HELD.includes(category), `job message ${i} (${category})`);
    else {
      const c = parseJobControl(payload);
      assert.ok(!c.ok || (category === 'cancel-not-held' && c.value.type === 'cancel'), `job message ${i} (${category}) is no offer`);
    }
    messages.push({ topic: topics.jobIn, payload });
  }
  const beside = [`${topics.cmd}/x`, `${topics.jobIn}/x`, nodeTopics(config.fleet, 'pi-99').cmd, `${topics.cmdReply}`.replace('/reply', '/replies')];
  for (let i = 0; i < BESIDE; i++) messages.push({ topic: beside[i % beside.length]!, payload: badCommand('garbage', rng, dim) });
  rng.shuffle(messages);
  assert.ok(COMMANDS + JOB_MESSAGES >= 10_000);

  for (let i = 0; i < messages.length; i += BATCH) {
    await Promise.all(messages.slice(i, i + BATCH).map((m) => fuzzer.publishAsync(m.topic, m.payload, { qos: 1 })));
  }
  await until('every command answered', () => replies.length >= COMMANDS, 60_000);
  await until('every job message taken', () => agent.link.counters.jobMessages >= JOB_MESSAGES, 60_000);

  // Still up: a ping answers with the metrics.
  await fuzzer.publishAsync(topics.cmd, encodeJson({ v: 1, id: 'after-fuzz', op: 'ping' }), { qos: 1 });
  await until('the ping reply', () => replies.some((r) => r.id === 'after-fuzz'));
  const ping = replies.find((r) => r.id === 'after-fuzz')!;
  assert.ok(ping.ok);
  const result = ping.result as { link: Record<string, number>; jobs: Record<string, number> };
  const notHeld = NOT_HELD.reduce((s, c) => s + (jobCounts.get(c) ?? 0), 0);
  assert.deepEqual(result.link, { commands: COMMANDS + 1, commandsRefused: COMMANDS, commandsFailed: 0, jobMessages: JOB_MESSAGES });
  assert.deepEqual(result.jobs, { held: 0, accepted: 0, offersRefused: 0, cancelled: 0, routed: 0, frames: 0, invalid: JOB_MESSAGES - notHeld, notHeld, decodeFrames: 0, decodeForwardMs: 0, decodeFrameMs: 0 });
  const bad = replies.filter((r) => r.id !== 'after-fuzz');
  assert.equal(bad.length, COMMANDS, 'one reply per command, no more');
  assert.ok(bad.every((r) => !r.ok && (r.error ?? '').length > 0), 'each says what was wrong');
  assert.equal(jobOut.length, 0, 'nothing on job/out: bad job messages are dropped');
  assert.equal(JSON.stringify({ t: agent.policy.thresholds, m: agent.policy.modeTable }), settingsBefore, 'no setting changed');

  // A valid job afterwards, from a clean state.
  await fuzzer.publishAsync(topics.jobIn, encodeJson({ v: 1, type: 'offer', jobId: 77, sessionId: 7 }), { qos: 1 });
  await until('accepted', () => jobOut.length >= 1);
  assert.deepEqual(parseJobReport(jobOut[0]!), { ok: true, value: { v: 1, type: 'accepted', jobId: 77 } });
  const data = new Float32Array(2 * dim).map((_, i) => Math.sin(i) * 0.3);
  await fuzzer.publishAsync(topics.jobIn, encodeFrame({ jobId: 77, sessionId: 7, step: 0, position: 0, rows: 2, dim, data, dtype: 'f32', close: true }), { qos: 1 });
  await until('output and report', () => jobOut.length >= 3);
  const out = jobOut.map((p) => (isFrame(p) ? decodeFrame(p) : null)).find((f) => f?.ok);
  assert.ok(out?.ok && out.frame.rows === 2 && out.frame.data.every(Number.isFinite));
  const report = jobOut.map((p) => (isFrame(p) ? null : parseJobReport(p))).find((r) => r?.ok && r.value.type === 'report');
  assert.ok(report?.ok && report.value.type === 'report' && report.value.ok && report.value.steps === 1);
  assert.equal(agent.worker!.queue(), 0, 'no job held');
});
