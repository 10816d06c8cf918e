// One node's drivers, built from its hardware config — over the Pi's real buses or over
// the virtual node — and one reading of all of them. The agent and `heliomesh hw` share it.
// A failing part never fails the reading: it shows up as an error and a health flag.
import { monotonicMs, type Clock } from '../ground/clock.js';
import { BatteryEstimator, type BatteryEstimate } from './battery.js';
import { EnergyIntegrator } from './energy.js';
import { Bq25895, type Bq25895Adc, type Bq25895Faults, type Bq25895Status, type SolarSettings, anyFault } from './bq25895.js';
import { ChargerPins, type PinChargerReading } from './chargerPins.js';
import type { HardwareConfig, SensorConfig } from './config.js';
import { CpuFreq, type CpuState, type PowerMode } from './cpufreq.js';
import { GaugeBattery, type GaugeReading } from './gauge.js';
import { type GpioOpener, onoffOpener } from './gpio.js';
import { type I2cBus, errorText, openI2cBus } from './i2c.js';
import { Ina219, type Ina219Samples } from './ina219.js';
import { VirtualNode } from './virtual/node.js';

export interface SensorReading {
  role: SensorConfig['role'];
  name: string;
  address: number;
  ok: boolean;
  busVoltageV?: number;
  shuntVoltageMv?: number;
  currentMa?: number;
  powerMw?: number;
  /** The sensor had lost its configuration (brown-out) and was reprogrammed. */
  recoveredFromReset?: boolean;
  error?: string;
}

export interface ChargerReading {
  kind: HardwareConfig['charger']['kind'];
  ok: boolean;
  powerGood: boolean | null;
  status?: Bq25895Status;
  faults?: { latched: Bq25895Faults; present: Bq25895Faults };
  adc?: Bq25895Adc;
  /** IINLIM/VINDPM had been reset by the charger (input plugged in) and were written again. */
  settingsReapplied?: boolean;
  pins?: PinChargerReading;
  error?: string;
}

export interface NodeReading {
  /** Wall time of the reading (steps with NTP). */
  timeMs: number;
  /** Monotonic time of the reading: what intervals between readings are measured on. */
  monotonicMs: number;
  sensors: SensorReading[];
  charger: ChargerReading;
  /** The battery level, from the source the config names (`battery.source`). */
  battery: BatteryEstimate | null;
  /** The MAX17048's own reading, when it is the battery source. */
  gauge?: GaugeReading;
  harvest: { totalJ: number; unmeasuredMs: number };
  /** The configured power mode the CPU is in, or null if none matches `cpu`. */
  powerMode: string | null;
  cpu: CpuState | null;
  /** Short machine-readable problems, e.g. "sensor-absent:battery@0x41". */
  health: string[];
}

type ChargerDriver =
  | { kind: 'bq25895'; driver: Bq25895; solar: SolarSettings }
  | { kind: 'mcp73871' | 'bq24074'; driver: ChargerPins }
  | { kind: 'none' };

export interface BuildOptions {
  clock: Clock;
  /** For a virtual node: where to lay out its cpufreq tree (default: a temporary folder). */
  virtualCpufreqRoot?: string;
}

export class NodeHardware {
  readonly sensors: Array<{ config: SensorConfig; name: string; ina: Ina219 }>;
  /** The battery level's source: exactly one of these two is set. */
  readonly estimator: BatteryEstimator | undefined;
  readonly gauge: GaugeBattery | undefined;
  readonly harvest: EnergyIntegrator;
  readonly powerModes: PowerMode[];
  private lastPowerGood: boolean | null = null;
  private chargerIdentified = false;
  private readonly pgListeners = new Set<(powerGood: boolean) => void>();

  constructor(
    readonly config: HardwareConfig,
    readonly clock: Clock,
    readonly bus: I2cBus,
    readonly charger: ChargerDriver,
    readonly cpu: CpuFreq,
    readonly virtual: VirtualNode | undefined,
    /** The gauge's bus when it is not `bus` (another /dev/i2c-N); closed with the node. */
    private readonly gaugeBus: I2cBus | undefined = undefined,
  ) {
    this.sensors = config.sensors.map((s) => {
      const name = s.name ?? s.role;
      const adc = { bits: 12 as const, samples: s.adcSamples as Ina219Samples };
      const ina = new Ina219(bus, clock, {
        address: s.address, shuntOhms: s.shuntOhms, maxCurrentA: s.maxCurrentA, label: name, busRangeV: s.busRangeV, busAdc: adc, shuntAdc: adc,
      });
      return { config: s, name, ina };
    });
    const b = config.battery;
    if (b.gauge) {
      this.gauge = new GaugeBattery(gaugeBus ?? bus, b.gauge, b.capacityWh * 3600);
    } else {
      this.estimator = new BatteryEstimator({
        capacityWh: b.capacityWh, chemistry: b.chemistry, ocvCurve: b.ocvCurve,
        chargeEfficiency: b.chargeEfficiency, dischargeEfficiency: b.dischargeEfficiency, initialSocPct: b.initialSocPct,
      });
    }
    // Readings minutes apart say nothing of the sun between them: such a gap is unmeasured.
    this.harvest = new EnergyIntegrator(5 * 60_000);
    this.powerModes = Object.entries(config.cpu.modes).map(([name, m]) => ({ name, ...m }));
    if (charger.kind === 'mcp73871' || charger.kind === 'bq24074') {
      // An interrupt is a change by definition, even before the first read.
      charger.driver.onPowerGoodChange((pg) => {
        this.lastPowerGood = pg;
        for (const l of this.pgListeners) l(pg);
      });
    }
  }

