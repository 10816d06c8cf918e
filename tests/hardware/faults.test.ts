// Every injected fault becomes a clear error or health flag in the node's reading —
// never a crash and never a silently wrong number.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import { type HardwareConfigInput, parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { INA219_REG } from '../../hardware/ina219.js';
import { buildNode, type NodeHardware, type NodeReading } from '../../hardware/node.js';

const NOON = Date.parse('2024-06-21T12:00:00Z');
const NIGHT = Date.parse('2024-06-21T23:00:00Z');
const CLEAR = { clouds: { meanCover: 0, sdCover: 0 } };

async function withNode(config: HardwareConfigInput, startMs: number, body: (node: NodeHardware, clock: VirtualClock) => Promise<void>) {
  const clock = new VirtualClock(startMs);
  const node = await buildNode(parseHardwareConfig(config), { clock });
  try {
    await body(node, clock);
  } finally {
    await node.close();
  }
}

const sensor = (r: NodeReading, role: string) => r.sensors.find((s) => s.role === role)!;

/** The plant's true value for what a sensor of `role` should read, in mA. */
function trueCurrentMa(node: NodeHardware, role: string): number {
  const s = node.virtual!.plant.state();
  if (role === 'solar') return s.panel.currentA * 1000;
  if (role === 'battery') return s.battery.currentA * 1000;
  return (s.loadW / s.systemVoltageV) * 1000;
}

const reference = { ...referenceHardwareConfig('virtual'), virtual: CLEAR } satisfies HardwareConfigInput;

test('transient I2C read errors are retried; persistent ones become a sensor error, not a crash', async () => {
  await withNode(reference, NOON, async (node) => {
    await node.read();
    node.virtual!.faults.i2cReadErrors(0x41, 2);
    const retried = await node.read();
    assert.equal(sensor(retried, 'battery').ok, true);
    assert.deepEqual(retried.health, []);
    node.virtual!.faults.i2cReadErrors(0x41, Infinity);
    const failed = await node.read();
    const bat = sensor(failed, 'battery');
    assert.equal(bat.ok, false);
    assert.equal(bat.currentMa, undefined, 'no number for a failed sensor');
    assert.match(bat.error!, /battery INA219 at 0x41: I2C transfer failed after 3 attempts: EIO/);
    assert.ok(failed.health.includes('sensor-bus:battery@0x41'));
    assert.ok(failed.health.includes('battery-estimate-stale'));
    assert.equal(failed.battery, null);
    assert.equal(sensor(failed, 'solar').ok, true, 'the other sensors are unaffected');
    node.virtual!.faults.i2cReadErrors(0x41, 0);
    assert.equal(sensor(await node.read(), 'battery').ok, true, 'recovers when the bus does');
  });
});

test('a brown-out clears the calibration; the driver reprograms it and reads the right current', async () => {
  await withNode(reference, NOON, async (node) => {
    await node.read();
    const v = node.virtual!;
    v.faults.brownOut(0x40);
    const device = v.ina219s.get(0x40)!;
    assert.equal(device.peek(INA219_REG.calibration), 0);
    assert.notEqual(device.peek(INA219_REG.shuntVoltage), 0);
    assert.equal(device.peek(INA219_REG.current), 0, 'without calibration the current register reads 0: the wrong number a naive driver would report');
    const r = await node.read();
    const solar = sensor(r, 'solar');
    assert.equal(solar.recoveredFromReset, true);
    assert.ok(r.health.includes('sensor-reset:solar@0x40'));
    assert.ok(Math.abs(solar.currentMa! - trueCurrentMa(node, 'solar')) < 1, `${solar.currentMa} mA vs ${trueCurrentMa(node, 'solar')} mA`);
    assert.equal(node.sensors.find((s) => s.config.role === 'solar')!.ina.resets, 1);
    assert.equal(sensor(await node.read(), 'solar').recoveredFromReset, false);
  });
});

test('a sensor that disappears is reported absent; when it comes back it is read again', async () => {
  await withNode(reference, NOON, async (node) => {
    await node.read();
    node.virtual!.faults.disappear(0x44);
    const r = await node.read();
    assert.equal(sensor(r, 'load').ok, false);
    assert.match(sensor(r, 'load').error!, /load INA219 at 0x44 does not answer \(no ACK\).*i2cdetect/);
    assert.ok(r.health.includes('sensor-absent:load@0x44'));
    node.virtual!.faults.disappear(0x44, false);
    const back = await node.read();
    assert.equal(sensor(back, 'load').ok, true);
    assert.ok(Math.abs(sensor(back, 'load').currentMa! - trueCurrentMa(node, 'load')) < 1);
  });
});

test('a sensor missing from the start does not keep the node from reading', async () => {
  const clock = new VirtualClock(NOON);
  const node = await buildNode(parseHardwareConfig(reference), { clock });
  try {
    node.virtual!.faults.disappear(0x40);
    const r = await node.read();
    assert.ok(r.health.includes('sensor-absent:solar@0x40'));
    assert.ok(r.health.includes('harvest-unmeasured'));
    node.virtual!.faults.disappear(0x40, false);
    assert.equal(sensor(await node.read(), 'solar').ok, true, 'programmed on first contact');
  } finally {
    await node.close();
  }
});

