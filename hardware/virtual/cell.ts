// The battery behind the virtual node: stored energy, an OCV curve, a series resistance
// and charge/discharge efficiencies. Terminal power P and current I satisfy
// V = OCV + I·R and P = V·I, so V = (OCV + √(OCV² + 4RP)) / 2 (P > 0 charging).
import { type Chemistry, type OcvCurve, OCV_CURVES, ocvAt, validateOcvCurve } from '../battery.js';

export interface CellSpec {
  chemistry: Chemistry;
  capacityWh: number;
  internalOhms: number;
  chargeEfficiency: number;
  dischargeEfficiency: number;
  ocvCurve?: OcvCurve;
}

export class BatteryCell {
  readonly capacityJ: number;
  readonly curve: OcvCurve;
  energyJ: number;

  constructor(readonly spec: CellSpec, initialSocPct: number) {
    this.curve = spec.ocvCurve ?? OCV_CURVES[spec.chemistry];
    validateOcvCurve(this.curve);
    this.capacityJ = spec.capacityWh * 3600;
    this.energyJ = (Math.min(100, Math.max(0, initialSocPct)) / 100) * this.capacityJ;
  }

  get socPct(): number {
    return (this.energyJ / this.capacityJ) * 100;
  }

  ocvV(): number {
    return ocvAt(this.curve, this.socPct);
  }

  /** Terminal voltage while `powerW` flows in (negative: out). */
  terminalVoltage(powerW: number): number {
    const ocv = this.ocvV();
    const r = this.spec.internalOhms;
    // Beyond OCV²/4R the cell cannot deliver the power at all; the caller limits P first.
    return (ocv + Math.sqrt(Math.max(0, ocv * ocv + 4 * r * powerW))) / 2;
  }

  /** Largest discharge power the cell can deliver at its terminals (matched load). */
  maxDischargeW(): number {
    const ocv = this.ocvV();
    return (ocv * ocv) / (4 * this.spec.internalOhms);
  }

  /** Charge current the cell accepts with its terminals held at `limitV` (the CV phase). */
  acceptedCurrentA(limitV: number): number {
    return Math.max(0, (limitV - this.ocvV()) / this.spec.internalOhms);
  }

  /** Terminal power, W, over `dtS` seconds that would fill (P > 0) or empty (P < 0) the cell. */
  headroomW(dtS: number): { chargeW: number; dischargeW: number } {
    return {
      chargeW: (this.capacityJ - this.energyJ) / (this.spec.chargeEfficiency * dtS),
      dischargeW: (this.energyJ * this.spec.dischargeEfficiency) / dtS,
    };
  }

  /** Applies terminal power `powerW` for `dtS` seconds; returns the change of stored energy. */
  apply(powerW: number, dtS: number): number {
    const deltaJ = (powerW >= 0 ? powerW * this.spec.chargeEfficiency : powerW / this.spec.dischargeEfficiency) * dtS;
    const before = this.energyJ;
    this.energyJ = Math.min(this.capacityJ, Math.max(0, before + deltaJ));
    return this.energyJ - before;
  }
}
