// Sensor faults on a running agent: I2C read errors, INA219 brown-outs (calibration back
// to 0) and a flapping power-good line, one kind per slot and then all at once. Each slot
// with a fault — and only those — is marked degraded; every slot's energies stay within
// what the hardware can physically deliver and below the plant's own books; and a job
// sent through MQTT to the worker while every fault is active completes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { selectBackend } from '../../models/backend.js';
import { encodeFrame, encodeJson, isFrame, nodeTopics, parseJobReport, parseSlotRecord, type SlotRecord } from '../../protocol/index.js';
import { aedesWithFolder } from '../agent/brokers.js';
import { BUNDLED, agentConfig, startAgent, until } from './support.js';

const NOON = Date.parse('2026-06-21T12:00:00Z');
const SLOT_MS = 60_000;
const SAMPLE_MS = 500;
const PG_BCM = 13;

test('I2C errors, brown-outs and a flapping power-good line: exactly the faulted slots are degraded, energies stay physical, a job completes', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const { broker, dir } = await aedesWithFolder(t, 'sensors');
  const hw = referenceHardwareConfig('virtual');
  const hardware = {
    ...hw,
    charger: { kind: 'mcp73871', pins: { stat1: { bcm: 5 }, stat2: { bcm: 6 }, pg: { bcm: PG_BCM } } },
    virtual: { ...hw.virtual, startTime: new Date(NOON).toISOString(), clouds: { ...hw.virtual.clouds, meanCover: 0, sdCover: 0 } },
  };
  const config = agentConfig({
    hardware, gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, slotMs: SLOT_MS, sampleHz: 1000 / SAMPLE_MS,
    spool: { dir }, model: { shardDir: BUNDLED, firstBlock: 0, lastBlock: 1 },
  });
  const clock = new VirtualClock(NOON);
  const agent = await startAgent(config, clock);
  t.after(() => agent.stop('test over', false));
  const topics = nodeTopics(config.fleet, config.nodeId);
  const slots: SlotRecord[] = [];
  const jobOut: Buffer[] = [];
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'sensor-observer' });
  t.after(() => obs.endAsync());
  obs.on('message', (topic, payload) => {
    if (topic === topics.slot) {
      const r = parseSlotRecord(payload);
      assert.ok(r.ok, r.ok ? '' : r.error);
      slots.push(r.value);
    } else {
      jobOut.push(payload);
    }
  });
  await obs.subscribeAsync([topics.slot, topics.jobOut], { qos: 1 });
  await until('connected and taking jobs', () => agent.link.connected && agent.policy.acceptsJobs());

  const v = agent.hardware.virtual!;
  const plant = v.plant;
  const books: Array<{ harvestedJ: number; consumedJ: number }> = [];
  /** Steps the clock sample by sample, letting every read finish. */
  const run = async (ms: number): Promise<void> => {
    for (let done = 0; done < ms; done += SAMPLE_MS) {
      await clock.advance(SAMPLE_MS);
      await agent.ledger.settled();
    }
  };
  const slot = async (faults: (() => void) | null, atMs = 20_000): Promise<void> => {
    await run(atMs);
    faults?.();
    await run(SLOT_MS - atMs);
    books.push({ harvestedJ: plant.ledger.harvestedJ, consumedJ: plant.ledger.consumedJ });
  };
  const i2cErrors = () => {
    // Three failed transfers are one failed read (the driver retries twice).
    v.faults.i2cReadErrors(0x41, 6);
    v.faults.i2cReadErrors(0x44, 3);
  };
  const brownOuts = () => {
    v.faults.brownOut(0x40);
    v.faults.brownOut(0x44);
  };
  books.push({ harvestedJ: plant.ledger.harvestedJ, consumedJ: plant.ledger.consumedJ });

  await slot(null);
  await slot(i2cErrors);
  await slot(null);
  await slot(brownOuts);
  await slot(null);
  // Flapping for 30 s and calm for the slot's last 25 s: the flap window (10 s) has
  // emptied before the next slot starts.
  await run(5_000);
  v.faults.flappingLine(PG_BCM, 250);
  await run(30_000);
  v.faults.flappingLine(PG_BCM, 0);
  await run(SLOT_MS - 35_000);
  books.push({ harvestedJ: plant.ledger.harvestedJ, consumedJ: plant.ledger.consumedJ });
  await slot(null);

  // Everything at once, and a job through MQTT while the line is flapping.
  await run(10_000);
  v.faults.flappingLine(PG_BCM, 250);
  await run(5_000);
  i2cErrors();
  brownOuts();
  await obs.publishAsync(topics.jobIn, encodeJson({ v: 1, type: 'offer', jobId: 3, sessionId: 30 }), { qos: 1 });
  await until('accepted', () => jobOut.length >= 1);
  const dim = agent.worker!.stack.geometry.dim;
  const input = new Float32Array(4 * dim).map((_, i) => Math.cos(i) * 0.2);
  await obs.publishAsync(topics.jobIn, encodeFrame({ jobId: 3, sessionId: 30, step: 0, position: 0, rows: 4, dim, data: input, dtype: 'f32', close: true }), { qos: 1 });
  await until('output frame and report', () => jobOut.length >= 3);
  await run(10_000);
  v.faults.flappingLine(PG_BCM, 0);
  await run(SLOT_MS - 25_000);
  books.push({ harvestedJ: plant.ledger.harvestedJ, consumedJ: plant.ledger.consumedJ });
  await slot(null);
  await until('nine slot records', () => slots.length >= 9);

  const accepted = parseJobReport(jobOut[0]!);
  assert.deepEqual(accepted, { ok: true, value: { v: 1, type: 'accepted', jobId: 3 } });
  assert.ok(jobOut.some((p) => isFrame(p)), 'the output frame came back');
  const report = jobOut.map((p) => (isFrame(p) ? null : parseJobReport(p))).find((r) => r?.ok && r.value.type === 'report');
  assert.ok(report?.ok && report.value.type === 'report' && report.value.ok && report.value.steps === 1, 'the job completed during the faults');
  assert.equal(agent.worker!.queue(), 0);

  assert.deepEqual(slots.map((s) => s.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(slots.map((s) => s.degraded), [false, true, false, true, false, true, false, true, false], slots.map((s) => s.health.join('|')).join(' / '));
  assert.ok(slots[1]!.health.includes('sensor-bus:battery@0x41') && slots[1]!.health.includes('consumption-unmeasured'), slots[1]!.health.join());
  assert.ok(slots[3]!.health.includes('sensor-reset:solar@0x40') && slots[3]!.health.includes('sensor-reset:load@0x44'), slots[3]!.health.join());
  assert.ok(slots[5]!.health.includes('power-good-flapping'), slots[5]!.health.join());
  for (const h of ['sensor-bus:battery@0x41', 'sensor-reset:solar@0x40', 'power-good-flapping']) assert.ok(slots[7]!.health.includes(h), `${h} in ${slots[7]!.health.join()}`);

  const { peakW } = hardware.virtual.panel;
  const { idleW, computeW } = hardware.virtual.load;
  for (const [i, s] of slots.entries()) {
    const slotS = s.slotMs / 1000;
    const plantHarvest = books[i + 1]!.harvestedJ - books[i]!.harvestedJ;
    const plantConsumed = books[i + 1]!.consumedJ - books[i]!.consumedJ;
    assert.ok(s.harvestJ >= 0 && s.harvestJ <= peakW * slotS, `slot ${i}: harvest ${s.harvestJ} J within 0..${peakW * slotS} J`);
    assert.ok(s.consumedJ >= 0 && s.consumedJ <= (idleW + computeW) * slotS, `slot ${i}: consumption ${s.consumedJ} J within the Pi's draw`);
    assert.ok(s.batteryPct >= 0 && s.batteryPct <= 100);
    // Trapezoids over the samples against the plant's piecewise-constant steps: a clean slot
    // agrees within 5 %; a degraded one may only undercount.
    const tolerance = s.degraded ? 1.02 : 1.05;
    assert.ok(s.harvestJ <= plantHarvest * tolerance, `slot ${i}: harvest ${s.harvestJ} J vs the plant's ${plantHarvest} J`);
    assert.ok(s.consumedJ <= plantConsumed * tolerance, `slot ${i}: consumption ${s.consumedJ} J vs the plant's ${plantConsumed} J`);
    if (!s.degraded) {
      assert.ok(s.harvestJ >= plantHarvest * 0.95, `slot ${i}: a clean slot's harvest ${s.harvestJ} J vs ${plantHarvest} J`);
      assert.ok(s.consumedJ >= plantConsumed * 0.95, `slot ${i}: a clean slot's consumption ${s.consumedJ} J vs ${plantConsumed} J`);
    }
  }
});
