// The run summary counts what the components did: the jobs the test itself saw finish, one
// battery-flat event per node that the test saw cut by its board, the hours a group had no
// node powered on as the test timed them, and a harvest that the agents' own sensors
// (their slot records at the gateway) confirm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { startField } from '../../demo/field.js';
import { defaultStartMs } from '../../demo/plan.js';
import { RunRecorder } from '../../demo/summary.js';
import { until } from '../../ground/until.js';

const site = { latitudeDeg: 40.4, longitudeDeg: -3.7 };
// 17:30 solar time on 21 June: two hours of a low sun before it sets.
const evening = defaultStartMs(Date.UTC(2026, 5, 21, 12), site.longitudeDeg) + 13.5 * 3_600_000;
const HOUR_MS = 3_600_000;

test('the run summary: completed jobs, flat batteries, time without an awake node and harvest as the components saw them', { timeout: 300_000 }, async (t) => {
  // Two nodes at 22 %, just above E′_th (20 %, where a node starts active), with no
  // coordinated sleep: the low sun does not carry their idle draw, so they serve a few jobs,
  // fall into power saving at E_th (10 %) and run flat (3 %) in the first hours of the night.
  const field = await startField({
    groups: 1, nodesPerGroup: 2, seed: 5, dayMinutes: 10, policy: 'foresight', mqttPort: 0, startMs: evening, ...site,
    initialSocPct: 22, batteryWh: 36, coordinatedSleep: false, log: pino({ level: 'silent' }),
  });
  t.after(() => field.stop());
  for (const n of field.nodes) assert.equal(n.plan.hardware.battery.capacityWh, 36, '--battery-wh reaches every node');
  const recorder = new RunRecorder(field);
  const slotHarvestJ = new Map<string, number>();
  field.gateway.registry.on('slot', (node, report) => slotHarvestJ.set(node.nodeId, (slotHarvestJ.get(node.nodeId) ?? 0) + report.harvestJ));
  const errors: string[] = [];
  const job = () => field.jobs.submit({ prompt: 'The state of the Union is', maxTokens: 6, temperature: 0, topP: 1, seed: 1, stop: [] }).done
    .then((j) => j.status === 'done', (err: Error) => errors.push(err.message) < 0);

  const first = await Promise.all([job(), job()]);
  recorder.mark();
  const second = await job();
  const done = (xs: boolean[]) => xs.filter(Boolean).length;

  // Polled, so the test's own timing of the dark group is late by at most a poll.
  let bothOffAtMs: number | undefined;
  await until('both nodes to run flat', () => {
    if (bothOffAtMs === undefined && field.nodes.every((n) => n.power === 'off')) bothOffAtMs = field.clock.now();
    return bothOffAtMs !== undefined;
  }, 240_000, 20);
  for (const n of field.nodes) assert.match(n.offReason ?? '', /critical/, `${n.nodeId} went off at the critical level`);
  // Some dark time to measure.
  await until('half an hour of the dark group', () => field.clock.now() > bothOffAtMs! + HOUR_MS / 2, 60_000);
  const summary = recorder.finish({ test: true });
  const endMs = field.clock.now();
  const w = summary.whole;
  t.diagnostic(JSON.stringify({ fleet: w.fleet, nodes: w.nodes, slotHarvestWh: [...slotHarvestJ].map(([id, j]) => [id, j / 3600]), errors }));

  assert.equal(w.fleet.jobsSubmitted, 3);
  assert.equal(w.fleet.jobsCompleted, done([...first, second]));
  assert.equal(w.fleet.jobsFailed, 3 - done([...first, second]));
  assert.ok(w.fleet.jobsCompleted >= 1, 'the nodes served before they ran flat');
  assert.equal(summary.window?.fleet.jobsSubmitted, 1, 'the window holds only the job after the mark');
  assert.equal(summary.window?.fleet.jobsCompleted, done([second]));

  for (const n of field.nodes) {
    const f = w.nodes[n.nodeId]!;
    assert.equal(f.flatEvents, 1, `${n.nodeId}: one battery-flat event`);
    assert.equal(f.plannedSleeps, 0);
    assert.equal(f.boots, 0, 'no sun to bring it back');
    assert.ok(f.downFlatHours >= 0.5, `${n.nodeId} down ${f.downFlatHours} h`);
    const events = summary.events.filter((e) => e.node === n.nodeId);
    assert.deepEqual(events.map((e) => e.event), ['flat'], `${n.nodeId}: its power events`);
    // The critical level is 3 %; the agent acts on its own estimate, which may lag the plant a little.
    assert.ok(events[0]!.batteryPct < 3.5, `${n.nodeId} went off at ${events[0]!.batteryPct} %`);
    // The agent reads the panel twice a slot through its INA219 while it runs; the plant
    // integrates it exactly, also before the first slot closed and after the shutdown (dusk).
    const agentWh = (slotHarvestJ.get(n.nodeId) ?? 0) / 3600;
    assert.ok(agentWh > 0 && f.harvestedWh >= 0.75 * agentWh && f.harvestedWh <= 1.5 * agentWh, `${n.nodeId}: the plant harvested ${f.harvestedWh} Wh, the agent measured ${agentWh} Wh`);
  }
  assert.equal(w.fleet.flatEvents, 2);
  const darkHours = (endMs - bothOffAtMs!) / HOUR_MS;
  // The poll sees the second shutdown up to 20 ms of wall time late: 20 ms × 144 ≈ 3 s simulated, plus the event loop's lag.
  assert.ok(Math.abs(w.fleet.someGroupWithoutAwakeHours - darkHours) < 0.05, `no node awake ${w.fleet.someGroupWithoutAwakeHours} h, timed by the test ${darkHours.toFixed(3)} h`);
  assert.ok(w.fleet.harvestedWh > 0, 'the evening sun was harvested');
  assert.ok(w.fleet.storedWhAtEnd < w.fleet.storedWhAtStart, 'the batteries were drawn down');
});
