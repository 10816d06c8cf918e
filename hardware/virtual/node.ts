// A whole virtual node from a hardware config: the plant, INA219, BQ25895 and MAX17048
// register models on a virtual I2C bus at the configured addresses, charger status lines on
// virtual GPIO, a cpufreq tree in a folder, and the fault switches.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Clock, type Timer } from '../../ground/clock.js';
import { steadyClock } from '../clock.js';
import type { HardwareConfig } from '../config.js';
import type { BinaryValue } from '../gpio.js';
import { VirtualI2cBus, type VirtualI2cDevice } from './bus.js';
import { type ChargerAnalog, type ChargerControl, type ChargerSettings, VirtualBq25895 } from './bq25895.js';
import { createCpufreqTree, PI4_CPU } from './cpufreq.js';
import { VirtualGpio } from './gpio.js';
import { type Ina219Analog, VirtualIna219 } from './ina219.js';
import { VirtualMax17048, cellAnalog } from './max17048.js';
import { Plant, type PlantState } from './plant.js';

/** MCP73871 low-battery output threshold (DS20002090 DC characteristics, VLBO 3.1 V option). */
const LBO_V = 3.1;

/** A charger without registers: its limits are set by resistors and fixed at build time. */
class FixedCharger implements ChargerControl {
  constructor(private readonly s: ChargerSettings) {}
  settings(): ChargerSettings {
    return this.s;
  }
  inputChanged(): void {}
}

export interface VirtualNodeOptions {
  config: HardwareConfig;
  clock: Clock;
  /** Folder for the virtual cpufreq tree; default: a new temporary folder removed by dispose(). */
  cpufreqRoot?: string;
}

export class VirtualNode {
  readonly bus = new VirtualI2cBus();
  readonly gpio = new VirtualGpio();
  readonly plant: Plant;
  readonly cpufreqRoot: string;
  readonly ina219s = new Map<number, VirtualIna219>();
  readonly bq25895: VirtualBq25895 | undefined;
  /** The UPS HAT's fuel gauge, wired to the plant's cell, when the config takes the battery level from one. */
  readonly max17048: VirtualMax17048 | undefined;
  private readonly ownsRoot: boolean;
  private timer: Timer | undefined;
  private readonly clock: Clock;
  private readonly config: HardwareConfig;

  constructor(options: VirtualNodeOptions) {
    const { config } = options;
    // The plant and its devices live in physical time, which a step of the node's wall
    // clock (NTP after a boot without RTC) does not move.
    const clock = steadyClock(options.clock);
    this.clock = clock;
    this.config = config;
    const v = config.virtual;
    this.ownsRoot = !options.cpufreqRoot;
    this.cpufreqRoot = options.cpufreqRoot ?? mkdtempSync(join(tmpdir(), 'heliomesh-cpu-'));
    createCpufreqTree(this.cpufreqRoot, PI4_CPU);

    const state = () => {
      this.plant.advanceTo(clock.now());
      return this.plant.state();
    };
    let charger: ChargerControl;
    if (config.charger.kind === 'bq25895') {
      this.bq25895 = new VirtualBq25895(() => chargerAnalog(state()), clock);
      charger = this.bq25895;
      this.bus.attach(config.charger.address, this.settling(this.bq25895));
    } else {
      const p = v.pinCharger;
      charger = new FixedCharger({
        hiz: false,
        inputCurrentLimitA: p.inputCurrentLimitA,
        inputVoltageLimitV: p.inputVoltageLimitV,
        chargeEnabled: true,
        chargeCurrentLimitA: p.chargeCurrentLimitA,
        // 10 % of the fast-charge current for pre-charge and termination, the usual
        // resistor choice on MCP73871 (PROG3) and BQ24074 (ITERM) boards.
        prechargeCurrentA: p.chargeCurrentLimitA / 10,
        terminationCurrentA: p.chargeCurrentLimitA / 10,
        chargeVoltageV: p.chargeVoltageV,
      });
    }

    this.plant = new Plant({
      startMs: clock.now(),
      sun: { latitudeDeg: v.latitudeDeg, longitudeDeg: v.longitudeDeg, clouds: v.clouds },
      panel: { ...v.panel },
      chargerEfficiency: v.chargerEfficiency,
      cell: {
        chemistry: config.battery.chemistry,
        capacityWh: config.battery.capacityWh,
        internalOhms: config.battery.internalOhms,
        chargeEfficiency: config.battery.chargeEfficiency,
        dischargeEfficiency: config.battery.dischargeEfficiency,
        ocvCurve: config.battery.ocvCurve,
      },
      initialSocPct: v.initialSocPct,
      load: v.load,
      cpufreqRoot: this.cpufreqRoot,
      cpuCores: PI4_CPU.cores,
      stepMs: v.stepMs,
    }, charger);

    for (const s of config.sensors) {
      const analog = (): Ina219Analog => sensorAnalog(s.role, s.shuntOhms, state());
      const device = new VirtualIna219(analog, clock);
      this.ina219s.set(s.address, device);
      this.bus.attach(s.address, this.settling(device));
    }
    const gauge = config.battery.gauge;
    if (gauge) {
      // The gauge sits on the cell's terminals, so it sees the cell under the present load.
      // Reading the power brings the plant up to now before the cell's SOC is taken.
      this.max17048 = new VirtualMax17048(cellAnalog(this.plant.cell, () => state().battery.powerW), clock);
      this.bus.attach(gauge.address, this.settling(this.max17048));
    }
    if (config.charger.kind === 'mcp73871' || config.charger.kind === 'bq24074') this.wirePins(config.charger);
  }

