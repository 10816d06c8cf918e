// `re-profile` over MQTT: the agent measures κ and C_E per power mode with its own shard
// and meter, answers with the table, re-publishes its birth with it, and refuses offers
// while the meter must see only the standard jobs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { ScaledClock } from '../../hardware/clock.js';
import { selectBackend } from '../../models/backend.js';
import { encodeJson, fleetFilter, parseCommandReply, parseJobReport, parseState, type PowerModeEntry } from '../../protocol/index.js';
import { aedesWithFolder } from './brokers.js';
import { exampleDoc } from './fixtures.js';
import { until } from '../../ground/until.js';

test('re-profile over MQTT measures the table, publishes it in the birth, and refuses offers meanwhile', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const { broker, dir } = await aedesWithFolder(t, 'agent');
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const config = parseAgentConfig({
    ...exampleDoc(), gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, spool: { dir },
    sampleHz: 4, slotMs: 60_000,
    model: { shardDir: join(root, 'models', 'bundled'), firstBlock: 0, lastBlock: 1 },
  });
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'gateway-test' });
  const got: Array<{ topic: string; payload: Buffer }> = [];
  obs.on('message', (topic, payload) => got.push({ topic, payload }));
  t.after(() => obs.endAsync());
  await obs.subscribeAsync([fleetFilter('solar', 'state'), fleetFilter('solar', 'cmdReply'), fleetFilter('solar', 'jobOut')], { qos: 1 });
  // 20× real time: the idle baselines (5 s per mode) take a quarter second each.
  const agent = await Agent.start(config, { clock: new ScaledClock(20), log: pino({ level: 'silent' }), shutdown: async () => {} });
  t.after(() => agent.stop('test over'));
  await until('connected and active', () => agent.link.connected && agent.policy.acceptsJobs(), 60_000);

  const base = 'heliomesh/solar/node/pi-01';
  await obs.publishAsync(`${base}/cmd`, encodeJson({ v: 1, id: 'p1', op: 're-profile', jobsPerMode: 2 }), { qos: 1 });
  await until('profiling started', () => agent.profiling, 10_000);
  await obs.publishAsync(`${base}/job/in`, encodeJson({ v: 1, type: 'offer', jobId: 3, sessionId: 1 }), { qos: 1 });
  await until('the offer answered', () => got.some((g) => g.topic.endsWith('/job/out')), 60_000);
  const answer = parseJobReport(got.find((g) => g.topic.endsWith('/job/out'))!.payload);
  assert.ok(answer.ok && answer.value.type === 'refused', 'an offer during profiling is refused');

  await until('the re-profile reply', () => got.some((g) => g.topic.endsWith('/cmd/reply')), 60_000);
  const reply = parseCommandReply(got.find((g) => g.topic.endsWith('/cmd/reply'))!.payload);
  assert.ok(reply.ok && reply.value.ok, reply.ok ? reply.value.error : reply.error);
  const modes = reply.value.result!.modes as PowerModeEntry[];
  assert.deepEqual(modes.map((m) => [m.powerMode, m.name]), [[1, 'low'], [2, 'high']]);
  for (const m of modes) {
    assert.ok(Number.isInteger(m.kappa) && m.kappa >= 1, `κ ${m.kappa}`);
    assert.ok(m.costJ >= 0, `C_E ${m.costJ}`);
  }
  // 'high' runs 4 cores at 1.5 GHz, 'low' 1 core at 600 MHz: a job costs more above idle in 'high'.
  assert.ok(modes[1]!.costJ > modes[0]!.costJ, JSON.stringify(reply.value.result));
  assert.deepEqual(agent.policy.modeTable.modes, modes, 'the measured table is the node\'s table now');
  assert.equal(agent.profiling, false);
  await until('a birth with the measured table', () => got.some((g) => {
    const s = g.topic.endsWith('/state') ? parseState(g.payload) : null;
    return !!s?.ok && s.value.status === 'online' && JSON.stringify(s.value.profile.modes) === JSON.stringify(modes);
  }), 60_000);
  assert.equal(agent.worker!.queue(), 0);
});
