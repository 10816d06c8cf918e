// The physical plant behind the virtual registers: sun, clouds, panel, and energy
// conservation over a simulated day — in the plant's own books and through the sensors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import { type HardwareConfigInput, parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { BatteryEstimator } from '../../hardware/battery.js';
import { Bq25895 } from '../../hardware/bq25895.js';
import { Ina219 } from '../../hardware/ina219.js';
import { buildNode } from '../../hardware/node.js';
import { VirtualNode } from '../../hardware/virtual/node.js';
import { Panel } from '../../hardware/virtual/panel.js';
import { CloudProcess, clearSkyGhi } from '../../hardware/virtual/sun.js';

const DAY_MS = 86_400_000;

test('clear sky: overhead sun at the equinox, and a June day in Madrid', () => {
  const noon = clearSkyGhi(Date.parse('2024-03-20T12:07:00Z'), 0, 0); // solar noon at 0°, 0°
  assert.ok(Math.abs(noon - 1098 * Math.exp(-0.057)) < 2, `GHI ${noon}`);
  const start = Date.parse('2024-06-21T00:00:00Z');
  let sunrise = -1;
  let peakAt = -1;
  let peak = 0;
  for (let m = 0; m < 24 * 60; m++) {
    const g = clearSkyGhi(start + m * 60_000, 40.4, -3.7);
    if (g > 0 && sunrise < 0) sunrise = m;
    if (g > peak) [peak, peakAt] = [g, m];
  }
  // Madrid: sunrise ≈ 04:45 UTC, solar noon ≈ 12:16 UTC on the solstice.
  assert.ok(sunrise >= 4 * 60 + 30 && sunrise <= 5 * 60, `sunrise at minute ${sunrise}`);
  assert.ok(peakAt >= 12 * 60 && peakAt <= 12 * 60 + 30, `peak at minute ${peakAt}`);
  assert.ok(peak > 850 && peak < 1000, `peak ${peak} W/m²`);
  assert.equal(clearSkyGhi(start + 22 * 3_600_000, 40.4, -3.7), 0);
});

test('clouds: seeded, bounded, independent of how often they are asked for', () => {
  const o = { seed: 7, meanCover: 0.4, sdCover: 0.3, correlationMinutes: 60 };
  const dense = new CloudProcess(o, 0);
  const sparse = new CloudProcess(o, 0);
  const denseValues: number[] = [];
  for (let m = 0; m <= 600; m++) denseValues.push(dense.coverAt(m * 60_000));
  assert.equal(sparse.coverAt(600 * 60_000), denseValues[600]);
  assert.ok(denseValues.every((c) => c >= 0 && c <= 1));
  assert.ok(Math.max(...denseValues) - Math.min(...denseValues) > 0.2, 'the weather changes');
  const other = new CloudProcess({ ...o, seed: 8 }, 0);
  assert.notEqual(other.coverAt(300 * 60_000), denseValues[300]);
  const clear = new CloudProcess({ ...o, meanCover: 0, sdCover: 0 }, 0);
  assert.equal(clear.transmissionAt(5_000_000), 1);
  const overcast = new CloudProcess({ ...o, meanCover: 1, sdCover: 0 }, 0);
  assert.equal(overcast.transmissionAt(5_000_000), 0.25, 'Kasten–Czeplak: 1 − 0.75 at full cover');
});

