// Time, injected. The gateway's parts take this Clock instead of reading the wall clock,
// so a solar day of slots can run in a minute in a demo and instantly in a test. The shape
// is the same as the clocks the hardware layer offers, so one object serves both.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch, in this clock's time. */
  now(): number;
  /** Resolves once `ms` of this clock's time has passed. */
  sleep(ms: number): Promise<void>;
  /** Calls `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Calls `fn` every `periodMs` until cancelled. */
  setInterval(fn: () => void, periodMs: number): Timer;
}

/** Wall time and the runtime's own timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => clearTimeout(handle) };
  },
  setInterval(fn, periodMs) {
    const handle = setInterval(fn, Math.max(1, periodMs));
    return { cancel: () => clearInterval(handle) };
  },
};
