// The policy evaluation on real solar days (sim/solar-fleet.ts), on a short run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODE_TABLE, powerModesFor } from '../../demo/plan.js';
import { PI4_POWER_MODES, parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { FLEET_SLOT_MS, evaluateSolarFleet, fleetDevice, formatFleetTables, solarFleetCases } from '../../sim/solar-fleet.js';

const base = referenceHardwareConfig('virtual');
const pi4 = parseHardwareConfig({ ...base, cpu: { ...base.cpu, modes: PI4_POWER_MODES } });
const load = { idleW: pi4.virtual.load.idleW, modes: powerModesFor(pi4, FLEET_SLOT_MS), modeTable: MODE_TABLE };

test('the Pi load on the quantum grid: 2.7 W idle is 2 quanta a slot, every job costs at least one', () => {
  const d = fleetDevice(load, 36);
  assert.equal(d.idleQ, 2);
  assert.equal(d.eMax, 960);
  assert.deepEqual(d.modes.map((m) => [m.kappa, m.costQ]), [[10, 1], [3, 2], [1, 3]]);
});

test('every policy sees the same days and jobs, and none is down less than the fleet without jobs', () => {
  const cases = solarFleetCases();
  assert.equal(cases.length, 8);
  const policies = ['uniform', 'adaptive', 'foresight', 'greedy'];
  const r = evaluateSolarFleet(cases[0]!, 0, { load, p: 0.3, seeds: [1], days: 4, policies });
  const floor = r.idleOnlyDowntime[0]!;
  assert.ok(floor > 0.05 && floor < 0.9, `no-job downtime ${floor}`);
  assert.ok(r.harvestWhPerNodeDay[0]! > 10 && r.harvestWhPerNodeDay[0]! < 120, `harvest ${r.harvestWhPerNodeDay[0]} Wh/day`);
  const input = r.outcomes[0]!.input[0]!;
  // 4 days of 864 slots at p = 0.3: about 1037 jobs.
  assert.ok(Math.abs(input - 1037) < 100, `offered ${input}`);
  for (const o of r.outcomes) {
    assert.equal(o.input[0], input, `${o.policy} sees the same arrivals`);
    assert.ok(o.completed[0]! > 0 && o.completed[0]! <= input, `${o.policy} completed ${o.completed[0]}`);
    assert.ok(o.downtime[0]! >= floor - 1e-9, `${o.policy} down ${o.downtime[0]}, fleet without jobs ${floor}`);
  }
  const table = formatFleetTables([r]);
  assert.match(table, /foresight downtime vs adaptive/);
  assert.match(table, /40° N summer 36 Wh/);
});
