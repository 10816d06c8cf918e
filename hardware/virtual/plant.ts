// The physics behind the virtual registers: sun → panel → charger → (load, battery).
// State is piecewise constant: the operating point found at the start of an interval
// holds until the next one, so energy is conserved exactly step by step:
//   harvest × ηcharger = load + battery terminal power.
import { BatteryCell, type CellSpec } from './cell.js';
import { type ChargerControl, type ChargerSettings } from './bq25895.js';
import { readCpuLoadState, type CpuLoadState } from './cpufreq.js';
import { Panel, type OperatingPoint, type PanelSpec } from './panel.js';
import { Sun, type SunOptions } from './sun.js';

export interface LoadSpec {
  /** Node draw at the charger's system output with the CPU idle, W. */
  idleW: number;
  /** Extra draw with every core busy at the highest frequency, W. */
  computeW: number;
  /**
   * Dynamic power goes as C·V²·f and the DVFS voltage rises with f, so compute power
   * grows faster than linearly in frequency: exponent between 1 (fixed V) and 3 (V ∝ f).
   */
  freqExponent: number;
  /** Draw while the node is powered off (halted, its power board's RTC running), W. */
  sleepW: number;
}

/**
 * Where the busy share of the cores comes from while a job runs (see Plant.setComputeLoad):
 * `sample()` returns the share of the online cores that were busy since its previous call,
 * 0..1 (e.g. the CPU time of the forwards over the wall time and the host's cores).
 */
export interface CpuMeter {
  sample(): number;
}

/** A fixed busy share of the online cores (0..1), or a meter sampled at every step. */
export type ComputeLoad = number | CpuMeter;

export interface PlantOptions {
  startMs: number;
  sun: SunOptions;
  panel: PanelSpec;
  /** Charger efficiency from input to system/battery, 0..1. */
  chargerEfficiency: number;
  cell: CellSpec;
  initialSocPct: number;
  load: LoadSpec;
  cpufreqRoot: string;
  cpuCores: number;
  /** Longest interval with one operating point. */
  stepMs?: number;
}

export interface PlantState {
  timeMs: number;
  ghiWm2: number;
  clearSkyWm2: number;
  cloudCover: number;
  inputPresent: boolean;
  powerGood: boolean;
  panel: OperatingPoint;
  settings: ChargerSettings;
  chrgStat: 0 | 1 | 2 | 3;
  systemVoltageV: number;
  loadDemandW: number;
  loadW: number;
  brownout: boolean;
  jobRunning: boolean;
  /** Share of the online cores busy while the job runs (1 when nobody measures it). */
  busyCoreShare: number;
  cpu: CpuLoadState;
  battery: { socPct: number; energyJ: number; ocvV: number; terminalV: number; currentA: number; powerW: number };
}

export interface PlantLedger {
  elapsedMs: number;
  harvestedJ: number;
  consumedJ: number;
  unservedJ: number;
  batteryInJ: number;
  batteryOutJ: number;
  storedChangeJ: number;
}

/** VBUS below this is no input (REG0C CHRG_FAULT note: VVBUSMIN typical 3.8 V). */
const VBUS_MIN_V = 3.8;
/** Pre-charge below BATLOWV (REG06, default 3.0 V). */
const BATLOWV = 3.0;
/** Recharge once the battery falls VRECHG below VREG (REG06, default 100 mV). */
const VRECHG = 0.1;
/** SYS_MIN default 3.5 V (REG03): the system rail does not follow the battery below it while an input is present. */
const SYS_MIN_V = 3.5;

export class Plant {
  readonly sun: Sun;
  readonly panel: Panel;
  readonly cell: BatteryCell;
  readonly ledger: PlantLedger = { elapsedMs: 0, harvestedJ: 0, consumedJ: 0, unservedJ: 0, batteryInJ: 0, batteryOutJ: 0, storedChangeJ: 0 };
  private t: number;
  private readonly stepMs: number;
  private cached: PlantState | undefined;
  private inputPresent = false;
  private terminated = false;
  private jobRunning = false;
  private poweredOn = true;
  private computeLoad: ComputeLoad | undefined;
  /** The busy share in force: the fixed one, or the meter's last sample. */
  private busyShare = 1;
  private advancing = false;
  private cpu: { state: CpuLoadState; readAtMs: number } | undefined;
  private readonly listeners = new Set<(s: PlantState) => void>();

