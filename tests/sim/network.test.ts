import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceModel, PAPER_DYNAMIC_TABLE, POLICIES, fixedTable, uniformOnGrid } from '../../gateway/scheduler/index.js';
import { CALIBRATION } from '../../sim/calibration.js';
import { runCell } from '../../sim/cell.js';
import { NETWORK_FIGURES, deviceParams } from '../../sim/figures.js';
import { runNetwork, type GroupOrder, type NetworkScenario, type StageEvent } from '../../sim/network.js';
import { stream } from '../../sim/rng.js';

function single(p: number, pmf: Float64Array, slots: number, table = PAPER_DYNAMIC_TABLE): NetworkScenario {
  return {
    groups: 1, devicesPerGroup: 1, slots, p,
    device: { eMax: 100, eTh: 10, eThUp: 15, modes: deviceParams(CALIBRATION).modes, modeTable: table },
    harvest: [{ kind: 'pmf', pmf: Array.from(pmf) }],
    initialFraction: 1,
  };
}

/** Three groups of one device each, a job in every slot, and a harvest that keeps every battery full. */
function pipeline(groupOrder: GroupOrder, slots: number): NetworkScenario {
  const full = new Array<number>(31).fill(0);
  full[30] = 1; // 30 quanta a slot: more than any stage costs
  return {
    groups: 3, devicesPerGroup: 1, slots, p: 1,
    device: { eMax: 100, eTh: 10, eThUp: 15, modes: deviceParams(CALIBRATION).modes, modeTable: fixedTable(1) },
    harvest: [0, 1, 2].map(() => ({ kind: 'pmf' as const, pmf: full })),
    initialFraction: 1,
    groupOrder,
  };
}

function stages(scenario: NetworkScenario): StageEvent[] {
  const events: StageEvent[] = [];
  const models = scenario.harvest.map((h) => new DeviceModel({ ...scenario.device, harvestPmf: Float64Array.from(h.kind === 'pmf' ? h.pmf : [1]) }));
  runNetwork({ scenario, policy: POLICIES.uniform!, models, weights: models.map(() => 1), worldRng: stream(1), policyRng: stream(2), trace: { onStage: (e) => events.push(e) } });
  return events;
}

test('sequential groups: group ℓ+1 starts a job in the slot after group ℓ finished its κ-slot stage', () => {
  // 15 W: κ = 3. Job 0 arrives in slot 0; group 1 runs it in slots 1–3, group 2 in 4–6,
  // group 3 in 7–9 (a stage that ends before slot t is counted at t).
  const events = stages(pipeline('sequential', 40));
  const at = (kind: StageEvent['kind'], job: number) => events.filter((e) => e.kind === kind && e.job === job).map((e) => [e.device, e.slot]);
  assert.deepEqual(at('start', 0), [[0, 1], [1, 4], [2, 7]]);
  assert.deepEqual(at('finish', 0), [[0, 4], [1, 7], [2, 10]]);
  const jobs = [...new Set(events.map((e) => e.job))];
  assert.ok(jobs.length > 5, `${jobs.length} jobs ran`);
  for (const job of jobs) {
    for (let g = 1; g < 3; g++) {
      const start = events.find((e) => e.kind === 'start' && e.job === job && e.device === g);
      const before = events.find((e) => e.kind === 'finish' && e.job === job && e.device === g - 1);
      if (!start) continue;
      assert.ok(before && start.slot >= before.slot, `job ${job} started in group ${g + 1} at slot ${start.slot}, group ${g} finished at ${before?.slot}`);
    }
  }
});

test('parallel groups, the reading kept for comparison: every group starts the job in the same slot', () => {
  const events = stages(pipeline('parallel', 40));
  const starts = events.filter((e) => e.kind === 'start' && e.job === 0).map((e) => [e.device, e.slot]);
  assert.deepEqual(starts, [[0, 1], [1, 1], [2, 1]]);
});

test('throughput: accepted / input and processed / input; with no harvest, dead devices hold their jobs forever', () => {
  const fig = NETWORK_FIGURES.fig4a;
  const at = (slots: number) => {
    const scenario = { ...fig.scenario(0, CALIBRATION), slots };
    const models = scenario.harvest.map(() => new DeviceModel({ ...scenario.device, harvestPmf: new Float64Array([1]) }));
    return runNetwork({ scenario, policy: POLICIES.uniform!, models, weights: models.map(() => 1 / 3), worldRng: stream(7), policyRng: stream(8) });
  };
  // 400 slots drain any battery (4 jobs of ≥ 22 quanta each), 1600 more change nothing.
  const short = at(400);
  const long = at(2000);
  for (const m of [short, long]) {
    const accepted = m.jobsInput - m.jobsDropped;
    assert.equal(m.throughputAccepted, accepted / m.jobsInput);
    assert.ok(m.throughputCompleted < m.throughputAccepted, `completed ${m.throughputCompleted}, accepted ${m.throughputAccepted}`);
  }
  const stranded = (m: typeof short) => m.jobsInput - m.jobsDropped - m.throughputCompleted * m.jobsInput;
  assert.ok(stranded(short) >= 1);
  assert.equal(Math.round(stranded(long)), Math.round(stranded(short)), 'the same jobs are still held, and no other was accepted');
  assert.equal(long.jobsInput - long.jobsDropped, short.jobsInput - short.jobsDropped);
});

