// The idle draw (idleQ, our extension): the chain and the simulator carry it alike, a device
// in power saving is halted and draws nothing, and the stationary law stays exact when the
// halted device makes the lowest levels unreachable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceModel, PAPER_DYNAMIC_TABLE, POLICIES, buildChain, fixedTable, gth, longRun, uniformOnGrid, type DeviceParams } from '../../gateway/scheduler/index.js';
import { CALIBRATION } from '../../sim/calibration.js';
import { deviceParams } from '../../sim/figures.js';
import { runNetwork, type NetworkScenario } from '../../sim/network.js';
import { stream } from '../../sim/rng.js';

const device = (idleQ: number, table = PAPER_DYNAMIC_TABLE): Omit<DeviceParams, 'harvestPmf'> => ({
  eMax: 100, eTh: 10, eThUp: 15, modes: deviceParams(CALIBRATION).modes, modeTable: table, idleQ,
});

function single(p: number, pmf: Float64Array, idleQ: number, slots: number, table = PAPER_DYNAMIC_TABLE): NetworkScenario {
  return { groups: 1, devicesPerGroup: 1, slots, p, device: device(idleQ, table), harvest: [{ kind: 'pmf', pmf: Array.from(pmf) }], initialFraction: 1 };
}

/** Time share in power saving of the solved chain. */
function asleep(model: DeviceModel, p: number): number {
  const { chain, pi } = model.solve(p);
  let time = 0;
  let saving = 0;
  for (let s = 0; s < chain.space.size; s++) {
    const w = (pi[s] as number) * (chain.dwell[s] as number);
    time += w;
    if (chain.space.gamma[s] === 0) saving += w;
  }
  return saving / time;
}

test('with an idle draw the simulator and the chain agree on one device over a long run', () => {
  for (const [table, p, idleQ, hi] of [[PAPER_DYNAMIC_TABLE, 0.2, 4, 12], [fixedTable(3), 0.1, 6, 14], [fixedTable(1), 0.3, 2, 8]] as const) {
    const pmf = uniformOnGrid(0, hi);
    const scenario = single(p, pmf, idleQ, 2_000_000, table);
    const model = new DeviceModel({ ...scenario.device, harvestPmf: pmf });
    const chain = model.solve(p);
    const sim = runNetwork({ scenario, policy: POLICIES.uniform!, models: [model], weights: [1], worldRng: stream(21), policyRng: stream(22) });
    const sleeping = asleep(model, p);
    // The idle draw matters here: the same device without it sleeps far less.
    const without = asleep(new DeviceModel({ ...scenario.device, idleQ: 0, harvestPmf: pmf }), p);
    assert.ok(sleeping > without + 0.1, `idle draw ${idleQ}: asleep ${sleeping} against ${without} without it`);
    assert.ok(Math.abs(sim.meanBatteryPct - chain.meanBattery) < 1, `mean battery: sim ${sim.meanBatteryPct}, chain ${chain.meanBattery}`);
    assert.ok(Math.abs(sim.inactiveFraction - sleeping) < 0.03 * sleeping + 0.002, `asleep: sim ${sim.inactiveFraction}, chain ${sleeping}`);
    assert.ok(Math.abs(sim.lowBatteryFraction - chain.xi) < 0.06 * chain.xi + 0.002, `ξ: sim ${sim.lowBatteryFraction}, chain ${chain.xi}`);
  }
});