  /**
   * Called as soon as the charger's power-good changes: by interrupt with status pins, at
   * the next read() with a BQ25895 (whose INT line this build does not wire).
   */
  onPowerGoodChange(listener: (powerGood: boolean) => void): () => void {
    this.pgListeners.add(listener);
    return () => this.pgListeners.delete(listener);
  }

  async applyPowerMode(name: string): Promise<void> {
    const mode = this.powerModes.find((m) => m.name === name);
    if (!mode) throw new Error(`unknown power mode "${name}"; the config defines ${this.powerModes.map((m) => m.name).join(', ')}`);
    await this.cpu.applyMode(mode);
    this.virtual?.settingsChanged();
  }

  async read(): Promise<NodeReading> {
    const timeMs = this.clock.now();
    const monoMs = monotonicMs(this.clock);
    const health: string[] = [];
    // The charger first: if it has just forgotten its input limits, they are restored
    // before the sensors see the input.
    const charger = await this.readCharger(health);
    const sensors: SensorReading[] = [];
    for (const s of this.sensors) sensors.push(await this.readSensor(s, health));

    const solar = sensors.find((s) => s.role === 'solar' && s.ok);
    // Energy is power × elapsed time, so it is integrated on monotonic time: a wall-clock
    // step would otherwise add (or lose) the step's length worth of energy.
    this.harvest.add(monoMs, solar ? solar.powerMw! / 1000 : null);
    if (!solar) health.push('harvest-unmeasured');
    // The one place the battery level is decided: the gauge's SOC, or the INA219 estimate.
    let battery: BatteryEstimate | null = null;
    let gauge: GaugeReading | undefined;
    if (this.gauge) {
      ({ battery, gauge } = await this.gauge.read(monoMs, health));
    } else {
      const bat = sensors.find((s) => s.role === 'battery' && s.ok);
      if (bat) battery = this.estimator!.update({ timeMs: monoMs, voltageV: bat.busVoltageV!, currentA: bat.currentMa! / 1000 });
    }
    if (!battery) health.push('battery-estimate-stale');

    // A stuck power-good line is only visible against the panel's own current and voltage.
    if (solar && charger.powerGood !== null) {
      if (!charger.powerGood && solar.currentMa! > 50) health.push('power-good-inconsistent:panel-current-without-power-good');
      if (charger.powerGood && solar.busVoltageV! < 1) health.push('power-good-inconsistent:power-good-without-panel-voltage');
    }
    let powerMode: string | null = null;
    let cpu: CpuState | null = null;
    try {
      cpu = await this.cpu.readState();
      powerMode = this.powerModes.find((m) => m.governor === cpu!.governor && m.maxFreqKhz === cpu!.maxFreqKhz && m.onlineCores === cpu!.onlineCores)?.name ?? null;
    } catch (err) {
      health.push(`cpufreq-error:${errorText(err)}`);
    }
    return { timeMs, monotonicMs: monoMs, sensors, charger, battery, ...(gauge ? { gauge } : {}), harvest: { totalJ: this.harvest.totalJ, unmeasuredMs: this.harvest.unmeasuredMs }, powerMode, cpu, health };
  }

  async close(): Promise<void> {
    if (this.charger.kind === 'mcp73871' || this.charger.kind === 'bq24074') this.charger.driver.close();
    await this.bus.close();
    await this.gaugeBus?.close();
    this.virtual?.dispose();
  }

