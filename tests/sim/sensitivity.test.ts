import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceModel, POLICIES, adaptive, fixedTable, type DeviceView } from '../../gateway/scheduler/index.js';
import { adaptiveReading, policyFor } from '../../sim/alpha.js';
import { CALIBRATION } from '../../sim/calibration.js';
import { runCell } from '../../sim/cell.js';
import { NETWORK_FIGURES, deviceParams, groupHarvest } from '../../sim/figures.js';
import { runNetwork, type NetworkScenario, type RunMetrics, type StageEvent } from '../../sim/network.js';
import type { PaperData } from '../../sim/paper-data.js';
import { stream } from '../../sim/rng.js';
import { READINGS, formatTable, runSensitivity, toCsv } from '../../sim/sensitivity.js';

/** One group of `devices` devices at 15 W (κ = 3, C_E = 26), a job every slot, a fixed harvest of `harvestQ` quanta a slot. */
function scenario(initialFraction: number, harvestQ: number, more: Partial<NetworkScenario> = {}, groups = 1): NetworkScenario {
  const pmf = new Array<number>(harvestQ + 1).fill(0);
  pmf[harvestQ] = 1;
  return {
    groups, devicesPerGroup: 1, slots: 30, p: 1,
    device: { eMax: 100, eTh: 10, eThUp: 15, modes: deviceParams(CALIBRATION).modes, modeTable: fixedTable(1) },
    harvest: Array.from({ length: groups }, () => ({ kind: 'pmf' as const, pmf })),
    initialFraction,
    ...more,
  };
}

function run(s: NetworkScenario, trace: { events?: StageEvent[]; energies?: number[] } = {}): RunMetrics {
  const models = s.harvest.map((h) => new DeviceModel({ ...s.device, harvestPmf: Float64Array.from(h.kind === 'pmf' ? h.pmf : [1]) }));
  return runNetwork({
    scenario: s, policy: POLICIES.uniform!, models, weights: models.map(() => 1), worldRng: stream(1), policyRng: stream(2),
    trace: { onStage: (e) => trace.events?.push(e), onSlot: (_t, energy) => trace.energies?.push(...energy) },
  });
}

test('"C_E ≤ E_m" as clipping runs a job the battery cannot pay and ends at zero; as admission the job waits', () => {
  // 20 quanta, no harvest, a job costs 26.
  const clipEnergies: number[] = [];
  const clip = run(scenario(0.2, 0, { costRule: 'clip' }), { energies: clipEnergies });
  assert.equal(clip.jobsCompleted, 1);
  assert.ok(clip.inactiveFraction > 0.8, `inactive ${clip.inactiveFraction}`);
  assert.equal(Math.min(...clipEnergies), 0);

  const admitEnergies: number[] = [];
  const admit = run(scenario(0.2, 0, { costRule: 'admission' }), { energies: admitEnergies });
  assert.equal(admit.jobsCompleted, 0);
  assert.equal(admit.inactiveFraction, 0);
  assert.deepEqual([...new Set(admitEnergies)], [20]);
});

test('under admission a job starts once the harvest has paid for it', () => {
  // 20 quanta and 2 a slot: the first job can start when E ≥ 26, three slots later.
  const events: StageEvent[] = [];
  run(scenario(0.2, 2, { costRule: 'admission' }), { events });
  const first = events.find((e) => e.kind === 'start');
  assert.ok(first, 'a job started');
  assert.equal(first.slot, 3); // E = 22, 24, 26 before slots 1..3 (the stage ending before slot t is counted at t)
});

test('a pending job is kept in power saving (the chain\'s reading) or dropped with the device\'s place in the queue', () => {
  // 50 quanta, no harvest: two jobs run (50 → 24 → 0), the device falls asleep holding the third.
  const keep = run(scenario(0.5, 0, { pendingInSaving: 'keep' }));
  const drop = run(scenario(0.5, 0, { pendingInSaving: 'drop' }));
  assert.equal(keep.jobsCompleted, 2);
  assert.equal(drop.jobsCompleted, 2);
  assert.equal(drop.jobsInput, keep.jobsInput);
  assert.equal(drop.jobsDropped, keep.jobsDropped + 1, `kept ${keep.jobsDropped} dropped, dropping ${drop.jobsDropped}`);
  // The kept job is accepted but never processed; the dropped one is not accepted either.
  assert.ok(drop.throughputAccepted < keep.throughputAccepted);
  assert.equal(drop.throughputCompleted, keep.throughputCompleted);
});

