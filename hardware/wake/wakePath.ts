// A wake path is whatever powers a halted node up again at a set time: the Pi 5's own RTC
// (rtcWakealarm.ts) or a power board with an RTC such as the Witty Pi 4 (wittyPi4.ts).
// A node must not halt for the night unless check() says its wake path works: a node
// that halts without one stays off until someone walks out to it.

export interface WakeCheck {
  ok: boolean;
  /** Why the path cannot wake the node, and what to do about it; set when !ok. */
  reason?: string;
}

export interface WakePath {
  /** One line for logs and for the refusal message, e.g. "Pi 5 RTC (/sys/class/rtc/rtc0)". */
  describe(): string;
  /** Whether an alarm set now would power the node up; never throws. */
  check(): Promise<WakeCheck>;
  /** Arms the alarm for `epochMs` (the node's clock), replacing any alarm already set. */
  setWakeAt(epochMs: number): Promise<void>;
  /** Disarms the alarm. */
  clear(): Promise<void>;
}

/** check() for paths whose probe throws a message the user can act on. */
export async function checkBy(probe: () => Promise<void>): Promise<WakeCheck> {
  try {
    await probe();
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** The delay from the node's clock to `epochMs`, refused if it is not in (minMs, maxMs]. */
export function wakeDelayMs(what: string, nowMs: number, epochMs: number, minMs: number, maxMs: number): number {
  const delayMs = epochMs - nowMs;
  const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms));
  if (!Number.isFinite(delayMs) || delayMs < minMs) {
    throw new RangeError(`${what}: the wake time ${iso(epochMs)} is not at least ${minMs / 1000} s after now (${iso(nowMs)})`);
  }
  if (delayMs > maxMs) {
    throw new RangeError(`${what}: the wake time ${iso(epochMs)} is more than ${maxMs / 86_400_000} days ahead, beyond what this alarm can hold`);
  }
  return delayMs;
}
