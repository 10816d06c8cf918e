import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { ScaledClock } from '../../hardware/clock.js';
import { decodeFrame, encodeFrame, encodeJson, fleetFilter, isFrame, parseCommandReply, parseEvent, parseJobReport, parseSlotRecord, parseState, parseTelemetry } from '../../protocol/index.js';
import { selectBackend } from '../../models/backend.js';
import { BlockStack } from '../../models/forward.js';
import { readShards } from '../../models/shards.js';
import { aedesWithFolder } from './brokers.js';
import { exampleDoc } from './fixtures.js';
import { until } from '../../ground/until.js';

test('the virtual agent on a scaled clock: retained birth, valid gapless slot records, commands, clean stop', async (t) => {
  const { broker, dir } = await aedesWithFolder(t, 'agent');
  const doc = exampleDoc();
  // The stop's budget runs on the node's clock: 100 s of it are 1 s of wall time at 100×.
  const config = parseAgentConfig({ ...doc, gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, slotMs: 10_000, sampleHz: 1, telemetryPeriodMs: 5000, spool: { dir }, stopFlushMs: 100_000 });
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'observer' });
  const got: Array<{ topic: string; payload: Buffer }> = [];
  obs.on('message', (topic, payload) => got.push({ topic, payload }));
  await obs.subscribeAsync([fleetFilter('solar', 'state'), fleetFilter('solar', 'slot'), fleetFilter('solar', 'event'), fleetFilter('solar', 'cmdReply'), fleetFilter('solar', 'telemetry')], { qos: 1 });
  // 100× real time: a 10 s slot closes every 0.1 s.
  const agent = await Agent.start(config, { clock: new ScaledClock(100), log: pino({ level: 'silent' }), shutdown: async () => {} });
  t.after(() => agent.stop('test over'));
  t.after(() => obs.endAsync());
  const slots = () => got.filter((g) => g.topic.endsWith('/slot')).map((g) => parseSlotRecord(g.payload));
  await until('five slot records', () => slots().length >= 5);
  for (const s of slots()) assert.ok(s.ok, !s.ok ? s.error : '');
  const seqs = slots().map((s) => (s.ok ? s.value.seq : -1));
  assert.deepEqual(seqs.slice(0, 5), [0, 1, 2, 3, 4]);
  const birth = got.map((g) => (g.topic.endsWith('/state') ? parseState(g.payload) : null)).find((s) => s?.ok);
  assert.ok(birth?.ok && birth.value.status === 'online' && birth.value.profile.thresholds.eThJ === 74 * 3600 * 0.1);
  assert.equal(birth.value.status === 'online' && birth.value.nextSeq, 0, 'a fresh node announces that its first record is seq 0');
  const epoch = birth.value.status === 'online' ? birth.value.seqEpoch : undefined;
  assert.match(epoch ?? '', /^[0-9a-f]{16}$/, 'and the epoch its count started in');
  assert.equal((JSON.parse(readFileSync(join(dir, 'seq.json'), 'utf8')) as { epoch: string }).epoch, epoch, 'kept with the count on disk');
  assert.ok(got.some((g) => g.topic.endsWith('/event') && parseEvent(g.payload).ok), 'the first mode setting is announced');
  const telemetry = got.filter((g) => g.topic.endsWith('/telemetry')).map((g) => parseTelemetry(g.payload));
  assert.ok(telemetry.length >= 5, `${telemetry.length} telemetry messages`);
  for (const m of telemetry) assert.ok(m.ok && m.value.sensors.length === 3, m.ok ? 'sensors' : m.error);

  const cmd = 'heliomesh/solar/node/pi-01/cmd';
  await obs.publishAsync(cmd, encodeJson({ v: 1, id: 't1', op: 'set-thresholds', thresholds: { eThJ: 30_000, eThUpJ: 60_000, criticalJ: 10_000 } }), { qos: 1 });
  await obs.publishAsync(cmd, encodeJson({ v: 1, id: 't2', op: 'set-thresholds', thresholds: { eThJ: 30_000, eThUpJ: 20_000, criticalJ: 10_000 } }), { qos: 1 });
  await obs.publishAsync(cmd, encodeJson({ v: 1, id: 't3', op: 'set-mode-table', modes: [{ powerMode: 1, name: 'warp', kappa: 1, costJ: 1 }], modeTable: [{ minFraction: 0, powerMode: 1 }] }), { qos: 1 });
  await until('three replies', () => got.filter((g) => g.topic.endsWith('/cmd/reply')).length >= 3);
  const replies = got.filter((g) => g.topic.endsWith('/cmd/reply')).map((g) => { const r = parseCommandReply(g.payload); assert.ok(r.ok); return r.value; });
  assert.equal(replies.find((r) => r.id === 't1')!.ok, true);
  assert.equal(replies.find((r) => r.id === 't2')!.ok, false, 'E′_th below E_th is refused');
  assert.match(replies.find((r) => r.id === 't2')!.error!, /eThUpJ \(E′_th\) must be above eThJ \(E_th\) for hysteresis \(battery capacity \d+ J\)/, 'by the protocol\'s threshold rule');
  assert.match(replies.find((r) => r.id === 't3')!.error!, /warp/);
  assert.deepEqual(agent.policy.thresholds, { eThJ: 30_000, eThUpJ: 60_000, criticalJ: 10_000 });
  await until('re-announced birth', () => got.some((g) => { const s = g.topic.endsWith('/state') ? parseState(g.payload) : null; return !!s?.ok && s.value.status === 'online' && s.value.profile.thresholds.eThJ === 30_000 && s.value.nextSeq! >= 5 && s.value.seqEpoch === epoch; }));

  await agent.stop('test over');
  await until('offline state', () => got.some((g) => { const s = g.topic.endsWith('/state') ? parseState(g.payload) : null; return !!s?.ok && s.value.status === 'offline'; }));
  assert.equal(agent.spool.pending().length, 0, 'everything acknowledged before leaving');
});

