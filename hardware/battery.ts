// Battery state from measurements: stored energy (J) and state of charge (%), by counting
// the energy through the battery-side INA219 and correcting against the open-circuit
// voltage whenever the battery has rested long enough for its terminal voltage to be the
// OCV. The energy through the terminals is integrated by the node's one integrator
// (hardware/energy.ts), as the harvest and the consumption are.
import { EnergyIntegrator } from './energy.js';

export type Chemistry = 'li-ion' | 'lifepo4';

/** Open-circuit voltage of one cell against state of charge: [SoC %, volts], SoC ascending. */
export type OcvCurve = ReadonlyArray<readonly [number, number]>;

/**
 * Typical rested single-cell curves at about 25 °C. Cells differ; a config can supply its
 * own measured curve. LiFePO4's long plateau (≈1 mV per %) makes its OCV useless between
 * roughly 20 % and 90 %, which is why corrections honour `minOcvSlopeVPerPct`.
 */
export const OCV_CURVES: Record<Chemistry, OcvCurve> = {
  'li-ion': [
    [0, 3.0], [5, 3.45], [10, 3.68], [20, 3.74], [30, 3.77], [40, 3.79],
    [50, 3.82], [60, 3.87], [70, 3.92], [80, 3.98], [90, 4.06], [100, 4.2],
  ],
  lifepo4: [
    [0, 2.5], [10, 3.0], [20, 3.13], [30, 3.2], [40, 3.23], [50, 3.25],
    [60, 3.27], [70, 3.3], [80, 3.32], [90, 3.35], [100, 3.4],
  ],
};

export function validateOcvCurve(curve: OcvCurve): void {
  if (curve.length < 2) throw new Error('an OCV curve needs at least two points');
  for (let i = 1; i < curve.length; i++) {
    if (!(curve[i]![0] > curve[i - 1]![0]) || !(curve[i]![1] > curve[i - 1]![1])) {
      throw new Error(`OCV curve must rise strictly in both SoC and voltage (points ${i - 1} and ${i})`);
    }
  }
  if (curve[0]![0] !== 0 || curve[curve.length - 1]![0] !== 100) throw new Error('OCV curve must span 0 % to 100 %');
}

export function ocvAt(curve: OcvCurve, socPct: number): number {
  const s = Math.min(100, Math.max(0, socPct));
  for (let i = 1; i < curve.length; i++) {
    const [s1, v1] = curve[i]!;
    if (s <= s1) {
      const [s0, v0] = curve[i - 1]!;
      return v0 + ((v1 - v0) * (s - s0)) / (s1 - s0);
    }
  }
  return curve[curve.length - 1]![1];
}

export function socFromOcv(curve: OcvCurve, voltageV: number): number {
  if (voltageV <= curve[0]![1]) return 0;
  for (let i = 1; i < curve.length; i++) {
    const [s1, v1] = curve[i]!;
    if (voltageV <= v1) {
      const [s0, v0] = curve[i - 1]!;
      return s0 + ((s1 - s0) * (voltageV - v0)) / (v1 - v0);
    }
  }
  return 100;
}

/** dV/dSoC of the segment holding `socPct`, in V per %. */
export function ocvSlopeVPerPct(curve: OcvCurve, socPct: number): number {
  for (let i = 1; i < curve.length; i++) {
    const [s1, v1] = curve[i]!;
    const [s0, v0] = curve[i - 1]!;
    if (socPct <= s1) return (v1 - v0) / (s1 - s0);
  }
  const [s0, v0] = curve[curve.length - 2]!;
  const [s1, v1] = curve[curve.length - 1]!;
  return (v1 - v0) / (s1 - s0);
}

export interface BatteryEstimatorOptions {
  capacityWh: number;
  chemistry: Chemistry;
  ocvCurve?: OcvCurve;
  /** Fraction of the energy put in at the terminals that is stored. */
  chargeEfficiency: number;
  /** Fraction of the stored energy taken out that reaches the terminals. */
  dischargeEfficiency: number;
  /** Start value; without it the first reading's voltage is taken as the OCV. */
  initialSocPct?: number;
  /** Below this current (either sign) the battery counts as resting. */
  restCurrentA?: number;
  /** How long it must rest before its terminal voltage is trusted as the OCV. */
  restMs?: number;
  /** Time constant of the pull towards the OCV's SoC while resting. */
  ocvTimeConstantMs?: number;
  /**
   * OCV corrections only where the curve is at least this steep. Default 4 mV per %: the
   * INA219 resolves bus voltage in 4 mV steps (SBOS448 §8.6.3.2), so a flatter segment
   * would turn one LSB into more than a percent of SoC.
   */
  minOcvSlopeVPerPct?: number;
  maxGapMs?: number;
}

