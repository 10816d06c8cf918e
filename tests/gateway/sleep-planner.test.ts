// The gateway's sleep planner against a registry fed by hand and a virtual clock: at night
// it keeps the group's fullest node awake, wakes the next one in time to relieve it, and
// sends the rest to sleep until their dawn; a node that cannot wake is never sent; the
// recent arrival rate keeps more nodes awake; an order that never took is given up; a node
// is planned only once it has been heard in every hour of the day; a node not needed naps
// until its check-in; jobs that found the group asleep keep the nodes that check in awake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { chainProfile } from '../../gateway/link.js';
import { Registry } from '../../gateway/registry.js';
import { SleepPlanner, SleepPlannerConfigSchema, type SleepPlannerConfig } from '../../gateway/sleep-planner.js';
import { MEASUREMENTS, type StorePoint } from '../../gateway/store/index.js';
import { commandSchema, type Command, type NodeProfile } from '../../protocol/index.js';
import { captureLog } from '../support/log.js';
import { paperProfile } from '../support/protocol-messages.js';

const HOUR = 3_600_000;
const SLOT = 100_000;
/** 22:00 UTC: the sun set at 18:00 and rises at 06:00, eight hours (288 slots) on. */
const NIGHT = Date.UTC(2026, 0, 15, 22);
const SUNRISE = Date.UTC(2026, 0, 16, 6);

interface Fleet {
  registry: Registry;
  clock: VirtualClock;
  commands: Array<{ nodeId: string; command: Command }>;
  points: StorePoint[];
  planner: SleepPlanner;
  /** Jobs submitted, and per group those refused because it slept (the router's counters). */
  jobs: { submitted: number; refused: Map<string, number> };
  cap: ReturnType<typeof captureLog>;
  /** A sleeper's alarm boots it: a birth and its first slot record, as the gateway sees a check-in. */
  boot(id: string, batteryJ: number): void;
}

/** The slot records each node has sent before the clock starts: from `fromMs` to `toMs`, the planner's now. */
interface History {
  fromMs: number;
  toMs: number;
  harvestJ: (slotStartMs: number) => number;
}

/** A day to 22:00: 4 kJ a slot from 06:00 to 18:00, nothing at night. */
const DAY: History = { fromMs: NIGHT - 24 * HOUR, toMs: NIGHT, harvestJ: (t) => (new Date(t).getUTCHours() >= 6 && new Date(t).getUTCHours() < 18 ? 4000 : 0) };

/** Nodes of group g0 with 20 W idle draw (2 quanta a slot) and the slot records of `history` (a day by default). */
function fleet(nodes: Array<{ id: string; batteryJ: number; wakes?: boolean; group?: string }>, config: Partial<SleepPlannerConfig> = {}, profile: Partial<NodeProfile> = {}, history: History = DAY): Fleet {
  const clock = new VirtualClock(history.toMs);
  const registry = new Registry({ silenceMs: 1e12, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, { update: () => {}, forget: () => {} });
  const chained = (wakes: boolean | undefined, group = 'g0') => {
    const wake = wakes === false ? { path: 'none' as const, ok: false, reason: 'no RTC' } : { path: 'virtual' as const, ok: true };
    return chainProfile({ ...paperProfile(group), idleW: 20, wake, ...profile }, { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } });
  };
  for (const n of nodes) {
    registry.birth(n.id, chained(n.wakes, n.group), history.fromMs - HOUR);
    let seq = 0;
    for (let t = history.fromMs; t < history.toMs; t += SLOT) {
      registry.slot(n.id, { seq: ++seq, slotStartMs: t, batteryJ: n.batteryJ, harvestJ: history.harvestJ(t), gamma: 1, powerMode: 1, queue: 0 }, t + SLOT);
    }
  }
  const commands: Fleet['commands'] = [];
  const points: StorePoint[] = [];
  const jobs = { submitted: 0, refused: new Map<string, number>() };
  const cap = captureLog();
  const planner = new SleepPlanner(SleepPlannerConfigSchema.parse({ enabled: true, ...config }), {
    fleet: 'f1', registry, clock, log: cap.log,
    store: { write: (p) => void points.push(p) },
    submitted: () => jobs.submitted,
    refusedAsleep: (group) => jobs.refused.get(group) ?? 0,
    inHand: () => 0,
    command: (nodeId, command) => void commands.push({ nodeId, command }),
  });
  const boot = (id: string, batteryJ: number) => {
    const now = clock.now();
    const n = nodes.find((m) => m.id === id);
    registry.birth(id, chained(n?.wakes, n?.group), now);
    registry.slot(id, { seq: 1, slotStartMs: now - SLOT, batteryJ, harvestJ: 0, gamma: 1, powerMode: 1, queue: 0 }, now);
  };
  return { registry, clock, commands, points, planner, jobs, cap, boot };
}

