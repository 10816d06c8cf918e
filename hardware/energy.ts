// Power readings into energy: the one integrator the node uses, for the solar harvest
// `heliomesh hw` reports, the battery estimator's energy through the terminals, and the
// ledger's harvest and consumption per slot.
//
// The rule is the trapezoid: each interval between two good readings counts the mean of
// its two end powers times its length. A reading is the power at one instant, not an
// average over the interval before or after it, so the integral of the straight line
// through the two readings is the best estimate either sample supports; holding the first
// reading (a rectangle) would credit a sunrise's rising power one interval late and a
// sunset's falling power one interval too long. For a power that changes linearly between
// readings the trapezoid is exact, and for one that moves monotonically between them its
// error over the interval is at most half the change of power across it, times its length
// (agent/energy.ts bounds each job's share with that); the hold rule's is twice as large.
//
// An interval is counted only when both its ends are good readings: a failed read, or a
// gap longer than `maxGapMs`, leaves the interval out and adds its length to
// `unmeasuredMs`, so a total can undercount but never invent energy.

/** One interval between two good readings (monotonic ms, W, J). */
export interface PowerInterval {
  fromMs: number;
  toMs: number;
  fromW: number;
  toW: number;
  energyJ: number;
}

export class EnergyIntegrator {
  /** Energy over the intervals counted since construction (J). */
  totalJ = 0;
  /** Time between readings that was left out: a failed read at one end, or a gap beyond maxGapMs. */
  unmeasuredMs = 0;
  private last: { atMs: number; powerW: number | null } | undefined;

  constructor(readonly maxGapMs = Infinity) {}

  /**
   * Takes the reading at `atMs` (null: the read failed) and returns the interval it closes,
   * or null when that interval is not counted. A reading not later than the last one
   * replaces it and closes nothing.
   */
  add(atMs: number, powerW: number | null): PowerInterval | null {
    const prev = this.last;
    this.last = { atMs, powerW };
    if (!prev || !(atMs > prev.atMs)) return null;
    const dtMs = atMs - prev.atMs;
    if (prev.powerW === null || powerW === null || dtMs > this.maxGapMs) {
      this.unmeasuredMs += dtMs;
      return null;
    }
    const energyJ = (((prev.powerW + powerW) / 2) * dtMs) / 1000;
    this.totalJ += energyJ;
    return { fromMs: prev.atMs, toMs: atMs, fromW: prev.powerW, toW: powerW, energyJ };
  }

  /** Forgets the last reading: the next one starts a new run (a read that failed with no time to place it at). */
  restart(): void {
    this.last = undefined;
  }
}
