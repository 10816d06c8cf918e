// BQ25895 decoding tables (SLUSC88C register map) and the driver against the register model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BQ_REG, Bq25895, Bq25895Error, decodeAdcBlock, decodeFaults, decodeIinlim, decodeStatus, decodeVindpm, encodeIinlim, encodeVindpm,
} from '../../hardware/bq25895.js';
import { VirtualClock } from '../../hardware/clock.js';
import { VirtualI2cBus } from '../../hardware/virtual/bus.js';
import { type ChargerAnalog, VirtualBq25895 } from '../../hardware/virtual/bq25895.js';

test('REG0B: every CHRG_STAT, VBUS_STAT, PG_STAT and VSYS_STAT value', () => {
  const chrg = ['not-charging', 'pre-charge', 'fast-charging', 'done'];
  for (let c = 0; c < 4; c++) assert.equal(decodeStatus(c << 3).chrgStat, chrg[c]);
  const vbus = ['no-input', 'usb-sdp', 'usb-cdp', 'usb-dcp', 'maxcharge-dcp', 'unknown-adapter', 'non-standard-adapter', 'otg'];
  for (let v = 0; v < 8; v++) assert.equal(decodeStatus(v << 5).vbusStat, vbus[v]);
  assert.deepEqual(decodeStatus(0b1011_0101), { vbusStat: 'unknown-adapter', chrgStat: 'fast-charging', powerGood: true, vsysRegulation: true });
  assert.equal(decodeStatus(0x02).powerGood, false, 'bit 1 is reserved');
});

test('REG0C: fault fields', () => {
  assert.equal(decodeFaults(0x80).watchdog, true);
  assert.equal(decodeFaults(0x40).boost, true);
  assert.deepEqual([0x00, 0x10, 0x20, 0x30].map((b) => decodeFaults(b).charge), ['normal', 'input-fault', 'thermal-shutdown', 'safety-timer-expired']);
  assert.equal(decodeFaults(0x08).batteryOvervoltage, true);
  assert.deepEqual([0, 2, 3, 5, 6, 1].map((b) => decodeFaults(b).ntc), ['normal', 'warm', 'cool', 'cold', 'hot', 'unknown']);
});

test('REG00 IINLIM and REG0D VINDPM: offsets, steps, ranges, defaults', () => {
  assert.equal(encodeIinlim(0.1), 0);
  assert.equal(encodeIinlim(0.5), 0x08, 'the 500 mA default is 001000');
  assert.equal(encodeIinlim(3.25), 0x3f);
  assert.throws(() => encodeIinlim(3.3), /outside/);
  assert.ok(Math.abs(decodeIinlim(0x80 | 0x3f) - 3.25) < 1e-12, 'EN_HIZ is not part of the limit');
  assert.equal(encodeVindpm(4.4), 0x12, 'the 4.4 V default is 0010010');
  assert.equal(encodeVindpm(3.9), 0x0d);
  assert.equal(encodeVindpm(15.3), 0x7f);
  assert.equal(encodeVindpm(6.0), 34);
  assert.throws(() => encodeVindpm(3.8), /outside/);
  assert.ok(Math.abs(decodeVindpm(0x80 | 0x03) - 3.9) < 1e-12, 'codes below 0001101 read as 3.9 V');
});

test('ADC block REG0E..REG12: offsets and steps', () => {
  const adc = decodeAdcBlock([0x80 | 75, 80, 0x3f, 0x80 | 34, 31]);
  assert.ok(Math.abs(adc.batteryVoltageV - 3.804) < 1e-9, 'THERM_STAT is not part of BATV');
  assert.ok(Math.abs(adc.systemVoltageV - 3.904) < 1e-9);
  assert.ok(Math.abs(adc.busVoltageV - 6.0) < 1e-9);
  assert.equal(adc.busAttached, true);
  assert.ok(Math.abs(adc.chargeCurrentA - 1.55) < 1e-9);
  assert.equal(decodeAdcBlock([0, 0, 0, 0, 0]).busAttached, false);
});

function rig(analog: Partial<ChargerAnalog> = {}) {
  const clock = new VirtualClock(0);
  const bus = new VirtualI2cBus();
  const a: ChargerAnalog = {
    inputPresent: true, powerGood: true, busVoltageV: 6.03, batteryVoltageV: 3.871, systemVoltageV: 3.871,
    chargeCurrentA: 1.234, chrgStat: 2, inVoltageRegulation: true, inCurrentRegulation: false, ...analog,
  };
  const device = new VirtualBq25895(() => a, clock);
  bus.attach(0x6a, device);
  return { clock, bus, a, device, bq: new Bq25895(bus, clock) };
}

test('power-on register values and identification', async () => {
  const { device, bq } = rig();
  assert.equal(device.peek(BQ_REG.inputSource), 0x08);
  assert.equal(device.peek(BQ_REG.vindpm), 0x12);
  assert.deepEqual(await bq.identify(), { partNumber: 0b111, deviceRevision: 1 });
  const other = rig();
  await other.bus.writeByte(0x6a, 0x04, 0x10);
  await other.bus.writeByte(0x6a, 0x14, 0x80); // REG_RST: registers back to defaults, PN unchanged
  assert.equal(other.device.peek(0x04), 0x20);
  assert.equal((await other.bq.identify()).partNumber, 0b111);
});

test('a device that is not a BQ25895 is refused with a clear error', async () => {
  const clock = new VirtualClock(0);
  const bus = new VirtualI2cBus();
  bus.attach(0x6a, { write() {}, read: (n: number) => Array(n).fill(0x00) }); // PN 000
  await assert.rejects(new Bq25895(bus, clock).identify(), (e: unknown) => e instanceof Bq25895Error && e.kind === 'identity' && /not a BQ25895/.test(e.message));
});