test('at night with no jobs: the fullest node stays awake, the next wakes to relieve it, the last sleeps until sunrise', async () => {
  // Check-ins further off than sunrise: the planner's own wake times.
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }, { id: 'c', batteryJ: 40_000 }], { checkInMs: 12 * HOUR });
  await f.clock.advance(300_000);
  const now = f.clock.now();
  const sent = f.planner.plan();
  assert.deepEqual(sent.map((d) => d.nodeId), ['b', 'c']);
  // a: 80 quanta, E_th 10, 2 a slot of idle draw: below E_th after 35 slots; b is woken 6 slots before.
  assert.equal(sent[0]!.wakeAtMs, now + 29 * SLOT, 'b relieves a');
  // c sleeps to the first slot whose forecast covers its idle draw: 06:00.
  assert.ok(Math.abs(sent[1]!.wakeAtMs - SUNRISE) <= SLOT, `c wakes at sunrise: ${new Date(sent[1]!.wakeAtMs).toISOString()}`);
  assert.deepEqual(f.commands.map((c) => [c.nodeId, c.command.op, c.command.op === 'sleep' && c.command.wakeAtMs]), [['b', 'sleep', sent[0]!.wakeAtMs], ['c', 'sleep', sent[1]!.wakeAtMs]]);
  assert.equal(f.registry.get('b')!.sleep?.wakeAtMs, sent[0]!.wakeAtMs, 'the registry knows b is sent to sleep');
  assert.equal(f.registry.get('a')!.sleep, undefined);
  const plans = f.points.filter((p) => p.measurement === MEASUREMENTS.sleepPlan);
  assert.deepEqual(plans.map((p) => [p.tags.node, p.tags.group, p.fields.wakeAtMs]), [['b', 'g0', sent[0]!.wakeAtMs], ['c', 'g0', sent[1]!.wakeAtMs]]);
  assert.match(String(plans[1]!.fields.reason), /forecast covers its idle draw/);
  const group = f.points.find((p) => p.measurement === MEASUREMENTS.sleepGroup)!;
  assert.deepEqual([group.tags.group, group.fields.asleep, group.fields.awake, group.fields.nextWakeAtMs], ['g0', 2, 1, sent[0]!.wakeAtMs]);
  // The next round has nobody new to send: the sleepers are not awake, a is needed.
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan(), []);
});

test('on a clock that reads fractions of a ms (a scaled one), the order still carries a whole-ms wake time the node accepts', async () => {
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }]);
  await f.clock.advance(300_000.4);
  const sent = f.planner.plan();
  assert.deepEqual(sent.map((d) => d.nodeId), ['b']);
  assert.ok(Number.isInteger(sent[0]!.wakeAtMs), `wakeAtMs ${sent[0]!.wakeAtMs}`);
  assert.equal(commandSchema.safeParse(f.commands[0]!.command).success, true);
});

test('a node without a working wake path is never sent to sleep; the planner counts on it as awake', async () => {
  const f = fleet([{ id: 'a', batteryJ: 40_000, wakes: false }, { id: 'b', batteryJ: 80_000 }]);
  await f.clock.advance(300_000);
  const sent = f.planner.plan();
  assert.deepEqual(sent.map((d) => d.nodeId), ['b'], 'a cannot sleep, so it is the one kept awake');
  assert.equal(f.commands.some((c) => c.nodeId === 'a'), false);
});

