// Bounded waits on the node's clock: the stop's budget for the network is counted in the
// same time as every other period of the node, so a test on a virtual clock sees a stop
// give up by advancing the clock, and a sped-up demo node stops as fast as it runs.
import { monotonicMs, type Clock } from '../ground/clock.js';

/** Resolves with the promise's value, or 'late' once `ms` of the clock's time have passed. */
export function within<T>(clock: Clock, p: Promise<T>, ms: number): Promise<T | 'late'> {
  let timer: { cancel(): void } | undefined;
  const late = new Promise<'late'>((resolve) => { timer = clock.setTimeout(() => resolve('late'), Math.max(0, ms)); });
  return Promise.race([p, late]).finally(() => timer?.cancel());
}

/** The time left of a budget of `ms` started now, on the clock's monotonic time. */
export function budget(clock: Clock, ms: number): () => number {
  const endBy = monotonicMs(clock) + ms;
  return () => Math.max(0, endBy - monotonicMs(clock));
}
