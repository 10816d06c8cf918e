// INA219 driver against the register model, checked with the datasheet's own numbers
// (SBOS448G §8.5.1, the Configure/Measure/Calculate example) and at the ranges' limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import {
  INA219_POR_CONFIG, INA219_REG, Ina219, Ina219Error, type Ina219Options, calibrationFor, decodeConfig, encodeConfig,
} from '../../hardware/ina219.js';
import { VirtualI2cBus } from '../../hardware/virtual/bus.js';
import { type Ina219Analog, VirtualIna219 } from '../../hardware/virtual/ina219.js';

const ADDRESS = 0x40;

function rig(options: Partial<Ina219Options> = {}) {
  const clock = new VirtualClock(0);
  const bus = new VirtualI2cBus();
  const analog: Ina219Analog = { shuntVoltageV: 0, busVoltageV: 0 };
  const device = new VirtualIna219(() => analog, clock);
  bus.attach(ADDRESS, device);
  const ina = new Ina219(bus, clock, { address: ADDRESS, shuntOhms: 0.1, maxCurrentA: 3, ...options });
  return { clock, bus, analog, device, ina };
}

// The datasheet example: 10 A through 2 mΩ at 12 V common mode, 40 mV and 16 V ranges,
// 12-bit single conversions, Current_LSB chosen as 1 mA.
const EXAMPLE: Partial<Ina219Options> = {
  shuntOhms: 0.002, maxCurrentA: 15, currentLsbA: 0.001, gain: 1, busRangeV: 16,
  busAdc: { bits: 12, samples: 1 }, shuntAdc: { bits: 12, samples: 1 },
};

test('calibration follows §8.5.1 equations 1–3 (datasheet example: Cal 20480, 1 mA, 20 mW)', () => {
  const c = calibrationFor(0.002, 15, 0.001);
  assert.equal(c.calibration, 20480);
  assert.ok(Math.abs(c.currentLsbA - 0.001) < 1e-12);
  assert.ok(Math.abs(c.powerLsbW - 0.02) < 1e-12);
});

test('calibration from the maximum expected current uses Current_LSB = Imax / 2^15, truncates and drops FS0', () => {
  const c = calibrationFor(0.1, 3.2); // LSB 97.65625 µA → 0.04096 / 9.765625e-6 = 4194.304
  assert.equal(c.calibration, 4194);
  assert.ok(Math.abs(c.currentLsbA - 0.04096 / (4194 * 0.1)) < 1e-15, 'LSB is the one the register actually gives');
  const odd = calibrationFor(0.1, 3.2, 0.04096 / (4195.5 * 0.1)); // trunc → 4195, odd
  assert.equal(odd.calibration, 4194, 'bit 0 of the calibration register does not exist');
  assert.throws(() => calibrationFor(0, 1), /shunt resistance/);
});

test('configuration register: POR 399Fh and the example 019Fh decode as the datasheet says, and round-trip', () => {
  assert.deepEqual(decodeConfig(INA219_POR_CONFIG), {
    busRangeV: 32, gain: 8, busAdc: { bits: 12, samples: 1 }, shuntAdc: { bits: 12, samples: 1 }, mode: 'shunt-bus-continuous',
  });
  const example = decodeConfig(0x019f);
  assert.equal(example.busRangeV, 16);
  assert.equal(example.gain, 1);
  assert.equal(encodeConfig(example), 0x019f);
  const averaged = { ...example, gain: 4 as const, busAdc: { bits: 12 as const, samples: 128 as const }, mode: 'bus-triggered' as const };
  assert.deepEqual(decodeConfig(encodeConfig(averaged)), averaged);
  assert.throws(() => encodeConfig({ ...example, shuntAdc: { bits: 9, samples: 4 } }), /averages only 12-bit/);
});

test('the §8.5.1 worked example, register by register and through the driver', async () => {
  const { analog, device, ina } = rig(EXAMPLE);
  analog.shuntVoltageV = 0.020; // 10 A × 2 mΩ
  analog.busVoltageV = 11.98; // 12 V minus the shunt drop, at IN−
  await ina.init();
  assert.equal(device.peek(INA219_REG.config), 0x019f);
  assert.equal(device.peek(INA219_REG.shuntVoltage), 0x07d0);
  assert.equal(device.peek(INA219_REG.busVoltage) & ~0x07, 0x5d98);
  assert.equal(device.peek(INA219_REG.calibration), 0x5000);
  assert.equal(device.peek(INA219_REG.current), 0x2710);
  assert.equal(device.peek(INA219_REG.power), 0x1766);
  const r = await ina.read();
  assert.ok(Math.abs(r.shuntVoltageV - 0.020) < 1e-12);
  assert.ok(Math.abs(r.busVoltageV - 11.98) < 1e-9);
  assert.ok(Math.abs(r.currentA - 10.0) < 1e-9);
  assert.ok(Math.abs(r.powerW - 119.8) < 1e-9);
});

test('the wire is big-endian: an SMBus word read returns the register byte-swapped', async () => {
  const { bus, analog, ina } = rig(EXAMPLE);
  analog.shuntVoltageV = 0.020;
  await ina.init();
  assert.equal(await bus.readWord(ADDRESS, INA219_REG.shuntVoltage), 0xd007);
  assert.equal(await bus.readWord(ADDRESS, INA219_REG.calibration), 0x0050);
});

