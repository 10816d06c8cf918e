// Time, injected. Everything in Heliomesh that waits or timestamps takes a Clock, so the
// same code runs in real time on a Pi and a solar day runs in a minute in a demo or in
// milliseconds in a test. The agent, the gateway and the drivers all take this one shape,
// so one clock object serves a whole process; the clocks that bend time (scaled, virtual,
// stepped) live with the virtual hardware in hardware/clock.ts.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch, in this clock's time. */
  now(): number;
  /**
   * Milliseconds from an arbitrary origin that never step: what durations and energy
   * integration are measured on. A Pi without an RTC boots with a wrong wall clock and NTP
   * steps it later, forwards or back; now() follows the step, this does not. A clock whose
   * now() never steps may leave it out (monotonicMs() then falls back to now()).
   */
  monotonic?(): number;
  /** Resolves once `ms` of this clock's time has passed. */
  sleep(ms: number): Promise<void>;
  /** Calls `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Calls `fn` every `periodMs` until cancelled. */
  setInterval(fn: () => void, periodMs: number): Timer;
}

/** The clock's monotonic time, or its wall time for a clock that never steps. */
export function monotonicMs(clock: Clock): number {
  return clock.monotonic ? clock.monotonic() : clock.now();
}

/**
 * Wall time and the runtime's own timers. No method uses `this`, so a method may be
 * passed on alone (`clock.now` as a callback) as with any plain clock object.
 */
export class RealClock implements Clock {
  now(): number {
    return Date.now();
  }

  /** CLOCK_MONOTONIC through the high-resolution timer: NTP steps do not move it. */
  monotonic(): number {
    return performance.now();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const handle = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(handle) };
  }

  setInterval(fn: () => void, periodMs: number): Timer {
    const handle = setInterval(fn, Math.max(1, periodMs));
    return { cancel: () => clearInterval(handle) };
  }
}
