// The coordinated-sleep planner (gateway/scheduler/sleep.ts): pure orders from a group's state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLEEP_DEFAULTS, affordableAwake, alignToPipeline, chargeSlots, dawnSlots, groupBackInSlots, haltLeadSlots, neededAwake, persistentForecast, planSleep, runtimeSlots, type SleepNodeView } from '../../gateway/scheduler/index.js';

/** A night of `nightSlots` dark slots, then `dayQ` a slot. */
const night = (nightSlots: number, dayQ = 10) => (t: number) => (t < nightSlots ? 0 : dayQ);
const node = (energyQ: number, over: Partial<SleepNodeView> = {}): SleepNodeView => ({ awake: true, busy: false, energyQ, eThQ: 100, idleQ: 2, forecastQ: night(300), ...over });
const demand = { arrivalsPerSlot: 0.3, stageSlots: 1, jobQ: 3 };

test('dawn, runtime and charge on the forecast', () => {
  const n = node(500);
  assert.equal(dawnSlots(n, 864), 300);
  assert.equal(dawnSlots({ ...n, forecastQ: () => 2 }, 864), 0, 'a forecast that covers the idle draw now is daylight');
  assert.equal(dawnSlots({ ...n, forecastQ: () => 0 }, 864), 864);
  // 400 quanta above E_th at 2 + 1 a slot: it reaches E_th in slot 133.
  assert.equal(runtimeSlots(n, 1, 864), 133);
  assert.equal(chargeSlots({ ...n, energyQ: 90 }, 150, 864), 306, 'asleep it charges only once the sun is up: 90 + 10 × 6 ≥ 150 after six day slots');
});

test('the demand sets how many nodes stay awake', () => {
  assert.equal(neededAwake(demand, 3), 1);
  assert.equal(neededAwake({ ...demand, stageSlots: 3 }, 3), 2, '0.9 busy share over a 0.7 target needs two');
  assert.equal(neededAwake({ ...demand, stageSlots: 10 }, 3), 3);
  assert.equal(neededAwake({ ...demand, arrivalsPerSlot: 0 }, 3), 0);
});

test('at night the fullest node stays awake, the next relieves it before it runs out, the last sleeps until dawn', () => {
  const orders = planSleep([node(300), node(900), node(600)], demand);
  assert.deepEqual(orders[1], { sleep: false });
  // The kept node has 800 quanta above E_th at 2 + 0.9 a slot: out in slot 275 < its dawn at 300.
  const keptRun = runtimeSlots(node(900), 0.9, 864);
  assert.equal(keptRun, 275);
  assert.deepEqual(orders[2], { sleep: true, wakeInSlots: keptRun - 6, why: 'spare' }, 'the relief wakes six slots before');
  assert.deepEqual(orders[0], { sleep: true, wakeInSlots: 300, why: 'spare' });
});

test('at night no more nodes stay awake than the group\'s energy can carry to its dawn, and at least one', () => {
  // κ = 10: the demand needs all three. Each awake node draws 2 + 0.1 × 3 a slot for 300 slots.
  const slow = { ...demand, stageSlots: 10 };
  assert.equal(neededAwake(slow, 3), 3);
  const poor = [node(300), node(250), node(200)];
  assert.equal(affordableAwake(poor, slow, 3, 300), 0, '450 quanta above E_th against 690 for one node');
  const orders = planSleep(poor, slow);
  assert.deepEqual(orders.map((o) => o.sleep), [false, true, true], 'the fullest node alone stays, saturated');
  const rich = [node(900), node(900), node(900)];
  assert.equal(affordableAwake(rich, slow, 3, 300), 3);
  assert.deepEqual(planSleep(rich, slow).map((o) => o.sleep), [false, false, false], 'energy for the night: the demand decides');
});

test('in daylight nobody is sent to sleep', () => {
  const day = { forecastQ: () => 5 };
  assert.deepEqual(planSleep([node(300, day), node(900, day), node(600, day)], demand), [{ sleep: false }, { sleep: false }, { sleep: false }]);
});

test('a node about to run flat halts with its alarm set, even the last one awake; a busy one too, with time to finish', () => {
  // 105 quanta: 5 above E_th, under 2 slots at 2.9 a slot.
  const [last] = planSleep([node(105)], demand);
  assert.ok(last!.sleep && last!.why === 'flat', 'the last node awake halts before running flat');
  // It wakes once the morning sun has charged it with an hour of service above E_th.
  assert.equal(last!.sleep && last!.wakeInSlots, chargeSlots(node(105), 100 + 36 * 2.9, 864));
  assert.deepEqual(planSleep([node(105, { awake: false }), node(900)], demand)[1], { sleep: false }, 'a full node stays up');
  // Busy, it must finish up to two jobs of κ = 10 slots: 26 slots' lead. 150 quanta last 17 slots.
  const busy = planSleep([node(150, { busy: true }), node(900)], { ...demand, stageSlots: 10 });
  assert.ok(busy[0]!.sleep, 'a busy node that cannot finish its jobs and the night is told to halt after them');
  assert.deepEqual(planSleep([node(600, { busy: true }), node(900)], demand)[0], { sleep: false }, 'a busy node is not put to sleep to save energy');
});

