// Coordinated sleep in the simulator (sim/solar-sleep.ts), on a short run of real days.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODE_TABLE, powerModesFor } from '../../demo/plan.js';
import { PI4_POWER_MODES, parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { FLEET_SLOT_MS, solarFleetCases } from '../../sim/solar-fleet.js';
import { evaluateSolarSleep, formatSleepTables, timeOfDayProfile } from '../../sim/solar-sleep.js';
import { SleepControl } from '../../sim/sleep-control.js';

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

test('the simulator aligns the groups: while one group has no node up, the other\'s kept node sleeps until the first of it is back', () => {
  // Two groups of two, a night with no sun in sight, a trickle of jobs: one node kept per group.
  const profiles = Array.from({ length: 4 }, () => new Float64Array(864));
  const params = { eMax: 1000, eTh: 100, eThUp: 150, idleQ: 2, modes: [{ powerMode: 1, name: 'low', kappa: 1, costQ: 1 }], modeTable: [{ minFraction: 0, powerMode: 1 }] };
  const control = new SleepControl({ profiles, startSlotOfDay: 0, sleepQ: 0, everySlots: 6 }, 2, 2, params, 0.01);
  const state = (wakeAt: number[], gamma = [1, 1, 1, 1], energy = [900, 800, 500, 500]) => ({
    energy: Float64Array.from(energy), gamma: Uint8Array.from(gamma),
    current: Int32Array.from([-1, -1, -1, -1]), queued: Int32Array.from([-1, -1, -1, -1]), wakeAt: Int32Array.from(wakeAt),
  });
  const asleep = state([-1, -1, 120, 200]);
  control.plan(0, asleep);
  assert.equal(asleep.wakeAt[0], 120, 'the fullest node of group 0 waits for group 1\'s first alarm');
  assert.ok(asleep.wakeAt[1]! > 0, 'the spare one sleeps on its own plan');
  // Group 1 has a node up: group 0 keeps its fullest node awake.
  const up = state([-1, -1, 120, -1]);
  control.plan(6, up);
  assert.equal(up.wakeAt[0], -1);
  // Group 1 ran flat and, with no sun ahead, has no return within the horizon: nothing to wait for.
  const flat = state([-1, -1, -1, -1], [1, 1, 0, 0], [900, 800, 90, 90]);
  control.plan(12, flat);
  assert.equal(flat.wakeAt[0], -1);
  // Above E′_th already, the group's board boots it at once: group 0 stays as it is.
  const booting = state([-1, -1, -1, -1], [1, 1, 0, 0], [900, 800, 160, 90]);
  control.plan(18, booting);
  assert.equal(booting.wakeAt[0], -1);
});

test('with check-ins, as the gateway naps them, a spare node sleeps at most the check-in; one halted before running flat keeps its wake', () => {
  const profiles = Array.from({ length: 3 }, () => new Float64Array(864));
  const params = { eMax: 1000, eTh: 100, eThUp: 150, idleQ: 2, modes: [{ powerMode: 1, name: 'low', kappa: 1, costQ: 1 }], modeTable: [{ minFraction: 0, powerMode: 1 }] };
  const state = () => ({
    energy: Float64Array.from([900, 800, 104]), gamma: Uint8Array.from([1, 1, 1]),
    current: Int32Array.from([-1, -1, -1]), queued: Int32Array.from([-1, -1, -1]), wakeAt: Int32Array.from([-1, -1, -1]),
  });
  const plain = state();
  new SleepControl({ profiles, startSlotOfDay: 0, sleepQ: 0, everySlots: 6 }, 1, 3, params, 0.01).plan(0, plain);
  assert.ok(plain.wakeAt[1]! > 18, `without check-ins the spare node sleeps as planned: ${plain.wakeAt[1]}`);
  const napping = state();
  new SleepControl({ profiles, startSlotOfDay: 0, sleepQ: 0, everySlots: 6, checkInSlots: 18 }, 1, 3, params, 0.01).plan(0, napping);
  assert.equal(napping.wakeAt[0], -1, 'the fullest stays');
  assert.equal(napping.wakeAt[1], 18, 'the spare node checks in');
  assert.equal(napping.wakeAt[2], plain.wakeAt[2], 'the node about to run flat sleeps as long as it must');
  assert.ok(napping.wakeAt[2]! > 18);
});
