import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import { parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { buildNode } from '../../hardware/node.js';
import { Ledger } from '../../agent/ledger.js';
import { PowerPolicy } from '../../agent/power.js';
import type { EventMessage, SlotRecord } from '../../protocol/index.js';

const quiet = { info() {}, warn() {}, error() {} };

test('a virtual day: saving at dawn, back above E′_th, table modes, saving below E_th at night, then critical shutdown', async () => {
  const start = Date.parse('2026-06-21T06:00:00Z');
  const clock = new VirtualClock(start);
  const ref = referenceHardwareConfig('virtual');
  const hw = parseHardwareConfig({
    ...ref,
    battery: { ...ref.battery, capacityWh: 20, initialSocPct: 15 },
    virtual: { ...ref.virtual, startTime: new Date(start).toISOString(), initialSocPct: 15, clouds: { ...ref.virtual.clouds, meanCover: 0, sdCover: 0 } },
  });
  const node = await buildNode(hw, { clock });
  const capacityJ = 20 * 3600;
  const events: EventMessage[] = [];
  const applied: string[] = [];
  const slots: SlotRecord[] = [];
  let shutdownAt: number | null = null;
  let handBacks = 0;
  const policy: PowerPolicy = new PowerPolicy({
    nodeId: 'pi-v', clock,
    modes: [{ powerMode: 1, name: 'low', kappa: 3, costJ: 40 }, { powerMode: 2, name: 'high', kappa: 1, costJ: 60 }],
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.5, powerMode: 2 }],
    thresholds: { eThJ: 0.1 * capacityJ, eThUpJ: 0.2 * capacityJ, criticalJ: 0.03 * capacityJ },
    queue: () => 0,
    actions: {
      applyMode: async (name) => {
        applied.push(name);
        await node.applyPowerMode(name);
      },
      enterSaving: async () => {
        handBacks++;
        return 'no job held';
      },
      leaveSaving: () => {},
      publishEvent: (e) => events.push(e),
      critical: async () => {
        shutdownAt = clock.now();
        ledger.stop();
      },
    },
    log: quiet,
  });
  const ledger = new Ledger({
    nodeId: 'pi-v', clock, source: node, policy, slotMs: 1_800_000, samplePeriodMs: 300_000, firstSeq: 0,
    onSlot: (r) => slots.push(r),
  });
  let first = true;
  ledger.onBattery((b) => {
    if (first) {
      first = false;
      void policy.initialise(b);
    } else {
      void policy.update(b);
    }
  });
  await ledger.start();
  // Step one sample period at a time and let each sample's real I/O finish before time moves on.
  for (let m = 0; m < 26 * 12 && shutdownAt === null; m++) {
    await clock.advance(300_000);
    await ledger.settled();
    await policy.settled();
  }
  ledger.stop();
  await node.close();

  const kinds = events.map((e) => e.kind);
  // 15 % is inside the hysteresis band: the node starts saving, in the lowest mode.
  assert.equal(applied[0], 'low');
  assert.equal(slots[0]!.gamma, 0);
  const exit = kinds.indexOf('power-saving-exit');
  const enter = kinds.indexOf('power-saving-enter');
  const crit = kinds.indexOf('critical');
  assert.ok(exit >= 0 && enter > exit && crit > enter, `order of events: ${kinds.join(', ')}`);
  assert.ok(events[exit]!.batteryJ > 0.2 * capacityJ, 'left saving only above E′_th');
  assert.ok(events[enter]!.batteryJ < 0.1 * capacityJ, 'entered saving only below E_th');
  assert.ok(events[crit]!.batteryJ < 0.03 * capacityJ);
  assert.ok(applied.includes('high'), 'the table raised the mode above half charge');
  assert.equal(applied.at(-1), 'low', 'saving drops to the lowest mode');
  assert.equal(handBacks, 1);
  assert.ok(shutdownAt !== null && shutdownAt > start + 12 * 3600_000, 'shutdown comes in the night');
  // Slot records: gapless sequence, energies never negative, gamma follows the policy.
  slots.forEach((s, i) => assert.equal(s.seq, i));
  assert.ok(slots.every((s) => s.harvestJ >= 0 && s.consumedJ >= 0));
  assert.ok(slots.some((s) => s.gamma === 1 && s.powerMode === 2));
  const dayHarvest = slots.reduce((a, s) => a + s.harvestJ, 0);
  assert.ok(dayHarvest > 0.5 * capacityJ, `harvest over the day ${dayHarvest.toFixed(0)} J`);
  // Once saving, no event may report γ = 1 until an exit.
  assert.equal(events[enter]!.gamma, 0);
});