  constructor(readonly options: PlantOptions, private readonly charger: ChargerControl) {
    this.t = options.startMs;
    this.stepMs = options.stepMs ?? 10_000;
    this.sun = new Sun(options.sun, options.startMs);
    this.panel = new Panel(options.panel);
    this.cell = new BatteryCell(options.cell, options.initialSocPct);
  }

  get timeMs(): number {
    return this.t;
  }

  /** Tells the plant whether a job keeps the CPU busy. */
  setJobRunning(running: boolean): void {
    if (running !== this.jobRunning) {
      this.jobRunning = running;
      this.cached = undefined;
    }
  }

  get powered(): boolean {
    return this.poweredOn;
  }

  /**
   * Switches the node's supply: powered off it draws only load.sleepW and runs no job,
   * while the panel goes on charging the battery through the charger.
   */
  setPowered(on: boolean): void {
    if (on !== this.poweredOn) {
      this.poweredOn = on;
      if (!on) this.jobRunning = false;
      this.cached = undefined;
    }
  }

  /**
   * How busy a running job keeps the cores: a fixed share of the online cores, or a meter
   * the plant samples each time it integrates an interval, so that the interval is charged
   * with the work measured over that same interval. Undefined (the default): a job keeps
   * every online core busy, as before work was measured.
   */
  setComputeLoad(load: ComputeLoad | undefined): void {
    if (typeof load === 'number') {
      if (!(load >= 0 && load <= 1)) throw new Error(`the busy share of the cores must be in [0, 1], got ${load}`);
      this.busyShare = load;
    } else {
      this.busyShare = 1;
    }
    this.computeLoad = load;
    this.cached = undefined;
  }