test('processed / input counts a job still in the pipeline at the horizon once it drains', () => {
  // Ample sun: nothing is dropped for lack of energy, and jobs that arrived in the last
  // slots finish after the horizon; the paper's throughput is 1 at high harvest (Fig. 4a).
  const scenario = NETWORK_FIGURES.fig4a.scenario(3000, CALIBRATION);
  const models = scenario.harvest.map((h) => new DeviceModel({ ...scenario.device, harvestPmf: h.kind === 'uniform' ? uniformOnGrid(h.lo, h.hi) : new Float64Array([1]) }));
  let inFlight = 0;
  for (let it = 0; it < 20; it++) {
    const m = runNetwork({ scenario, policy: POLICIES.uniform!, models, weights: models.map(() => 1 / 3), worldRng: stream(9, it), policyRng: stream(10, it) });
    assert.equal(m.throughputCompleted, (m.jobsInput - m.jobsDropped) / m.jobsInput);
    inFlight += m.jobsInput - m.jobsDropped - m.jobsCompleted;
  }
  assert.ok(inFlight > 0, 'some job was still in the pipeline at the horizon');
});

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

test('a continuous battery under a continuous harvest agrees with the integer chain the gateway solves for it', () => {
  // The figures' path: the simulator draws U[lo, hi] in real numbers and keeps a real-valued
  // battery; the chain sees that law on the quantum grid (uniformOnGrid, as cell.ts builds it).
  for (const [table, p, lo, hi] of [[PAPER_DYNAMIC_TABLE, 0.5, 0, 20], [fixedTable(3), 0.35, 0, 20], [fixedTable(2), 0.6, 0, 20], [PAPER_DYNAMIC_TABLE, 0.4, 2.5, 15.5]] as const) {
    const scenario: NetworkScenario = { ...single(p, new Float64Array([1]), 2_000_000, table), harvest: [{ kind: 'uniform', lo, hi }] };
    const model = new DeviceModel({ ...scenario.device, harvestPmf: uniformOnGrid(lo, hi) });
    const chain = model.solve(p);
    // Slots at or below E_th, counted on the continuous level and one quantum either side of it.
    const eTh = scenario.device.eTh;
    let below = 0;
    let atOrBelow = 0;
    let withinOne = 0;
    const histogram = new Float64Array(scenario.device.eMax + 1);
    let naps = 0;
    let awake = true;
    const sim = runNetwork({
      scenario, policy: POLICIES.uniform!, models: [model], weights: [1], worldRng: stream(11), policyRng: stream(12),
      trace: { onSlot: (_t, energy, gamma) => {
        const e = energy[0] as number;
        if (gamma[0] === 0 && awake) naps++;
        awake = gamma[0] === 1;
        if (e <= eTh - 1) below++;
        if (e <= eTh) atOrBelow++;
        if (e <= eTh + 1) withinOne++;
        const k = Math.floor(e);
        histogram[k] = (histogram[k] as number) + (k + 1 - e);
        if (k < histogram.length - 1) histogram[k + 1] = (histogram[k + 1] as number) + (e - k);
      } },
    });
    const slots = scenario.slots;
    assert.equal(atOrBelow / slots, sim.lowBatteryFraction, 'the trace sees the slots the metric counts');
    // Quantizing a level moves it by less than a quantum (1 % of this battery); the Monte Carlo
    // spread over seeds is ~0.15 points at 2 M slots.
    assert.ok(Math.abs(sim.meanBatteryPct - chain.meanBattery) < 1, `mean battery: sim ${sim.meanBatteryPct}, chain ${chain.meanBattery}`);
    // Chain level E stands for real levels within a quantum of E, so its ξ = P(E ≤ E_th) lies
    // between the real battery's P(e ≤ E_th − 1) and P(e ≤ E_th + 1). (The chain's ξ is not
    // P(e ≤ E_th) itself: at the dynamic table it is 1.4× the simulated one.)
    assert.ok(below / slots < chain.xi && chain.xi < withinOne / slots, `ξ: chain ${chain.xi}, sim P(e ≤ ${eTh - 1}) ${below / slots}, P(e ≤ ${eTh + 1}) ${withinOne / slots}`);
    // The share of time asleep (γ = 0), and the whole level distribution on the quantum grid
    // (the real level split between its two neighbours, as uniformOnGrid splits a harvest).
    const { space, dwell } = chain.chain;
    let time = 0;
    let asleep = 0;
    const levels = new Float64Array(scenario.device.eMax + 1);
    for (let s = 0; s < space.size; s++) {
      const w = (chain.pi[s] as number) * (dwell[s] as number);
      time += w;
      if (space.gamma[s] === 0) asleep += w;
      levels[space.e[s] as number] = (levels[space.e[s] as number] as number) + w;
    }
    // Naps are the independent events here: three standard errors of a total of `naps` naps
    // whose lengths spread about as much as their mean (cv ≈ 1, so variance 2× a count's).
    const tolerance = 3 * Math.sqrt(2 / naps);
    assert.ok(Math.abs(sim.inactiveFraction / (asleep / time) - 1) < tolerance, `asleep: sim ${sim.inactiveFraction}, chain ${asleep / time} (${naps} naps, ±${tolerance})`);
    let tv = 0;
    for (let e = 0; e < levels.length; e++) tv += Math.abs((levels[e] as number) / time - (histogram[e] as number) / slots) / 2;
    // Total variation between the two level laws: 0.003–0.013 measured over these four cases.
    assert.ok(tv < 0.02, `battery level law: total variation ${tv}`);
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
      assert.ok(Math.abs(m.throughputAccepted - accepted / m.jobsInput) < 1e-12);
      assert.ok(m.throughputCompleted * m.jobsInput >= m.jobsCompleted - 1e-9 && m.throughputCompleted <= m.throughputAccepted + 1e-12);
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
