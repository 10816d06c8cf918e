// The registry: node life cycle (birth, slots, will, silence), sequence gaps, re-solving on
// estimate changes, and each group's members with the Eq. 6 weights the policies receive.
// (What the policies see of a node, availability included, is built by the live scheduler:
// tests/scheduler/device-view.test.ts.)
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { Registry, type ChainProfile, type RegistryConfig, type SlotReport } from '../../gateway/registry.js';
import { POLICIES, PAPER_DYNAMIC_TABLE, PAPER_MODES, deviceView, mean, memberWeights, uniformOnGrid, type DeviceParams } from '../../gateway/scheduler/index.js';
import { NodeSolver, SolverPool, type Solved } from '../../gateway/solver-pool.js';

const T0 = Date.UTC(2026, 5, 21, 8);
const SLOT = 100_000;

const profile = (group = 'g0'): ChainProfile => ({
  group,
  quantumJ: 1000,
  capacityJ: 100_000,
  eThJ: 10_000,
  eThUpJ: 15_000,
  modes: PAPER_MODES,
  modeTable: PAPER_DYNAMIC_TABLE,
  priorHarvestPmf: uniformOnGrid(0, 30),
});

const config: RegistryConfig = { silenceMs: 3 * SLOT, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({ minSlots: 5, windowSlots: 50 }) };

function fakeSolver() {
  const updates: Array<{ nodeId: string; params: DeviceParams }> = [];
  return { updates, update: (nodeId: string, params: DeviceParams) => void updates.push({ nodeId, params }), forget: () => {} };
}

const slot = (seq: number, over: Partial<SlotReport> = {}): SlotReport => ({
  seq, slotStartMs: T0 + seq * SLOT, batteryJ: 60_000, harvestJ: 20_000, gamma: 1, powerMode: 3, queue: 0, ...over,
});

test('a birth brings a node online and solves its profile with the prior harvest law', () => {
  const solver = fakeSolver();
  const events: string[] = [];
  const reg = new Registry(config, solver);
  reg.on('up', (n, why) => events.push(`${n.nodeId}:true:${why}`));
  reg.birth('pi-1', profile(), T0);
  assert.deepEqual(events, ['pi-1:true:birth']);
  assert.equal(solver.updates.length, 1);
  const p = solver.updates[0]!.params;
  assert.deepEqual([p.eMax, p.eTh, p.eThUp], [100, 10, 15]);
  assert.ok(Math.abs(mean(p.harvestPmf) - 15) < 1e-9);
  assert.throws(() => reg.birth('pi-2', { ...profile(), eThJ: 200_000 }, T0), /thresholds must satisfy/);
  assert.equal(reg.get('pi-2'), undefined, 'an invalid profile is refused');
});

test('slot records: gaps are counted, duplicates ignored, the estimate replaces the prior once trusted', () => {
  const solver = fakeSolver();
  const gaps: number[] = [];
  const reg = new Registry(config, solver);
  reg.on('slot', (_n, _r, gap) => gaps.push(gap));
  reg.birth('pi-1', profile(), T0);
  reg.slot('pi-1', slot(1), T0 + SLOT);
  reg.slot('pi-1', slot(2), T0 + 2 * SLOT);
  reg.slot('pi-1', slot(2), T0 + 2 * SLOT);
  reg.slot('pi-1', slot(5), T0 + 5 * SLOT);
  assert.deepEqual(gaps, [0, 0, 2]);
  assert.equal(reg.get('pi-1')!.missedSlots, 2);
  assert.equal(solver.updates.length, 1, 'fewer than minSlots: still the prior');
  for (let s = 6; s < 12; s++) reg.slot('pi-1', slot(s), T0 + s * SLOT);
  assert.equal(solver.updates.length, 2, 'one re-solve when the estimate is trusted, none while it stays the same');
  assert.equal(mean(solver.updates[1]!.params.harvestPmf), 20);
  for (let s = 12; s < 40; s++) reg.slot('pi-1', slot(s, { harvestJ: 5000 }), T0 + s * SLOT);
  const last = solver.updates.at(-1)!.params.harvestPmf;
  assert.ok(solver.updates.length > 2 && mean(last) < 10, 'a darker sky moves the estimate and triggers re-solves');
  reg.slot('pi-9', slot(1), T0);
  assert.equal(reg.get('pi-9'), undefined, 'reports from a node without a birth are not guessed at');
});

test('huge harvests from a node with valid credentials reach the solver bounded by E_max + the largest C_E', () => {
  const solver = fakeSolver();
  const reg = new Registry(config, solver);
  reg.birth('pi-1', profile(), T0);
  for (let s = 1; s <= 27; s++) reg.slot('pi-1', slot(s, { harvestJ: 1e12 }), T0 + s * SLOT);
  const pmf = solver.updates.at(-1)!.params.harvestPmf;
  // E_max = 100 quanta, the paper's largest C_E in quanta on top
  const top = 100 + Math.max(...PAPER_MODES.map((m) => m.costQ));
  assert.equal(pmf.length, top + 1);
  assert.equal(pmf[top], 1);
});

