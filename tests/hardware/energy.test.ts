// The node's one energy integrator (hardware/energy.ts): the trapezoid over good readings,
// failed reads and long gaps left out and counted as unmeasured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnergyIntegrator } from '../../hardware/energy.js';

test('trapezoid over good readings; failed reads and gaps are unmeasured, not bridged', () => {
  const e = new EnergyIntegrator(120_000);
  assert.equal(e.add(0, 5), null, 'the first reading closes no interval');
  // (5 W + 7 W) / 2 × 60 s = 360 J; holding the first reading would give 5 W × 60 s = 300 J.
  assert.deepEqual(e.add(60_000, 7), { fromMs: 0, toMs: 60_000, fromW: 5, toW: 7, energyJ: 360 });
  // (7 W + 0 W) / 2 × 60 s = 210 J; the hold rule would give 420 J.
  assert.equal(e.add(120_000, 0)?.energyJ, 210);
  assert.equal(e.add(180_000, null), null, 'a failed read: the interval before it is not counted');
  assert.equal(e.add(240_000, 4), null, 'nor the one after it');
  assert.equal(e.add(300_000, 4)?.energyJ, 240);
  assert.equal(e.add(900_000, 2), null, 'a 10 min gap beyond maxGapMs is not bridged');
  assert.equal(e.add(900_000, 3), null, 'a reading at the same instant replaces the last one');
  // (3 W + 1 W) / 2 × 30 s = 60 J: the replacing reading is the interval's start.
  assert.equal(e.add(930_000, 1)?.energyJ, 60);
  assert.equal(e.totalJ, 360 + 210 + 240 + 60);
  assert.equal(e.unmeasuredMs, 60_000 + 60_000 + 600_000);
});

test('a restart forgets the last reading: no interval spans it, and none is counted unmeasured', () => {
  const e = new EnergyIntegrator();
  e.add(0, 2);
  e.restart();
  assert.equal(e.add(10_000, 2), null);
  assert.equal(e.add(20_000, 4)?.energyJ, 30);
  assert.equal(e.totalJ, 30);
  assert.equal(e.unmeasuredMs, 0);
});
