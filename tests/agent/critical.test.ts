import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { ScaledClock } from '../../hardware/clock.js';
import { fleetFilter, parseEvent, parseSlotRecord, parseState } from '../../protocol/index.js';
import { aedesWithFolder } from './brokers.js';
import { exampleDoc } from './fixtures.js';
import { until } from '../../ground/until.js';

const NIGHT = Date.parse('2026-06-21T23:00:00Z');

/** A broker and a virtual node at night with its battery at `socPct`; both removed after the test. */
async function nightNode(t: { after(fn: () => Promise<void> | void): void }, socPct: number, over: Record<string, unknown>) {
  const { broker, dir } = await aedesWithFolder(t, 'crit');
  const doc = exampleDoc() as { hardware: { battery: object; virtual: object } };
  const hardware = {
    ...doc.hardware,
    battery: { ...doc.hardware.battery, initialSocPct: socPct },
    virtual: { ...doc.hardware.virtual, startTime: new Date(NIGHT).toISOString(), initialSocPct: socPct },
  };
  const config = parseAgentConfig({ ...doc, hardware, gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, spool: { dir }, ...over });
  return { broker, config, start: NIGHT };
}

test('critical battery at night: critical event, last slot and offline state delivered, spool empty, then the shutdown action', async (t) => {
  // 4.5 % of 74 Wh at night: the Pi's ≈ 2.7 W reaches the 3 % critical level in about 15 min.
  // The last words' deadline runs on the node's clock: the longest one allowed, 30 s, is
  // 150 ms of wall time at 200×, time enough for a local broker to acknowledge them.
  const { broker, config, start } = await nightNode(t, 4.5, { slotMs: 60_000, sampleHz: 0.2, criticalFlushMs: 30_000 });
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'observer' });
  const got: Array<{ topic: string; payload: Buffer; at: number }> = [];
  obs.on('message', (topic, payload) => got.push({ topic, payload, at: Date.now() }));
  await obs.subscribeAsync([fleetFilter('solar', 'state'), fleetFilter('solar', 'slot'), fleetFilter('solar', 'event')], { qos: 1 });
  const shutdowns: Array<{ reason: string; at: number }> = [];
  const agent = await Agent.start(config, {
    clock: new ScaledClock(200, start), log: pino({ level: 'silent' }),
    shutdown: async (reason) => { shutdowns.push({ reason, at: Date.now() }); },
  });
  // Ends the agent and the observer even when an assertion fails, so the test cannot hang.
  t.after(() => agent.stop('test over'));
  t.after(() => obs.endAsync());
  await until('shutdown', () => shutdowns.length > 0, 15_000);
  assert.equal(shutdowns.length, 1);
  assert.equal(shutdowns[0]!.reason, 'critical battery');
  const events = got.filter((g) => g.topic.endsWith('/event')).map((g) => parseEvent(g.payload)).filter((e) => e.ok).map((e) => e.ok && e.value);
  const crit = events.find((e) => e && e.kind === 'critical');
  assert.ok(crit && crit.batteryJ < 0.03 * 74 * 3600 && crit.gamma === 0);
  // Started inside the hysteresis band, below E_th: in power saving, lowest mode.
  assert.ok(events.some((e) => e && e.kind === 'mode-change' && /low/.test(e.detail)));
  const births = got.map((g) => (g.topic.endsWith('/state') ? parseState(g.payload) : null)).filter((s) => s?.ok && s.value.status === 'online');
  assert.ok(births.length > 0 && births.every((b) => b!.ok && b!.value.status === 'online' && b!.value.gamma === 0 && b!.value.batteryJ! > 0),
    'the birth says the node is in power saving, with its battery');
  const offline = got.find((g) => { const s = g.topic.endsWith('/state') ? parseState(g.payload) : null; return !!s?.ok && s.value.status === 'offline'; });
  assert.ok(offline && offline.at <= shutdowns[0]!.at, 'offline state before the power goes');
  const slots = got.filter((g) => g.topic.endsWith('/slot')).map((g) => parseSlotRecord(g.payload));
  assert.ok(slots.length > 0 && slots.every((s) => s.ok));
  assert.deepEqual(slots.map((s) => s.ok && s.value.seq), slots.map((_, i) => i));
  assert.ok(slots.every((s) => s.ok && s.value.gamma === 0));
  assert.equal(agent.spool.stats().entries, 0);
});

test('a battery already below critical at the first reading: the agent stops at once and keeps no timers on its closed spool', async (t) => {
  const { config, start } = await nightNode(t, 1, { slotMs: 1_000, sampleHz: 20 });
  const shutdowns: string[] = [];
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));
  const agent = await Agent.start(config, {
    clock: new ScaledClock(10, start), log: pino({ level: 'silent' }),
    shutdown: async (reason) => { shutdowns.push(reason); },
  });
  t.after(() => agent.stop('test over'));
  await until('shutdown', () => shutdowns.length > 0, 15_000);
  assert.deepEqual(shutdowns, ['critical battery']);
  assert.equal(agent.stopped, true);
  // 20 samples a second on a 10× clock: half a second is ~100 sample periods with no timer left.
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(uncaught.map((e) => e.message), []);
  assert.equal(agent.link.connected, false);
});
