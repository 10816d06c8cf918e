// A virtual night: the gateway halts a node of a group that is about to run flat, its agent
// ends and its plant draws only the board's sleep current, its RTC alarm boots a new agent
// on the same spool, which is born again at the gateway and reports the hour it was halted
// for, and the group serves a job. Through the night the node may be halted again at each
// hour; once the morning sun has charged it, it serves again, alone in its group.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { startField } from '../../demo/field.js';
import { defaultStartMs } from '../../demo/plan.js';
import type { Plant } from '../../hardware/virtual/plant.js';
import { until } from '../../ground/until.js';

const site = { latitudeDeg: 40.4, longitudeDeg: -3.7 };
// 20:00 solar time on 21 June, half an hour after sunset.
const evening = defaultStartMs(Date.UTC(2026, 5, 21, 12), site.longitudeDeg) + 16 * 3_600_000;

test('a virtual night: a node about to run flat is halted, draws its sleep current, boots at its alarm, reports again and serves in the morning', { timeout: 360_000 }, async (t) => {
  // Batteries at 40 %: within the first half hour one node is about to reach E_th. The
  // gateway's first evening gives no sleep order for want of a node (it has heard the nodes
  // in one hour of the day only), but it halts that one with its reserve, its alarm at the
  // next hour the gateway has not heard it in.
  const field = await startField({
    groups: 1, nodesPerGroup: 2, seed: 3, dayMinutes: 2, policy: 'foresight', mqttPort: 0, startMs: evening, ...site,
    initialSocPct: 40, log: pino({ level: 'silent' }),
  });
  t.after(() => field.stop());
  const registry = field.gateway.registry;
  const births = new Map<string, number[]>();
  registry.on('up', (node, reason, atMs) => {
    if (reason === 'birth') births.set(node.nodeId, [...(births.get(node.nodeId) ?? []), atMs]);
  });
  await until('a node to power off for a planned sleep', () => field.nodes.some((n) => n.power === 'off'), 60_000);
  const sleeper = field.nodes.find((n) => n.power === 'off')!;
  const other = field.nodes.find((n) => n !== sleeper)!;
  assert.match(sleeper.offReason ?? '', /^sleep until /);
  assert.equal(sleeper.agent, undefined, 'the agent has ended');
  const wakeAtMs = sleeper.wakeAtMs!;
  assert.ok(wakeAtMs > field.clock.now(), 'its alarm is ahead');
  const hoursSeen = registry.get(sleeper.nodeId)!.estimator.hoursSeen();
  // The RTC holds whole seconds of its own time, read a few wall-clock ms (seconds at 720×) before the alarm is set.
  const planned = registry.get(sleeper.nodeId)?.sleep?.wakeAtMs;
  assert.ok(planned !== undefined && Math.abs(planned - wakeAtMs) < 30_000, `the gateway planned the wake the alarm holds: ${planned} vs ${wakeAtMs}`);
  assert.equal(planned % 3_600_000, 0, `woken at the start of an hour: ${new Date(planned).toISOString()}`);
  const halted: Plant = sleeper.plant()!;
  assert.equal(halted.powered, false);
  assert.equal(other.power, 'on', 'the group keeps a node awake');

  await until('the sleeper to boot at its alarm', () => sleeper.power === 'on', 150_000);
  const bootedAt = field.clock.now();
  assert.ok(bootedAt >= wakeAtMs, `booted at ${new Date(bootedAt).toISOString()}, alarm ${new Date(wakeAtMs).toISOString()}`);
  assert.equal(sleeper.restarts, 1);
  // Asleep the node drew load.sleepW and nothing more; the cell gave that over its discharge efficiency.
  const hw = sleeper.plan.hardware;
  const sleepW = hw.virtual.load.sleepW;
  const asleepS = halted.ledger.elapsedMs / 1000;
  assert.ok(asleepS > 0 && asleepS * 1000 <= wakeAtMs - evening, `asleep ${asleepS} s`);
  assert.ok(halted.ledger.consumedJ <= sleepW * asleepS + 1e-6, `drew ${halted.ledger.consumedJ} J in ${asleepS} s`);
  assert.ok(-halted.ledger.storedChangeJ <= (sleepW * asleepS) / hw.battery.dischargeEfficiency + 1e-6, `the battery fell by ${-halted.ledger.storedChangeJ} J`);

  await until('the gateway to get the new birth', () => (births.get(sleeper.nodeId) ?? []).some((at) => at >= wakeAtMs) && registry.get(sleeper.nodeId)?.online === true, 30_000);
  const since = registry.get(sleeper.nodeId)?.sleep;
  assert.ok(since === undefined || (since.orderedAtMs ?? 0) >= wakeAtMs, 'the birth ends the sleep at the gateway (still low, it may be halted again)');
  // Its first records after the boot are of an hour the gateway had not heard it in.
  await until('a slot record of the hour it woke in', () => registry.get(sleeper.nodeId)!.estimator.hoursSeen() > hoursSeen, 30_000);
  const job = await field.jobs.submit({ prompt: 'The state of the Union is', maxTokens: 8, temperature: 0, topP: 1, seed: 1, stop: [] }).done;
  assert.equal(job.status, 'done', job.error?.message);
  t.diagnostic(`${sleeper.nodeId} asleep ${(asleepS / 3600).toFixed(2)} h, drew ${halted.ledger.consumedJ.toFixed(1)} J; job served by ${JSON.stringify(job.served)}; other ${other.power} ${other.offReason ?? ''}`);

  // The morning: at a day in 2 minutes, sunrise (05:45 solar time) is 80 s of wall time after
  // the start. The node, booted by its alarms and charged by the sun, is active again.
  // A boot at one of its night alarms may read active for a moment before the gateway halts
  // it again: only a node active after sunrise, and not sent to sleep, is the morning's.
  const sunriseMs = evening + 9.75 * 3_600_000;
  await until('the sleeper awake and active again in the morning', () => {
    const n = registry.get(sleeper.nodeId);
    return field.clock.now() >= sunriseMs && sleeper.power === 'on' && n?.online === true && n.gamma === 1 && n.sleep === undefined;
  }, 180_000);
  await other.stop('leaving the woken node alone in its group');
  const morning = await field.jobs.submit({ prompt: 'Once upon a time', maxTokens: 8, temperature: 0, topP: 1, seed: 2, stop: [] }).done;
  assert.equal(morning.status, 'done', morning.error?.message);
  assert.deepEqual(morning.served.flatMap((g) => g.nodes), [sleeper.nodeId], `served by ${JSON.stringify(morning.served)}`);
  t.diagnostic(`morning job at ${new Date(field.clock.now()).toISOString()} served by ${sleeper.nodeId} after ${sleeper.restarts} boots`);
});