  /** Steps the plant on the clock, so status lines change between reads as on a real board. */
  start(): void {
    this.timer ??= this.clock.setInterval(() => {
      this.plant.advanceTo(this.clock.now());
      this.plant.state();
    }, this.config.virtual.stepMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  setJobRunning(running: boolean): void {
    this.plant.advanceTo(this.clock.now());
    this.plant.setJobRunning(running);
  }

  /** Re-reads settings the plant depends on (after a cpufreq write). */
  settingsChanged(): void {
    this.plant.advanceTo(this.clock.now());
    this.plant.invalidate();
  }

  readonly faults = {
    /** The next `count` reads from `address` fail with EIO. */
    i2cReadErrors: (address: number, count: number) => this.bus.failReads(address, count),
    /** The INA219 at `address` browns out: all registers back to power-on values. */
    brownOut: (address: number) => this.ina219(address).powerOnReset(),
    /** The fuel gauge browns out: its registers back to power-on values, RI set. */
    gaugeBrownOut: () => {
      if (!this.max17048) throw new Error('this virtual node has no MAX17048');
      this.max17048.powerOnReset();
    },
    /** The device at `address` stops answering (or comes back). */
    disappear: (address: number, gone = true) => this.bus.setAbsent(address, gone),
    /** GPIO `bcm` stays at `level` (null: released). */
    stuckLine: (bcm: number, level: BinaryValue | null) => this.gpio.line(bcm).stick(level),
    /** GPIO `bcm` toggles every `periodMs` (0: stops). */
    flappingLine: (bcm: number, periodMs: number) => {
      if (periodMs > 0) this.gpio.line(bcm).flap(this.clock, periodMs);
      else this.gpio.line(bcm).stopFlapping();
    },
    /** The BQ25895 reports REG0C fault bits. */
    chargerFaults: (reg0cBits: number) => {
      if (!this.bq25895) throw new Error('this virtual node has no BQ25895');
      this.bq25895.setFaults(reg0cBits);
    },
  };

  dispose(): void {
    this.stop();
    if (this.ownsRoot) rmSync(this.cpufreqRoot, { recursive: true, force: true });
  }

  private ina219(address: number): VirtualIna219 {
    const d = this.ina219s.get(address);
    if (!d) throw new Error(`no virtual INA219 at 0x${address.toString(16)}`);
    return d;
  }

  /**
   * Brings the plant up to now before a transfer, and makes it re-read the charger's
   * settings after a write, so a new setting applies from the moment it is written.
   */
  private settling(device: VirtualI2cDevice): VirtualI2cDevice {
    return {
      write: (bytes) => {
        this.plant.advanceTo(this.clock.now());
        device.write(bytes);
        if (bytes.length > 1) this.plant.invalidate();
      },
      read: (length) => device.read(length),
    };
  }

  private wirePins(charger: Extract<HardwareConfig['charger'], { kind: 'mcp73871' | 'bq24074' }>): void {
    const pins: Record<string, { bcm: number; activeLow: boolean }> = charger.pins;
    const drive = (name: string, asserted: boolean) => {
      const pin = pins[name]!;
      this.gpio.line(pin.bcm).drive((asserted === pin.activeLow ? 0 : 1) as BinaryValue);
    };
    const update = (s: PlantState) => {
      const charging = s.chrgStat === 1 || s.chrgStat === 2;
      if (charger.kind === 'mcp73871') {
        // Table 5-1: PG with input; STAT1 while charging (or as LBO on battery); STAT2 when complete.
        drive('pg', s.powerGood);
        drive('stat1', s.powerGood ? charging : s.battery.terminalV < LBO_V);
        drive('stat2', s.powerGood && s.chrgStat === 3);
      } else {
        drive('pgood', s.powerGood);
        drive('chg', s.powerGood && charging);
      }
    };
    this.plant.onState(update);
    update(this.plant.state());
  }
}

function sensorAnalog(role: 'solar' | 'battery' | 'load', shuntOhms: number, s: PlantState): Ina219Analog {
  // Shunt drops are reported but not taken out of the energy flow (≤ 0.3 W at 3 A in 0.1 Ω
  // would otherwise make the plant's books depend on the sensor placement).
  switch (role) {
    case 'solar':
      return { shuntVoltageV: s.panel.currentA * shuntOhms, busVoltageV: s.panel.voltageV };
    case 'battery':
      return { shuntVoltageV: s.battery.currentA * shuntOhms, busVoltageV: s.battery.terminalV };
    case 'load':
      return { shuntVoltageV: (s.loadW / s.systemVoltageV) * shuntOhms, busVoltageV: s.systemVoltageV };
  }
}

function chargerAnalog(s: PlantState): ChargerAnalog {
  return {
    inputPresent: s.inputPresent,
    powerGood: s.powerGood,
    busVoltageV: s.panel.voltageV,
    batteryVoltageV: s.battery.terminalV,
    systemVoltageV: s.systemVoltageV,
    chargeCurrentA: Math.max(0, s.battery.currentA),
    chrgStat: s.chrgStat,
    inVoltageRegulation: s.panel.inVoltageRegulation,
    inCurrentRegulation: s.panel.inCurrentRegulation,
  };
}