test('panel: MPP at the rated point, and what VINDPM and IINLIM do to it', () => {
  const panel = new Panel({ peakW: 15, vocV: 7.2, vmpV: 6.0, derate: 1 });
  const c = panel.curve(1000);
  const imp = panel.mppCurrent(c);
  assert.ok(Math.abs(imp * panel.voltageAt(imp, c) - 15) < 1e-6);
  assert.ok(Math.abs(panel.voltageAt(imp, c) - 6.0) < 1e-6);
  const atVmp = panel.operatingPoint(1000, { inputVoltageLimitV: 6.0, inputCurrentLimitA: 3.25 }, 100);
  assert.ok(Math.abs(atVmp.powerW - 15) < 1e-3 && atVmp.inVoltageRegulation);
  const tooLow = panel.operatingPoint(1000, { inputVoltageLimitV: 4.4, inputCurrentLimitA: 3.25 }, 100);
  assert.ok(tooLow.powerW < 0.8 * atVmp.powerW, `VINDPM 4.4 V: ${tooLow.powerW} W, past the knee`);
  const limited = panel.operatingPoint(1000, { inputVoltageLimitV: 4.4, inputCurrentLimitA: 0.5 }, 100);
  assert.ok(Math.abs(limited.currentA - 0.5) < 1e-9 && limited.inCurrentRegulation);
  const light = panel.operatingPoint(1000, { inputVoltageLimitV: 6.0, inputCurrentLimitA: 3.25 }, 5);
  assert.ok(Math.abs(light.powerW - 5) < 1e-6 && light.voltageV > 6.0, 'a small demand is met left of the MPP');
});

test('energy is conserved in the plant books over a simulated day', () => {
  const clock = new VirtualClock(Date.parse('2024-06-21T00:00:00Z'));
  const config = parseHardwareConfig({ ...referenceHardwareConfig('virtual'), virtual: { stepMs: 30_000 } } satisfies HardwareConfigInput);
  const node = new VirtualNode({ config, clock });
  try {
    const before = node.plant.cell.energyJ;
    node.plant.advanceTo(clock.now() + DAY_MS);
    const l = node.plant.ledger;
    const eta = node.plant.options.chargerEfficiency;
    const { chargeEfficiency: ec, dischargeEfficiency: ed } = node.plant.cell.spec;
    assert.ok(l.harvestedJ > 100_000, `a sunny day harvests: ${l.harvestedJ} J`);
    assert.ok(Math.abs(l.batteryInJ - l.batteryOutJ - (l.harvestedJ * eta - l.consumedJ)) < 1e-6 * l.harvestedJ);
    assert.ok(Math.abs(l.storedChangeJ - (l.batteryInJ * ec - l.batteryOutJ / ed)) < 1e-6 * l.harvestedJ);
    assert.ok(Math.abs(node.plant.cell.energyJ - before - l.storedChangeJ) < 1e-6);
  } finally {
    node.dispose();
  }
});

test('battery Δ = harvested × efficiency − consumed, measured through the INA219 drivers over a day', async () => {
  const config = parseHardwareConfig({
    ...referenceHardwareConfig('virtual'),
    virtual: { stepMs: 60_000, initialSocPct: 40 },
  } satisfies HardwareConfigInput);
  const clock = new VirtualClock(Date.parse('2024-06-21T00:00:00Z'));
  const node = new VirtualNode({ config, clock });
  try {
    const sensors = Object.fromEntries(config.sensors.map((s) => [s.role, new Ina219(node.bus, clock, { address: s.address, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA })]));
    for (const ina of Object.values(sensors)) await ina.init();
    const charger = new Bq25895(node.bus, clock);
    const solarSettings = { inputCurrentLimitA: 3.0, inputVoltageLimitV: 6.0 };
    const estimator = new BatteryEstimator({ ...config.battery, initialSocPct: 40 });
    const eta = config.virtual.chargerEfficiency;
    let netFromSensorsJ = 0; // Σ (harvest × η − load) · Δt
    let batteryTerminalJ = 0; // Σ battery-side power · Δt
    const storedBefore = node.plant.cell.energyJ;
    const estimateBefore = estimator.estimate.energyJ;
    for (let minute = 0; minute < 24 * 60; minute++) {
      await charger.ensureSolarSettings(solarSettings); // as the node does after each sunrise
      const solar = await sensors.solar!.read();
      const battery = await sensors.battery!.read();
      const load = await sensors.load!.read();
      estimator.update({ timeMs: clock.now(), voltageV: battery.busVoltageV, currentA: battery.currentA });
      netFromSensorsJ += (solar.powerW * eta - load.powerW) * 60;
      batteryTerminalJ += battery.powerW * 60;
      await clock.advance(60_000);
    }
    estimator.update({ timeMs: clock.now(), voltageV: 4, currentA: 0 }); // closes the last interval
    node.plant.advanceTo(clock.now()); // …in the plant too
    const l = node.plant.ledger;
    assert.equal(l.unservedJ, 0, 'the battery never ran empty');
    const throughput = l.batteryInJ + l.batteryOutJ;
    assert.ok(throughput > 50_000, `the battery works: ${throughput} J through it`);
    const truthNet = l.batteryInJ - l.batteryOutJ;
    assert.ok(Math.abs(netFromSensorsJ - truthNet) < 0.001 * throughput, `sensors ${netFromSensorsJ} J vs plant ${truthNet} J`);
    assert.ok(Math.abs(batteryTerminalJ - truthNet) < 0.001 * throughput, `battery sensor ${batteryTerminalJ} J vs plant ${truthNet} J`);
    const storedDelta = node.plant.cell.energyJ - storedBefore;
    const estimatedDelta = estimator.estimate.energyJ - estimateBefore;
    assert.ok(Math.abs(estimatedDelta - storedDelta) < 0.001 * throughput, `estimator Δ ${estimatedDelta} J vs stored Δ ${storedDelta} J`);
  } finally {
    node.dispose();
  }
});

