import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger } from '../../agent/ledger.js';
import { VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { buildNode } from '../../hardware/node.js';
import type { SlotRecord } from '../../protocol/index.js';

const policy = { gamma: () => 1 as const, powerMode: () => 2, queue: () => 0 };

test('slot energies match the plant, and a failed sensor read degrades the slot instead of inventing energy', async () => {
  const start = Date.parse('2026-06-21T10:00:00Z');
  const clock = new VirtualClock(start);
  const hw = referenceHardwareConfig('virtual');
  const node = await buildNode({ ...hw, virtual: { ...hw.virtual, startTime: new Date(start).toISOString(), clouds: { ...hw.virtual.clouds, meanCover: 0, sdCover: 0 } } }, { clock });
  const slots: SlotRecord[] = [];
  const ledger = new Ledger({ nodeId: 'n', clock, source: node, policy, slotMs: 60_000, samplePeriodMs: 500, firstSeq: 41, onSlot: (r) => slots.push(r) });
  await ledger.start();
  const step = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 500) {
      await clock.advance(500);
      await ledger.settled();
    }
  };
  await step(60_000);
  const plantBefore = { ...node.virtual!.plant.ledger };
  await step(60_000);
  const plantAfter = { ...node.virtual!.plant.ledger };
  // The solar sensor fails for a few reads in the third slot.
  node.virtual!.faults.i2cReadErrors(0x40, 6);
  await step(60_000);
  ledger.stop();
  await node.close();

  assert.deepEqual(slots.map((s) => s.seq), [41, 42, 43], 'sequence continues from the persisted number');
  const [, clean, faulty] = slots as [SlotRecord, SlotRecord, SlotRecord];
  assert.equal(clean.degraded, false);
  // The slot ends when its closing sample is read: the INA219 conversion waits add a few ms.
  assert.ok(Math.abs(clean.slotMs - 60_000) < 100, `slot of ${clean.slotMs} ms`);
  assert.ok(Math.abs(clean.samples - 120) <= 1, `2 Hz over a minute: ${clean.samples} samples`);
  // The plant's own books over the same minute (its integration runs at every read).
  const harvestTruth = plantAfter.harvestedJ - plantBefore.harvestedJ;
  const consumedTruth = plantAfter.consumedJ - plantBefore.consumedJ;
  assert.ok(Math.abs(clean.harvestJ - harvestTruth) / harvestTruth < 0.05, `harvest ${clean.harvestJ} J vs plant ${harvestTruth} J`);
  assert.ok(Math.abs(clean.consumedJ - consumedTruth) / consumedTruth < 0.05, `consumed ${clean.consumedJ} J vs plant ${consumedTruth} J`);
  assert.ok(clean.harvestJ > 100, `noon sun on a 15 W panel: ${clean.harvestJ} J in a minute`);
  assert.ok(clean.consumedJ > 60 && clean.consumedJ < 600, `a Pi 4 draws 1-10 W: ${clean.consumedJ} J`);
  assert.equal(faulty.degraded, true);
  assert.ok(faulty.health.some((h) => /solar|harvest/.test(h)), faulty.health.join(', '));
  assert.ok(faulty.harvestJ < clean.harvestJ * 1.02, 'the unmeasured intervals are left out, not extrapolated');
  assert.ok(faulty.harvestJ > 0);
});
