// Per-job energy (docs/agent.md "Per-job energy"). The ledger integrates the node's
// consumption between consecutive samples; a job is charged, for every such metered
// interval during which it computed, its share of the interval's energy above the idle
// draw, the idle draw taken over that same interval. The job's part therefore starts at
// the sample before its first frame and ends at the sample taken when it finishes: the
// interval subtracted as idle is exactly the one metered, whatever the event loop's lag.
//
// Each interval carries an uncertainty: the power readings' resolution (the INA219's
// register LSBs), the trapezoid's error between two samples (at most half the change of
// power across the interval, × its length), and the idle baseline's own uncertainty.
import { BUS_LSB_V, SHUNT_LSB_V } from '../hardware/ina219.js';
import type { SensorReading } from '../hardware/node.js';

/** What the ledger metered between two consecutive good samples (monotonic ms, W, J). */
export interface MeteredInterval {
  fromMs: number;
  toMs: number;
  fromW: number;
  toW: number;
  /** Trapezoid integral of the consumption over the interval, as the ledger counted it. */
  energyJ: number;
  /** Resolution of the consumption reading at each end, W (consumedResolutionW). */
  fromResolutionW: number;
  toResolutionW: number;
}

/** The registers of one INA219 that fix how finely it reads (hardware/ina219.ts calibrationFor). */
export interface SensorResolution {
  role: 'solar' | 'battery' | 'load';
  shuntOhms: number;
  currentLsbA: number;
  powerLsbW: number;
}

/**
 * Resolution of one INA219 power reading, W: the worst case of the registers' truncation,
 *   δP = V·(Current_LSB + Shunt_LSB / R_shunt) + |I|·Bus_LSB + Power_LSB
 * with Shunt_LSB = 10 µV (§8.6.3.1), Bus_LSB = 4 mV (§8.6.3.2), Current_LSB and
 * Power_LSB = 20 × Current_LSB from the calibration (§8.5.1, Equations 2 and 3): the
 * current register truncates the shunt reading × Cal / 4096 and the power register
 * truncates current × bus voltage / 5000 (§8.6.3.3, §8.6.3.4), one LSB each.
 */
export function readingResolutionW(s: SensorReading, r: SensorResolution): number {
  const v = Math.abs(s.busVoltageV ?? 0);
  const i = Math.abs((s.currentMa ?? 0) / 1000);
  return v * (r.currentLsbA + SHUNT_LSB_V / r.shuntOhms) + i * BUS_LSB_V + r.powerLsbW;
}

/**
 * Resolution of the node's consumption reading, composed as the ledger composes the
 * consumption: the load sensor alone, or, without one, harvest − battery (both errors add).
 * 0 when a sensor's registers are unknown (a source that is not INA219 hardware).
 */
export function consumedResolutionW(sensors: SensorReading[], table: readonly SensorResolution[]): number {
  const of = (role: SensorResolution['role']): number => {
    const s = sensors.find((x) => x.role === role);
    const r = table.find((x) => x.role === role);
    return s?.ok && r ? readingResolutionW(s, r) : 0;
  };
  return sensors.some((s) => s.role === 'load') ? of('load') : of('solar') + of('battery');
}

/** A job's energy as reported: `energyJ` ≥ 0 and within `uncertaintyJ` of the raw estimate. */
export interface JobEnergy {
  energyJ: number;
  uncertaintyJ: number;
  /** The estimate before the non-negativity rule. */
  rawJ: number;
}

/**
 * The non-negativity rule: a job cannot give energy back, so a negative estimate is
 * reported as 0, and the uncertainty is widened, if need be, to reach the estimate:
 * energyJ = max(0, raw), uncertaintyJ = max(u, −raw). A clamped value is thus always
 * within its uncertainty of what was measured.
 */
export function reportedEnergy(rawJ: number, uncertaintyJ: number): JobEnergy {
  return { energyJ: Math.max(0, rawJ), uncertaintyJ: Math.max(uncertaintyJ, -rawJ), rawJ };
}

/** What the node metered while it computed jobs, for its own accounts (ping, tests). */
export interface EnergyTotals {
  /** Metered intervals during which at least one job computed. */
  busyIntervals: number;
  busyMs: number;
  /** Their consumption, and the idle draw over them; the difference is what jobs were charged. */
  busyConsumedJ: number;
  busyIdleJ: number;
  /** Its uncertainty: the sum of the intervals'. */
  busyUncertaintyJ: number;
  /** Sums over the job reports sent. */
  reportedJ: number;
  reportedUncertaintyJ: number;
  reports: number;
}

interface Charge {
  rawJ: number;
  uncertaintyJ: number;
  /** CPU seconds of the job's forwards since the last interval: its share of the next one. */
  cpuS: number;
}

/** Exponential average over ~10 intervals: steady enough, yet follows a drifting idle load. */
const IDLE_ALPHA = 0.1;

