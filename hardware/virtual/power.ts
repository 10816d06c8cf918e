// The power board of a halted virtual node: what switches it on again. A planned sleep
// ends when the RTC alarm the agent set fires; a node that went down flat boots once the
// panel has brought its battery back to the recovery level, which sits above the shutdown
// level so that a battery recovering a little at rest does not boot the node straight into
// another shutdown (the Witty Pi 4's recovery voltage, LiFePO4wered's boot voltage).
// Meanwhile the plant is powered off: it draws the board's sleep current, and the panel
// keeps charging the battery.
import type { Clock, Timer } from '../../ground/clock.js';
import type { Plant } from './plant.js';
import { fireIfDue } from './rtc.js';

export type PowerOff =
  /** Halted for a planned sleep: the RTC folder whose alarm powers it up. */
  | { cause: 'sleep'; rtcDir: string }
  /** Went down at the critical level (or by command): boots at recoveryPct. */
  | { cause: 'flat'; shutdownPct: number; recoveryPct: number };

export interface PowerSupervisorOptions {
  clock: Clock;
  plant: Plant;
  off: PowerOff;
  /** How often the board looks at its alarm and the battery, ms of the clock. */
  checkMs: number;
  /** Called once, when the node is switched on again, with the battery level then. */
  boot(socPct: number, why: string): void;
}

export class PowerSupervisor {
  private timer: Timer | undefined;

  constructor(private readonly o: PowerSupervisorOptions) {
    if (o.off.cause === 'flat' && !(o.off.recoveryPct > o.off.shutdownPct)) {
      throw new Error(`the recovery (boot) level ${o.off.recoveryPct} % must be above the shutdown level ${o.off.shutdownPct} %, or the node would boot into another shutdown`);
    }
    // The node has been off since its halt, also for the moments before this board took over.
    o.plant.setPowered(false);
    this.timer = o.clock.setInterval(() => this.check(), o.checkMs);
  }

  get off(): PowerOff {
    return this.o.off;
  }

  /** Brings the plant up to now and switches the node on if its wake condition holds. */
  check(): boolean {
    if (!this.timer) return false;
    const { plant, clock, off } = this.o;
    const nowMs = clock.now();
    plant.advanceTo(nowMs);
    const socPct = plant.cell.socPct;
    const why = off.cause === 'sleep'
      ? (fireIfDue(off.rtcDir, nowMs / 1000) ? 'the RTC alarm fired' : undefined)
      : (socPct >= off.recoveryPct ? `the battery is back at the recovery level ${off.recoveryPct} %` : undefined);
    if (!why) return false;
    this.cancel();
    plant.setPowered(true);
    this.o.boot(socPct, why);
    return true;
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