test('negative shunt voltage: sign-extended register, negative current and power', async () => {
  const { analog, device, ina } = rig({ ...EXAMPLE, gain: 2 });
  analog.shuntVoltageV = -0.01234;
  analog.busVoltageV = 3.7;
  await ina.init();
  assert.equal(device.peek(INA219_REG.shuntVoltage), 0x10000 - 1234); // 0xFB2E
  const r = await ina.read();
  assert.ok(Math.abs(r.shuntVoltageV + 0.01234) < 1e-12);
  assert.ok(r.currentA < 0 && Math.abs(r.currentA + 6.17) < 0.001);
  assert.ok(r.powerW < 0);
  assert.ok(Math.abs(r.powerW - r.busVoltageV * r.currentA) <= ina.calibration.powerLsbW);
});

test('power agrees with bus voltage × current within one power LSB across the ranges', async () => {
  const { analog, ina } = rig({ shuntOhms: 0.1, maxCurrentA: 3 });
  await ina.init();
  for (const amps of [-2.9, -1.234, -0.01, 0.0005, 0.1, 0.77, 1.5, 2.25, 2.99]) {
    for (const volts of [0.5, 3.3, 5.05, 12.7, 15.9]) {
      analog.shuntVoltageV = amps * 0.1;
      analog.busVoltageV = volts;
      const r = await ina.read();
      assert.ok(Math.abs(r.powerW - r.busVoltageV * r.currentA) <= ina.calibration.powerLsbW + 1e-12, `${amps} A at ${volts} V`);
      assert.ok(Math.abs(r.currentA - amps) <= 0.004, `current ${r.currentA} for ${amps} A (gain /8 steps by 80 µV = 0.8 mA)`);
    }
  }
});

test('range limits: shunt full scale is an error, the bus registers saturate at their widths', async () => {
  const { analog, ina } = rig(EXAMPLE);
  await ina.init();
  analog.shuntVoltageV = 0.03999;
  assert.ok(Math.abs((await ina.read()).shuntVoltageV - 0.03999) < 1e-12);
  analog.shuntVoltageV = 0.045; // beyond /1's ±40 mV
  await assert.rejects(ina.read(), (e: unknown) => e instanceof Ina219Error && e.kind === 'range' && /full scale/.test(e.message));
  analog.shuntVoltageV = -0.045;
  await assert.rejects(ina.read(), (e: unknown) => e instanceof Ina219Error && e.kind === 'range');
  analog.shuntVoltageV = 0.001;
  analog.busVoltageV = 20; // above the 16 V range: BD11..BD0 all ones
  assert.ok(Math.abs((await ina.read()).busVoltageV - 4095 * 0.004) < 1e-9);
  const wide = rig({ ...EXAMPLE, busRangeV: 32 });
  await wide.ina.init();
  wide.analog.busVoltageV = 26.003; // 12-bit over 32 V steps by 8 mV
  assert.ok(Math.abs((await wide.ina.read()).busVoltageV - 26.0) < 1e-9);
});

test('ADC resolution: a 9-bit shunt conversion steps by 8 LSB (80 µV at /1)', async () => {
  const { analog, ina } = rig({ ...EXAMPLE, shuntAdc: { bits: 9, samples: 1 } });
  await ina.init();
  analog.shuntVoltageV = 0.02005; // 2005 LSB → nearest multiple of 8 is 2008
  assert.ok(Math.abs((await ina.read()).shuntVoltageV - 0.02008) < 1e-12);
});

test('math overflow (OVF) is reported as an error, not a number', async () => {
  // 0.5 A expected through 2 mΩ wants Cal above 16 bits; it saturates at 0xFFFE, and
  // 30 mV then makes Current = 3000 × 65534 / 4096 ≈ 48000 > 32767.
  const { analog, device, ina } = rig({ ...EXAMPLE, maxCurrentA: 0.5, currentLsbA: undefined });
  assert.equal(ina.calibration.calibration, 0xfffe);
  analog.shuntVoltageV = 0.030;
  analog.busVoltageV = 5;
  await ina.init();
  assert.equal(device.peek(INA219_REG.busVoltage) & 0x01, 1, 'OVF set in the register');
  await assert.rejects(ina.read(), (e: unknown) => e instanceof Ina219Error && e.kind === 'overflow' && /OVF/.test(e.message));
});

test('CNVR: set after a conversion cycle, cleared by reading the power register', async () => {
  const { clock, bus, ina } = rig(EXAMPLE); // 12-bit: 532 µs + 532 µs per cycle
  await ina.init();
  const cnvr = async () => (await bus.readWord(ADDRESS, INA219_REG.busVoltage) >> 8) & 0x02;
  assert.equal(await cnvr(), 0, 'a configuration write restarts conversion');
  await clock.advance(2);
  assert.equal(await cnvr(), 2);
  await bus.readWord(ADDRESS, INA219_REG.power);
  assert.equal(await cnvr(), 0);
  await clock.advance(2);
  assert.equal(await cnvr(), 2, 'continuous mode converts again');
});

test('triggered mode converts once per trigger and holds the result', async () => {
  const { analog, device, ina } = rig({ ...EXAMPLE, mode: 'shunt-bus-triggered' });
  analog.shuntVoltageV = 0.010;
  analog.busVoltageV = 5;
  const first = await ina.read();
  assert.ok(Math.abs(first.currentA - 5) < 1e-9);
  analog.shuntVoltageV = 0.020;
  assert.equal(device.peek(INA219_REG.shuntVoltage), 1000, 'no conversion without a trigger');
  assert.ok(Math.abs((await ina.read()).currentA - 10) < 1e-9, 'each read() triggers a new conversion');
});
