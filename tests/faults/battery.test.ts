// Battery drained to the critical level while the node holds jobs. A job accepted but not
// started is handed back when the node enters power saving; the running one is finished
// while the node can, and reported failed when the node shuts down; offers are refused
// from power saving on; the node never reports a battery below the critical level while it
// still accepts work; and it leaves cleanly: critical event, last slot, spool flushed,
// retained offline state, then the shutdown action.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { thresholdsJ } from '../../agent/config.js';
import { VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { selectBackend } from '../../models/backend.js';
import {
  encodeFrame, encodeJson, isFrame, nodeTopics, parseEvent, parseJobReport, parseSlotRecord, parseState, type JobReport,
} from '../../protocol/index.js';
import { aedesWithFolder } from '../agent/brokers.js';
import { BUNDLED, agentConfig, range, startAgent, until } from './support.js';

const NIGHT = Date.parse('2026-06-21T23:00:00Z');
const SAMPLE_MS = 5000;

interface Seen { topic: string; payload: Buffer; order: number }

test('drained to critical during jobs: waiting job handed back, running job reported failed, never accepting below critical, clean shutdown', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const { broker, dir } = await aedesWithFolder(t, 'battery');
  const hw = referenceHardwareConfig('virtual');
  // 11 % at night; a narrow band (E_th 10 %, E′_th 10.5 %, critical 9.5 %) keeps the drain
  // to about twenty simulated minutes.
  const hardware = {
    ...hw,
    battery: { ...hw.battery, initialSocPct: 11 },
    virtual: { ...hw.virtual, startTime: new Date(NIGHT).toISOString(), initialSocPct: 11 },
  };
  const config = agentConfig({
    hardware, gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, slotMs: 60_000, sampleHz: 1000 / SAMPLE_MS,
    thresholds: { eThPct: 10, eThUpPct: 10.5, criticalPct: 9.5 }, worker: { queueCapacity: 2, sessionIdleMs: 3_600_000 },
    spool: { dir }, model: { shardDir: BUNDLED, firstBlock: 0, lastBlock: 1 },
  });
  const { criticalJ } = thresholdsJ(config);
  const clock = new VirtualClock(NIGHT);
  const shutdowns: Array<{ reason: string; order: number; spoolEntries: number }> = [];
  let order = 0;
  const agent = await startAgent(config, clock, async (reason) => {
    shutdowns.push({ reason, order: order++, spoolEntries: agent.spool.stats().entries });
  });
  t.after(() => agent.stop('test over', false));
  const topics = nodeTopics(config.fleet, config.nodeId);
  const seen: Seen[] = [];
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'battery-observer' });
  t.after(() => obs.endAsync());
  obs.on('message', (topic, payload) => seen.push({ topic, payload, order: order++ }));
  await obs.subscribeAsync([topics.slot, topics.event, topics.state, topics.jobOut], { qos: 1 });
  await until('connected and taking jobs', () => agent.link.connected && agent.policy.acceptsJobs());

  const reports = (): Array<JobReport & { order: number }> => seen.filter((s) => s.topic === topics.jobOut && !isFrame(s.payload))
    .map((s) => { const r = parseJobReport(s.payload); assert.ok(r.ok, r.ok ? '' : r.error); return { ...r.value, order: s.order }; });
  const replyTo = async (jobId: number): Promise<JobReport> => {
    await until(`a reply to job ${jobId}`, () => reports().some((r) => r.jobId === jobId));
    return reports().find((r) => r.jobId === jobId)!;
  };
  const dim = agent.worker!.stack.geometry.dim;
  let position = 0;
  let step = 0;
  const frameA = async (rows: number): Promise<void> => {
    const frames = () => seen.filter((s) => s.topic === topics.jobOut && isFrame(s.payload)).length;
    const before = frames();
    const data = new Float32Array(rows * dim).map((_, i) => Math.sin(i + position) * 0.2);
    await obs.publishAsync(topics.jobIn, encodeFrame({ jobId: 1, sessionId: 10, step: step++, position, rows, dim, data, dtype: 'f32' }), { qos: 1 });
    position += rows;
    await until('the output frame', () => frames() > before);
  };

  // Job 1 starts running; job 2 is accepted and waits behind it.
  await obs.publishAsync(topics.jobIn, encodeJson({ v: 1, type: 'offer', jobId: 1, sessionId: 10 }), { qos: 1 });
  assert.equal((await replyTo(1)).type, 'accepted');
  await frameA(4);
  await obs.publishAsync(topics.jobIn, encodeJson({ v: 1, type: 'offer', jobId: 2, sessionId: 20 }), { qos: 1 });
  assert.equal((await replyTo(2)).type, 'accepted');

  // Drain: a decode step of job 1 every 20 s, a new offer every minute, until the node goes.
  const offers: Array<{ jobId: number; batteryJ: number }> = [];
  for (let s = 1; !agent.policy.critical && s < 4 * 3600 / 5; s++) {
    await clock.advance(SAMPLE_MS);
    await agent.ledger.settled();
    if (agent.policy.critical) break;
    if (s % 4 === 0) await frameA(1);
    if (s % 12 === 0) {
      const jobId = 100 + s;
      await obs.publishAsync(topics.jobIn, encodeJson({ v: 1, type: 'offer', jobId, sessionId: jobId }), { qos: 1 });
      await replyTo(jobId);
      offers.push({ jobId, batteryJ: agent.ledger.latest()!.energyJ });
    }
  }
  await until('the shutdown action', () => shutdowns.length > 0, 30_000);

  const all = reports();
  // Job 2 never started: handed back at once when the node entered power saving.
  const handed = all.find((r) => r.jobId === 2 && r.type === 'handed-back');
  assert.ok(handed && handed.type === 'handed-back' && /power saving/.test(handed.reason), JSON.stringify(all.filter((r) => r.jobId === 2)));
  // Job 1 ran through power saving and was reported failed when the node shut down.
  const last = all.filter((r) => r.jobId === 1).at(-1)!;
  assert.ok(last.type === 'report' && !last.ok && /critical battery/.test(last.error ?? '') && last.steps === step, JSON.stringify(last));
  // Offers: refused (queue full, then power saving); none accepted.
  assert.ok(offers.length >= 5, `${offers.length} offers during the drain`);
  const offerReplies = offers.map((o) => all.find((r) => r.jobId === o.jobId)!);
  assert.ok(offerReplies.every((r) => r.type === 'refused'), JSON.stringify(offerReplies));
  assert.ok(offerReplies.some((r) => r.type === 'refused' && /power saving/.test(r.reason)));

  // What the node reported: below the critical level it never showed γ = 1, and nothing
  // was accepted after the first report below it.
  const reported: Array<{ kind: string; batteryJ: number; gamma: 0 | 1; order: number; seq?: number }> = [];
  for (const s of seen) {
    if (s.topic === topics.slot) {
      const r = parseSlotRecord(s.payload);
      assert.ok(r.ok);
      reported.push({ kind: 'slot', batteryJ: r.value.batteryJ, gamma: r.value.gamma, order: s.order, seq: r.value.seq });
    } else if (s.topic === topics.event) {
      const r = parseEvent(s.payload);
      assert.ok(r.ok);
      reported.push({ kind: r.value.kind, batteryJ: r.value.batteryJ, gamma: r.value.gamma, order: s.order });
    }
  }
  const below = reported.filter((r) => r.batteryJ < criticalJ);
  assert.ok(below.length > 0, 'the drain reached the critical level');
  assert.ok(below.every((r) => r.gamma === 0), JSON.stringify(below.filter((r) => r.gamma !== 0)));
  const firstBelow = Math.min(...below.map((r) => r.order));
  assert.ok(all.filter((r) => r.type === 'accepted').every((r) => r.order < firstBelow));
  const critical = reported.find((r) => r.kind === 'critical');
  assert.ok(critical && critical.batteryJ < criticalJ);

  // A clean exit: every slot delivered without a gap, the spool empty, offline state before the power goes.
  const slots = reported.filter((r) => r.kind === 'slot').map((r) => r.seq!);
  assert.deepEqual(slots, range(slots.length));
  assert.equal(slots.length, agent.ledger.nextSeq);
  assert.equal(shutdowns.length, 1);
  assert.equal(shutdowns[0]!.reason, 'critical battery');
  assert.equal(shutdowns[0]!.spoolEntries, 0, 'spool flushed before the shutdown action');
  const offline = seen.find((s) => s.topic === topics.state && (() => { const st = parseState(s.payload); return st.ok && st.value.status === 'offline'; })());
  assert.ok(offline && offline.order < shutdowns[0]!.order);
  assert.equal(agent.worker!.queue(), 0);
});
