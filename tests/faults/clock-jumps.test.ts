// Clock jumps: a Pi without an RTC boots with a wrong wall clock, and NTP steps it later —
// forwards or back. The agent measures slot lengths and integrates energy on monotonic
// time, so the steps show only where they belong, in the slots' wall-clock start times:
// sequence numbers stay consecutive, every slot lasts δ, and its energies agree with the
// plant's own books (the plant runs in physical time, which the step does not move).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { SteppedClock, VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { nodeTopics, parseSlotRecord, type SlotRecord } from '../../protocol/index.js';
import { aedesWithFolder } from '../agent/brokers.js';
import { agentConfig, range, startAgent, until } from './support.js';

const MORNING = Date.parse('2026-06-21T09:00:00Z');
const SLOT_MS = 60_000;
const SAMPLE_MS = 500;
const FORWARD_MS = 3_600_000;
const BACK_MS = -1_800_000;

test('NTP steps the wall clock forward and back: consecutive slots of δ each, energies matching the plant', async (t) => {
  const { broker, dir } = await aedesWithFolder(t, 'clock');
  const hw = referenceHardwareConfig('virtual');
  // The estimate starts from the cell's true charge, so what follows measures only the integration.
  const hardware = { ...hw, battery: { ...hw.battery, initialSocPct: hw.virtual.initialSocPct }, virtual: { ...hw.virtual, startTime: new Date(MORNING).toISOString(), clouds: { ...hw.virtual.clouds, meanCover: 0, sdCover: 0 } } };
  const config = agentConfig({ hardware, gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, slotMs: SLOT_MS, sampleHz: 1000 / SAMPLE_MS, spool: { dir } });
  const base = new VirtualClock(MORNING);
  const clock = new SteppedClock(base);
  const agent = await startAgent(config, clock);
  t.after(() => agent.stop('test over', false));
  const topics = nodeTopics(config.fleet, config.nodeId);
  const slots: SlotRecord[] = [];
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'clock-observer' });
  t.after(() => obs.endAsync());
  obs.on('message', (_topic, payload) => {
    const r = parseSlotRecord(payload);
    assert.ok(r.ok, r.ok ? '' : r.error);
    slots.push(r.value);
  });
  await obs.subscribeAsync(topics.slot, { qos: 1 });

  const plant = agent.hardware.virtual!.plant;
  const books = [{ ...plant.ledger }];
  const run = async (ms: number): Promise<void> => {
    for (let done = 0; done < ms; done += SAMPLE_MS) {
      await base.advance(SAMPLE_MS);
      await agent.ledger.settled();
    }
  };
  const slot = async (stepMs = 0): Promise<void> => {
    await run(SLOT_MS / 2);
    clock.step(stepMs);
    await run(SLOT_MS / 2);
    books.push({ ...plant.ledger });
  };
  await slot();
  await slot();
  await slot(FORWARD_MS);
  await slot();
  await slot(BACK_MS);
  await slot();
  await slot();
  await until('seven slot records', () => slots.length >= 7);

  assert.deepEqual(slots.map((s) => s.seq), range(7));
  for (const [i, s] of slots.entries()) {
    // The slot closes with a fresh sample, whose INA219 conversion waits add a few ms; the
    // first also holds the sensors' first programming and conversions (≈ 0.1 s).
    assert.ok(Math.abs(s.slotMs - SLOT_MS) < (i === 0 ? 200 : 100), `slot ${i} lasted ${s.slotMs} ms`);
    assert.equal(s.degraded, false, s.health.join());
    const harvest = books[i + 1]!.harvestedJ - books[i]!.harvestedJ;
    const consumed = books[i + 1]!.consumedJ - books[i]!.consumedJ;
    assert.ok(Math.abs(s.harvestJ - harvest) / harvest < 0.05, `slot ${i}: harvest ${s.harvestJ} J vs the plant's ${harvest} J`);
    assert.ok(Math.abs(s.consumedJ - consumed) / consumed < 0.05, `slot ${i}: consumption ${s.consumedJ} J vs the plant's ${consumed} J`);
  }
  // The steps show in the wall-clock starts, and only there.
  const gaps = slots.slice(1).map((s, i) => s.slotStartMs - slots[i]!.slotStartMs - slots[i]!.slotMs);
  assert.ok(Math.abs(gaps[2]! - FORWARD_MS) < 100, `forward step seen between slots 2 and 3: ${gaps[2]} ms`);
  assert.ok(Math.abs(gaps[4]! - BACK_MS) < 100, `backward step seen between slots 4 and 5: ${gaps[4]} ms`);
  for (const i of [0, 1, 3, 5]) assert.ok(Math.abs(gaps[i]!) < 100, `no jump between slots ${i} and ${i + 1}: ${gaps[i]} ms`);
  // The battery estimate follows the cell through both steps.
  const estimate = agent.ledger.latest()!.energyJ;
  assert.ok(Math.abs(estimate - plant.cell.energyJ) / plant.cell.energyJ < 0.02, `battery estimate ${estimate} J vs the cell's ${plant.cell.energyJ} J`);
});
