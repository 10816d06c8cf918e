// The hardware config schema, and `heliomesh hw read` on the virtual node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatReading, loadHardwareConfig, readOnce } from '../../cli/hw.js';
import { hardwareConfigSchema, parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { looseObjects } from '../support/strict-schema.js';

const minimal = {
  sensors: [
    { role: 'solar', address: 0x40, shuntOhms: 0.1, maxCurrentA: 3 },
    { role: 'battery', address: 0x41, shuntOhms: 0.05, maxCurrentA: 5 },
  ],
  charger: { kind: 'mcp73871', pins: { stat1: { bcm: 5 }, stat2: { bcm: 6 }, pg: { bcm: 13 } } },
  battery: { chemistry: 'li-ion', capacityWh: 37 },
};

test('a minimal config gets its defaults', () => {
  const c = parseHardwareConfig(minimal);
  assert.equal(c.kind, 'real');
  assert.equal(c.i2cBus, 1);
  assert.equal(c.sensors[0]!.busRangeV, 16);
  assert.equal(c.sensors[0]!.adcSamples, 32);
  assert.equal(c.charger.kind === 'mcp73871' && c.charger.pins.pg.activeLow, true);
  assert.equal(c.cpu.sysfsRoot, '/sys/devices/system/cpu');
  assert.deepEqual(Object.keys(c.cpu.modes), ['low', 'medium', 'high']);
  assert.equal(c.gpio.sysfsRoot, '/sys/class/gpio');
  assert.equal(c.battery.chargeEfficiency, 0.95);
  assert.equal(c.virtual.panel.peakW, 15);
  assert.equal(referenceHardwareConfig('real').charger.kind, 'bq25895');
});

test('invalid configs are refused with the path and the reason', () => {
  const bad = (patch: object, pattern: RegExp) => assert.throws(() => parseHardwareConfig({ ...minimal, ...patch }), pattern);
  bad({ sensors: [minimal.sensors[0], { ...minimal.sensors[1], address: 0x40 }] }, /sensors\[1\]\.address: address 0x40 is already used by solar/);
  bad({ sensors: [minimal.sensors[1]] }, /role "solar"/);
  bad({ sensors: [minimal.sensors[0], { ...minimal.sensors[1], address: 0x50 }] }, /sensors\[1\]\.address/);
  bad({ battery: { chemistry: 'lifepo4', capacityWh: 40 } }, /would overcharge LiFePO4/);
  bad({ charger: { kind: 'bq25895', inputCurrentLimitA: 4, inputVoltageLimitV: 6 } }, /charger\.inputCurrentLimitA/);
  bad({ charger: { kind: 'mcp73871', pins: { stat1: { bcm: 5 }, stat2: { bcm: 6 } } } }, /charger\.pins\.pg/);
  bad({ battery: { chemistry: 'li-ion', capacityWh: 37, ocvCurve: [[0, 3], [100, 2]] } }, /rise strictly/);
  assert.equal(parseHardwareConfig({ ...minimal, charger: { kind: 'none' }, battery: { chemistry: 'lifepo4', capacityWh: 40 } }).battery.chemistry, 'lifepo4');
});

test('a misspelled key is refused by its path and its right spelling', () => {
  const refused = (patch: object, key: string, meant: string) => assert.throws(() => parseHardwareConfig({ ...minimal, ...patch }, 'hw.yaml'), (err: Error) => {
    assert.ok(err.message.startsWith('hw.yaml is invalid'), err.message);
    assert.ok(err.message.includes(`  ${key}: unknown key; did you mean ${meant}?`), `${key} → ${meant}:\n${err.message}`);
    return true;
  });
  refused({ i2cbus: 1 }, 'i2cbus', 'i2cBus');
  refused({ charger: { kind: 'bq25895', inputCurrentLimitA: 1, inputVoltageLimitV: 6, inputVoltageLimit: 6 } }, 'charger.inputVoltageLimit', 'charger.inputVoltageLimitV');
  refused({ charger: { kind: 'mcp73871', pins: { stat1: { bcm: 5 }, stat2: { bcm: 6 }, pg: { bcm: 13, activelow: false } } } }, 'charger.pins.pg.activelow', 'charger.pins.pg.activeLow');
  refused({ sensors: [{ ...minimal.sensors[0], adcSample: 8 }, minimal.sensors[1]] }, 'sensors[0].adcSample', 'sensors[0].adcSamples');
  refused({ cpu: { modes: { low: { governor: 'powersave', maxFreqKhz: 600_000, onlineCore: 1 } } } }, 'cpu.modes.low.onlineCore', 'cpu.modes.low.onlineCores');
  refused({ gpio: { chiplabel: 'pinctrl-bcm2711' } }, 'gpio.chiplabel', 'gpio.chipLabel');
  refused({ virtual: { panel: { peakw: 10 } } }, 'virtual.panel.peakw', 'virtual.panel.peakW');
  refused({ virtual: { cloud: {} } }, 'virtual.cloud', 'virtual.clouds');
  refused({ virtual: { pinCharger: { chargeVoltage: 4.1 } } }, 'virtual.pinCharger.chargeVoltage', 'virtual.pinCharger.chargeVoltageV');
  // A charger without registers has no limits to set: the message says nothing may be set.
  assert.throws(() => parseHardwareConfig({ ...minimal, charger: { kind: 'none', address: 0x6a } }), /charger\.address: unknown key; the keys here are kind/);
});

test('battery.source max17048: the gauge\'s defaults, its settings checked, a misspelled key named', () => {
  const gauge = (battery: object, patch: object = {}) => parseHardwareConfig({ ...minimal, battery: { ...minimal.battery, ...battery }, ...patch }, 'hw.yaml');
  assert.equal(parseHardwareConfig(minimal).battery.source, 'ina219', 'the INA219 estimate stays the default');
  assert.equal(parseHardwareConfig(minimal).battery.gauge, undefined);
  // The MAX17048's fixed address (19-6171, "Slave Address") and CONFIG.ATHD's power-on 4 %.
  assert.deepEqual(gauge({ source: 'max17048' }).battery.gauge, { address: 0x36, alertThresholdPct: 4 });
  assert.deepEqual(gauge({ source: 'max17048', gauge: { i2cBus: 3, alertThresholdPct: 12 } }).battery.gauge, { i2cBus: 3, address: 0x36, alertThresholdPct: 12 });
  // A HAT with only the panel's and the Pi's INA219s: the gauge gives the level, the load sensor the consumption.
  const load = { role: 'load', address: 0x44, shuntOhms: 0.1, maxCurrentA: 3 };
  assert.equal(gauge({ source: 'max17048' }, { sensors: [minimal.sensors[0], load] }).sensors.length, 2);

  const bad = (battery: object, pattern: RegExp, patch: object = {}) => assert.throws(() => gauge(battery, patch), pattern);
  bad({ source: 'bq27441' }, /battery\.source: .*"ina219"\|"max17048"/);
  bad({ source: 'max17048', gauge: { alertThresholdPct: 40 } }, /battery\.gauge\.alertThresholdPct/);
  bad({ source: 'max17048', gauge: { alertThresholdPct: 2.5 } }, /battery\.gauge\.alertThresholdPct/);
  bad({ source: 'max17048', initialSocPct: 50 }, /battery\.initialSocPct: starts the INA219 estimate; with source max17048 the gauge reports the state of charge itself/);
  bad({ gauge: { alertThresholdPct: 10 } }, /battery\.gauge: describes a MAX17048 the node does not use: set source: max17048/);
  bad({ source: 'max17048' }, /sensors: the node's consumption needs an INA219 with role "load"/, { sensors: [minimal.sensors[0]] });
  bad({}, /sensors: a node needs an INA219 with role "battery" for the battery estimate \(or battery\.source max17048\)/, { sensors: [minimal.sensors[0], load] });
  bad({ source: 'max17048', gauge: { address: 0x6a } }, /battery\.gauge\.address: address 0x6a is already used by the charger/,
    { charger: { kind: 'bq25895', inputCurrentLimitA: 3, inputVoltageLimitV: 6 } });
  bad({ source: 'max17048', gauge: { address: 0x41 } }, /battery\.gauge\.address: address 0x41 is already used by battery/);

  const refused = (battery: object, key: string, meant: string) => assert.throws(() => gauge(battery), (err: Error) => {
    assert.ok(err.message.includes(`  ${key}: unknown key; did you mean ${meant}?`), `${key} → ${meant}:\n${err.message}`);
    return true;
  });
  refused({ sorce: 'max17048' }, 'battery.sorce', 'battery.source');
  refused({ source: 'max17048', gauge: { alertThreshold: 10 } }, 'battery.gauge.alertThreshold', 'battery.gauge.alertThresholdPct');
  refused({ source: 'max17048', gauge: { adress: 0x36 } }, 'battery.gauge.adress', 'battery.gauge.address');
  refused({ source: 'max17048', gauge: { i2cbus: 1 } }, 'battery.gauge.i2cbus', 'battery.gauge.i2cBus');
});

test('every object of the hardware config schema is strict', () => {
  assert.deepEqual(looseObjects(hardwareConfigSchema), []);
});

test('config files: YAML or JSON, alone or under `hardware:` in a node config', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-hwcfg-'));
  try {
    const yamlFile = join(dir, 'node.yaml');
    writeFileSync(yamlFile, `node: pi-7\nhardware:\n  sensors:\n    - { role: solar, address: 0x40, shuntOhms: 0.1, maxCurrentA: 3 }\n    - { role: battery, address: 0x41, shuntOhms: 0.1, maxCurrentA: 3 }\n  charger: { kind: none }\n  battery: { chemistry: li-ion, capacityWh: 20 }\n`);
    const c = await loadHardwareConfig({ config: yamlFile });
    assert.equal(c.sensors[1]!.address, 0x41);
    assert.equal((await loadHardwareConfig({ config: yamlFile, virtual: true })).kind, 'virtual');
    const jsonFile = join(dir, 'hw.json');
    writeFileSync(jsonFile, JSON.stringify(minimal));
    assert.equal((await loadHardwareConfig({ config: jsonFile })).charger.kind, 'mcp73871');
    await assert.rejects(loadHardwareConfig({ config: join(dir, 'missing.yaml') }), /cannot read config/);
    // A misspelled key under `hardware:` is named by its path in the node's file.
    const typo = join(dir, 'typo.yaml');
    writeFileSync(typo, `node: pi-7\nhardware:\n  sensors:\n    - { role: solar, address: 0x40, shuntOhms: 0.1, maxCurrentA: 3 }\n    - { role: battery, address: 0x41, shuntOhms: 0.1, maxCurrentA: 3 }\n  charger: { kind: none }\n  battery: { chemistry: li-ion, capacityWH: 20 }\n`);
    await assert.rejects(loadHardwareConfig({ config: typo }), (err: Error) =>
      err.message.startsWith(`${typo} is invalid`) && err.message.includes('  hardware.battery.capacityWH: unknown key; did you mean hardware.battery.capacityWh?'));
    await assert.rejects(loadHardwareConfig({}), /pass --config FILE/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('hw read --virtual: a physically consistent reading', async () => {
  const r = await readOnce({ virtual: true, at: '2024-06-21T11:00:00Z' });
  assert.deepEqual(r.health, []);
  assert.equal(r.sensors.length, 3);
  for (const s of r.sensors) {
    assert.equal(s.ok, true);
    // The INA219 computes power from its own bus and current registers: within one power LSB
    // (3 A / 2^15 × 20 ≈ 1.8 mW with the reference calibration).
    assert.ok(Math.abs(s.powerMw! - s.busVoltageV! * s.currentMa!) <= 1.9, `${s.name}: ${s.powerMw} mW vs ${s.busVoltageV! * s.currentMa!}`);
    assert.ok(Math.abs(s.currentMa! - s.shuntVoltageMv! / 0.1) < 1, `${s.name}: Ohm's law through 0.1 Ω`);
  }
  const [solar, battery, load] = ['solar', 'battery', 'load'].map((role) => r.sensors.find((s) => s.role === role)!);
  assert.ok(solar!.powerMw! > 5000, 'late morning in June harvests');
  // Input × charger efficiency = system + battery.
  assert.ok(Math.abs(solar!.powerMw! * 0.9 - (load!.powerMw! + battery!.powerMw!)) < 0.01 * solar!.powerMw!);
  assert.ok(Math.abs(battery!.busVoltageV! - r.charger.adc!.batteryVoltageV) <= 0.02, 'charger ADC agrees within its 20 mV step');
  assert.equal(r.charger.status!.powerGood, true);
  assert.ok(r.battery!.socPct > 0 && r.battery!.socPct < 100);
  const text = formatReading(r, 'test');
  assert.match(text, /solar\s+0x40\s+\d+\.\d{3}/);
  assert.match(text, /health: ok/);
  const night = await readOnce({ virtual: true, at: '2024-06-21T23:00:00Z' });
  const nightSolar = night.sensors.find((s) => s.role === 'solar')!;
  assert.equal(nightSolar.powerMw, 0);
  assert.ok(night.sensors.find((s) => s.role === 'battery')!.currentMa! < 0, 'the battery carries the night');
  assert.equal(night.charger.status!.chrgStat, 'not-charging');
});