test('status and one-shot ADC read what the plant reports, at the ADC steps', async () => {
  const { bq, device } = rig();
  const status = await bq.readStatus();
  assert.deepEqual(status, { vbusStat: 'unknown-adapter', chrgStat: 'fast-charging', powerGood: true, vsysRegulation: false });
  const adc = await bq.readAdc();
  assert.ok(Math.abs(adc.batteryVoltageV - 3.864) < 1e-9, `BATV ${adc.batteryVoltageV}`); // 3.871 → 78 × 20 mV
  assert.ok(Math.abs(adc.busVoltageV - 6.0) < 1e-9);
  assert.ok(Math.abs(adc.chargeCurrentA - 1.25) < 1e-9);
  assert.equal(device.peek(BQ_REG.adcControl) & 0x80, 0, 'CONV_START cleared by the device');
  assert.equal((device.peek(BQ_REG.dpmStatus) & 0x80) !== 0, true, 'VDPM_STAT');
});

test('continuous ADC sets CONV_RATE and refreshes once a second', async () => {
  const { bq, a, clock, device } = rig();
  await bq.startContinuousAdc();
  assert.equal(device.peek(BQ_REG.adcControl) & 0x40, 0x40);
  const first = await bq.readAdc();
  a.batteryVoltageV = 4.1;
  assert.equal((await bq.readAdc()).batteryVoltageV, first.batteryVoltageV, 'no new conversion within the second');
  await clock.advance(1000);
  assert.ok(Math.abs((await bq.readAdc()).batteryVoltageV - 4.104) < 1e-9);
  await bq.stopContinuousAdc();
  assert.equal(device.peek(BQ_REG.adcControl) & 0x40, 0);
});

test('in battery-only mode below SYS_MIN the ADC never finishes: a timeout error, not a stale number', async () => {
  const { bq } = rig({ inputPresent: false, powerGood: false, batteryVoltageV: 3.2 });
  await assert.rejects(bq.readAdc(), (e: unknown) => e instanceof Bq25895Error && e.kind === 'timeout' && /SYS_MIN/.test(e.message));
});

test('solar settings: absolute VINDPM and IINLIM are written, lost at plug-in, and restored', async () => {
  const { bq, device } = rig();
  await bq.applySolarSettings({ inputCurrentLimitA: 3.0, inputVoltageLimitV: 6.0 });
  assert.equal(device.peek(BQ_REG.vindpm), 0x80 | 34);
  assert.equal(device.peek(BQ_REG.inputSource) & 0x3f, 58);
  const now = await bq.readSolarSettings();
  assert.equal(now.forceVindpm, true);
  assert.ok(Math.abs(now.settings.inputVoltageLimitV - 6.0) < 1e-9);
  assert.equal(device.settings().inputVoltageLimitV, now.settings.inputVoltageLimitV, 'the model acts on what was written');
  device.inputChanged(true); // sunrise: the charger detects a new input
  device.inputChanged(false);
  device.inputChanged(true);
  assert.equal(device.peek(BQ_REG.vindpm), 0x12, 'REG0D back to relative VINDPM');
  assert.equal(device.peek(BQ_REG.inputSource) & 0x3f, 0x08, 'input detection set 500 mA');
  assert.equal(await bq.ensureSolarSettings({ inputCurrentLimitA: 3.0, inputVoltageLimitV: 6.0 }), true);
  assert.equal(await bq.ensureSolarSettings({ inputCurrentLimitA: 3.0, inputVoltageLimitV: 6.0 }), false);
  await assert.rejects(bq.applySolarSettings({ inputCurrentLimitA: 5, inputVoltageLimitV: 6 }), /outside/);
});

test('REG0C latches: the first read shows the past fault, the second the present state', async () => {
  const { bq, device } = rig();
  device.setFaults(0x30); // safety timer expired
  device.setFaults(0x00); // …and recovered
  const { latched, present } = await bq.readFaults();
  assert.equal(latched.charge, 'safety-timer-expired');
  assert.equal(present.charge, 'normal');
  device.setFaults(0x06); // TS hot, still present
  const again = await bq.readFaults();
  assert.equal(again.latched.ntc, 'hot');
  assert.equal(again.present.ntc, 'hot');
});

test('an absent charger answers like the bus does: a clear error naming the address', async () => {
  const { bq, bus } = rig();
  bus.setAbsent(0x6a, true);
  await assert.rejects(bq.readStatus(), (e: unknown) => e instanceof Bq25895Error && e.kind === 'absent' && /0x6a/.test(e.message));
});

test('the I2C watchdog ends host mode after 40 s; the solar settings turn it off', async () => {
  const { bq, clock, device } = rig();
  await bq.startContinuousAdc(); // a host write: host mode, timer running
  await clock.advance(41_000);
  const expired = await bq.readFaults();
  assert.equal(expired.latched.watchdog, true, 'WATCHDOG_FAULT latched');
  assert.equal(device.peek(BQ_REG.adcControl) & 0x40, 0, 'CONV_RATE reset by the watchdog');
  await bq.applySolarSettings({ inputCurrentLimitA: 2, inputVoltageLimitV: 6 });
  assert.equal(device.peek(BQ_REG.timerControl) & 0x30, 0);
  await clock.advance(600_000);
  const quiet = await bq.readFaults();
  assert.equal(quiet.latched.watchdog, false);
  assert.ok(Math.abs(device.settings().inputCurrentLimitA - 2) < 1e-9);
});