  private async readSensor(s: NodeHardware['sensors'][number], health: string[]): Promise<SensorReading> {
    const base = { role: s.config.role, name: s.name, address: s.config.address };
    const at = `${s.name}@0x${s.config.address.toString(16)}`;
    try {
      const r = await s.ina.read();
      if (r.recoveredFromReset) health.push(`sensor-reset:${at}`);
      return {
        ...base, ok: true, busVoltageV: r.busVoltageV, shuntVoltageMv: r.shuntVoltageV * 1000,
        currentMa: r.currentA * 1000, powerMw: r.powerW * 1000, recoveredFromReset: r.recoveredFromReset,
      };
    } catch (err) {
      const kind = (err as { kind?: string }).kind ?? 'error';
      health.push(`sensor-${kind}:${at}`);
      return { ...base, ok: false, error: errorText(err) };
    }
  }

  private async readCharger(health: string[]): Promise<ChargerReading> {
    const c = this.charger;
    if (c.kind === 'none') return { kind: 'none', ok: true, powerGood: null };
    try {
      if (c.kind === 'bq25895') {
        if (!this.chargerIdentified) {
          await c.driver.identify();
          this.chargerIdentified = true;
        }
        const status = await c.driver.readStatus();
        // Every sunrise the charger forgets IINLIM/VINDPM; put them back before they cost
        // harvest. Also at night: the same call keeps the I2C watchdog off.
        const settingsReapplied = await c.driver.ensureSolarSettings(c.solar);
        const faults = await c.driver.readFaults();
        const adc = await c.driver.readAdc();
        if (anyFault(faults.present)) health.push(`charger-fault:${JSON.stringify(faults.present)}`);
        this.powerGoodSeen(status.powerGood);
        return { kind: c.kind, ok: true, powerGood: status.powerGood, status, faults, adc, settingsReapplied };
      }
      const pins = await c.driver.read();
      if (pins.powerGood !== null) this.powerGoodSeen(pins.powerGood);
      if (pins.flapping) health.push('power-good-flapping');
      if (pins.state === 'invalid') health.push(`charger-pins-invalid:${JSON.stringify(pins.asserted)}`);
      if (pins.state === 'fault') health.push('charger-fault');
      if (pins.interruptError) health.push(`charger-pin-interrupt-error:${pins.interruptError}`);
      return { kind: c.kind, ok: true, powerGood: pins.powerGood, pins };
    } catch (err) {
      health.push(`charger-error:${c.kind}`);
      return { kind: c.kind, ok: false, powerGood: null, error: errorText(err) };
    }
  }

  private powerGoodSeen(pg: boolean): void {
    if (pg === this.lastPowerGood) return;
    const first = this.lastPowerGood === null;
    this.lastPowerGood = pg;
    if (!first) for (const l of this.pgListeners) l(pg);
  }
}

/** Builds every driver the config names, on the real buses or on a virtual node. */
export async function buildNode(config: HardwareConfig, options: BuildOptions): Promise<NodeHardware> {
  const { clock } = options;
  let virtual: VirtualNode | undefined;
  let bus: I2cBus;
  let opener: GpioOpener;
  let cpuRoot: string;
  if (config.kind === 'virtual') {
    virtual = new VirtualNode({ config, clock, cpufreqRoot: options.virtualCpufreqRoot });
    bus = virtual.bus;
    opener = virtual.gpio.opener();
    cpuRoot = virtual.cpufreqRoot;
  } else {
    bus = await openI2cBus(config.i2cBus);
    opener = onoffOpener(config.gpio.sysfsRoot, config.gpio.chipLabel);
    cpuRoot = config.cpu.sysfsRoot;
  }
  // The virtual node has one bus, which carries its gauge too.
  const gaugeBusNumber = config.battery.gauge?.i2cBus;
  let gaugeBus: I2cBus | undefined;
  try {
    if (!virtual && gaugeBusNumber !== undefined && gaugeBusNumber !== config.i2cBus) gaugeBus = await openI2cBus(gaugeBusNumber);
    let charger: ChargerDriver;
    const c = config.charger;
    if (c.kind === 'bq25895') {
      const solar = { inputCurrentLimitA: c.inputCurrentLimitA, inputVoltageLimitV: c.inputVoltageLimitV };
      charger = { kind: 'bq25895', driver: new Bq25895(bus, clock, { address: c.address }), solar };
    } else if (c.kind === 'mcp73871' || c.kind === 'bq24074') {
      charger = { kind: c.kind, driver: await ChargerPins.open({ kind: c.kind, pins: c.pins, open: opener, clock }) };
    } else {
      charger = { kind: 'none' };
    }
    // I2C devices are first touched by read(), so one that is missing now is reported
    // there (and found again if it comes back) instead of keeping the node from starting.
    return new NodeHardware(config, clock, bus, charger, new CpuFreq(cpuRoot), virtual, gaugeBus);
  } catch (err) {
    await bus.close();
    await gaugeBus?.close();
    virtual?.dispose();
    throw err;
  }
}
