// Idle draw in the live model: a birth that declares idleW puts the board's idle watts on
// the chain's grid (idleQ per slot), and the node is solved with it: the same node without
// it is the paper's device, with a different q_lim.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { encodeJson, nodeTopic } from '../../protocol/index.js';
import { RealClock } from '../../ground/clock.js';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { NodeLink, chainProfile } from '../../gateway/link.js';
import { Registry } from '../../gateway/registry.js';
import { NodeSolver, SolverPool, type Solved } from '../../gateway/solver-pool.js';
import { captureLog } from '../support/log.js';
import { birth, paperProfile } from '../support/protocol-messages.js';

// A cloudy prior (5 quanta a slot on average), so energy, not processing, binds q_lim.
const LINK = { fleet: 'f1', levels: 100, priorHarvestJ: { loJ: 0, hiJ: 10_000 } };

test('idleW over one slot, in quanta: 20 W for 100 s on a 1 kJ quantum is 2 quanta a slot; absent, no idle draw', () => {
  const withIdle = chainProfile({ ...paperProfile(), idleW: 20, wake: { path: 'virtual', ok: true } }, LINK);
  assert.equal(withIdle.idleQ, 2);
  assert.equal(withIdle.slotMs, 100_000);
  assert.equal(withIdle.canWake, true);
  const paper = chainProfile(paperProfile(), LINK);
  assert.equal(paper.idleQ, undefined);
  assert.equal(paper.canWake, false, 'no wake path declared: it may not be sent to sleep');
  assert.equal(chainProfile({ ...paperProfile(), wake: { path: 'none', ok: false, reason: 'no RTC' } }, LINK).canWake, false);
});

const pool = new SolverPool({ threads: 1 });
after(() => pool.close());

test('a node whose birth carries idleW is solved with its idle draw: a lower q_lim than the same node without it', async () => {
  const solver = new NodeSolver(pool);
  const registry = new Registry({ silenceMs: 1e9, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, solver);
  const solved = new Map<string, { idleQ: number | undefined; s: Solved }>();
  const both = new Promise<void>((resolve, reject) => {
    solver.on('solved', (id, params, s) => {
      solved.set(id, { idleQ: params.idleQ, s });
      if (solved.size === 2) resolve();
    });
    solver.on('failed', (id, err) => reject(new Error(`${id}: ${err.message}`)));
  });
  const link = new NodeLink(LINK, { client: {} as MqttClient, registry, clock: new RealClock(), log: captureLog().log });
  link.onMessage(nodeTopic('f1', 'paper', 'state'), encodeJson(birth('paper', 1)));
  link.onMessage(nodeTopic('f1', 'pi4', 'state'), encodeJson(birth('pi4', 1, { ...paperProfile(), idleW: 30 })));
  await both;
  const paper = solved.get('paper')!;
  const pi4 = solved.get('pi4')!;
  assert.equal(paper.idleQ, undefined, 'the paper\'s model unchanged');
  assert.equal(pi4.idleQ, 3);
  assert.ok(paper.s.energyBinds, 'energy binds the paper\'s node');
  assert.ok(pi4.s.qLim < paper.s.qLim, `3 quanta a slot of idle draw leave less for jobs: q_lim ${pi4.s.qLim} vs ${paper.s.qLim}`);
});

test('an idle draw below one quantum is kept, not rounded away: a Pi 4 on a 36 Wh battery of 100 levels draws 0.21 quanta a slot', () => {
  const pi4 = chainProfile({ ...paperProfile(), capacityJ: 36 * 3600, idleW: 2.7 }, LINK);
  assert.equal(pi4.quantumJ, 1296);
  assert.ok(Math.abs(pi4.idleQ! - 270 / 1296) < 1e-6, `idleQ ${pi4.idleQ}`);
});
