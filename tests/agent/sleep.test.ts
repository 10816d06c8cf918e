// The agent's sleep command on the virtual node, over a real broker: refused without a
// working wake path or for a wake time the alarm cannot hold; accepted, it lets its held
// job finish, sets the virtual RTC's alarm, says it is sleeping, flushes and halts; an
// alarm that is not taken keeps it up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { until } from '../../ground/until.js';
import { ScaledClock } from '../../hardware/clock.js';
import { armedAlarm } from '../../hardware/virtual/rtc.js';
import { bundledModelDir } from '../../models/bundled.js';
import { selectBackend } from '../../models/backend.js';
import {
  encodeFrame, encodeJson, fleetFilter, isFrame, parseCommandReply, parseEvent, parseJobReport, parseState,
  type CommandReply, type EventMessage, type JobReport, type StateMessage,
} from '../../protocol/index.js';
import { aedesWithFolder } from './brokers.js';
import { exampleDoc } from './fixtures.js';

type Online = Extract<StateMessage, { status: 'online' }>;

/** A broker, an observer of everything the node publishes, and a virtual agent with `over` merged into its config. */
async function sleepyNode(t: { after(fn: () => Promise<void> | void): void }, over: Record<string, unknown>, scale = 20) {
  const { broker, dir } = await aedesWithFolder(t, 'sleep');
  const config = parseAgentConfig({ ...exampleDoc(), gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, spool: { dir }, slotMs: 1000, ...over });
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'gateway-test' });
  t.after(() => obs.endAsync());
  const got: Array<{ topic: string; payload: Buffer; seq: number }> = [];
  let seq = 0;
  obs.on('message', (topic, payload) => got.push({ topic, payload, seq: seq++ }));
  // What the broker took from the node, in the same count: the broker acknowledges a QoS 1
  // publish after it has taken it, and may hand it to the observer after the node has halted.
  const taken: Array<{ topic: string; payload: Buffer; seq: number }> = [];
  broker.aedes.on('publish', (packet, client) => {
    if (client?.id === 'pi-01') taken.push({ topic: packet.topic, payload: Buffer.from(packet.payload), seq: seq++ });
  });
  await obs.subscribeAsync([fleetFilter('solar', 'state'), fleetFilter('solar', 'event'), fleetFilter('solar', 'cmdReply'), 'heliomesh/solar/node/pi-01/job/out'], { qos: 1 });
  const halts: Array<{ reason: string; seq: number }> = [];
  const clock = new ScaledClock(scale);
  const agent = await Agent.start(config, {
    clock, log: pino({ level: 'silent' }),
    shutdown: async () => { throw new Error('the critical shutdown must not run in these tests'); },
    halt: async (reason) => { halts.push({ reason, seq: seq++ }); },
  });
  t.after(() => agent.stop('test over'));
  await until('connected', () => agent.link.connected);
  const reply = async (id: string): Promise<CommandReply> => {
    let r: CommandReply | undefined;
    await until(`reply ${id}`, () => {
      r = got.filter((g) => g.topic.endsWith('/cmd/reply')).map((g) => parseCommandReply(g.payload)).map((p) => (p.ok ? p.value : undefined)).find((v) => v?.id === id);
      return r !== undefined;
    });
    return r!;
  };
  const command = async (id: string, body: Record<string, unknown>) => {
    await obs.publishAsync('heliomesh/solar/node/pi-01/cmd', encodeJson({ v: 1, id, ...body }), { qos: 1 });
    return reply(id);
  };
  const births = () => got.filter((g) => g.topic.endsWith('/state')).map((g) => parseState(g.payload))
    .flatMap((s) => (s.ok && s.value.status === 'online' ? [s.value as Online] : []));
  const events = () => got.filter((g) => g.topic.endsWith('/event')).flatMap((g) => {
    const e = parseEvent(g.payload);
    return e.ok ? [{ ...e.value, seq: g.seq } as EventMessage & { seq: number }] : [];
  });
  const jobOut = () => got.filter((g) => g.topic.endsWith('/job/out') && !isFrame(g.payload)).flatMap((g) => {
    const r = parseJobReport(g.payload);
    return r.ok ? [{ ...r.value, seq: g.seq } as JobReport & { seq: number }] : [];
  });
  /** When the broker took the node's first publish on a topic ending in `suffix` that `match` accepts. */
  const takenSeq = (suffix: string, match: (payload: Buffer) => boolean) => taken.find((m) => m.topic.endsWith(suffix) && match(m.payload))?.seq;
  const sleepingTaken = () => takenSeq('/event', (p) => { const e = parseEvent(p); return e.ok && e.value.kind === 'sleeping'; });
  const offlineTaken = () => takenSeq('/state', (p) => { const st = parseState(p); return st.ok && st.value.status === 'offline'; });
  return { agent, obs, clock, got, halts, command, births, events, jobOut, sleepingTaken, offlineTaken };
}