test('VINDPM at the panel\'s Vmp harvests more than the reset value; IINLIM\'s 500 mA default even less', async () => {
  const config = parseHardwareConfig({
    ...referenceHardwareConfig('virtual'),
    virtual: { initialSocPct: 30, clouds: { meanCover: 0, sdCover: 0 } },
  } satisfies HardwareConfigInput);
  const harvestW = async (prepare: (n: Awaited<ReturnType<typeof buildNode>>) => Promise<void>) => {
    const clock = new VirtualClock(Date.parse('2024-06-21T12:15:00Z'));
    const node = await buildNode(config, { clock });
    try {
      await node.applyPowerMode('high');
      node.virtual!.setJobRunning(true); // 6.3 W of load plus charging: more than the panel gives
      await prepare(node);
      await clock.advance(1000);
      return node.virtual!.plant.state().panel.powerW;
    } finally {
      await node.close();
    }
  };
  const solar = await harvestW(async (n) => { await n.read(); }); // read() applies 3 A / 6.0 V
  const relative = await harvestW(async (n) => {
    n.virtual!.plant.state(); // sunrise already happened: the charger holds its reset values
    await n.bus.writeByte(0x6a, 0x00, 0x3a); // IINLIM 3.0 A, VINDPM left at 4.4 V
  });
  const defaults = await harvestW(async (n) => { n.virtual!.plant.state(); });
  assert.ok(solar > 10, `at Vmp: ${solar} W`);
  assert.ok(relative < 0.85 * solar, `VINDPM 4.4 V: ${relative} W vs ${solar} W`);
  assert.ok(defaults < 0.4 * solar, `500 mA: ${defaults} W`);
});

test('the load follows the power mode written to the cpufreq tree', async () => {
  const clock = new VirtualClock(Date.parse('2024-06-21T22:00:00Z'));
  const node = await buildNode(referenceHardwareConfig('virtual'), { clock });
  try {
    const v = node.virtual!;
    const load = () => v.plant.state().loadDemandW;
    assert.equal(load(), 2.7, 'idle');
    v.setJobRunning(true);
    await node.applyPowerMode('high');
    assert.ok(Math.abs(load() - 6.3) < 1e-9);
    await node.applyPowerMode('medium'); // 2 of 4 cores at 1.0 of 1.5 GHz
    assert.ok(Math.abs(load() - (2.7 + 3.6 * 0.5 * (1 / 1.5) ** 2)) < 1e-9);
    await node.applyPowerMode('low'); // 1 core, powersave at 600 MHz
    assert.ok(Math.abs(load() - (2.7 + 3.6 * 0.25 * 0.4 ** 2)) < 1e-9);
    const r = await node.read();
    const sensed = r.sensors.find((s) => s.role === 'load')!;
    assert.ok(Math.abs(sensed.powerMw! / 1000 - load()) < 0.01, `load INA219 ${sensed.powerMw} mW`);
    assert.equal(r.powerMode, 'low');
    await assert.rejects(node.applyPowerMode('turbo'), /unknown power mode "turbo"/);
  } finally {
    await node.close();
  }
});
