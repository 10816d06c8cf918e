// The agent on a UPS HAT's MAX17048 (battery.source max17048): the real agent over the
// virtual bus, with INA219s on the panel and the Pi's supply only. The battery level it
// reports (slot records, ping) is the gauge's SOC × capacity and follows the virtual cell
// within one SOC LSB (19-6171: 1/256 %) as it discharges at night and charges at noon,
// while harvest and consumption stay metered by the INA219s; the gauge's SOC-low alert
// is logged and kept for ping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { until } from '../../ground/until.js';
import { VirtualClock } from '../../hardware/clock.js';
import { referenceHardwareConfig } from '../../hardware/config.js';
import { SOC_LSB_PCT } from '../../hardware/max17048.js';
import { nodeTopics, parseSlotRecord, type SlotRecord } from '../../protocol/index.js';
import { captureLog } from '../support/log.js';
import { aedesWithFolder } from './brokers.js';
import { exampleDoc } from './fixtures.js';

const NIGHT = Date.parse('2026-06-21T23:00:00Z');
const NOON = Date.parse('2026-06-21T12:00:00Z');
const SAMPLE_MS = 10_000;
const SLOT_MS = 60_000;

/** An agent on a 20 Wh cell read by its gauge, started at `startMs` with the cell at `socPct`. */
async function gaugeAgent(t: { after(fn: () => Promise<void> | void): void }, startMs: number, socPct: number, gauge: object = {}) {
  const { broker, dir } = await aedesWithFolder(t, 'gauge');
  const doc = exampleDoc();
  const ref = referenceHardwareConfig('virtual');
  const { initialSocPct: _estimatorStart, ...battery } = ref.battery;
  const hardware = {
    ...ref,
    sensors: ref.sensors.filter((s) => s.role !== 'battery'),
    battery: { ...battery, capacityWh: 20, source: 'max17048', gauge },
    virtual: { ...ref.virtual, startTime: new Date(startMs).toISOString(), initialSocPct: socPct },
  };
  const config = parseAgentConfig({
    ...doc, hardware, gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, slotMs: SLOT_MS, sampleHz: 1000 / SAMPLE_MS, spool: { dir },
  });
  const clock = new VirtualClock(startMs);
  const captured = captureLog();
  const agent = await Agent.start(config, { clock, log: captured.log, shutdown: async () => {} });
  t.after(() => agent.stop('test over', false));
  const slots: SlotRecord[] = [];
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'gauge-observer' });
  t.after(() => obs.endAsync());
  obs.on('message', (_topic, payload) => {
    const r = parseSlotRecord(payload);
    assert.ok(r.ok, r.ok ? '' : r.error);
    slots.push(r.value);
  });
  await obs.subscribeAsync(nodeTopics(config.fleet, config.nodeId).slot, { qos: 1 });
  await until('connected', () => agent.link.connected, 60_000);
  const plant = agent.hardware.virtual!.plant;
  // Each level the ledger takes, beside the cell's energy and the plant's books at that
  // instant: the virtual clock stands still between the gauge's reading and this listener.
  const levels: Array<{ atMs: number; levelJ: number; cellJ: number; consumedJ: number; harvestedJ: number }> = [];
  agent.ledger.onBattery((b) => levels.push({ atMs: b.atMs, levelJ: b.energyJ, cellJ: plant.cell.energyJ, consumedJ: plant.ledger.consumedJ, harvestedJ: plant.ledger.harvestedJ }));
  /** The level the slot closed with: that of the last sample up to its end. */
  const closing = (s: SlotRecord) => levels.filter((l) => l.atMs <= s.slotStartMs + s.slotMs + 1).at(-1);
  const run = async (ms: number) => {
    for (let done = 0; done < ms; done += SAMPLE_MS) {
      await clock.advance(SAMPLE_MS);
      await agent.ledger.settled();
    }
  };
  const ping = async () => (await agent.command({ v: 1, id: 'p', op: 'ping' }, async () => {}))!;
  return { agent, clock, plant, slots, levels, closing, run, ping, captured, lsbJ: (SOC_LSB_PCT / 100) * plant.cell.capacityJ };
}