function rtcRoot(t: { after(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-sleep-rtc-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

test('a node without a wake path refuses to sleep, says so in its birth, and stays up', async (t) => {
  const n = await sleepyNode(t, {});
  await until('birth', () => n.births().length > 0);
  assert.deepEqual(n.births()[0]!.profile.wake, { path: 'none', ok: false, reason: n.births()[0]!.profile.wake!.reason });
  assert.match(n.births()[0]!.profile.wake!.reason!, /no wake path configured/);
  const r = await n.command('s1', { op: 'sleep', wakeAtMs: Math.round(n.clock.now() + 3_600_000), reason: 'night' });
  assert.equal(r.ok, false);
  assert.match(r.error!, /no wake path configured .*refuses to sleep/);
  assert.equal(n.agent.stopped, false);
  assert.equal(n.halts.length, 0, 'not halted');
});

test('a broken wake path (no wakealarm file) is refused with its reason, in the birth and in the reply', async (t) => {
  const root = rtcRoot(t);
  mkdirSync(join(root, 'rtc0'));
  const n = await sleepyNode(t, { wake: { path: 'rtc-wakealarm', sysfsRoot: root } });
  await until('birth', () => n.births().length > 0);
  const wake = n.births()[0]!.profile.wake!;
  assert.equal(wake.path, 'rtc-wakealarm');
  assert.equal(wake.ok, false);
  assert.match(wake.reason!, /wakealarm does not exist/);
  const r = await n.command('s1', { op: 'sleep', wakeAtMs: Math.round(n.clock.now() + 3_600_000), reason: 'night' });
  assert.equal(r.ok, false);
  assert.match(r.error!, /RTC wake alarm .* cannot wake this node: .*wakealarm does not exist.*refuses to sleep/);
  assert.equal(n.agent.stopped, false);
  assert.equal(n.halts.length, 0, 'not halted');
});

test('on the virtual RTC: wake times too near or too far are refused; a good one sets the alarm, publishes sleeping, flushes and halts', async (t) => {
  const root = rtcRoot(t);
  const n = await sleepyNode(t, { wake: { path: 'virtual', sysfsRoot: root }, sleepDrainMs: 30_000, stopFlushMs: 30_000 });
  await until('birth', () => n.births().length > 0);
  assert.deepEqual(n.births()[0]!.profile.wake, { path: 'virtual', ok: true });
  // No worker: every metered interval is idle, and the estimate reaches a birth once it exists.
  await until('a birth with the idle draw', () => n.births().some((b) => b.profile.idleW !== undefined), 60_000);
  const idleW = n.births().find((b) => b.profile.idleW !== undefined)!.profile.idleW!;
  assert.ok(idleW > 2 && idleW < 4, `the virtual Pi 4 idles at about 2.7 W, the birth says ${idleW} W`);

  // The drain (30 s), the stop (30 s) and the halt (60 s) must fit before the alarm.
  const near = await n.command('near', { op: 'sleep', wakeAtMs: Math.round(n.clock.now() + 100_000), reason: 'night' });
  assert.equal(near.ok, false);
  assert.match(near.error!, /less than 120 s after now/);
  const far = await n.command('far', { op: 'sleep', wakeAtMs: Math.round(n.clock.now() + 28 * 86_400_000), reason: 'night' });
  assert.equal(far.ok, false);
  assert.match(far.error!, /more than 27 days ahead/);
  assert.equal(armedAlarm(join(root, 'rtc0')), null, 'a refused sleep arms nothing');

  const wakeAtMs = Math.round(n.clock.now() + 8 * 3_600_000);
  const ok = await n.command('s1', { op: 'sleep', wakeAtMs, reason: 'night: group g1 keeps pi-02 awake' });
  assert.equal(ok.ok, true, ok.error);
  assert.equal(ok.result!.wakeAtMs, wakeAtMs);
  await until('halt', () => n.halts.length > 0, 60_000);
  const armed = armedAlarm(join(root, 'rtc0'));
  assert.ok(armed !== null && Math.abs(armed - wakeAtMs / 1000) <= 1, `alarm at ${armed}, asked for ${wakeAtMs / 1000}`);
  await until('the sleeping event delivered', () => n.events().some((e) => e.kind === 'sleeping'));
  const sleeping = n.events().find((e) => e.kind === 'sleeping');
  assert.ok(sleeping, 'a sleeping event');
  assert.match(sleeping.detail, new RegExp(`wakeAtMs ${wakeAtMs}`));
  assert.match(sleeping.detail, new RegExp(new Date(wakeAtMs).toISOString()));
  const sleepingTaken = n.sleepingTaken();
  assert.ok(sleepingTaken !== undefined && sleepingTaken < n.halts[0]!.seq, 'the broker had the sleeping event before the halt');
  const bornAfter = n.got.filter((g) => g.seq > sleeping.seq && g.topic.endsWith('/state')).map((g) => parseState(g.payload)).filter((s) => s.ok && s.value.status === 'online');
  assert.equal(bornAfter.length, 0, 'no birth after sleeping: the gateway would take it for a boot');
  assert.match(n.halts[0]!.reason, /^sleep until .*: night: group g1 keeps pi-02 awake$/);
  assert.equal(n.agent.stopped, true);
  assert.equal(n.agent.spool.stats().entries, 0, 'the spool was flushed');
  const offlineTaken = n.offlineTaken();
  assert.ok(offlineTaken !== undefined && offlineTaken < n.halts[0]!.seq, 'the broker had the offline state before the halt');
  await until('the offline state delivered', () => n.got.some((g) => { const st = g.topic.endsWith('/state') ? parseState(g.payload) : null; return !!st?.ok && st.value.status === 'offline'; }));
});

/** A job offered and started (one frame, not closed): it is held and computing. */
async function startJob(n: Awaited<ReturnType<typeof sleepyNode>>, jobId: number) {
  const jobIn = 'heliomesh/solar/node/pi-01/job/in';
  await n.obs.publishAsync(jobIn, encodeJson({ v: 1, type: 'offer', jobId, sessionId: jobId }), { qos: 1 });
  await until('accepted', () => n.jobOut().some((r) => r.type === 'accepted' && r.jobId === jobId));
  const dim = n.agent.worker!.stack.geometry.dim;
  const data = new Float32Array(2 * dim).map((_, i) => Math.sin(i) * 0.3);
  await n.obs.publishAsync(jobIn, encodeFrame({ jobId, sessionId: jobId, step: 0, position: 0, rows: 2, dim, data }), { qos: 1 });
  await until('first output', () => n.got.some((g) => g.topic.endsWith('/job/out') && isFrame(g.payload)));
  return {
    offer: (id: number) => n.obs.publishAsync(jobIn, encodeJson({ v: 1, type: 'offer', jobId: id, sessionId: id }), { qos: 1 }),
    close: () => n.obs.publishAsync(jobIn, encodeFrame({ jobId, sessionId: jobId, step: 1, position: 2, rows: 0, dim, data: new Float32Array(0), close: true }), { qos: 1 }),
  };
}

/** A node serving the bundled model's first blocks on the virtual RTC, holding job 1, told to sleep for six hours. */
async function sleepWithJob(t: { after(fn: () => Promise<void> | void): void }) {
  await selectBackend({ backend: 'cpu' });
  const root = rtcRoot(t);
  const n = await sleepyNode(t, {
    model: { shardDir: bundledModelDir(), firstBlock: 0, lastBlock: 1 }, worker: { queueCapacity: 2, sessionIdleMs: 600_000 }, sleepDrainMs: 600_000,
    wake: { path: 'virtual', sysfsRoot: root },
  });
  await until('active', () => n.agent.policy.acceptsJobs());
  const job = await startJob(n, 1);
  const wakeAtMs = Math.round(n.clock.now() + 6 * 3_600_000);
  assert.equal((await n.command('s1', { op: 'sleep', wakeAtMs, reason: 'night' })).ok, true);
  return { n, root, job, wakeAtMs };
}

test('a held job is finished before the node sleeps; offers meanwhile are refused; the halt comes after its report', async (t) => {
  const { n, root, job, wakeAtMs } = await sleepWithJob(t);
  await job.offer(2);
  await until('offer refused', () => n.jobOut().some((r) => r.type === 'refused' && r.jobId === 2));
  const refused = n.jobOut().find((r) => r.type === 'refused');
  assert.ok(refused?.type === 'refused' && /going to sleep/.test(refused.reason), 'refused because the node is going to sleep');
  // Several seconds of the node's clock go by: the node waits for the job, alarm unset.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(n.halts.length, 0, 'not halted');
  assert.equal(armedAlarm(join(root, 'rtc0')), null);
  assert.equal(n.events().some((e) => e.kind === 'sleeping'), false);

  await job.close();
  await until('halt', () => n.halts.length > 0, 60_000);
  await until('the report and the sleeping event delivered', () => n.jobOut().some((r) => r.type === 'report') && n.events().some((e) => e.kind === 'sleeping'));
  const report = n.jobOut().find((r) => r.type === 'report' && r.jobId === 1);
  assert.ok(report?.type === 'report' && report.ok, 'the held job finished and was reported ok');
  const reportSeq = n.jobOut().find((r) => r.type === 'report')!.seq;
  const sleeping = n.events().find((e) => e.kind === 'sleeping')!;
  // One publisher's QoS 1 messages reach a subscriber in their order (MQTT 3.1.1 §4.6).
  assert.ok(reportSeq < sleeping.seq, 'the report, then sleeping');
  const sleepingTaken = n.sleepingTaken();
  assert.ok(sleepingTaken !== undefined && sleepingTaken < n.halts[0]!.seq, 'the broker had the sleeping event before the halt');
  const armed = armedAlarm(join(root, 'rtc0'));
  assert.ok(armed !== null && Math.abs(armed - wakeAtMs / 1000) <= 1);
});

test('an alarm the RTC does not take keeps the node up: no halt, an event says why, offers are taken again', async (t) => {
  const { n, root, job } = await sleepWithJob(t);
  // While the job finishes, the alarm file becomes unwritable (a directory in its place).
  rmSync(join(root, 'rtc0', 'wakealarm'));
  mkdirSync(join(root, 'rtc0', 'wakealarm'));
  await job.close();
  await until('the sleep given up', () => n.events().some((e) => e.kind === 'config-changed' && /given up, staying up/.test(e.detail)), 60_000);
  assert.match(n.events().find((e) => /given up/.test(e.detail))!.detail, /did not take the alarm: cannot write/);
  assert.equal(n.events().some((e) => e.kind === 'sleeping'), false);
  await until('a birth with the failed wake path', () => n.births().some((b) => b.profile.wake?.ok === false));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(n.halts.length, 0, 'not halted');
  assert.equal(n.agent.stopped, false);
  await job.offer(3);
  await until('offer accepted', () => n.jobOut().some((r) => r.type === 'accepted' && r.jobId === 3));
});

test('a node stopped while its held job finishes gives the sleep up: no alarm, no halt', async (t) => {
  const { n, root } = await sleepWithJob(t);
  await n.agent.stop('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(n.halts.length, 0, 'not halted');
  assert.equal(armedAlarm(join(root, 'rtc0')), null);
  assert.equal(n.events().some((e) => e.kind === 'sleeping'), false);
  const report = n.jobOut().find((r) => r.type === 'report' && r.jobId === 1);
  assert.ok(report?.type === 'report' && !report.ok && /node stopping: SIGTERM/.test(report.error ?? ''), 'the held job reported failed by the stop');
});