test('a late record fills its gap once: counted back, logged, never as the node\'s current state', () => {
  const slots: Array<[number, number]> = [];
  const reg = new Registry(config, fakeSolver());
  reg.on('slot', (_n, r, gap) => slots.push([r.seq, gap]));
  reg.birth('pi-1', profile(), T0);
  assert.equal(reg.slot('pi-1', slot(1, { batteryJ: 40_000 }), T0), 'applied');
  assert.equal(reg.slot('pi-1', slot(4, { batteryJ: 41_000 }), T0), 'applied');
  assert.equal(reg.get('pi-1')!.missedSlots, 2);
  assert.equal(reg.slot('pi-1', slot(3, { batteryJ: 1 }), T0), 'late');
  assert.equal(reg.slot('pi-1', slot(3), T0), 'duplicate', 'a gap is filled once');
  assert.equal(reg.slot('pi-1', slot(1), T0), 'duplicate', 'a record seen in order is not a gap');
  assert.equal(reg.get('pi-1')!.missedSlots, 1, 'seq 2 is still missing');
  assert.equal(reg.get('pi-1')!.batteryJ, 41_000, 'the late record does not overwrite the newest state');
  assert.deepEqual(slots, [[1, 0], [4, 2], [3, 0]]);
});

test('a birth\'s sequence (next number and epoch) carries it across a reconnect; a new epoch starts it again, a lower number in the same epoch does not', () => {
  const slots: Array<[number, number]> = [];
  const reg = new Registry(config, fakeSolver());
  reg.on('slot', (_n, r, gap) => slots.push([r.seq, gap]));
  const A = 'a1a1a1a1a1a1a1a1';
  reg.birth('pi-1', profile(), T0, { next: 0, epoch: A });
  for (let s = 0; s < 5; s++) assert.equal(reg.slot('pi-1', slot(s), T0), 'applied');
  // Reconnect after an outage in which the spool lost seqs 5..7: the next record is 8.
  reg.birth('pi-1', profile(), T0, { next: 8, epoch: A });
  assert.equal(reg.slot('pi-1', slot(4), T0), 'duplicate', 'a record resent from the spool is still a repeat');
  assert.equal(reg.slot('pi-1', slot(8), T0), 'applied');
  assert.equal(reg.get('pi-1')!.missedSlots, 3, 'the records lost while away are counted');
  assert.equal(reg.slot('pi-1', slot(6), T0), 'late', 'and one of them may still fill its gap');
  // The spool folder was lost and the node counted to 20 before it reached the gateway: a new epoch.
  reg.birth('pi-1', profile(), T0, { next: 20, epoch: 'b2b2b2b2b2b2b2b2' });
  assert.equal(reg.slot('pi-1', slot(3), T0), 'applied', 'a new count is not mistaken for repeats');
  assert.equal(reg.slot('pi-1', slot(4), T0), 'applied');
  // A lower next number in the same epoch (the node could not store its count): the numbers it sends again are repeats.
  assert.equal(reg.birth('pi-1', profile(), T0, { next: 2, epoch: 'b2b2b2b2b2b2b2b2' }), 'rewound');
  assert.equal(reg.slot('pi-1', slot(2), T0), 'duplicate', 'a number already stored is not taken again');
  assert.equal(reg.slot('pi-1', slot(5), T0), 'applied', 'the count goes on above it');
  // A birth without a sequence starts it afresh.
  assert.equal(reg.birth('pi-1', profile(), T0), 'afresh');
  assert.equal(reg.slot('pi-1', slot(0), T0), 'applied');
  assert.deepEqual(slots, [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0], [8, 3], [6, 0], [3, 0], [4, 0], [5, 0], [0, 0]]);
  assert.equal(reg.get('pi-1')!.missedSlots, 2, 'the count survives births');
});

test('wills and silence take nodes offline; hearing from them brings them back', () => {
  const events: string[] = [];
  const reg = new Registry(config, fakeSolver());
  reg.on('up', (n, why) => events.push(`${n.nodeId}:true:${why}`));
  reg.on('down', (n, why) => events.push(`${n.nodeId}:false:${why}`));
  reg.birth('pi-1', profile(), T0);
  reg.birth('pi-2', profile(), T0);
  reg.will('pi-1', T0 + 10);
  reg.slot('pi-2', slot(1), T0 + SLOT);
  reg.checkSilence(T0 + SLOT + 3 * SLOT);
  assert.equal(reg.get('pi-2')!.online, true, 'exactly silenceMs is not yet silence');
  reg.checkSilence(T0 + SLOT + 3 * SLOT + 1);
  reg.slot('pi-1', slot(1), T0 + 5 * SLOT);
  assert.deepEqual(events, ['pi-1:true:birth', 'pi-2:true:birth', 'pi-1:false:will', 'pi-2:false:silence', 'pi-1:true:heard']);
});