test('the recent arrival rate keeps as many nodes awake as the demand needs', async () => {
  // Light jobs of three slots on nodes of low idle draw: what they cost is not what keeps
  // nodes awake here, their time is, and the batteries carry two nodes through the night.
  const light = { idleW: 2, modes: [{ powerMode: 1, name: 'slow', kappa: 3, costJ: 200 }], modeTable: [{ minFraction: 0, powerMode: 1 }] };
  const f = fleet([{ id: 'a', batteryJ: 95_000 }, { id: 'b', batteryJ: 90_000 }, { id: 'c', batteryJ: 85_000 }], { demandWindowMs: 600_000 }, light);
  // One job in three slots keeps one node busy all the time: above the 0.7 a node may carry, so two stay awake.
  await f.clock.advance(300_000);
  f.jobs.submitted = 1;
  assert.deepEqual(f.planner.plan().map((d) => d.nodeId), ['c'], 'a and b are needed');
  assert.equal(f.points.find((p) => p.measurement === MEASUREMENTS.sleepGroup)!.fields.arrivalsPerSlot, 1 / 3);
  f.registry.sleeping('c', f.clock.now());
  // No job in the last window: one awake node is enough.
  await f.clock.advance(600_000);
  assert.deepEqual(f.planner.plan().map((d) => d.nodeId), ['b']);
});

test('an order the node neither obeys nor refuses in time is given up: the node is counted awake again', async () => {
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }], { settleMs: 600_000 });
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan().map((d) => d.nodeId), ['b']);
  await f.clock.advance(300_000);
  f.planner.plan();
  assert.ok(f.registry.get('b')!.sleep, 'still settling');
  await f.clock.advance(400_000);
  const again = f.planner.plan();
  assert.deepEqual(again.map((d) => d.nodeId), ['b'], 'b is awake after all, so it is sent to sleep again');
  // One that said it sleeps is not given up, however long it stays online.
  f.registry.sleeping('b', f.clock.now());
  await f.clock.advance(2 * 600_000);
  f.planner.plan();
  assert.ok(f.registry.get('b')!.sleep?.asleepSinceMs !== undefined);
});

test('the planner runs on the injected clock every everyMs, and stops', async () => {
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }], { everyMs: 300_000 });
  f.planner.start();
  await f.clock.advance(299_000);
  assert.equal(f.commands.length, 0);
  await f.clock.advance(1_000);
  assert.equal(f.commands.length, 1);
  f.planner.stop();
  await f.clock.advance(3_600_000);
  assert.equal(f.points.filter((p) => p.measurement === MEASUREMENTS.sleepGroup).length, 1, 'no round after stop');
});

test('a node born but with no slot record yet has no battery level to plan with: it gets no order', async () => {
  const f = fleet([{ id: 'a', batteryJ: 80_000 }]);
  // Its birth says nothing of its battery: planned on 0 J, it would be halted as about to run flat.
  f.registry.birth('fresh', chainProfile({ ...paperProfile(), idleW: 20, wake: { path: 'virtual', ok: true } }, { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } }), NIGHT);
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan(), []);
  assert.equal(f.registry.get('fresh')!.sleep, undefined);
});

/** A gateway started at 06:00 on a hazy morning: three hours of records, 500 J a slot, a quarter of the idle draw. */
const MORNING: History = { fromMs: Date.UTC(2026, 0, 16, 6), toMs: Date.UTC(2026, 0, 16, 9), harvestJ: () => 500 };

test('a first morning: with only the morning hours seen, no node is sent to sleep, and each says once why it is not planned', async () => {
  // Planned on these hours alone, the day ahead would look as dim as the dawn: no slot whose
  // harvest covers the idle draw, so the two nodes not needed would sleep until tomorrow.
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 70_000 }, { id: 'c', batteryJ: 60_000 }], {}, {}, MORNING);
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan(), []);
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan(), []);
  assert.deepEqual(f.commands, []);
  assert.ok(['a', 'b', 'c'].every((id) => f.registry.get(id)!.sleep === undefined));
  const group = f.points.filter((p) => p.measurement === MEASUREMENTS.sleepGroup).at(-1)!;
  assert.deepEqual([group.fields.asleep, group.fields.awake], [0, 3], 'all three counted awake');
  const told = f.cap.records.filter((r) => /not planned for sleep yet/.test(String(r.msg)));
  assert.deepEqual(told.map((r) => [r.node, r.hoursSeen]), [['a', 3], ['b', 3], ['c', 3]], 'one line a node over two rounds');
});