test('a job dropped in power saving is released by the other groups that hold it, and never started there', () => {
  // Parallel groups. Group 1 has 50 quanta and no harvest; group 2 has ample harvest. Group
  // 1 falls asleep after two jobs, holding the third, which group 2 holds too.
  const s = scenario(0.5, 0, { pendingInSaving: 'drop', groupOrder: 'parallel' }, 2);
  const ample = new Array<number>(31).fill(0);
  ample[30] = 1;
  s.harvest[1] = { kind: 'pmf', pmf: ample };
  const events: StageEvent[] = [];
  const m = run(s, { events });
  const ran = events.filter((e) => e.device === 0 && e.kind === 'start').map((e) => e.job);
  assert.deepEqual(ran, [0, 1]);
  const otherStarts = events.filter((e) => e.device === 1 && e.kind === 'start').map((e) => e.job);
  assert.deepEqual(otherStarts, ran, 'group 2 starts only the jobs group 1 ran');
  assert.equal(m.jobsDropped, m.jobsInput - 2);
  assert.equal(m.jobsCompleted, 2);
  // Nothing is left in the pipeline, so the drain stops at once: processed = completed.
  assert.equal(m.throughputCompleted, 2 / m.jobsInput);
});

test('a queue of one place in all (no waiting place) takes the next job only after the last one ended', () => {
  const starts = (capacity: 1 | 2) => {
    const events: StageEvent[] = [];
    run(scenario(1, 30, { queueCapacity: capacity }), { events });
    return events.filter((e) => e.kind === 'start').map((e) => e.slot).slice(0, 4);
  };
  // κ = 3: with a waiting place the next job is ready when the stage ends; without, it
  // is dispatched in the slot the stage ended and starts one slot later.
  assert.deepEqual(starts(2), [1, 4, 7, 10]);
  assert.deepEqual(starts(1), [1, 5, 9, 13]);
});

test('an integer battery: the harvest is drawn on the quantum grid, so every level is a whole number of quanta', () => {
  const levels = (battery: 'continuous' | 'integer') => {
    const harvest = groupHarvest(100, 1, 3, { ...CALIBRATION, battery });
    const energies: number[] = [];
    const s: NetworkScenario = { ...scenario(0.5, 0), devicesPerGroup: 3, p: 0.3, slots: 200, harvest, device: deviceParams(CALIBRATION) };
    run(s, { energies });
    return { harvest, energies };
  };
  const integer = levels('integer');
  assert.ok(integer.harvest.every((h) => h.kind === 'pmf'));
  assert.ok(integer.energies.every((e) => Number.isInteger(e)));
  const continuous = levels('continuous');
  assert.ok(continuous.harvest.every((h) => h.kind === 'uniform'));
  assert.ok(continuous.energies.some((e) => !Number.isInteger(e)));
});

function view(powerMode: number, available = true): DeviceView {
  return { available, busy: false, powerMode, energyQ: 50, committedQ: 0, weight: 1 / 3 };
}

const rounded = (w: Float64Array) => Array.from(w, (x) => Math.round(x * 1e9) / 1e9);

test('α from the pseudo-code keeps α/N of a PM 1 device\'s weight; from the prose it takes α/N away', () => {
  const group = [view(1), view(1), view(3)]; // α = 2, N = 3
  assert.deepEqual(rounded(adaptiveReading('pseudo-code', false).probabilities(group)), rounded(Float64Array.from([2, 2, 3], (x) => x / 7)));
  assert.deepEqual(rounded(adaptiveReading('pseudo-code', false).probabilities(group)), rounded(adaptive.probabilities(group)));
  assert.deepEqual(rounded(adaptiveReading('prose', false).probabilities(group)), rounded(Float64Array.from([1, 1, 3], (x) => x / 5)));
});

test('α counting the devices in power saving scales a PM 1 device by (PM 1 + asleep)/N', () => {
  const group = [view(1), view(0, false), view(3)];
  assert.deepEqual(rounded(adaptiveReading('pseudo-code', false).probabilities(group)), [0.25, 0, 0.75]);
  assert.deepEqual(rounded(adaptiveReading('pseudo-code', true).probabilities(group)), [0.4, 0, 0.6]);
});

