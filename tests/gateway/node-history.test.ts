// The store's node history (gateway/store/nodes.ts): the registry's events become points by
// the store's rules, whoever else listens to the registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { Registry, type ChainProfile } from '../../gateway/registry.js';
import { PAPER_DYNAMIC_TABLE, PAPER_MODES, uniformOnGrid, type DeviceParams } from '../../gateway/scheduler/index.js';
import { MEASUREMENTS, NullStore, recordNodeHistory, type StorePoint } from '../../gateway/store/index.js';
import { captureLog } from '../support/log.js';

const T0 = Date.UTC(2026, 5, 21, 8);
const profile: ChainProfile = {
  group: 'g0', quantumJ: 1000, capacityJ: 100_000, eThJ: 10_000, eThUpJ: 15_000,
  modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, priorHarvestPmf: uniformOnGrid(0, 30),
};

function recorded() {
  const cap = captureLog();
  const points: StorePoint[] = [];
  const store = new NullStore(cap.log);
  store.write = (p) => void points.push(p);
  const registry = new Registry({ silenceMs: 60_000, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, { update() {}, forget() {} });
  recordNodeHistory(registry, { fleet: 'f', store, log: cap.log });
  return { registry, points, cap };
}

test('a spool drained in one millisecond: each slot point gets its own, strictly increasing time', () => {
  const { registry, points } = recorded();
  registry.birth('pi-1', profile, T0);
  for (let seq = 1; seq <= 3; seq++) {
    registry.slot('pi-1', { seq, slotStartMs: T0 + seq, batteryJ: 25_500, harvestJ: 10, gamma: 1, powerMode: 3, queue: 0 }, T0 + 0.4);
  }
  const slots = points.filter((p) => p.measurement === MEASUREMENTS.nodeSlot);
  assert.deepEqual(slots.map((p) => p.timestampMs), [T0, T0 + 1, T0 + 2]);
  assert.deepEqual(slots[0]!.tags, { fleet: 'f', node: 'pi-1', group: 'g0' });
  assert.equal(slots[0]!.fields.batteryPct, 25.5);
  assert.equal(slots[0]!.fields.energyQ, 25, 'whole quanta of 1000 J');
  assert.equal(slots[2]!.fields.seqGap, 0);
});

test('online and offline become state points; a solve becomes a q_lim point with the node\'s Eq. 6 weight', () => {
  const { registry, points, cap } = recorded();
  registry.birth('pi-1', profile, T0);
  registry.birth('pi-2', profile, T0);
  const params: DeviceParams = { eMax: 100, eTh: 10, eThUp: 15, modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, harvestPmf: profile.priorHarvestPmf };
  const solved = (qLim: number) => ({ qLim, qEnergy: qLim, qProc: 0.5, energyBinds: true, solves: 1, solveMs: 1, hash: String(qLim) });
  registry.applySolved('pi-2', params, solved(0.125), T0 + 1);
  registry.applySolved('pi-1', params, solved(0.375), T0 + 2);
  registry.will('pi-2', T0 + 3);
  const states = points.filter((p) => p.measurement === MEASUREMENTS.nodeState).map((p) => [p.tags.node, p.fields.online, p.fields.reason, p.timestampMs]);
  assert.deepEqual(states, [['pi-1', true, 'birth', T0], ['pi-2', true, 'birth', T0], ['pi-2', false, 'will', T0 + 3]]);
  const weights = points.filter((p) => p.measurement === MEASUREMENTS.qLim).map((p) => [p.tags.node, p.fields.weight]);
  // pi-2's share when it is solved: pi-1 has no q_lim yet; then pi-1 holds 0.375 of 0.5.
  assert.deepEqual(weights, [['pi-2', 1], ['pi-1', 0.75]]);
  assert.deepEqual(cap.messages().filter((m) => m.startsWith('node ')), ['node online', 'node online', 'node offline']);
});