test('a first morning: a node about to run flat is still halted, and wakes no later than the first hour it was never heard in', async () => {
  // b: 12 quanta against E_th 10 and 2 a slot of idle draw, less 0.5 harvested: below E_th within the relief lead.
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 12_000 }], {}, {}, MORNING);
  await f.clock.advance(300_000);
  const sent = f.planner.plan();
  assert.deepEqual(sent.map((d) => d.nodeId), ['b']);
  assert.match(sent[0]!.reason, /would run flat/);
  // The forecast of the hours not seen would keep it down a day; 10:00 is the first of them.
  assert.equal(sent[0]!.wakeAtMs, Date.UTC(2026, 0, 16, 10));
});

test('once the day is known the same morning sends the spare nodes to sleep: the hold is the first day\'s, not the sun\'s', async () => {
  const dim = { ...MORNING, fromMs: MORNING.toMs - 24 * HOUR };
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 70_000 }], {}, {}, dim);
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan().map((d) => d.nodeId), ['b']);
});

test('a node not needed naps until its check-in at the latest; one halted before running flat sleeps as long as it must', async () => {
  // c: 12 quanta, 2 above E_th at 2 a slot of idle draw: below E_th within the relief lead.
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }, { id: 'c', batteryJ: 12_000 }], { checkInMs: 1_800_000 });
  await f.clock.advance(300_000);
  const now = f.clock.now();
  const sent = new Map(f.planner.plan().map((d) => [d.nodeId, d]));
  assert.deepEqual([...sent.keys()], ['b', 'c']);
  // b would relieve a in 29 slots (48 min): it checks in after 30 min instead.
  assert.equal(sent.get('b')!.wakeAtMs, now + 1_800_000);
  assert.match(sent.get('b')!.reason, /not needed.*checks in before/);
  // c has no reserve to spend on check-ins: it sleeps until its sun has charged it.
  assert.match(sent.get('c')!.reason, /would run flat/);
  assert.ok(sent.get('c')!.wakeAtMs >= SUNRISE, `c wakes at ${new Date(sent.get('c')!.wakeAtMs).toISOString()}`);
  // A sleep shorter than the check-in is left as planned.
  const g = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }], { checkInMs: 3 * HOUR });
  await g.clock.advance(300_000);
  assert.deepEqual(g.planner.plan().map((d) => [d.nodeId, d.wakeAtMs - g.clock.now(), d.reason]), [['b', 29 * SLOT, 'not needed until its forecast covers its idle draw']]);
});

test('while every node of one group sleeps by order, the other group\'s node kept awake naps until that group is back', async () => {
  // g0: a is kept, b sleeps. g1: both its nodes were sent to sleep an hour from now.
  const f = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }, { id: 'x', batteryJ: 50_000, group: 'g1' }, { id: 'y', batteryJ: 50_000, group: 'g1' }], { checkInMs: 3 * HOUR });
  await f.clock.advance(300_000);
  const back = f.clock.now() + HOUR;
  f.registry.sleepOrdered('x', back, f.clock.now());
  f.registry.sleepOrdered('y', back + HOUR, f.clock.now());
  f.registry.sleeping('x', f.clock.now());
  const sent = new Map(f.planner.plan().map((d) => [d.nodeId, d]));
  assert.deepEqual([...sent.keys()].sort(), ['a', 'b'], 'g0 keeps no node awake while g1 cannot serve');
  assert.equal(sent.get('a')!.wakeAtMs, back, 'a wakes when g1\'s first node does');
  assert.match(sent.get('a')!.reason, /another group of the pipeline/);
  assert.equal(sent.get('b')!.wakeAtMs, f.clock.now() + 29 * SLOT, 'b keeps its own plan: it relieves a');
  // With g1 up again nothing is aligned: g0 keeps its fullest node.
  const g = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }, { id: 'x', batteryJ: 50_000, group: 'g1' }], { checkInMs: 3 * HOUR });
  await g.clock.advance(300_000);
  assert.deepEqual(g.planner.plan().map((d) => d.nodeId), ['b']);
  // A group whose node is offline without an order has no known return: nothing waits for it.
  const h = fleet([{ id: 'a', batteryJ: 80_000 }, { id: 'b', batteryJ: 60_000 }, { id: 'x', batteryJ: 50_000, group: 'g1' }], { checkInMs: 3 * HOUR });
  await h.clock.advance(300_000);
  h.registry.will('x', h.clock.now());
  assert.deepEqual(h.planner.plan().map((d) => d.nodeId), ['b']);
});

