import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceModel, PAPER_DYNAMIC_TABLE, POLICIES, fixedTable, uniformOnGrid } from '../../gateway/scheduler/index.js';
import { CALIBRATION } from '../../sim/calibration.js';
import { runCell } from '../../sim/cell.js';
import { NETWORK_FIGURES, deviceParams } from '../../sim/figures.js';
import { runNetwork, type NetworkScenario } from '../../sim/network.js';
import { stream } from '../../sim/rng.js';

function single(p: number, pmf: Float64Array, slots: number, table = PAPER_DYNAMIC_TABLE): NetworkScenario {
  return {
    groups: 1, devicesPerGroup: 1, slots, p,
    device: { eMax: 100, eTh: 10, eThUp: 15, modes: deviceParams(CALIBRATION).modes, modeTable: table },
    harvest: [{ kind: 'pmf', pmf: Array.from(pmf) }],
    initialFraction: 1,
  };
}

test('the simulator and the chain agree on one device over a long run', () => {
  // Same law on both sides: the chain's PMF drives the simulated harvest.
  for (const [table, p] of [[PAPER_DYNAMIC_TABLE, 0.5], [fixedTable(3), 0.35], [fixedTable(2), 0.6]] as const) {
    const pmf = uniformOnGrid(0, 20);
    // 2 M slots: the battery mixes over hundreds of slots, and seeds spread the mean by ~0.15 points here.
    const scenario = single(p, pmf, 2_000_000, table);
    const model = new DeviceModel({ ...scenario.device, harvestPmf: pmf });
    const chain = model.solve(p);
    const sim = runNetwork({ scenario, policy: POLICIES.uniform!, models: [model], weights: [1], worldRng: stream(11), policyRng: stream(12) });
    assert.ok(Math.abs(sim.meanBatteryPct - chain.meanBattery) < 0.5, `mean battery: sim ${sim.meanBatteryPct}, chain ${chain.meanBattery}`);
    assert.ok(Math.abs(sim.lowBatteryFraction - chain.xi) < 0.06 * chain.xi, `ξ: sim ${sim.lowBatteryFraction}, chain ${chain.xi}`);
  }
});

test('runs are reproducible from the seed and differ across seeds', () => {
  const fig = NETWORK_FIGURES.fig3a;
  const a = runCell(fig.scenario(200, CALIBRATION), 'adaptive', 20, 5, [1]);
  const b = runCell(fig.scenario(200, CALIBRATION), 'adaptive', 20, 5, [1]);
  const c = runCell(fig.scenario(200, CALIBRATION), 'adaptive', 20, 6, [1]);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('every job is counted once: input = dropped + accepted, completed ≤ accepted', () => {
  const fig = NETWORK_FIGURES.fig4b;
  for (const policy of Object.values(POLICIES)) {
    for (let it = 0; it < 10; it++) {
      const scenario = fig.scenario(0.9, CALIBRATION);
      const models = scenario.harvest.map((h) => new DeviceModel({ ...scenario.device, harvestPmf: h.kind === 'uniform' ? uniformOnGrid(h.lo, h.hi) : new Float64Array([1]) }));
      const m = runNetwork({ scenario, policy, models, weights: models.map(() => 1 / 3), worldRng: stream(3, it), policyRng: stream(4, it) });
      const accepted = m.jobsInput - m.jobsDropped;
      assert.ok(m.jobsDropped >= 0 && accepted >= 0);
      assert.ok(m.jobsCompleted <= accepted);
      // Each group holds at most two jobs per device at the horizon (one running, one queued).
      assert.ok(accepted - m.jobsCompleted <= 2 * scenario.devicesPerGroup * scenario.groups);
      assert.ok(Math.abs(m.throughput - accepted / m.jobsInput) < 1e-12);
    }
  }
});

test('with ample sun nobody sleeps; with none, batteries run down and devices sleep', () => {
  const fig = NETWORK_FIGURES.fig3a;
  const sunny = runCell(fig.scenario(3000, CALIBRATION), 'uniform', 20, 1, [0]);
  assert.equal(sunny.inactiveFraction.mean, 0);
  const dark = runCell(NETWORK_FIGURES.fig4a.scenario(0, CALIBRATION), 'uniform', 20, 1, [0]);
  assert.ok(dark.meanBatteryPct.mean < 100);
  assert.ok(dark.jobsDropped.mean > 0);
});