test('source max17048: the battery level the agent reports follows the virtual cell as it discharges and charges; the INA219s still meter the flows', async (t) => {
  for (const [startMs, rising] of [[NIGHT, false], [NOON, true]] as const) {
    const { agent, slots, levels, closing, run, ping, lsbJ, plant } = await gaugeAgent(t, startMs, 50);
    const books0 = { consumedJ: plant.ledger.consumedJ, harvestedJ: plant.ledger.harvestedJ };
    await run(20 * SLOT_MS);
    await until('twenty slot records', () => slots.length >= 20, 60_000);
    for (const [i, l] of levels.entries()) assert.ok(Math.abs(l.levelJ - l.cellJ) <= lsbJ, `sample ${i}: level ${l.levelJ} J, cell ${l.cellJ} J, LSB ${lsbJ} J`);
    for (const s of slots.slice(0, 20)) {
      const at = closing(s);
      assert.ok(at, `a sample closing slot ${s.seq}`);
      // batteryJ is rounded to the mJ on the wire.
      assert.ok(Math.abs(s.batteryJ - at.cellJ) <= lsbJ + 1e-3, `slot ${s.seq}: reported ${s.batteryJ} J, cell ${at.cellJ} J, LSB ${lsbJ} J`);
      assert.equal(s.degraded, false, s.health.join(', '));
    }
    const [first, last] = [slots[0]!, slots[19]!];
    assert.ok(rising ? last.batteryJ - first.batteryJ > 100 * lsbJ : first.batteryJ - last.batteryJ > 100 * lsbJ,
      `${rising ? 'charging' : 'discharging'}: ${first.batteryJ} J → ${last.batteryJ} J`);
    // Harvest and consumption come from the panel's and the Pi's INA219s, not from the gauge.
    const end = closing(last)!;
    const sum = (k: 'harvestJ' | 'consumedJ') => slots.slice(0, 20).reduce((a, s) => a + s[k], 0);
    assert.ok(Math.abs(sum('consumedJ') - (end.consumedJ - books0.consumedJ)) <= 0.01 * (end.consumedJ - books0.consumedJ), `consumed ${sum('consumedJ')} J, plant ${end.consumedJ - books0.consumedJ} J`);
    if (rising) assert.ok(Math.abs(sum('harvestJ') - (end.harvestedJ - books0.harvestedJ)) <= 0.01 * (end.harvestedJ - books0.harvestedJ), `harvest ${sum('harvestJ')} J, plant ${end.harvestedJ - books0.harvestedJ} J`);
    const reply = await ping();
    assert.ok(Math.abs((reply.batteryJ as number) - plant.cell.energyJ) <= lsbJ, `ping: ${String(reply.batteryJ)} J, cell ${plant.cell.energyJ} J`);
    assert.equal((reply.battery as { source: string }).source, 'max17048');
    await agent.stop('test over', false);
  }
});

test('the gauge\'s SOC-low alert at its configured ATHD is logged once and kept for ping', async (t) => {
  // 20.2 % of 20 Wh at night: the Pi's 2.7 W crosses 20 % within a minute or two.
  const { run, ping, captured, agent } = await gaugeAgent(t, NIGHT, 20.2, { alertThresholdPct: 20 });
  const gauge = agent.hardware.virtual!.max17048!;
  assert.equal(gauge.peek(0x0c) & 0x1f, 32 - 20, 'CONFIG.ATHD written at start (32 − 20 %)');
  await run(5 * SLOT_MS);
  const warned = captured.records.filter((r) => r.msg === 'fuel gauge alert: state of charge below its alert threshold');
  assert.equal(warned.length, 1, captured.messages().join('\n'));
  assert.ok((warned[0]!.socPct as number) < 20);
  const state = ((await ping()).battery as { gauge: { socLowAlerts: number; lastSocLowAlert: { socPct: number } | null; alertThresholdPct: number } }).gauge;
  assert.equal(state.socLowAlerts, 1);
  assert.equal(state.alertThresholdPct, 20);
  assert.ok(state.lastSocLowAlert && state.lastSocLowAlert.socPct < 20);
});