test('jobs that found the group asleep raise a wake request: the nodes that check in stay awake unless they would run flat, until one is kept', async () => {
  const f = fleet([{ id: 'a', batteryJ: 90_000 }, { id: 'b', batteryJ: 80_000 }, { id: 'c', batteryJ: 70_000 }, { id: 'd', batteryJ: 60_000 }]);
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan().map((d) => d.nodeId), ['b', 'c', 'd'], 'a is kept, the others nap');
  // a goes down without a word of sleep; the three nappers are asleep.
  for (const id of ['b', 'c', 'd']) f.registry.sleeping(id, f.clock.now());
  for (const id of ['a', 'b', 'c', 'd']) f.registry.will(id, f.clock.now());
  // A job finds the group asleep.
  f.jobs.submitted = 1;
  f.jobs.refused.set('g0', 1);
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan(), []);
  const pending = f.points.filter((p) => p.measurement === MEASUREMENTS.sleepGroup).at(-1)!;
  assert.deepEqual([pending.fields.asleep, pending.fields.awake, pending.fields.wakeRequested], [3, 0, true]);
  assert.ok(f.cap.records.some((r) => r.group === 'g0' && /wake requested/.test(String(r.msg))));
  // All three check in before the next round; d has spent its margin meanwhile.
  await f.clock.advance(1_500_000);
  f.boot('b', 78_000);
  f.boot('c', 68_000);
  f.boot('d', 12_000);
  // One awake node would cover the demand; the request keeps both that can stay, and only d, about to run flat, is halted.
  const sent = f.planner.plan();
  assert.deepEqual(sent.map((d) => [d.nodeId, /would run flat/.test(d.reason)]), [['d', true]]);
  const met = f.points.filter((p) => p.measurement === MEASUREMENTS.sleepGroup).at(-1)!;
  assert.deepEqual([met.fields.awake, met.fields.wakeRequested], [2, false], 'a node kept awake meets the request');
  // Met, the request holds no more: the next round keeps the one the demand needs.
  await f.clock.advance(300_000);
  assert.deepEqual(f.planner.plan().map((d) => d.nodeId), ['c']);
});

test('a Pi 4 on a 36 Wh battery, whose idle draw is a fraction of a quantum a slot, is still sent to sleep at night', async () => {
  // 2.7 W over 100 s is 270 J; at 100 levels a 36 Wh battery's quantum is 1296 J, so the
  // draw is a fifth of a quantum, which rounded would be 0: a planner that read that would
  // see every node carried by its (zero) forecast, daylight all night, nobody sent to sleep.
  const capacityJ = 36 * 3600;
  const pi4 = { capacityJ, idleW: 2.7, thresholds: { eThJ: capacityJ * 0.1, eThUpJ: capacityJ * 0.2, criticalJ: capacityJ * 0.03 } };
  const f = fleet([{ id: 'a', batteryJ: 0.8 * capacityJ }, { id: 'b', batteryJ: 0.7 * capacityJ }, { id: 'c', batteryJ: 0.6 * capacityJ }], { checkInMs: 12 * HOUR }, pi4);
  assert.ok(Math.abs(f.registry.get('a')!.profile.idleQ! - 270 / 1296) < 1e-6, 'a fraction of a quantum, not rounded away');
  await f.clock.advance(300_000);
  const sent = f.planner.plan();
  assert.deepEqual(sent.map((d) => d.nodeId).sort(), ['b', 'c'], 'the fullest stays awake, the others sleep');
  const c = sent.find((d) => d.nodeId === 'c')!;
  assert.ok(Math.abs(c.wakeAtMs - SUNRISE) <= SLOT, `c sleeps until sunrise: ${new Date(c.wakeAtMs).toISOString()}`);
});
