import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceModel, PAPER_DYNAMIC_TABLE, PAPER_MODES, POLICIES, adaptive, climbSlots, foresight, longTerm, outlook, uniform, uniformOnGrid, type DeviceView } from '../../gateway/scheduler/index.js';

const model = new DeviceModel({ eMax: 100, eTh: 10, eThUp: 15, modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, harvestPmf: uniformOnGrid(0, 4) });
const view = (over: Partial<DeviceView>): DeviceView => ({ available: true, busy: false, powerMode: 3, energyQ: 80, committedQ: 0, weight: 1 / 3, model, ...over });
const near = (a: Float64Array, b: number[]) => a.every((v, i) => Math.abs(v - (b[i] as number)) < 1e-12);

test('every policy gives unavailable devices nothing and sums to one', () => {
  const group = [view({ available: false }), view({ energyQ: 50, powerMode: 2 }), view({ energyQ: 30, powerMode: 1 })];
  for (const policy of Object.values(POLICIES)) {
    const p = policy.probabilities(group);
    assert.equal(p[0], 0, policy.name);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12, policy.name);
  }
});

test('uniform and long-term renormalize over the available devices', () => {
  const group = [view({ weight: 0.5 }), view({ weight: 0.3, available: false }), view({ weight: 0.2 })];
  assert.ok(near(uniform.probabilities(group), [0.5, 0, 0.5]));
  assert.ok(near(longTerm.probabilities(group), [0.5 / 0.7, 0, 0.2 / 0.7]));
});

test('adaptive scales PM 1 devices by α/N (Algorithm 1)', () => {
  const group = [view({ weight: 0.4, powerMode: 1 }), view({ weight: 0.4, powerMode: 3 }), view({ weight: 0.2, powerMode: 2 })];
  // α = 1 device in PM 1 of N = 3: its weight becomes 0.4/3.
  const w = [0.4 / 3, 0.4, 0.2];
  const s = w.reduce((a, b) => a + b, 0);
  assert.ok(near(adaptive.probabilities(group), w.map((x) => x / s)));
  // With every device in PM 1, α/N = 1 and adaptive is long-term.
  const allLow = group.map((d) => ({ ...d, powerMode: 1 }));
  assert.ok(near(adaptive.probabilities(allLow), Array.from(longTerm.probabilities(allLow))));
});

test('foresight predicts the stage from the chain row: risk rises as the battery falls', () => {
  const o = outlook(model);
  assert.equal(o.risk[100], 0);
  assert.ok((o.risk[20] as number) > 0.5); // 26 kJ at 15 W from 20 kJ needs more than κ=3 slots of harvest
  for (let e = 1; e <= 100; e++) assert.ok((o.after[e] as number) >= (o.after[e - 1] as number) - 1e-9 || e === 40 || e === 60);
});

test('foresight hands the job to the safest, then idle, then fullest device', () => {
  // Lowest risk wins even against an idle device.
  assert.ok(near(foresight.probabilities([view({ energyQ: 25, powerMode: 1 }), view({ energyQ: 90, busy: true, committedQ: 23 })]), [0, 1]));
  // Equal (zero) risk: the idle device beats the busy one.
  assert.ok(near(foresight.probabilities([view({ energyQ: 95, busy: true, committedQ: 23 }), view({ energyQ: 70 })]), [0, 1]));
  // Equal risk, both idle: the fuller battery.
  assert.ok(near(foresight.probabilities([view({ energyQ: 70 }), view({ energyQ: 90 }), view({ available: false, energyQ: 100 })]), [0, 1, 0]));
});

test('the climb out of power saving is counted slot by slot on f(e) (SPEC.md §2)', () => {
  // One quantum every slot: from level e it takes E′_th + 1 − e slots to end one above E′_th.
  const one = new Float64Array([0, 1]);
  assert.deepEqual(Array.from(climbSlots(one, 15)), Array.from({ length: 16 }, (_, e) => 16 - e));
  // Half the slots harvest nothing: each quantum takes two slots on average.
  const half = new Float64Array([0.5, 0.5]);
  assert.ok(Math.abs((climbSlots(half, 15)[10] as number) - 12) < 1e-9);
  // No harvest at all: the device never comes back.
  assert.equal(climbSlots(new Float64Array([1]), 15)[0], Infinity);
});

test('foresight weighs a fall into power saving by the slots it costs, not only by its chance', () => {
  // A device harvesting little is likelier to stay above E_th at 33 than a sunnier one at 24,
  // but when it falls it is down twice as long: the sunnier one costs fewer slots inactive.
  const shaded = new DeviceModel({ ...model.params, harvestPmf: uniformOnGrid(0, 2) });
  const sunny = new DeviceModel({ ...model.params, harvestPmf: uniformOnGrid(0, 8) });
  const [s, u] = [outlook(shaded), outlook(sunny)];
  assert.ok((s.risk[33] as number) < (u.risk[24] as number) - 0.05);
  assert.ok((s.downtime[33] as number) > (u.downtime[24] as number) + 0.5);
  const group = [view({ energyQ: 33, powerMode: 1, model: shaded }), view({ energyQ: 24, powerMode: 1, model: sunny })];
  assert.ok(near(foresight.probabilities(group), [0, 1]));
});
