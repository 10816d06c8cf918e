// The virtual node's compute power follows the work done: computeW × the busy share of the
// cores × (f/fmax)^freqExponent, the busy share fixed or sampled from a CPU meter over each
// interval the plant integrates, rather than computeW for as long as a job is held.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { buildNode } from '../../hardware/node.js';

const night = () => new VirtualClock(Date.parse('2024-06-21T22:00:00Z'));

test('a fixed busy share scales the compute power, in every power mode', async () => {
  const clock = night();
  const node = await buildNode(referenceHardwareConfig('virtual'), { clock });
  try {
    const v = node.virtual!;
    const load = () => v.plant.state().loadDemandW;
    await node.applyPowerMode('high');
    v.plant.setComputeLoad(0.5);
    assert.equal(load(), 2.7, 'no job: idle, whatever the share');
    v.setJobRunning(true);
    assert.ok(Math.abs(load() - (2.7 + 3.6 * 0.5)) < 1e-9, `high, half the cores: ${load()} W`);
    assert.equal(v.plant.state().busyCoreShare, 0.5);
    await node.applyPowerMode('medium'); // 2 of 4 cores at 1.0 of 1.5 GHz: half of those busy
    assert.ok(Math.abs(load() - (2.7 + 3.6 * 0.5 * 0.5 * (1 / 1.5) ** 2)) < 1e-9);
    v.plant.setComputeLoad(undefined); // unmeasured: every online core busy, as before
    assert.ok(Math.abs(load() - (2.7 + 3.6 * 0.5 * (1 / 1.5) ** 2)) < 1e-9);
    assert.throws(() => v.plant.setComputeLoad(1.5), /busy share of the cores must be in \[0, 1\], got 1.5/);
    assert.throws(() => v.plant.setComputeLoad(NaN), /must be in \[0, 1\]/);
  } finally {
    await node.close();
  }
});

test('a meter is sampled for each interval the plant integrates, and the energy is its work', async () => {
  const clock = night();
  const node = await buildNode(referenceHardwareConfig('virtual'), { clock });
  try {
    const v = node.virtual!;
    await node.applyPowerMode('high');
    const shares = [0.25, 1, 0, 0.5];
    let samples = 0;
    v.plant.setComputeLoad({ sample: () => shares[samples++]! });
    const consumed = () => v.plant.ledger.consumedJ;
    const before = consumed();
    await clock.advance(5000);
    v.plant.advanceTo(clock.now());
    assert.equal(samples, 0, 'not sampled while no job runs');
    assert.ok(Math.abs(consumed() - before - 2.7 * 5) < 1e-6);

    v.setJobRunning(true);
    const start = consumed();
    for (let i = 0; i < shares.length; i++) {
      await clock.advance(2000);
      v.plant.advanceTo(clock.now());
    }
    assert.equal(samples, shares.length, 'one sample per interval');
    const want = shares.reduce((j, s) => j + (2.7 + 3.6 * s) * 2, 0);
    assert.ok(Math.abs(consumed() - start - want) < 1e-6, `${consumed() - start} J, expected ${want} J`);
    // the wall-time model would have charged the 8 s held at full compute power: 50.4 J
    assert.ok(want < (2.7 + 3.6) * 8 - 10, `${want} J`);
    assert.equal(v.plant.state().busyCoreShare, 0.5);
    v.plant.advanceTo(clock.now()); // no time passed: no sample
    assert.equal(samples, shares.length);
  } finally {
    await node.close();
  }
});

test('a meter reading outside [0, 1] is clamped, and a broken one counts as fully busy', async () => {
  const clock = night();
  const node = await buildNode(referenceHardwareConfig('virtual'), { clock });
  try {
    const v = node.virtual!;
    await node.applyPowerMode('high');
    let next = 3;
    v.plant.setComputeLoad({ sample: () => next });
    v.setJobRunning(true);
    await clock.advance(1000);
    v.plant.advanceTo(clock.now());
    assert.equal(v.plant.state().busyCoreShare, 1);
    next = -1;
    await clock.advance(1000);
    v.plant.advanceTo(clock.now());
    assert.equal(v.plant.state().busyCoreShare, 0);
    assert.ok(Math.abs(v.plant.state().loadDemandW - 2.7) < 1e-9);
    next = NaN;
    await clock.advance(1000);
    v.plant.advanceTo(clock.now());
    assert.equal(v.plant.state().busyCoreShare, 1);
  } finally {
    await node.close();
  }
});
