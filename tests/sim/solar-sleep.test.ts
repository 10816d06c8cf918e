// Coordinated sleep in the simulator (sim/solar-sleep.ts), on a short run of real days.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODE_TABLE, powerModesFor } from '../../demo/plan.js';
import { PI4_POWER_MODES, parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { FLEET_SLOT_MS, solarFleetCases } from '../../sim/solar-fleet.js';
import { evaluateSolarSleep, formatSleepTables, timeOfDayProfile } from '../../sim/solar-sleep.js';

const base = referenceHardwareConfig('virtual');
const pi4 = parseHardwareConfig({ ...base, cpu: { ...base.cpu, modes: PI4_POWER_MODES } });
const load = { idleW: pi4.virtual.load.idleW, modes: powerModesFor(pi4, FLEET_SLOT_MS), modeTable: MODE_TABLE };

test('the time-of-day profile is the mean of each hour over whole days', () => {
  // Two days of 4 slots, 2-slot "hours": day 1 is 0 1 2 3, day 2 is 2 3 4 5.
  const p = timeOfDayProfile(Float64Array.from([0, 1, 2, 3, 2, 3, 4, 5]), 4, 2);
  assert.deepEqual(Array.from(p), [1.5, 1.5, 3.5, 3.5]);
  assert.throws(() => timeOfDayProfile(new Float64Array(3), 4, 2), /at least one whole day/);
});

test('coordinated sleep: nodes sleep, wake and serve again; fewer run flat, and no fewer jobs are served', () => {
  const r = evaluateSolarSleep(solarFleetCases()[0]!, 0, { load, p: 0.3, seeds: [1], days: 6, policy: 'foresight', sleepW: 0.05 });
  const [without, withSleep] = [r.without, r.with];
  assert.equal(without.asleep[0], 0, 'always on: nobody asleep');
  assert.ok(withSleep.asleep[0]! > 0.1, `asleep share ${withSleep.asleep[0]}`);
  assert.ok(without.flatPerNodeWeek[0]! > 2, `always on runs flat ${without.flatPerNodeWeek[0]} times per node-week`);
  assert.ok(withSleep.flatPerNodeWeek[0]! < 0.5 * without.flatPerNodeWeek[0]!, `with sleep ${withSleep.flatPerNodeWeek[0]}, without ${without.flatPerNodeWeek[0]}`);
  assert.ok(withSleep.completed[0]! >= 0.95 * without.completed[0]!, `completed ${withSleep.completed[0]} against ${without.completed[0]}`);
  assert.match(formatSleepTables([r]), /coordinated sleep/);
});