test('a node that could not finish the jobs it may be handed before the next round halts now, busy or not', () => {
  // κ = 10 slots and a queue of two: 6 + 2 × 10 = 26 slots of lead. 150 quanta above E_th
  // last 17 slots at 2 + 0.9 a slot, so an idle node given two jobs would run flat in them.
  const long = { ...demand, stageSlots: 10 };
  assert.equal(haltLeadSlots(node(150), long), 26);
  assert.equal(haltLeadSlots(node(150, { holds: 1 }), long), 16, 'a queue of one: one stage');
  assert.equal(runtimeSlots(node(150), 0.9, 864), 17);
  const [idle] = planSleep([node(150), node(900)], long);
  assert.ok(idle!.sleep && idle!.why === 'flat', 'idle, it is halted before it takes a job it cannot finish');
  const one = planSleep([node(150, { holds: 1 }), node(900)], long)[0]!;
  assert.ok(!(one.sleep && one.why === 'flat'), 'with room for one job of 10 slots, 17 slots are enough: not halted as about to run flat');
});

test('a group is back when a node stays up, else at the first wake of its nodes', () => {
  const row = [node(500), node(500, { awake: false }), node(500)];
  assert.equal(groupBackInSlots(row, [{ sleep: true, wakeInSlots: 40, why: 'flat' }, { sleep: false }, { sleep: false }], [0, 90, 0]), 0);
  assert.equal(groupBackInSlots(row, [{ sleep: true, wakeInSlots: 40, why: 'flat' }, { sleep: false }, { sleep: true, wakeInSlots: 120, why: 'spare' }], [0, 90, 0]), 40);
  assert.equal(groupBackInSlots(row, [{ sleep: true, wakeInSlots: 400, why: 'flat' }, { sleep: false }, { sleep: true, wakeInSlots: 120, why: 'spare' }], [0, 90, 0]), 90, 'the node asleep already wakes first');
  assert.equal(groupBackInSlots(row, [{ sleep: true, wakeInSlots: 400, why: 'flat' }, { sleep: false }, { sleep: true, wakeInSlots: 120, why: 'spare' }], [0, Infinity, 0]), 120);
});

test('while another group is down, the spare awake nodes sleep until the whole pipeline is back', () => {
  const row = [node(900), node(600, { busy: true }), node(700, { held: true }), node(300)];
  const orders = [{ sleep: false }, { sleep: false }, { sleep: false }, { sleep: true, wakeInSlots: 50, why: 'flat' }] as const;
  const aligned = alignToPipeline(row, orders, 80.5);
  assert.deepEqual(aligned[0], { sleep: true, wakeInSlots: 81, why: 'pipeline' }, 'an idle awake node sleeps until the pipeline is back');
  assert.deepEqual(aligned[1], { sleep: false }, 'a busy node finishes its job');
  assert.deepEqual(aligned[2], { sleep: false }, 'a held node stays for the clients that wait');
  assert.deepEqual(aligned[3], orders[3], 'an order already given stands');
  assert.deepEqual(alignToPipeline(row, orders, SLEEP_DEFAULTS.pipelineMinSlots - 1), [...orders], 'a gap shorter than a halt and a boot are worth is kept awake');
  assert.deepEqual(alignToPipeline(row, orders, Infinity), [...orders], 'a group with no known return is not waited for');
  assert.deepEqual(alignToPipeline(row, orders, 0), [...orders], 'the pipeline is up');
});

test('only awake nodes get orders', () => {
  const orders = planSleep([node(900, { awake: false }), node(300), node(600)], demand);
  assert.deepEqual(orders[0], { sleep: false });
  assert.deepEqual(orders[2], { sleep: false }, 'the fullest awake node stays');
  assert.ok(orders[1]!.sleep);
});

test('the sky now corrects the forecast for a few hours, then fades to the mean', () => {
  const f = persistentForecast(() => 4, 0.25, 144);
  assert.equal(f(0), 1);
  assert.ok(Math.abs(f(144) - 4 * (1 - 0.75 * Math.exp(-1))) < 1e-12);
  assert.ok(f(2000) > 3.99);
  assert.equal(persistentForecast(() => 4, Number.NaN, 144)(0), 4, 'no measurement: the mean');
});