export class EnergyAccount {
  private idleW: number | null = null;
  /** Exponentially weighted variance of the idle intervals' mean power, W². */
  private idleVarW2 = 0;
  private idleResolutionW = 0;
  /** Jobs between their first frame and their finish: each is charged every interval that closes meanwhile. */
  private readonly charges = new Map<number, Charge>();
  readonly totals: EnergyTotals = {
    busyIntervals: 0, busyMs: 0, busyConsumedJ: 0, busyIdleJ: 0, busyUncertaintyJ: 0, reportedJ: 0, reportedUncertaintyJ: 0, reports: 0,
  };

  /** The idle baseline in force, W (0 before any idle interval was seen). */
  get baselineW(): number {
    return this.idleW ?? 0;
  }

  /** The idle baseline, W, or undefined while no idle interval has been metered. */
  get measuredIdleW(): number | undefined {
    return this.idleW ?? undefined;
  }

  /**
   * Uncertainty of the idle baseline, W: the idle readings' resolution plus the standard
   * error of the exponential average, σ·√(α/(2−α)) (its effective sample count is (2−α)/α).
   */
  get baselineUncertaintyW(): number {
    return this.idleResolutionW + Math.sqrt(this.idleVarW2 * (IDLE_ALPHA / (2 - IDLE_ALPHA)));
  }

  /** The job's first frame runs: it is charged from the interval running now. */
  start(jobId: number): void {
    if (!this.charges.has(jobId)) this.charges.set(jobId, { rawJ: 0, uncertaintyJ: 0, cpuS: 0 });
  }

  /** CPU time the job's forward just took. */
  addCpu(jobId: number, cpuS: number): void {
    const c = this.charges.get(jobId);
    if (c) c.cpuS += cpuS;
  }

  /** Whether the last interval had a job held at its end: the next one starts from a busy reading. */
  private lastBusy = false;

  /**
   * One metered interval. `heldJobs`: jobs held by the worker, computing or not. Only an
   * interval with none held at either end feeds the idle baseline (the sample that closes
   * a job's part is read while it still computes); one with jobs held but none computing
   * (accepted, waiting for their first frame) is not charged either.
   */
  interval(i: MeteredInterval, heldJobs: number): void {
    const dtS = (i.toMs - i.fromMs) / 1000;
    if (!(dtS > 0)) return;
    const startedBusy = this.lastBusy;
    this.lastBusy = heldJobs > 0 || this.charges.size > 0;
    if (this.charges.size === 0) {
      if (heldJobs === 0 && !startedBusy) this.observeIdle(i, dtS);
      return;
    }
    const idleJ = this.baselineW * dtS;
    const aboveJ = i.energyJ - idleJ;
    // Trapezoid error bound: the power may change anywhere between the samples (a job
    // starting or ending mid-interval), so the true integral lies within half the change × dt.
    const uJ = ((i.fromResolutionW + i.toResolutionW) / 2 + Math.abs(i.toW - i.fromW) / 2 + this.baselineUncertaintyW) * dtS;
    const t = this.totals;
    t.busyIntervals++;
    t.busyMs += i.toMs - i.fromMs;
    t.busyConsumedJ += i.energyJ;
    t.busyIdleJ += idleJ;
    t.busyUncertaintyJ += uJ;
    // Shared by the CPU time each job's forwards took in it (what draws the power above
    // idle); equally when none was measured (all of them waiting on other stages).
    const charges = [...this.charges.values()];
    const cpuS = charges.reduce((a, c) => a + c.cpuS, 0);
    for (const c of charges) {
      const share = cpuS > 0 ? c.cpuS / cpuS : 1 / charges.length;
      c.rawJ += share * aboveJ;
      c.uncertaintyJ += share * uJ;
      c.cpuS = 0;
    }
  }

  /**
   * The job is over; call after the sample that closes its last interval. Returns its
   * energy by the non-negativity rule; a job that never computed used nothing.
   */
  finish(jobId: number): JobEnergy {
    const c = this.charges.get(jobId);
    this.charges.delete(jobId);
    if (!c) return reportedEnergy(0, 0);
    const e = reportedEnergy(c.rawJ, c.uncertaintyJ);
    this.totals.reportedJ += e.energyJ;
    this.totals.reportedUncertaintyJ += e.uncertaintyJ;
    this.totals.reports++;
    return e;
  }

  private observeIdle(i: MeteredInterval, dtS: number): void {
    const w = i.energyJ / dtS;
    const res = (i.fromResolutionW + i.toResolutionW) / 2;
    if (this.idleW === null) {
      this.idleW = w;
      this.idleResolutionW = res;
      return;
    }
    const d = w - this.idleW;
    this.idleW += IDLE_ALPHA * d;
    this.idleVarW2 = (1 - IDLE_ALPHA) * (this.idleVarW2 + IDLE_ALPHA * d * d);
    this.idleResolutionW += IDLE_ALPHA * (res - this.idleResolutionW);
  }
}