test('the simulator swaps in the α reading for adaptive only, and the live policy when the reading is the adopted one', () => {
  assert.equal(policyFor(POLICIES.adaptive!, undefined), POLICIES.adaptive);
  assert.equal(policyFor(POLICIES.adaptive!, { reading: 'pseudo-code', countSleeping: false }), POLICIES.adaptive);
  assert.equal(policyFor(POLICIES.uniform!, { reading: 'prose', countSleeping: true }), POLICIES.uniform);
  const prose = policyFor(POLICIES.adaptive!, { reading: 'prose', countSleeping: false });
  assert.notEqual(prose, POLICIES.adaptive);
  assert.equal(prose.name, 'adaptive');
});

test('a run of Fig. 3b at p = 1 reads α as its scenario says, for adaptive only', () => {
  const cell = (policy: string, cal: typeof CALIBRATION) => runCell(NETWORK_FIGURES.fig3b.scenario(1, cal), policy, 20, 1, [3, 19]);
  const prose = { ...CALIBRATION, alpha: 'prose' as const, alphaCountsSleeping: true };
  assert.notDeepEqual(cell('adaptive', prose), cell('adaptive', CALIBRATION));
  assert.deepEqual(cell('uniform', prose), cell('uniform', CALIBRATION));
});

test('every reading names a variant that differs from the adopted calibration', () => {
  for (const r of READINGS) {
    assert.ok(r.variants.length > 0, r.reading);
    for (const v of r.variants) {
      const changed = Object.entries(v.change).some(([k, val]) => JSON.stringify((CALIBRATION as unknown as Record<string, unknown>)[k]) !== JSON.stringify(val));
      assert.ok(changed, `${r.reading}: ${v.label} is the adopted reading`);
    }
  }
});

test('the study runs end to end: the adopted reading, every variant asked for, their combinations, a table and a CSV', { timeout: 300_000 }, async () => {
  const curve = (xs: number[], y: number) => ({ x: xs, mean: { uniform: xs.map(() => y), 'long-term': xs.map(() => y), adaptive: xs.map(() => y) }, std: { uniform: xs.map(() => 0.01) } });
  const paper = {
    fig3a: curve([25, 100], 0.1), fig3b: curve([0.5, 1], 0.05), fig4a: curve([0, 50], 0.8), fig4b: curve([0.5, 1], 10),
  } as unknown as PaperData;
  // Two of the readings keep the test to seconds; `sim sensitivity` runs them all.
  const readings = READINGS.filter((r) => r.reading === 'C_E ≤ E_m' || r.reading === 'queue capacity');
  assert.equal(readings.length, 2);
  const report = await runSensitivity({ iterations: 2, seed: 1, threads: 1, paper, readings });
  assert.deepEqual(report.variants.filter((v) => v.kind === 'single').map((v) => v.label), ['C_E ≤ E_m as admission', 'one job held in all']);
  assert.equal(report.variants[0]!.label, 'adopted');
  // Combined: the best two readings that keep the paper's order at p = 1, and the variants
  // that each bring 3b adaptive at p = 1 within 0.03 (when there are two of each).
  const singles = report.variants.filter((v) => v.kind === 'single');
  const ordered = singles.filter((v) => v.ordering).length;
  const headline = singles.filter((v) => v.ordering && v.fig3bAtP1.adaptive <= 0.03).length;
  const combinations = report.variants.filter((v) => v.kind === 'combination');
  assert.equal(combinations.length, (ordered >= 2 ? 1 : 0) + (headline >= 2 ? 1 : 0));
  for (const c of combinations) assert.deepEqual(c.change, { costRule: 'admission', queueCapacity: 1 });
  // The paper's own headline is read off its curves: 3b at p = 1 is 0.05 for every policy.
  assert.equal(report.paper.fig3bAtP1.adaptive, 0.05);
  assert.equal(report.paper.fig4bGapAtP1, 0);
  for (const v of report.variants) {
    assert.equal(v.curves.length, 12, v.label);
    assert.ok(Number.isFinite(v.fig3bAtP1.adaptive), v.label);
    assert.ok(Number.isFinite(v.fig4bGapAtP1), v.label);
    assert.ok(Number.isFinite(v.fig4aLowGap.adaptive) && Number.isFinite(v.fig4aLowGap.longTerm), v.label);
    assert.ok(v.withinGoal >= 0 && v.withinGoal <= 12);
  }
  const table = formatTable(report);
  for (const v of report.variants) assert.ok(table.includes(v.label), `table lacks ${v.label}`);
  const csv = toCsv(report).trim().split('\n');
  assert.equal(csv.length, 1 + report.variants.length * 12);
});
