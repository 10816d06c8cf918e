// MAX17048 driver against the register model (19-6171 Register Summary and register
// descriptions), with the bytes on the wire checked where byte order matters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import {
  CONFIG_ALRT, MAX17048_ADDRESS, MAX17048_REG, Max17048, Max17048Error, STATUS, decodeAthd, encodeAthd,
} from '../../hardware/max17048.js';
import { VirtualI2cBus } from '../../hardware/virtual/bus.js';
import { BatteryCell } from '../../hardware/virtual/cell.js';
import { type GaugeAnalog, VirtualMax17048, cellAnalog } from '../../hardware/virtual/max17048.js';

function rig(analog: Partial<GaugeAnalog> = {}) {
  const clock = new VirtualClock(0);
  const bus = new VirtualI2cBus();
  const a: GaugeAnalog = { cellVoltageV: 3.7, socPct: 50, ...analog };
  const device = new VirtualMax17048(() => a, clock, 0x5a);
  bus.attach(MAX17048_ADDRESS, device);
  return { clock, bus, a, device, gauge: new Max17048(bus) };
}

const VCELL_STEP = 78.125e-6;
const near = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected} ± ${tolerance}`);

test('ATHD holds 32 − percent in five bits: 00000b = 32 %, 11111b = 1 %, POR 1Ch = 4 %', () => {
  assert.equal(encodeAthd(32), 0b00000);
  assert.equal(encodeAthd(1), 0b11111);
  assert.equal(encodeAthd(4), 0x1c);
  assert.equal(decodeAthd(0x971c), 4);
  assert.throws(() => encodeAthd(0), /1–32/);
  assert.throws(() => encodeAthd(33), /1–32/);
  assert.throws(() => encodeAthd(2.5), /1–32/);
});

test('power-on values, VERSION identification and the ID byte', async () => {
  const { device, gauge } = rig();
  assert.equal(device.peek(MAX17048_REG.config), 0x971c);
  assert.equal(device.peek(MAX17048_REG.hibrt), 0x8030);
  assert.equal(device.peek(MAX17048_REG.valrt), 0x00ff);
  assert.equal(device.peek(MAX17048_REG.vresetId), 0x965a);
  assert.equal(device.peek(MAX17048_REG.status) & 0xff00, STATUS.ri, 'RI set at power-up');
  assert.deepEqual(await gauge.identify(), { version: 0x0012 });
  const config = await gauge.readConfig();
  assert.deepEqual(config, { rcomp: 0x97, sleep: false, socChangeAlert: false, alert: false, alertThresholdPct: 4 });
});

test('a device whose VERSION is not 0x001_ is refused by name', async () => {
  const bus = new VirtualI2cBus();
  bus.attach(MAX17048_ADDRESS, { write() {}, read: (n: number) => Array(n).fill(0x40) });
  await assert.rejects(new Max17048(bus).identify(), (e: unknown) => e instanceof Max17048Error && e.kind === 'identity' && /0x4040/.test(e.message));
});

test('VCELL 78.125 µV/LSB and SOC 1/256 % per LSB, MSB first on the wire', async () => {
  const { bus, gauge } = rig({ cellVoltageV: 3.9, socPct: 87.3 });
  // 3.9 V / 78.125 µV = 49920 = 0xC300; the wire sends C3 first, which SMBus takes as the low byte.
  assert.equal(await bus.readWord(MAX17048_ADDRESS, MAX17048_REG.vcell), 0x00c3);
  assert.equal(await bus.readByte(MAX17048_ADDRESS, MAX17048_REG.vcell), 0xc3, 'MSB at the even address');
  assert.equal(await bus.readByte(MAX17048_ADDRESS, MAX17048_REG.vcell + 1), 0x00, 'LSB at the odd address');
  near(await gauge.readCellVoltage(), 3.9, 1e-9, 'VCELL');
  // 87.3 × 256 = 22348.8 → 22349: high byte the whole percent, low byte 1/256 steps.
  assert.equal(await bus.readByte(MAX17048_ADDRESS, MAX17048_REG.soc), 87);
  near(await gauge.readSoc(), 22349 / 256, 1e-12, 'SOC');
  const reading = await gauge.read();
  assert.deepEqual(reading, { cellVoltageV: 49920 * 78.125e-6, socPct: 22349 / 256, chargeRatePctPerHour: 0 });
});

test('CRATE: 0.208 %/h per LSB, two\'s complement, negative while discharging', async () => {
  const { a, clock, gauge } = rig({ socPct: 60 });
  assert.equal(await gauge.readChargeRate(), 0, 'no rate before the SOC has moved');
  a.socPct = 50;
  await clock.advance(3_600_000); // −10 %/h → round(−10 / 0.208) = −48
  const rate = await gauge.readChargeRate();
  near(rate, -48 * 0.208, 1e-9, 'CRATE discharging');
  a.socPct = 55;
  await clock.advance(1_800_000); // +10 %/h
  near(await gauge.readChargeRate(), 48 * 0.208, 1e-9, 'CRATE charging');
});

test('read-only registers ignore writes: VCELL, SOC, VERSION, CRATE and the ID byte', async () => {
  const { bus, device, gauge } = rig({ cellVoltageV: 3.6, socPct: 40 });
  const before = [MAX17048_REG.vcell, MAX17048_REG.soc, MAX17048_REG.version, MAX17048_REG.crate].map((r) => device.peek(r));
  for (const r of [MAX17048_REG.vcell, MAX17048_REG.soc, MAX17048_REG.version, MAX17048_REG.crate]) {
    await bus.writeWord(MAX17048_ADDRESS, r, 0x3412);
  }
  assert.deepEqual([MAX17048_REG.vcell, MAX17048_REG.soc, MAX17048_REG.version, MAX17048_REG.crate].map((r) => device.peek(r)), before);
  assert.equal(device.ignoredWrites, 4);
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.vresetId, 0x0078); // wire: 78 00 → VRESET 0x78, ID 0x00
  assert.equal(device.peek(MAX17048_REG.vresetId), 0x785a, 'VRESET written, factory ID kept');
  assert.equal((await gauge.identify()).version, 0x0012);
});

test('the alert threshold is written into CONFIG without touching RCOMP', async () => {
  const { device, gauge } = rig();
  await gauge.setAlertThreshold(20);
  assert.equal(device.peek(MAX17048_REG.config), 0x9700 | 12, 'RCOMP 97h, ATHD = 32 − 20');
  assert.equal((await gauge.readConfig()).alertThresholdPct, 20);
  await assert.rejects(gauge.setAlertThreshold(40), /1–32/);
});

test('SOC falling below ATHD raises ALRT and HD once; the host clears them', async () => {
  const { a, clock, gauge } = rig({ socPct: 25 });
  await gauge.clearResetIndicator();
  await gauge.setAlertThreshold(20);
  assert.equal((await gauge.readAlert()).alert, false, 'above the threshold');
  a.socPct = 19.5;
  await clock.advance(1000);
  const raised = await gauge.readAlert();
  assert.equal(raised.alert, true);
  assert.equal(raised.status.socLow, true);
  await gauge.clearAlert();
  const cleared = await gauge.readAlert();
  assert.deepEqual([cleared.alert, cleared.status.socLow], [false, false]);
  a.socPct = 18;
  await clock.advance(1000);
  assert.equal((await gauge.readAlert()).alert, false, 'HD marks the crossing, not the level');
  a.socPct = 30;
  await gauge.readSoc();
  a.socPct = 10;
  assert.equal((await gauge.readAlert()).status.socLow, true, 'a new crossing raises it again');
});

test('raising the threshold above the present SOC alerts at once', async () => {
  const { gauge } = rig({ socPct: 15 });
  await gauge.readSoc();
  assert.equal((await gauge.readAlert()).alert, false, 'POR threshold 4 %');
  await gauge.setAlertThreshold(16);
  assert.equal((await gauge.readAlert()).status.socLow, true);
});

test('the host can clear STATUS flags but not raise them; RI is cleared on its own', async () => {
  const { bus, device, gauge } = rig();
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.status, 0x003f); // wire: 3F 00 → all flags
  assert.equal(device.peek(MAX17048_REG.status) & 0x3f00, STATUS.ri, 'only RI, which was already set');
  assert.equal(device.peek(MAX17048_REG.config) & CONFIG_ALRT, 0);
  await gauge.clearAlert();
  assert.equal((await gauge.readStatus()).resetIndicator, true, 'clearAlert leaves RI');
  await gauge.clearResetIndicator();
  assert.equal((await gauge.readStatus()).resetIndicator, false);
});

test('ALSC: a 1 % SOC change sets SC and ALRT', async () => {
  const { a, bus, gauge } = rig({ socPct: 50.2 });
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.config, 0x5c97); // 0x975C: ALSC on, ATHD 4 %
  await gauge.readSoc();
  a.socPct = 50.9;
  assert.equal((await gauge.readAlert()).alert, false, 'same whole percent');
  a.socPct = 49.9;
  const alert = await gauge.readAlert();
  assert.deepEqual([alert.alert, alert.status.socChange], [true, true]);
});

test('VALRT: VCELL outside MIN..MAX (20 mV per LSB) sets VL or VH', async () => {
  const { a, bus, gauge } = rig({ cellVoltageV: 3.7 });
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.valrt, 0xd2a0); // MIN A0h = 3.2 V, MAX D2h = 4.2 V
  assert.equal((await gauge.readAlert()).alert, false);
  a.cellVoltageV = 3.1;
  assert.equal((await gauge.readStatus()).voltageLow, true);
  a.cellVoltageV = 4.25;
  assert.equal((await gauge.readStatus()).voltageHigh, true);
});

test('sleep (EnSleep and CONFIG.SLEEP) holds VCELL and SOC', async () => {
  const { a, bus, gauge } = rig({ cellVoltageV: 3.8, socPct: 70 });
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.mode, 0x0020); // 0x2000 EnSleep
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.config, 0x9c97); // 0x979C: SLEEP
  a.cellVoltageV = 3.5;
  a.socPct = 30;
  near(await gauge.readCellVoltage(), 3.8, 1e-4, 'VCELL while asleep');
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.config, 0x1c97);
  near(await gauge.readCellVoltage(), 3.5, 1e-4, 'VCELL after waking');
});

test('quick-start self-clears, keeps EnSleep and restarts the CRATE estimate', async () => {
  const { a, clock, device, gauge, bus } = rig({ socPct: 60 });
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.mode, 0x0020); // EnSleep
  a.socPct = 50;
  await clock.advance(3_600_000);
  assert.ok((await gauge.readChargeRate()) < 0);
  await gauge.quickStart();
  assert.equal(device.peek(MAX17048_REG.mode), 0x2000, 'QuickStart reads back 0, EnSleep kept');
  assert.equal(await gauge.readChargeRate(), 0);
});

test('HIBRT = FFFFh forces hibernate, shown in MODE.HibStat', async () => {
  const { bus, device } = rig();
  assert.equal(device.peek(MAX17048_REG.mode) & 0x1000, 0);
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.hibrt, 0xffff);
  assert.equal(device.peek(MAX17048_REG.mode) & 0x1000, 0x1000);
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.mode, 0x0010); // 0x1000: HibStat is not writable
  await bus.writeWord(MAX17048_ADDRESS, MAX17048_REG.hibrt, 0x0000);
  assert.equal(device.peek(MAX17048_REG.mode) & 0x1000, 0);
});

test('CMD 5400h returns every register to its power-on value and sets RI', async () => {
  const { device, gauge } = rig();
  await gauge.setAlertThreshold(10);
  await gauge.clearResetIndicator();
  await gauge.reset();
  assert.equal(device.peek(MAX17048_REG.config), 0x971c);
  assert.equal((await gauge.readStatus()).resetIndicator, true);
});

test('a missing gauge (no ACK) fails with what to check', async () => {
  const { bus, gauge } = rig();
  bus.setAbsent(MAX17048_ADDRESS, true);
  await assert.rejects(gauge.readSoc(), (e: unknown) => e instanceof Max17048Error && e.kind === 'absent' && /i2cdetect/.test(e.message));
  bus.setAbsent(MAX17048_ADDRESS, false);
  bus.failReads(MAX17048_ADDRESS, 2);
  near(await gauge.readSoc(), 50, 1e-9, 'two transient EIO errors are retried');
});

test('the gauge reads a BatteryCell: its SOC and its terminal voltage under load', async () => {
  const clock = new VirtualClock(0);
  const bus = new VirtualI2cBus();
  const cell = new BatteryCell({ chemistry: 'li-ion', capacityWh: 36, internalOhms: 0.05, chargeEfficiency: 0.95, dischargeEfficiency: 0.95 }, 80);
  let powerW = -5;
  bus.attach(MAX17048_ADDRESS, new VirtualMax17048(cellAnalog(cell, () => powerW), clock));
  const gauge = new Max17048(bus);
  near(await gauge.readSoc(), 80, 1 / 256, 'SOC');
  const loaded = await gauge.readCellVoltage();
  near(loaded, cell.terminalVoltage(-5), VCELL_STEP, 'VCELL under a 5 W load');
  powerW = 0;
  assert.ok((await gauge.readCellVoltage()) > loaded, 'the voltage recovers at rest');
});
