// Background load for the field: completions arrive as a Poisson process at a given rate
// (exponential gaps from a seeded generator, so a run can be repeated) and go through the
// gateway's job service like any client's. Prompts are short openings in the register of
// the bundled model's training text (US State of the Union addresses).
import type { Logger } from 'pino';
import { mulberry32 } from '../hardware/virtual/sun.js';
import { JobError, type JobService, type JobSummary } from '../gateway/jobs.js';

export const PROMPTS = [
  'The state of the Union is',
  'My fellow citizens,',
  'The Congress has',
  'We must not forget',
  'Our people have',
  'In the year before us',
  'The government of the United States',
  'Peace and prosperity',
];

export interface LoadOptions {
  jobs: JobService;
  /** Mean arrivals per wall-clock minute; 0 sends nothing. */
  perMinute: number;
  seed: number;
  /** New tokens per completion. */
  maxTokens: number;
  log: Logger;
  /** Called with every finished or failed job. */
  onDone?: (job: JobSummary | undefined, error: JobError | Error | undefined) => void;
}

export interface LoadCounters {
  sent: number;
  ok: number;
  failed: number;
  /** Failures by JobError kind (no-node, timeout, ...). */
  byKind: Record<string, number>;
}

export class LoadGenerator {
  readonly counters: LoadCounters = { sent: 0, ok: 0, failed: 0, byKind: {} };
  private readonly rng: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly o: LoadOptions) {
    this.rng = mulberry32(o.seed);
  }

  start(): void {
    if (this.o.perMinute > 0) this.schedule();
  }

  /** Exponential gap with mean 60 000 / rate ms: the inter-arrival time of a Poisson process. */
  private schedule(): void {
    const gapMs = (-Math.log(1 - this.rng()) * 60_000) / this.o.perMinute;
    this.timer = setTimeout(() => {
      if (this.stopped) return;
      this.submit();
      this.schedule();
    }, gapMs);
  }

  private submit(): void {
    const prompt = PROMPTS[Math.floor(this.rng() * PROMPTS.length)]!;
    const seed = Math.floor(this.rng() * 2 ** 31);
    this.counters.sent++;
    let done: Promise<unknown>;
    try {
      const handle = this.o.jobs.submit({ prompt, maxTokens: this.o.maxTokens, temperature: 0.8, topP: 0.9, seed, stop: [] });
      done = handle.done.then((job) => {
        this.counters.ok++;
        this.o.onDone?.(job, undefined);
      }, (err: Error) => this.failed(err));
    } catch (err) {
      done = Promise.resolve(this.failed(err as Error));
    }
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  private failed(err: Error): void {
    this.counters.failed++;
    const kind = err instanceof JobError ? err.kind : 'internal';
    this.counters.byKind[kind] = (this.counters.byKind[kind] ?? 0) + 1;
    // Jobs refused for lack of nodes are the field working as designed at night.
    if (kind !== 'no-node' && kind !== 'shutdown') this.o.log.warn({ err: err.message, kind }, 'demo job failed');
    this.o.onDone?.(undefined, err);
  }

  /** Stops sending; resolves when the jobs in flight have ended (or failed at shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }
}