test('a job over MQTT: offer accepted, frames answered with the shard\'s in-process output, report with duration', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const { broker, dir } = await aedesWithFolder(t, 'agent');
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const shardDir = join(root, 'models', 'bundled');
  const config = parseAgentConfig({
    ...exampleDoc(), gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, spool: { dir },
    model: { shardDir, firstBlock: 0, lastBlock: 1 },
  });
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'gateway-test' });
  const out: Buffer[] = [];
  obs.on('message', (_topic, payload) => out.push(payload));
  t.after(() => obs.endAsync());
  await obs.subscribeAsync('heliomesh/solar/node/pi-01/job/out', { qos: 1 });
  const agent = await Agent.start(config, { clock: new ScaledClock(1), log: pino({ level: 'silent' }), shutdown: async () => {} });
  t.after(() => agent.stop('test over'));
  await until('connected and active', () => agent.link.connected && agent.policy.acceptsJobs());
  await new Promise((r) => setTimeout(r, 100));
  const jobIn = 'heliomesh/solar/node/pi-01/job/in';
  await obs.publishAsync(jobIn, encodeJson({ v: 1, type: 'offer', jobId: 11, sessionId: 5 }), { qos: 1 });
  await until('accepted', () => out.length >= 1);
  assert.deepEqual({ ...agent.worker!.shard, sha256: undefined }, { model: 'bundled', firstBlock: 0, lastBlock: 1, sha256: undefined });
  assert.match(agent.worker!.shard.sha256 ?? '', /^[0-9a-f]{64}$/, 'the bundled shard blocks-0-2 holds exactly blocks 0..1');
  assert.deepEqual(parseJobReport(out[0]!), { ok: true, value: { v: 1, type: 'accepted', jobId: 11 } });

  const range = { from: 0, to: 2 };
  const reference = new BlockStack(readShards(shardDir, { range, head: false }), range);
  const session = reference.openSession();
  const dim = reference.geometry.dim;
  const input = new Float32Array(3 * dim).map((_, i) => Math.sin(i) * 0.3);
  await obs.publishAsync(jobIn, encodeFrame({ jobId: 11, sessionId: 5, step: 0, position: 0, rows: 3, dim, data: input, dtype: 'f16', close: true }), { qos: 1 });
  await until('output and report', () => out.length >= 3);
  const frame = out.map((p) => (isFrame(p) ? decodeFrame(p) : null)).find((f) => f?.ok);
  assert.ok(frame?.ok);
  assert.equal(frame.frame.dtype, 'f16', 'answered in the dtype it was sent');
  const sent = decodeFrame(encodeFrame({ jobId: 0, sessionId: 0, step: 0, position: 0, rows: 3, dim, data: input, dtype: 'f16' }));
  assert.ok(sent.ok);
  const expected = reference.forward(session, sent.frame.data, 3);
  const expectedF16 = decodeFrame(encodeFrame({ jobId: 0, sessionId: 0, step: 0, position: 0, rows: 3, dim, data: expected, dtype: 'f16' }));
  assert.ok(expectedF16.ok);
  assert.deepEqual(frame.frame.data, expectedF16.frame.data);
  const report = out.map((p) => (isFrame(p) ? null : parseJobReport(p))).find((r) => r?.ok && r.value.type === 'report');
  assert.ok(report?.ok && report.value.type === 'report' && report.value.ok && report.value.steps === 1 && report.value.durationMs >= 0);
  session.close();
  reference.dispose();
});