test('members: a stable order and the node state the scheduler reads; memberWeights gives Eq. 6 weights over the online ones', () => {
  const reg = new Registry(config, fakeSolver());
  for (const id of ['c', 'a', 'b', 'd']) reg.birth(id, profile(), T0);
  reg.birth('x', profile('g1'), T0);
  const solvedWith = (qLim: number): Solved => ({ qLim, qEnergy: qLim, qProc: 0.5, energyBinds: true, solves: 1, solveMs: 1, hash: String(qLim) });
  const params = (p: ChainProfile): DeviceParams => ({ eMax: 100, eTh: 10, eThUp: 15, modes: p.modes, modeTable: p.modeTable, harvestPmf: p.priorHarvestPmf });
  reg.applySolved('a', params(profile()), solvedWith(0.3), T0);
  reg.applySolved('b', params(profile()), solvedWith(0.1), T0);
  reg.applySolved('c', params(profile()), solvedWith(0.2), T0);
  reg.slot('a', slot(1, { batteryJ: 250_000, queue: 1 }), T0);
  reg.slot('b', slot(1, { batteryJ: 12_345, gamma: 0, powerMode: 1 }), T0);
  reg.state('d', { gamma: 1, powerMode: 2, queue: 0 }, T0);
  reg.will('c', T0);
  const nodes = reg.members('g0');
  const weights = memberWeights(nodes);
  assert.deepEqual(nodes.map((n) => n.nodeId), ['a', 'b', 'c', 'd']);
  assert.deepEqual(nodes.map((n) => [n.online, n.gamma, n.powerMode, n.batteryJ]), [[true, 1, 3, 250_000], [true, 0, 1, 12_345], [false, 0, 0, 0], [true, 1, 2, 0]]);
  // c is offline, so a and b share: 0.3/0.4 and 0.1/0.4; d has no solution yet.
  assert.deepEqual(weights.map((w) => Number(w.toFixed(6))), [0.75, 0.25, 0, 0]);
  assert.ok(nodes[0]!.model, 'a solved node carries its model for foresight');
  assert.deepEqual(reg.groups(), ['g0', 'g1']);
  // With no solution anywhere, the online members share alike and the offline one has nothing.
  reg.birth('y', profile('g1'), T0);
  reg.will('y', T0);
  reg.birth('z', profile('g1'), T0);
  assert.deepEqual(memberWeights(reg.members('g1')), [0.5, 0, 0.5]);
});

const pool = new SolverPool({ threads: 1 });
after(() => pool.close());

test('with the real solver pool, solved nodes feed the policies', async () => {
  let pending = 2;
  let done!: () => void;
  const allSolved = new Promise<void>((r) => (done = r));
  const solver = new NodeSolver(pool);
  const reg = new Registry(config, solver);
  solver.on('solved', (id, p, s) => {
    reg.applySolved(id, p, s, T0);
    if (--pending === 0) done();
  });
  solver.on('failed', (id, err) => assert.fail(`${id}: ${err.message}`));
  reg.birth('sunny', { ...profile(), priorHarvestPmf: uniformOnGrid(10, 40) }, T0);
  reg.birth('shady', { ...profile(), priorHarvestPmf: uniformOnGrid(0, 10) }, T0);
  await allSolved;
  reg.slot('sunny', slot(1, { batteryJ: 80_000 }), T0);
  reg.slot('shady', slot(1, { batteryJ: 80_000 }), T0);
  const nodes = reg.members('g0');
  const weights = memberWeights(nodes);
  const w = Object.fromEntries(nodes.map((n, i) => [n.nodeId, weights[i]!]));
  assert.ok(w.sunny! > w.shady!, `more sun, more weight: ${JSON.stringify(w)}`);
  const views = nodes.map((n, i) => deviceView({
    barred: '', passedOver: '', gamma: n.gamma, powerMode: n.powerMode, energyQ: Math.floor(n.batteryJ / n.profile.quantumJ), held: 0, capacity: 2,
    modes: n.profile.modes, weight: weights[i]!, model: n.model,
  }));
  const p = POLICIES['long-term']!.probabilities(views);
  assert.ok(Math.abs(p[0]! + p[1]! - 1) < 1e-12);
  const f = POLICIES.foresight!.probabilities(views);
  assert.equal(f.reduce((a, b) => a + b, 0), 1);
});

test('a slot record whose charger had ended its charge counts its harvest as a lower bound', () => {
  const reg = new Registry(config, fakeSolver());
  reg.birth('n1', profile(), T0);
  for (let seq = 0; seq < 6; seq++) reg.slot('n1', slot(seq), T0 + seq * SLOT);
  const before = reg.get('n1')!.estimator.meanAt(T0)!;
  assert.equal(before, 20);
  // Full: the charger is done and the node takes 3 kJ, its own draw.
  for (let seq = 6; seq < 12; seq++) reg.slot('n1', slot(seq, { harvestJ: 3_000, batteryJ: 100_000, charger: 'done' }), T0 + seq * SLOT);
  assert.equal(reg.get('n1')!.estimator.meanAt(T0), before, 'the sun offered at least that much: no cloud, no night');
  // Charging, the same 3 kJ is the sun's: the hour's mean falls.
  for (let seq = 12; seq < 18; seq++) reg.slot('n1', slot(seq, { harvestJ: 3_000, charger: 'fast-charging' }), T0 + seq * SLOT);
  assert.ok(reg.get('n1')!.estimator.meanAt(T0)! < before);
});
