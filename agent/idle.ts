// The board's idle draw for the birth's `idleW` (docs/agent.md "Idle draw"): the meter's
// running idle baseline (agent/energy.ts), or, before it has metered an idle interval, the
// baseline the last re-profile measured. The gateway's chain drains it every slot, so a
// birth is re-published when the estimate first appears and when it drifts.
import { MAX_NODE_W } from '../protocol/index.js';
import type { EnergyAccount } from './energy.js';

/** A relative change of the estimate worth a new birth; smaller drifts wait for the next one. */
const DRIFT = 0.1;

export class IdleDraw {
  private profiledW: number | undefined;
  private announcedW: number | undefined;

  constructor(private readonly meter: EnergyAccount) {}

  /** The idle baseline a re-profile measured in the mode the node runs in. */
  profiled(w: number): void {
    if (Number.isFinite(w) && w >= 0) this.profiledW = w;
  }

  /** W to the mW, within what the gateway accepts of a board; undefined while nothing was measured. */
  estimateW(): number | undefined {
    const w = this.meter.measuredIdleW ?? this.profiledW;
    if (w === undefined || !Number.isFinite(w)) return undefined;
    return Math.round(Math.min(MAX_NODE_W, Math.max(0, w)) * 1000) / 1000;
  }

  /** What the birth carries now; remembered, to tell a drift from it. */
  forBirth(): number | undefined {
    this.announcedW = this.estimateW();
    return this.announcedW;
  }

  /** Whether the estimate has appeared or moved by more than DRIFT since the last birth. */
  drifted(): boolean {
    const w = this.estimateW();
    if (w === undefined) return false;
    const was = this.announcedW;
    return was === undefined || Math.abs(w - was) > DRIFT * Math.max(was, 0.01);
  }
}
