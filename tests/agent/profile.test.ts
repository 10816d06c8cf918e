import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ledger, type SensorSource } from '../../agent/ledger.js';
import { profileModes } from '../../agent/profile.js';
import { RealClock, monotonicMs } from '../../ground/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { buildNode, type NodeReading } from '../../hardware/node.js';
import { selectBackend } from '../../models/backend.js';
import { BlockStack } from '../../models/forward.js';
import { readLlama2c } from '../../models/llama2c.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');

/** The virtual node at night, blocks 0-1 of stories260K, and a ledger metering `meter` (the node's own INA219s by default). */
async function rig(meter?: (clock: RealClock) => SensorSource) {
  await selectBackend({ backend: 'cpu' });
  const clock = new RealClock();
  const hw = referenceHardwareConfig('virtual');
  const node = await buildNode({ ...hw, virtual: { ...hw.virtual, startTime: '2026-06-21T23:00:00Z' } }, { clock });
  const range = { from: 0, to: 2 };
  const stack = new BlockStack(readLlama2c(stories, { range, head: false }), range);
  const ledger = new Ledger({ nodeId: 'p', clock, source: meter ? meter(clock) : node, policy: { gamma: () => 1, powerMode: () => 0, queue: () => 0 }, slotMs: 3_600_000, samplePeriodMs: 50, firstSeq: 0, onSlot: () => {} });
  await ledger.start();
  return { clock, node, stack, ledger };
}

test('profiling times and meters jobs per mode against the idle baseline of the virtual node', async () => {
  const { clock, node, stack, ledger } = await rig();
  const progress: string[] = [];
  const retried: string[] = [];
  try {
    const result = await profileModes({
      hardware: node, stack, ledger, clock, slotMs: 60_000, jobsPerMode: 2, idleMs: 300, decodeTokens: 8, maxAttempts: 8,
      onRetry: (mode, attempt, reason) => retried.push(`${mode} ${attempt}: ${reason}`),
      modes: [{ powerMode: 1, name: 'low', kappa: 1, costJ: 1 }, { powerMode: 3, name: 'high', kappa: 1, costJ: 1 }],
      onProgress: (done, total, mode) => progress.push(`${done}/${total} ${mode}`),
    });
    assert.deepEqual(progress, ['1/4 low', '2/4 low', '3/4 high', '4/4 high'], `progress counts the standard jobs once (retries: ${retried.join('; ')})`);
    assert.deepEqual(result.map((r) => r.name), ['low', 'high']);
    for (const r of result) {
      // The virtual Pi idles at its configured 2.7 W (hardware/config.ts virtual.load.idleW).
      assert.ok(Math.abs(r.baselineW - 2.7) < 0.3, `${r.name}: baseline ${r.baselineW} W`);
      assert.ok(r.meanDurationMs > 0);
      assert.equal(r.kappa, 1, 'a job of this size is far shorter than a minute-long slot');
      // A cost is written only once the meter resolved it: above its uncertainty.
      assert.ok(r.costJ > 0 && r.meanEnergyJ > r.energyUncertaintyJ, `${r.name}: C_E ${r.costJ} J, ${r.meanEnergyJ} ± ${r.energyUncertaintyJ} J`);
    }
    assert.equal(node.virtual!.plant.state().loadW < 3, true, 'the job load is released after profiling');
  } finally {
    ledger.stop();
    stack.dispose();
    await node.close();
  }
});

/** A node whose load INA219 reads the same 2.7 W whatever runs: the jobs' cost is invisible to it. */
function flatMeter(clock: RealClock): SensorSource {
  return {
    read: async (): Promise<NodeReading> => ({
      timeMs: clock.now(), monotonicMs: monotonicMs(clock),
      sensors: [
        { role: 'solar', name: 'solar', address: 0x40, ok: true, busVoltageV: 0, currentMa: 0, powerMw: 0 },
        { role: 'load', name: 'load', address: 0x44, ok: true, busVoltageV: 5.1, currentMa: 529.4, powerMw: 2700 },
      ],
      charger: { kind: 'none', ok: true, powerGood: null }, battery: null, harvest: { totalJ: 0, unmeasuredMs: 0 }, powerMode: null, cpu: null, health: [],
    }),
  };
}

test('a cost the meter cannot resolve is measured again with longer jobs, then fails naming the mode; no zero is written', async () => {
  const { clock, node, stack, ledger } = await rig(flatMeter);
  const retries: string[] = [];
  try {
    await assert.rejects(
      profileModes({
        hardware: node, stack, ledger, clock, slotMs: 60_000, jobsPerMode: 2, idleMs: 300, decodeTokens: 4, maxAttempts: 3,
        modes: [{ powerMode: 1, name: 'low', kappa: 1, costJ: 1 }, { powerMode: 3, name: 'high', kappa: 1, costJ: 1 }],
        onRetry: (mode, attempt) => retries.push(`${mode} ${attempt}`),
      }),
      /PM1 low: the job's cost C_E is not resolved by the meter: .*4 job\(s\) per metered span, after 3 measurements/,
    );
    assert.deepEqual(retries, ['low 1', 'low 2'], 'measured again twice, with 2 and 4 jobs per span');
  } finally {
    ledger.stop();
    stack.dispose();
    await node.close();
  }
});