  /** Called with each new operating point (after every step). */
  onState(listener: (s: PlantState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Integrates up to `timeMs`, one operating point per interval of at most stepMs. */
  advanceTo(timeMs: number): void {
    if (this.advancing) return; // a listener read a register mid-step: it sees the current point
    this.advancing = true;
    try {
      const meter = typeof this.computeLoad === 'object' ? this.computeLoad : undefined;
      if (meter && this.jobRunning && this.t < timeMs) {
        // the work done since the last step is what the interval up to now is charged with
        const share = meter.sample();
        this.busyShare = Number.isFinite(share) ? Math.min(1, Math.max(0, share)) : 1;
        this.cached = undefined;
      }
      while (this.t < timeMs) {
        const gridNext = this.options.startMs + (Math.floor((this.t - this.options.startMs) / this.stepMs) + 1) * this.stepMs;
        const next = Math.min(timeMs, gridNext);
        this.integrate(this.state(), (next - this.t) / 1000);
        this.t = next;
        this.cached = undefined;
      }
    } finally {
      this.advancing = false;
    }
  }

  /** The operating point at the current time. */
  state(): PlantState {
    if (!this.cached) {
      this.cached = this.computeState();
      for (const l of this.listeners) l(this.cached);
    }
    return this.cached;
  }

  /** Re-reads charger settings and CPU mode (after a register or sysfs write). */
  invalidate(): void {
    this.cached = undefined;
    this.cpu = undefined;
  }

  /**
   * The CPU mode from the cpufreq tree. Reading the files at every step would dominate a
   * simulated day, so they are read after invalidate() and otherwise once per simulated
   * minute: a mode written behind the plant's back takes effect within a minute.
   */
  private cpuState(): CpuLoadState {
    if (!this.cpu || this.t - this.cpu.readAtMs >= 60_000 || this.t < this.cpu.readAtMs) {
      this.cpu = { state: readCpuLoadState(this.options.cpufreqRoot, this.options.cpuCores), readAtMs: this.t };
    }
    return this.cpu.state;
  }

  private computeState(): PlantState {
    const t = this.t;
    const irr = this.sun.irradianceAt(t);
    const curve = this.panel.curve(irr.ghiWm2);
    const inputPresent = curve.vocV > VBUS_MIN_V;
    if (inputPresent !== this.inputPresent) {
      this.inputPresent = inputPresent;
      this.terminated = false; // a new input starts a new charge cycle
      this.charger.inputChanged(inputPresent);
    }
    const settings = this.charger.settings();
    const powerGood = inputPresent && !settings.hiz;
    const cpu = this.cpuState();
    // A CMOS core's dynamic power is α·C·V²·f while it switches; an idle core waits in WFI
    // with its clock gated and adds next to nothing over idleW. So compute power is
    // proportional to the busy cores, times V(f)²·f, which with DVFS grows as f^freqExponent:
    //   P = idleW + computeW × (busy cores / total cores) × (f / fmax)^freqExponent,
    // busy cores = the busy share of the online cores × the online cores. A job measured to
    // keep half the cores busy (or all of them for half the time) costs half.
    const busyCores = (this.computeLoad === undefined ? 1 : this.busyShare) * cpu.onlineCores;
    const loadDemandW = !this.poweredOn ? this.options.load.sleepW : this.options.load.idleW + (this.jobRunning
      ? this.options.load.computeW * (busyCores / cpu.totalCores) * (cpu.busyFreqKhz / cpu.cpuinfoMaxKhz) ** this.options.load.freqExponent
      : 0);

    const dtS = this.stepMs / 1000;
    const headroom = this.cell.headroomW(dtS);
    const ocv = this.cell.ocvV();
    let chrgStat: PlantState['chrgStat'] = 0;
    let acceptA = 0;
    if (powerGood && settings.chargeEnabled) {
      if (this.terminated && ocv < settings.chargeVoltageV - VRECHG) this.terminated = false;
      if (ocv < BATLOWV) {
        chrgStat = 1;
        acceptA = settings.prechargeCurrentA;
      } else {
        // Constant current up to ICHG, then the CV phase: the terminals held at VREG.
        acceptA = Math.min(settings.chargeCurrentLimitA, this.cell.acceptedCurrentA(settings.chargeVoltageV));
        if (acceptA < settings.terminationCurrentA) this.terminated = true;
        chrgStat = this.terminated ? 3 : 2;
        if (this.terminated) acceptA = 0;
      }
    }
    const acceptW = Math.min(acceptA * (ocv + acceptA * this.cell.spec.internalOhms), headroom.chargeW);
    const eta = this.options.chargerEfficiency;
    const panel = powerGood
      ? this.panel.operatingPoint(irr.ghiWm2, settings, (loadDemandW + acceptW) / eta)
      : { voltageV: curve.vocV, currentA: 0, powerW: 0, openCircuitV: curve.vocV, inVoltageRegulation: false, inCurrentRegulation: false };

    let batteryW = panel.powerW * eta - loadDemandW;
    let loadW = loadDemandW;
    const dischargeLimitW = Math.min(headroom.dischargeW, this.cell.maxDischargeW());
    if (-batteryW > dischargeLimitW) {
      batteryW = -dischargeLimitW;
      loadW = panel.powerW * eta + dischargeLimitW;
    }
    const terminalV = this.cell.terminalVoltage(batteryW);
    return {
      timeMs: t,
      ghiWm2: irr.ghiWm2,
      clearSkyWm2: irr.clearSkyWm2,
      cloudCover: irr.cloudCover,
      inputPresent,
      powerGood,
      panel,
      settings,
      chrgStat,
      systemVoltageV: powerGood ? Math.max(terminalV, SYS_MIN_V) : terminalV,
      loadDemandW,
      loadW,
      brownout: loadW < loadDemandW - 1e-9,
      jobRunning: this.jobRunning,
      busyCoreShare: this.computeLoad === undefined ? 1 : this.busyShare,
      cpu,
      battery: { socPct: this.cell.socPct, energyJ: this.cell.energyJ, ocvV: ocv, terminalV, currentA: batteryW / terminalV, powerW: batteryW },
    };
  }

  private integrate(s: PlantState, dtS: number): void {
    const l = this.ledger;
    l.elapsedMs += dtS * 1000;
    l.harvestedJ += s.panel.powerW * dtS;
    l.consumedJ += s.loadW * dtS;
    l.unservedJ += (s.loadDemandW - s.loadW) * dtS;
    if (s.battery.powerW >= 0) l.batteryInJ += s.battery.powerW * dtS;
    else l.batteryOutJ -= s.battery.powerW * dtS;
    l.storedChangeJ += this.cell.apply(s.battery.powerW, dtS);
  }
}