test('charger faults and a missing charger are flagged; the sensors still read', async () => {
  await withNode(reference, NOON, async (node) => {
    node.virtual!.faults.chargerFaults(0x08); // BATOVP
    const r = await node.read();
    assert.ok(r.health.some((h) => h.startsWith('charger-fault:') && h.includes('"batteryOvervoltage":true')));
    node.virtual!.faults.chargerFaults(0);
    node.virtual!.faults.i2cReadErrors(0x6a, Infinity);
    const failing = await node.read();
    assert.equal(failing.charger.ok, false);
    assert.match(failing.charger.error!, /BQ25895 charger at 0x6a: I2C transfer failed after 3 attempts: EIO/, 'named as when it is missing');
    node.virtual!.faults.i2cReadErrors(0x6a, 0);
    node.virtual!.faults.disappear(0x6a);
    const gone = await node.read();
    assert.equal(gone.charger.ok, false);
    assert.match(gone.charger.error!, /BQ25895 charger at 0x6a does not answer/);
    assert.ok(gone.health.includes('charger-error:bq25895'));
    assert.equal(gone.sensors.every((s) => s.ok), true);
  });
});

test('math overflow from a misconfigured sensor is flagged, not reported as a current', async () => {
  const config = {
    ...reference,
    // 20 mA "expected" through 50 mΩ saturates Cal; the node's ≈ 0.7 A then overflows the current register.
    sensors: reference.sensors.map((s) => (s.role === 'load' ? { ...s, shuntOhms: 0.05, maxCurrentA: 0.02 } : s)),
  };
  await withNode(config, NOON, async (node) => {
    const r = await node.read();
    assert.equal(sensor(r, 'load').ok, false);
    assert.match(sensor(r, 'load').error!, /math overflow \(OVF\).*raise maxCurrentA/);
    assert.ok(r.health.includes('sensor-overflow:load@0x44'));
  });
});

const mcp73871 = {
  ...reference,
  charger: { kind: 'mcp73871', pins: { stat1: { bcm: 5 }, stat2: { bcm: 6 }, pg: { bcm: 13 } } },
} satisfies HardwareConfigInput;

test('MCP73871 board: states from the pins follow the plant, and power-good changes are signalled', async () => {
  await withNode(mcp73871, Date.parse('2024-06-21T04:00:00Z'), async (node, clock) => {
    const night = await node.read();
    assert.equal(night.charger.pins!.state, 'no-input');
    assert.equal(night.charger.powerGood, false);
    const events: boolean[] = [];
    node.onPowerGoodChange((pg) => events.push(pg));
    node.virtual!.start();
    await clock.advance(2 * 3_600_000); // through sunrise
    assert.deepEqual(events, [true], 'the interrupt reported sunrise without a read');
    const day = await node.read();
    assert.equal(day.charger.pins!.state, 'charging');
    assert.deepEqual(day.health, []);
  });
});

test('a stuck power-good line is caught against the panel sensor', async () => {
  await withNode(mcp73871, NOON, async (node) => {
    node.virtual!.faults.stuckLine(13, 1); // PG released although the panel delivers
    const r = await node.read();
    assert.equal(r.charger.powerGood, false);
    assert.ok(r.health.includes('power-good-inconsistent:panel-current-without-power-good'), r.health.join());
  });
  await withNode(mcp73871, NIGHT, async (node) => {
    node.virtual!.faults.stuckLine(13, 0); // PG asserted in the dark
    const r = await node.read();
    assert.ok(r.health.includes('power-good-inconsistent:power-good-without-panel-voltage'), r.health.join());
  });
});

test('a flapping power-good line is flagged and its level is not believed', async () => {
  await withNode(mcp73871, NOON, async (node, clock) => {
    node.virtual!.faults.flappingLine(13, 250);
    await clock.advance(3000);
    const r = await node.read();
    assert.equal(r.charger.powerGood, null);
    assert.equal(r.charger.pins!.state, 'unknown');
    assert.ok(r.health.includes('power-good-flapping'));
    node.virtual!.faults.flappingLine(13, 0);
    await clock.advance(15_000);
    const calm = await node.read();
    assert.equal(calm.charger.powerGood, true);
    assert.ok(!calm.health.includes('power-good-flapping'));
  });
});

test('BQ24074 board: done shows as CHG released with PGOOD asserted', async () => {
  const bq24074 = {
    ...reference,
    virtual: { ...CLEAR, initialSocPct: 100 },
    charger: { kind: 'bq24074', pins: { pgood: { bcm: 5 }, chg: { bcm: 6 } } },
  } satisfies HardwareConfigInput;
  await withNode(bq24074, NOON, async (node) => {
    const r = await node.read();
    assert.equal(r.charger.pins!.state, 'done');
    assert.deepEqual(r.charger.pins!.asserted, { pgood: true, chg: false });
  });
});

test('a failed solar read: the harvest total counts neither interval beside it, and says how long went unmeasured', async () => {
  await withNode(reference, NOON, async (node, clock) => {
    await node.read();
    await clock.advance(10_000);
    const before = await node.read();
    assert.ok(before.harvest.totalJ > 0, 'the noon sun is integrated');
    assert.equal(before.harvest.unmeasuredMs, 0);
    node.virtual!.faults.i2cReadErrors(0x40, Infinity);
    await clock.advance(10_000);
    const failed = await node.read();
    assert.equal(sensor(failed, 'solar').ok, false);
    assert.ok(failed.health.includes('harvest-unmeasured'));
    node.virtual!.faults.i2cReadErrors(0x40, 0);
    await clock.advance(10_000);
    const after = await node.read();
    // Holding the last power across the failure would have added some 20 s of noon sun.
    assert.equal(after.harvest.totalJ, before.harvest.totalJ, 'no energy invented for the 20 s around the failed read');
    assert.equal(after.harvest.unmeasuredMs, after.monotonicMs - before.monotonicMs);
    assert.ok(Math.abs(after.harvest.unmeasuredMs - 20_000) < 1000, `${after.harvest.unmeasuredMs} ms unmeasured`);
    await clock.advance(10_000);
    assert.ok((await node.read()).harvest.totalJ > after.harvest.totalJ, 'integrated again from the next good pair');
  });
});
