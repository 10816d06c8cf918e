// What a job waits for, one thing at a time: an offer's answer, a frame's output, a free
// queue place, or the energy reports at its end. The node messages the router routes to
// the job resolve or fail the wait; its timer fails it (a silent node) or ends it.
import type { Clock, Timer } from '../../ground/clock.js';

/** Why a hop did not come back; the group moves to another node. `silent`: nothing came at all. */
export class HopFailure extends Error {
  constructor(message: string, readonly silent = false) {
    super(message);
  }
}

export type Waiting =
  | { kind: 'offer'; nodeId: string }
  | { kind: 'frame'; nodeId: string; sessionId: number; step: number; position: number; rows: number }
  | { kind: 'room' }
  | { kind: 'reports' };

interface Pending {
  what: Waiting;
  resolve(data?: Float32Array): void;
  reject(err: Error): void;
  timer: Timer;
}

export class OneWait {
  private pending: Pending | undefined;

  constructor(private readonly clock: Clock) {}

  /** What is awaited now, if anything. */
  get what(): Waiting | undefined {
    return this.pending?.what;
  }

  /** Starts a wait; on timeout it fails (HopFailure, silent) or, with `timeoutResolves`, ends. */
  expect(what: Waiting, timeoutMs: number, timeoutResolves = false): Promise<Float32Array | undefined> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        if (timeoutResolves) this.resolve();
        else this.fail(new HopFailure(`no answer within ${timeoutMs} ms`, true));
      }, timeoutMs);
      this.pending = { what, resolve, reject, timer };
    });
  }

  resolve(data?: Float32Array): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    p.timer.cancel();
    p.resolve(data);
  }

  fail(err: Error): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    p.timer.cancel();
    p.reject(err);
  }
}
