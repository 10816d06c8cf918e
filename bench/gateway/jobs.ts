// The job side of `heliomesh bench gateway`, inside the gateway process: completions
// arriving as a Poisson process through the gateway's JobService (`Gateway.jobs.submit`,
// gateway/jobs.ts), and the wall time of each scheduler decision.
import type { Logger } from 'pino';
import type { Gateway } from '../../gateway/index.js';
import { JobError, type JobSummary } from '../../gateway/jobs.js';
import { Random } from '../../ground/random.js';
import { percentiles, type JobLoad, type JobOutcome } from './ipc.js';

/** Times every scheduler pick (the policy's decision for one group of one job). */
export const decisionTimer = {
  wallMs: [] as number[],
  /**
   * CPU time of the whole process during each pick (process.cpuUsage): the pick's own cost
   * on a machine whose other processes delay it, plus whatever the process's other threads
   * (the solver pool) ran meanwhile, so an upper bound of the pick's CPU.
   */
  cpuMs: [] as number[],
  /**
   * Wraps the router's live scheduler service's `pick` on this one instance; the jobs call
   * it through the same object, so every decision is timed and nothing else changes.
   */
  install(gw: Gateway): void {
    const scheduling = gw.router.scheduling;
    const pick = scheduling.pick.bind(scheduling);
    scheduling.pick = (...args) => {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      try {
        return pick(...args);
      } finally {
        this.wallMs.push(performance.now() - t0);
        const cpu = process.cpuUsage(cpu0);
        this.cpuMs.push((cpu.user + cpu.system) / 1000);
      }
    };
  },
  reset(): void {
    this.wallMs = [];
    this.cpuMs = [];
  },
};

// Short story openings: a few tokens of prompt, as a chat's first turn would be.
const PROMPTS = ['Once upon a time', 'The sun was up', 'A little bird', 'One day, Tom', 'The cat sat'];

export interface RunningJobs {
  /** Waits up to `drainMs` for jobs still running, then counts the outcomes. */
  finish(drainMs: number): Promise<JobOutcome>;
}

/** Submits jobs at exponential inter-arrival times (mean 1/jobsPerS) for `windowMs`. */
export function runJobs(gw: Gateway, load: JobLoad, windowMs: number, log: Logger): RunningJobs {
  const jobs = gw.jobs;
  const random = new Random(load.seed);
  const outcomes: Array<Promise<JobSummary | JobError>> = [];
  const settled: Array<JobSummary | JobError> = [];
  const errors: Record<string, number> = {};
  let submitted = 0;
  let timer: NodeJS.Timeout | undefined;
  const submit = (): void => {
    const n = submitted++;
    try {
      const handle = jobs.submit({ prompt: PROMPTS[n % PROMPTS.length]!, maxTokens: load.maxTokens, temperature: 0.8, topP: 0.95, seed: load.seed + n, stop: [] });
      outcomes.push(handle.done.then(
        (s) => s,
        (e: unknown) => (e instanceof JobError ? e : new JobError(String(e), 'internal')),
      ).then((r) => {
        settled.push(r);
        return r;
      }));
    } catch (err) {
      const e = err instanceof JobError ? err : new JobError(String(err), 'internal');
      settled.push(e);
      outcomes.push(Promise.resolve(e));
    }
  };
  // Exponential inter-arrival times make the arrivals a Poisson process of rate jobsPerS.
  // Arrival times are kept on the window's own time line: a late timer submits every job
  // that is due, so a busy event loop does not thin out the load it is measured under.
  const t0 = performance.now();
  let nextAt = 0;
  const gap = () => (-Math.log(1 - random.next()) / load.jobsPerS) * 1000;
  nextAt = gap();
  const tick = (): void => {
    const now = performance.now() - t0;
    while (nextAt <= now && nextAt < windowMs) {
      submit();
      nextAt += gap();
    }
    if (nextAt < windowMs) timer = setTimeout(tick, nextAt - now);
  };
  timer = setTimeout(tick, nextAt);
  return {
    async finish(drainMs) {
      clearTimeout(timer);
      let drainTimer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(outcomes), new Promise((r) => (drainTimer = setTimeout(r, drainMs)))]);
      clearTimeout(drainTimer);
      const done = settled.filter((r): r is JobSummary => !(r instanceof JobError));
      const failed = settled.filter((r): r is JobError => r instanceof JobError);
      for (const e of failed) {
        const key = `${e.kind}${e.group ? ` (${e.group})` : ''}`;
        errors[key] = (errors[key] ?? 0) + 1;
      }
      if (failed.length) log.warn({ failed: failed.length, first: failed[0]!.message }, 'bench jobs failed');
      return {
        submitted,
        completed: done.length,
        failed: failed.length,
        unfinished: submitted - settled.length,
        errors,
        latencyMs: percentiles(done.map((s) => s.latencyMs ?? 0)),
        completionTokens: done.reduce((a, s) => a + s.completionTokens, 0),
        failovers: done.reduce((a, s) => a + s.failovers, 0),
      };
    },
  };
}
