// A solar panel's I–V curve and where a charger's input loop puts its operating point.
//
// The curve is the ideal single-diode model without shunt resistance,
//   V(I) = Voc(G) + a·ln(1 − I/Isc(G)) − I·Rs,  Isc ∝ G,  Voc(G) = Voc + a·ln(G/1000),
// with the shape factor `a` (n·Ns·kT/q) fitted so the maximum power point sits at the
// datasheet's Vmp and Pmp at 1000 W/m².

export interface PanelSpec {
  /** Rated (STC, 1000 W/m²) maximum power, W. */
  peakW: number;
  vocV: number;
  vmpV: number;
  /** Orientation, tilt, soiling and wiring losses as one factor on the irradiance. */
  derate: number;
  /** Series resistance of leads and connectors, Ω. */
  seriesOhms?: number;
}

export interface InputLimits {
  /** The charger lets the input voltage fall no lower than this (VINDPM). */
  inputVoltageLimitV: number;
  /** …and draws no more current than this (IINLIM). */
  inputCurrentLimitA: number;
}

export interface OperatingPoint {
  voltageV: number;
  currentA: number;
  powerW: number;
  /** Open-circuit voltage at this irradiance (what the charger sees at no load). */
  openCircuitV: number;
  inVoltageRegulation: boolean;
  inCurrentRegulation: boolean;
}

export class Panel {
  /** Shape factor a, volts. */
  readonly shapeV: number;
  readonly iscStcA: number;
  private readonly rs: number;

  constructor(readonly spec: PanelSpec) {
    if (!(spec.vmpV > 0 && spec.vocV > spec.vmpV)) throw new Error(`panel needs 0 < Vmp < Voc, got Vmp ${spec.vmpV} V, Voc ${spec.vocV} V`);
    if (!(spec.peakW > 0)) throw new Error(`panel peak power must be > 0 W, got ${spec.peakW}`);
    // At the MPP, dP/dI = 0 gives Vmp = a·x/(1 − x) and Voc + a·ln(1 − x) = Vmp, x = Imp/Isc.
    const f = (x: number) => spec.vocV - spec.vmpV + (spec.vmpV * (1 - x) / x) * Math.log(1 - x);
    let lo = 1e-9;
    let hi = 1 - 1e-12;
    for (let i = 0; i < 200; i++) {
      const mid = (lo + hi) / 2;
      if (f(mid) < 0) lo = mid;
      else hi = mid;
    }
    const x = (lo + hi) / 2;
    this.shapeV = (spec.vmpV * (1 - x)) / x;
    this.iscStcA = spec.peakW / (spec.vmpV * x);
    this.rs = spec.seriesOhms ?? 0;
  }

  /** Short-circuit current and open-circuit voltage at plane irradiance `ghiWm2` (before derating). */
  curve(ghiWm2: number): { iscA: number; vocV: number } {
    const g = ghiWm2 * this.spec.derate;
    if (g <= 0) return { iscA: 0, vocV: 0 };
    return { iscA: (this.iscStcA * g) / 1000, vocV: Math.max(0, this.spec.vocV + this.shapeV * Math.log(g / 1000)) };
  }

  voltageAt(currentA: number, c: { iscA: number; vocV: number }): number {
    if (currentA >= c.iscA) return 0;
    return Math.max(0, c.vocV + this.shapeV * Math.log(1 - currentA / c.iscA) - currentA * this.rs);
  }

  /** Current at the maximum power point of curve `c`. */
  mppCurrent(c: { iscA: number; vocV: number }): number {
    // P(I) is unimodal on [0, Isc): golden-section search.
    let lo = 0;
    let hi = c.iscA;
    const r = (Math.sqrt(5) - 1) / 2;
    for (let i = 0; i < 80; i++) {
      const m1 = hi - r * (hi - lo);
      const m2 = lo + r * (hi - lo);
      if (m1 * this.voltageAt(m1, c) < m2 * this.voltageAt(m2, c)) lo = m1;
      else hi = m2;
    }
    return (lo + hi) / 2;
  }

  /**
   * Where the charger's input settles when it wants `demandW`: it raises its input
   * current until it has the power, or reaches IINLIM, or has pulled the panel down to
   * VINDPM. Past the maximum power point more current means less power, which is why
   * VINDPM belongs at (or just above) Vmp.
   */
  operatingPoint(ghiWm2: number, limits: InputLimits, demandW: number): OperatingPoint {
    const c = this.curve(ghiWm2);
    const none = { voltageV: c.vocV, currentA: 0, powerW: 0, openCircuitV: c.vocV, inVoltageRegulation: false, inCurrentRegulation: false };
    if (c.iscA <= 0 || demandW <= 0) return none;
    const power = (i: number) => i * this.voltageAt(i, c);
    const iVindpm = c.vocV <= limits.inputVoltageLimitV ? 0 : bisect((i) => this.voltageAt(i, c) - limits.inputVoltageLimitV, 0, c.iscA);
    const iCap = Math.min(limits.inputCurrentLimitA, iVindpm);
    const iHigh = Math.min(iCap, this.mppCurrent(c));
    let currentA: number;
    if (demandW <= power(iHigh)) currentA = bisect((i) => demandW - power(i), 0, iHigh);
    else currentA = iCap;
    const atCap = currentA === iCap;
    return {
      voltageV: this.voltageAt(currentA, c),
      currentA,
      powerW: power(currentA),
      openCircuitV: c.vocV,
      inVoltageRegulation: atCap && iVindpm <= limits.inputCurrentLimitA,
      inCurrentRegulation: atCap && limits.inputCurrentLimitA < iVindpm,
    };
  }
}

/** Root of a function that is positive at `lo` and negative at `hi` (or the nearer end). */
function bisect(f: (x: number) => number, lo: number, hi: number): number {
  if (f(hi) >= 0) return hi;
  if (f(lo) <= 0) return lo;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) > 0) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
