// The battery level from the MAX17048 (battery.source max17048): the node's drivers over a
// virtual node whose gauge sits on the plant's cell. E = SOC × capacity must agree with the
// cell's stored energy within one LSB of the SOC register (19-6171: 1/256 %).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReading } from '../../cli/hw.js';
import { VirtualClock } from '../../hardware/clock.js';
import { type HardwareConfigInput, parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { CONFIG_ALRT, CONFIG_ATHD, MAX17048_REG, SOC_LSB_PCT, STATUS, encodeAthd } from '../../hardware/max17048.js';
import { buildNode, type NodeHardware } from '../../hardware/node.js';

const NIGHT = Date.parse('2026-06-21T23:00:00Z');
const NOON = Date.parse('2026-06-21T12:00:00Z');

/** The reference virtual node with its battery level taken from a MAX17048. */
function gaugeConfig(startMs: number, socPct: number, gauge: Record<string, unknown> = {}, over: Partial<HardwareConfigInput> = {}) {
  const ref = referenceHardwareConfig('virtual');
  const { initialSocPct: _estimatorStart, ...battery } = ref.battery;
  return parseHardwareConfig({
    ...ref,
    battery: { ...battery, source: 'max17048', gauge },
    virtual: { ...ref.virtual, startTime: new Date(startMs).toISOString(), initialSocPct: socPct },
    ...over,
  });
}

async function node(t: { after(fn: () => Promise<void>): void }, config: ReturnType<typeof gaugeConfig>, startMs: number) {
  const clock = new VirtualClock(startMs);
  const hw = await buildNode(config, { clock });
  t.after(() => hw.close());
  return { clock, hw, cell: hw.virtual!.plant.cell, gauge: hw.virtual!.max17048! };
}

/** Readings every `stepMs` for `n` steps, each with the cell's energy at the same instant. */
async function follow(hw: NodeHardware, clock: VirtualClock, n: number, stepMs: number) {
  const out: Array<{ levelJ: number; truthJ: number; health: string[] }> = [];
  for (let i = 0; i < n; i++) {
    await clock.advance(stepMs);
    const r = await hw.read();
    assert.ok(r.battery, `a battery level at step ${i}: ${r.health.join(', ')}`);
    assert.equal(r.battery.source, 'max17048');
    out.push({ levelJ: r.battery.energyJ, truthJ: hw.virtual!.plant.cell.energyJ, health: r.health });
  }
  return out;
}

test('max17048 source: the battery level in joules follows the virtual cell within one SOC LSB, discharging and charging', async (t) => {
  for (const [startMs, rising] of [[NIGHT, false], [NOON, true]] as const) {
    const { clock, hw, cell } = await node(t, gaugeConfig(startMs, 50), startMs);
    const lsbJ = (SOC_LSB_PCT / 100) * cell.capacityJ;
    const seen = await follow(hw, clock, 30, 60_000);
    for (const [i, s] of seen.entries()) {
      assert.ok(Math.abs(s.levelJ - s.truthJ) <= lsbJ, `step ${i}: level ${s.levelJ} J, cell ${s.truthJ} J, LSB ${lsbJ} J`);
      assert.deepEqual(s.health, []);
    }
    const movedJ = seen.at(-1)!.truthJ - seen[0]!.truthJ;
    // Half an hour of the Pi's 2.7 W at night, of the panel's surplus at noon: many LSBs.
    assert.ok(rising ? movedJ > 100 * lsbJ : movedJ < -100 * lsbJ, `the cell moved by ${movedJ} J`);
  }
});

test('the gauge is configured at its first reading (ATHD from the config, RI cleared) and again after a brown-out', async (t) => {
  const { hw, gauge } = await node(t, gaugeConfig(NIGHT, 50, { alertThresholdPct: 15 }), NIGHT);
  assert.equal(gauge.peek(MAX17048_REG.config) & CONFIG_ATHD, 0x1c, 'the power-on ATHD, 4 %');
  const first = await hw.read();
  assert.equal(gauge.peek(MAX17048_REG.config) & CONFIG_ATHD, encodeAthd(15));
  assert.equal(gauge.peek(MAX17048_REG.status) & STATUS.ri, 0);
  assert.equal(first.gauge?.recoveredFromReset, false, 'the power-up RI is the configuration, not a fault');
  assert.deepEqual(first.health, []);
  hw.virtual!.faults.gaugeBrownOut();
  const after = await hw.read();
  assert.equal(after.gauge?.recoveredFromReset, true);
  assert.deepEqual(after.health, ['gauge-reset:max17048@0x36']);
  assert.equal(gauge.peek(MAX17048_REG.config) & CONFIG_ATHD, encodeAthd(15), 'ATHD written again');
  assert.equal(gauge.peek(MAX17048_REG.status) & STATUS.ri, 0);
});

test('the SOC-low alert is reported at the reading that sees the crossing, once, and cleared at the gauge', async (t) => {
  // 20.3 % at night: the Pi's 2.7 W crosses 20 % within ten minutes.
  const { clock, hw, gauge } = await node(t, gaugeConfig(NIGHT, 20.3, { alertThresholdPct: 20 }), NIGHT);
  const alerts: number[] = [];
  const socs: number[] = [];
  for (let i = 0; i < 20; i++) {
    await clock.advance(60_000);
    const r = await hw.read();
    socs.push(r.gauge!.socPct!);
    if (r.gauge!.socLowAlert) alerts.push(i);
  }
  assert.equal(alerts.length, 1, `alerts at ${alerts.join(', ')}; SOC ${socs.map((s) => s.toFixed(2)).join(' ')}`);
  const at = alerts[0]!;
  assert.ok(at > 0 && socs[at]! < 20 && socs[at - 1]! >= 20, `the alert came at ${socs[at]} %, after ${socs[at - 1]} %`);
  assert.equal(gauge.peek(MAX17048_REG.config) & CONFIG_ALRT, 0, 'ALRT cleared');
  assert.equal(gauge.peek(MAX17048_REG.status) & STATUS.hd, 0, 'HD cleared');
});

test('an alert pending from the power-on ATHD (4 %) counts only below the configured threshold', async (t) => {
  // A cell at 3 %: the fresh gauge flags SOC low against its power-on 4 % before it is configured.
  for (const [thresholdPct, expected] of [[2, false], [15, true]] as const) {
    const { hw, gauge } = await node(t, gaugeConfig(NIGHT, 3, { alertThresholdPct: thresholdPct }), NIGHT);
    assert.ok(gauge.peek(MAX17048_REG.status) & STATUS.hd, 'HD raised at the power-on threshold');
    const r = await hw.read();
    assert.equal(r.gauge!.socLowAlert, expected, `ATHD ${thresholdPct} %, SOC ${r.gauge!.socPct} %`);
    assert.equal(gauge.peek(MAX17048_REG.config) & CONFIG_ALRT, 0, 'cleared either way');
  }
});

test('a UPS HAT without a battery INA219: the level from the gauge alone; a missing gauge is flagged', async (t) => {
  const ref = referenceHardwareConfig('virtual');
  const config = gaugeConfig(NIGHT, 40, {}, { sensors: ref.sensors.filter((s) => s.role !== 'battery') });
  const { clock, hw, cell } = await node(t, config, NIGHT);
  const [s] = await follow(hw, clock, 1, 10_000);
  assert.ok(Math.abs(s!.levelJ - s!.truthJ) <= (SOC_LSB_PCT / 100) * cell.capacityJ);
  assert.deepEqual(s!.health, []);
  const text = formatReading(await hw.read(), 'test');
  assert.match(text, /battery: 40\.0 % \(.*\), from the MAX17048/);
  assert.match(text, /gauge 0x36: VCELL 3\.\d{3} V {2}CRATE -\d+\.\d %\/h {2}alert below 4 %/);
  hw.virtual!.faults.disappear(0x36);
  const gone = await hw.read();
  assert.equal(gone.battery, null);
  assert.equal(gone.gauge?.ok, false);
  assert.match(gone.gauge!.error!, /MAX17048 fuel gauge at 0x36 does not answer/);
  assert.deepEqual(gone.health, ['gauge-absent:max17048@0x36', 'battery-estimate-stale']);
});