test('an active device with no job loses its idle draw each slot and halts below E_th; halted, it draws nothing', () => {
  // No harvest at all and no jobs: from 20 quanta at 3 a slot the device passes E_th = 10 in
  // the fourth slot (20 → 17 → 14 → 11 → 8) and then stays at 8: halted, it draws nothing.
  // The trace shows each slot after its update.
  const scenario: NetworkScenario = { ...single(0, new Float64Array([1]), 3, 10), initialFraction: 0.2 };
  const model = new DeviceModel({ ...scenario.device, harvestPmf: new Float64Array([1]) });
  const levels: number[] = [];
  const gammas: number[] = [];
  runNetwork({
    scenario, policy: POLICIES.uniform!, models: [model], weights: [1], worldRng: stream(1), policyRng: stream(2),
    trace: { onSlot: (_t, e, g) => { levels.push(e[0] as number); gammas.push(g[0] as number); } },
  });
  assert.deepEqual(levels, [17, 14, 11, 8, 8, 8, 8, 8, 8, 8]);
  assert.deepEqual(gammas, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
});

test('a processing stage with an idle draw pays C_E and κ slots of idle', () => {
  const params: DeviceParams = { ...device(2, fixedTable(1)), harvestPmf: new Float64Array([1]) };
  const mode = params.modes.find((m) => m.powerMode === 1)!;
  const chain = buildChain(params, 1);
  const { space, matrix } = chain;
  const n = space.size;
  const from = space.index[60 * 4 + 1 * 2 + 1] as number;
  const landing = 60 - mode.costQ - 2 * mode.kappa;
  const to = space.index[landing * 4 + 1 * 2 + 1] as number;
  assert.ok(to >= 0, `state (1, ${landing}, 1) exists`);
  assert.ok(Math.abs((matrix[from * n + to] as number) - 1) < 1e-12, `from (1, 60, 1) with no harvest and p = 1 the stage ends at ${landing}`);
});

test('the stationary law is exact when the halted device leaves the lowest levels unreachable', () => {
  // With E_th = 30, the deepest a device falls is E_th minus one stage's draw; it halts there
  // and only climbs, so levels below are transient. GTH stops at the first of them instead
  // of failing into the slow long-run iteration, and agrees with it.
  const modes = [{ powerMode: 1, name: 'low', kappa: 2, costQ: 4 }];
  const params: DeviceParams = { eMax: 120, eTh: 30, eThUp: 40, modes, modeTable: fixedTable(1), idleQ: 3, harvestPmf: uniformOnGrid(0, 10) };
  const chain = buildChain(params, 0.3);
  const pi = gth(chain);
  assert.ok(pi, 'GTH solves the chain');
  const deepest = params.eTh - (4 + 3 * 2);
  let transient = 0;
  for (let s = 0; s < chain.space.size; s++) {
    if ((chain.space.e[s] as number) >= deepest) continue;
    transient++;
    assert.equal(pi[s], 0, `level ${chain.space.e[s]} is transient`);
  }
  assert.equal(transient, 2 * deepest, 'levels 0..deepest−1, with and without a job, in power saving');
  const full = chain.space.index[120 * 4 + 0 * 2 + 1] as number;
  const ref = longRun(chain, full, 1e-14, 200_000);
  let tv = 0;
  for (let s = 0; s < chain.space.size; s++) tv += Math.abs((pi[s] as number) - (ref[s] as number)) / 2;
  assert.ok(tv < 1e-6, `GTH against the long run: total variation ${tv}`);
});

test('an idle draw below one quantum a slot is drawn by chance on the grid: the expected drain is exact and the chain sees it', () => {
  // A Pi 4's 270 J per 100 s slot on a 36 Wh battery of 100 levels: 0.2083 quanta.
  const idleQ = 270 / (36 * 3600 / 100);
  const pmf = uniformOnGrid(0, 0.4);
  const model = new DeviceModel({ ...device(idleQ), harvestPmf: pmf });
  const { chain } = model.solve(0);
  const space = chain.space;
  const at = (e: number, q: number, g: number) => [...Array(space.size).keys()].find((s) => space.e[s] === e && space.q[s] === q && space.gamma[s] === g)!;
  // An active, idle device at level 50 with no arrivals: its expected next level falls by the harvest's mean less the idle draw.
  const from = at(50, 0, 1);
  let mean = 0;
  for (let to = 0; to < space.size; to++) mean += (chain.matrix[from * space.size + to] as number) * (space.e[to] as number);
  const harvestMean = Array.from(pmf).reduce((a, ph, h) => a + ph * h, 0);
  assert.ok(Math.abs(mean - (50 + harvestMean - idleQ)) < 1e-12, `expected level ${mean}, want ${50 + harvestMean - idleQ}`);
  // Rounded to the grid this device would draw nothing. Drawn by chance, on a harvest of
  // 0.2 quanta a slot that its idle draw nearly eats, it spends far more time in power saving.
  const withIdle = asleep(model, 0.01);
  const rounded = asleep(new DeviceModel({ ...device(0), harvestPmf: pmf }), 0.01);
  assert.ok(withIdle > rounded + 0.2, `in power saving ${withIdle} of the time, ${rounded} with the draw rounded away`);
});
