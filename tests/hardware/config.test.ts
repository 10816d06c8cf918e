// The hardware config schema, and `heliomesh hw read` on the virtual node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatReading, loadHardwareConfig, readOnce } from '../../cli/hw.js';
import { parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';

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
  bad({ sensors: [minimal.sensors[0], { ...minimal.sensors[1], address: 0x40 }] }, /address 0x40 is already used by solar[\s\S]*sensors\[1\]\.address/);
  bad({ sensors: [minimal.sensors[1]] }, /role "solar"/);
  bad({ sensors: [minimal.sensors[0], { ...minimal.sensors[1], address: 0x50 }] }, /sensors\[1\]\.address/);
  bad({ battery: { chemistry: 'lifepo4', capacityWh: 40 } }, /would overcharge LiFePO4/);
  bad({ charger: { kind: 'bq25895', inputCurrentLimitA: 4, inputVoltageLimitV: 6 } }, /charger\.inputCurrentLimitA/);
  bad({ charger: { kind: 'mcp73871', pins: { stat1: { bcm: 5 }, stat2: { bcm: 6 } } } }, /charger\.pins\.pg/);
  bad({ battery: { chemistry: 'li-ion', capacityWh: 37, ocvCurve: [[0, 3], [100, 2]] } }, /rise strictly/);
  assert.equal(parseHardwareConfig({ ...minimal, charger: { kind: 'none' }, battery: { chemistry: 'lifepo4', capacityWh: 40 } }).battery.chemistry, 'lifepo4');
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