export interface BatterySample {
  timeMs: number;
  voltageV: number;
  /** Positive into the battery (charging). */
  currentA: number;
}

export interface BatteryEstimate {
  /** Where the level comes from: this estimator, or a fuel gauge's SOC (hardware/gauge.ts). */
  source: 'ina219' | 'max17048';
  energyJ: number;
  capacityJ: number;
  socPct: number;
  resting: boolean;
  /** The last update pulled the SoC towards the OCV. */
  ocvCorrected: boolean;
  /** Time not covered by readings: gaps beyond maxGapMs. */
  unmeasuredMs: number;
  lastSampleMs: number | null;
}

export class BatteryEstimator {
  readonly capacityJ: number;
  readonly curve: OcvCurve;
  private energyJ: number | null;
  private last: BatterySample | undefined;
  private restSinceMs: number | null = null;
  private ocvCorrected = false;
  private readonly terminal: EnergyIntegrator;
  private readonly o: Required<Omit<BatteryEstimatorOptions, 'initialSocPct' | 'ocvCurve'>>;

  constructor(options: BatteryEstimatorOptions) {
    if (!(options.capacityWh > 0)) throw new Error(`battery capacity must be > 0 Wh, got ${options.capacityWh}`);
    this.curve = options.ocvCurve ?? OCV_CURVES[options.chemistry];
    validateOcvCurve(this.curve);
    this.capacityJ = options.capacityWh * 3600;
    this.energyJ = options.initialSocPct === undefined ? null : (options.initialSocPct / 100) * this.capacityJ;
    this.o = {
      capacityWh: options.capacityWh,
      chemistry: options.chemistry,
      chargeEfficiency: options.chargeEfficiency,
      dischargeEfficiency: options.dischargeEfficiency,
      restCurrentA: options.restCurrentA ?? 0.05,
      restMs: options.restMs ?? 30 * 60_000,
      ocvTimeConstantMs: options.ocvTimeConstantMs ?? 10 * 60_000,
      minOcvSlopeVPerPct: options.minOcvSlopeVPerPct ?? 0.004,
      maxGapMs: options.maxGapMs ?? 5 * 60_000,
    };
    this.terminal = new EnergyIntegrator(this.o.maxGapMs);
  }

  update(sample: BatterySample): BatteryEstimate {
    this.ocvCorrected = false;
    if (this.energyJ === null) this.energyJ = (socFromOcv(this.curve, sample.voltageV) / 100) * this.capacityJ;
    const prev = this.last;
    const interval = this.terminal.add(sample.timeMs, sample.voltageV * sample.currentA);
    if (interval) {
      // An interval's net terminal energy decides which efficiency applies to it.
      const terminalJ = interval.energyJ;
      const storedJ = terminalJ >= 0 ? terminalJ * this.o.chargeEfficiency : terminalJ / this.o.dischargeEfficiency;
      this.energyJ = clamp(this.energyJ + storedJ, 0, this.capacityJ);
      this.correctTowardsOcv(sample, interval.toMs - interval.fromMs);
    } else if (prev && sample.timeMs - prev.timeMs > this.o.maxGapMs) {
      this.restSinceMs = null; // unknown what happened in between
    }
    if (Math.abs(sample.currentA) >= this.o.restCurrentA) this.restSinceMs = null;
    else this.restSinceMs ??= sample.timeMs;
    this.last = sample;
    return this.estimate;
  }

  get estimate(): BatteryEstimate {
    const energyJ = this.energyJ ?? 0;
    return {
      source: 'ina219',
      energyJ,
      capacityJ: this.capacityJ,
      socPct: (energyJ / this.capacityJ) * 100,
      resting: this.isResting(this.last?.timeMs ?? 0),
      ocvCorrected: this.ocvCorrected,
      unmeasuredMs: this.terminal.unmeasuredMs,
      lastSampleMs: this.last?.timeMs ?? null,
    };
  }

  private isResting(nowMs: number): boolean {
    return this.restSinceMs !== null && nowMs - this.restSinceMs >= this.o.restMs;
  }

  private correctTowardsOcv(sample: BatterySample, dtMs: number): void {
    if (Math.abs(sample.currentA) >= this.o.restCurrentA || !this.isResting(sample.timeMs)) return;
    const ocvSoc = socFromOcv(this.curve, sample.voltageV);
    if (ocvSlopeVPerPct(this.curve, ocvSoc) < this.o.minOcvSlopeVPerPct) return;
    const pull = 1 - Math.exp(-dtMs / this.o.ocvTimeConstantMs);
    const soc = (this.energyJ! / this.capacityJ) * 100;
    this.energyJ = ((soc + pull * (ocvSoc - soc)) / 100) * this.capacityJ;
    this.ocvCorrected = true;
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}
