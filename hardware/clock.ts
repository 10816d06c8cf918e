// Clocks that bend time, for the virtual node, the demo and the tests; each is a Clock of
// the ground floor (ground/clock.ts), which also holds the RealClock a Pi runs on.
//
// - ScaledClock: wall time sped up by a factor (speed 1440 = a day per minute).
// - VirtualClock: time moves only when something sleeps or calls advance(); timers fire
//   in due order, so a test is deterministic and costs no real waiting.
// - SteppedClock and steadyClock: a wall clock that NTP steps, and physics that ignores it.
import { monotonicMs, type Clock, type Timer } from '../ground/clock.js';

/** Wall time sped up by `speed`, starting at `startMs` (default: now). */
export class ScaledClock implements Clock {
  private readonly realStart = performance.now();
  readonly startMs: number;

  constructor(readonly speed: number, startMs: number = Date.now()) {
    if (!(speed > 0)) throw new Error(`clock speed must be > 0, got ${speed}`);
    this.startMs = startMs;
  }

  now(): number {
    return this.startMs + (performance.now() - this.realStart) * this.speed;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /**
   * Node starts a timer from its loop's cached time, which can lag performance.now(), so a
   * timer may fire a fraction of a millisecond early in wall time: times `speed`, early by
   * hundreds of virtual milliseconds. Until now() has reached the due instant, it re-arms.
   */
  setTimeout(fn: () => void, ms: number): Timer {
    const dueMs = this.now() + Math.max(0, ms);
    let handle: ReturnType<typeof setTimeout>;
    const arm = (virtualMs: number): void => {
      handle = setTimeout(() => {
        const left = dueMs - this.now();
        if (left > 0) arm(left);
        else fn();
      }, virtualMs / this.speed);
    };
    arm(Math.max(0, ms));
    return { cancel: () => clearTimeout(handle) };
  }

  setInterval(fn: () => void, periodMs: number): Timer {
    // Node's timers do not go below 1 ms; a faster virtual period is clamped there.
    const handle = setInterval(fn, Math.max(1, periodMs / this.speed));
    return { cancel: () => clearInterval(handle) };
  }
}

interface Pending {
  dueMs: number;
  seq: number;
  periodMs: number | null;
  fn: () => void;
  cancelled: boolean;
}

/**
 * Discrete-event time: nothing moves until advance()/advanceTo() is called or someone
 * sleeps. sleep(ms) advances the clock itself, so code that waits on a VirtualClock runs
 * as fast as the CPU allows while every timer still fires at its own virtual instant.
 */
export class VirtualClock implements Clock {
  private t: number;
  private target: number;
  private seq = 0;
  private readonly pending: Pending[] = [];
  private running: Promise<void> | undefined;

  constructor(startMs = 0) {
    this.t = startMs;
    this.target = startMs;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    const done = new Promise<void>((resolve) => this.schedule(resolve, Math.max(0, ms), null));
    void this.advanceTo(this.t + Math.max(0, ms));
    return done;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.schedule(fn, Math.max(0, ms), null);
  }

  setInterval(fn: () => void, periodMs: number): Timer {
    if (!(periodMs > 0)) throw new Error(`interval period must be > 0, got ${periodMs}`);
    return this.schedule(fn, periodMs, periodMs);
  }

  /** Moves time forward by `ms`, firing every timer due on the way. */
  advance(ms: number): Promise<void> {
    return this.advanceTo(Math.max(this.target, this.t) + ms);
  }

  /** Moves time to `targetMs` (never backwards), firing every timer due on the way. */
  advanceTo(targetMs: number): Promise<void> {
    this.target = Math.max(this.target, targetMs);
    if (this.running) return this.running;
    this.running = this.run();
    return this.running;
  }

  private schedule(fn: () => void, delayMs: number, periodMs: number | null): Timer {
    const entry: Pending = { dueMs: this.t + delayMs, seq: this.seq++, periodMs, fn, cancelled: false };
    this.pending.push(entry);
    return { cancel: () => { entry.cancelled = true; } };
  }

  private nextDue(): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending) {
      if (p.cancelled || p.dueMs > this.target) continue;
      if (!best || p.dueMs < best.dueMs || (p.dueMs === best.dueMs && p.seq < best.seq)) best = p;
    }
    return best;
  }

  private async run(): Promise<void> {
    try {
      // Yield once first, so advanceTo() has stored this promise before the finally below
      // can clear it.
      await Promise.resolve();
      for (;;) {
        const next = this.nextDue();
        if (!next) break;
        this.t = Math.max(this.t, next.dueMs);
        if (next.periodMs === null) {
          this.pending.splice(this.pending.indexOf(next), 1);
        } else {
          next.dueMs += next.periodMs;
          next.seq = this.seq++;
        }
        next.fn();
        // Let the continuations of whatever just woke up run (and maybe schedule more)
        // before deciding which timer is next.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      this.t = Math.max(this.t, this.target);
    } finally {
      for (let i = this.pending.length - 1; i >= 0; i--) if (this.pending[i]!.cancelled) this.pending.splice(i, 1);
      this.running = undefined;
    }
  }
}

/**
 * A clock whose wall time can be stepped the way NTP steps a Pi without an RTC, while its
 * timers and monotonic time run on undisturbed — as the kernel's do. For fault tests and
 * demos of a node whose clock jumps.
 */
export class SteppedClock implements Clock {
  private offsetMs = 0;

  constructor(private readonly base: Clock) {}

  now(): number {
    return this.base.now() + this.offsetMs;
  }

  monotonic(): number {
    return monotonicMs(this.base);
  }

  /** Steps the wall clock by `deltaMs` (negative: backwards). */
  step(deltaMs: number): void {
    this.offsetMs += deltaMs;
  }

  sleep(ms: number): Promise<void> {
    return this.base.sleep(ms);
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.base.setTimeout(fn, ms);
  }

  setInterval(fn: () => void, periodMs: number): Timer {
    return this.base.setInterval(fn, periodMs);
  }
}

/**
 * Wall time as physics sees it: the wall time when this is called, carried forward on the
 * clock's monotonic time, so later steps of the wall clock do not move it. The virtual
 * node's sun, battery and sensors run on it: the plant does not jump an hour because the
 * node's clock did.
 */
export function steadyClock(clock: Clock): Clock {
  const startWall = clock.now();
  const startMono = monotonicMs(clock);
  return {
    now: () => startWall + (monotonicMs(clock) - startMono),
    monotonic: () => monotonicMs(clock),
    sleep: (ms) => clock.sleep(ms),
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    setInterval: (fn, periodMs) => clock.setInterval(fn, periodMs),
  };
}
