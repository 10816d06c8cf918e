// Does a process compute slower just after it slept? Each node of a chain sleeps between
// its turns, while the in-process side never does: if this machine runs a woken process
// slower for a while (its host's power management, a vCPU descheduled while halted), that
// slowdown lands on the chain's compute and nowhere in the hand-overs themselves. One
// stage's fixed compute is timed back to back, after sleeping 1 ms and 5 ms, and after
// spinning 5 ms (awake, no sleep), interleaved so that the machine's drift falls on all
// four alike.
import { median } from '../median.js';
import { matvec } from './chain.js';

export interface WakeTimes {
  samples: number;
  backToBackMs: number;
  afterSleep1Ms: number;
  afterSleep5Ms: number;
  afterSpin5Ms: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Medians over `n` of each; `sink` keeps the compute from being optimized away. */
export async function wakeTimes(w: Float32Array, n: number, sink: { value: number }): Promise<WakeTimes> {
  const timed = () => {
    const t0 = performance.now();
    sink.value += matvec(w);
    return performance.now() - t0;
  };
  const b2b: number[] = [];
  const s1: number[] = [];
  const s5: number[] = [];
  const spun: number[] = [];
  for (let i = 0; i < 20; i++) timed();
  for (let i = 0; i < n; i++) {
    timed();
    b2b.push(timed());
    await sleep(1);
    s1.push(timed());
    await sleep(5);
    s5.push(timed());
    spin(5);
    spun.push(timed());
  }
  return { samples: n, backToBackMs: median(b2b), afterSleep1Ms: median(s1), afterSleep5Ms: median(s5), afterSpin5Ms: median(spun) };
}
