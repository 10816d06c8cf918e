// For the HTTP API's unit tests: a job service that behaves like the router at its
// interface (tokens one by one on timers, stop sequences, the router's error kinds chosen
// by words in the prompt, cancellation), a real Registry with nodes in it, and an API
// started on a free port over both.
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { HttpApi, HttpConfigSchema, type GatewaySources, type HttpConfigInput } from '../../gateway/http/index.js';
import {
  JobError, type CompletionRequest, type JobCounters, type JobHandle, type JobService, type JobSummary, type SchedulerView, type TokenEvent,
} from '../../gateway/jobs.js';
import { Registry, toParams, type ChainProfile } from '../../gateway/registry.js';
import { PAPER_DYNAMIC_TABLE, PAPER_MODES, uniformOnGrid } from '../../gateway/scheduler/index.js';
import type { BrokerCounters } from '../../gateway/broker/index.js';
import type { StoreStats } from '../../gateway/store/index.js';
import { RealClock, type Clock } from '../../ground/clock.js';
import { captureLog, type Captured } from '../support/log.js';

/** The text the fake model writes: the alphabet, over and over. */
export const FAKE_TEXT = 'abcdefghijklmnopqrstuvwxyz';

export class FakeJobs implements JobService {
  readonly model = { id: 'fake-char', contextLength: 256, vocabSize: 93, createdS: 1_790_000_000 };
  readonly submitted: CompletionRequest[] = [];
  readonly cancelled = new Map<string, string>();
  private readonly jobs = new Map<string, JobSummary>();
  private n = 0;
  private counts: JobCounters = { submitted: 0, completed: 0, failed: 0, cancelled: 0, failovers: 0, active: 0, promptTokens: 0, completionTokens: 0, energyJ: 0 };

  constructor(private readonly tokenMs = 1) {}

  encode(text: string): number[] {
    return [1, ...[...text].map((c) => c.charCodeAt(0) % 93)];
  }

  /** The bundled model's kind: no chat template of its own. */
  chatIds(): number[] | undefined {
    return undefined;
  }

  submit(req: CompletionRequest): JobHandle {
    const prompt = typeof req.prompt === 'string' ? req.prompt : '';
    const promptTokens = typeof req.prompt === 'string' ? this.encode(req.prompt).length : req.prompt.ids.length;
    if (promptTokens + req.maxTokens > this.model.contextLength && prompt.includes('LONG')) {
      throw new JobError(`the prompt and max_tokens need ${promptTokens + req.maxTokens} tokens; the context holds ${this.model.contextLength}`, 'bad-request');
    }
    this.submitted.push(req);
    const id = `job-${++this.n}`;
    const job: JobSummary = {
      id, status: 'running', model: this.model.id, createdMs: Date.now(), promptTokens, completionTokens: 0, text: '',
      energyJ: 0, failovers: 0, served: [],
    };
    this.jobs.set(id, job);
    this.counts.submitted++;
    this.counts.active++;
    this.counts.promptTokens += promptTokens;
    const listeners: Array<(t: TokenEvent) => void> = [];
    let stop: ((err: JobError) => void) | undefined;
    const done = new Promise<JobSummary>((resolve, reject) => {
      stop = (err) => {
        clearInterval(timer);
        job.status = err.kind === 'cancelled' ? 'cancelled' : 'failed';
        job.error = { group: err.group, message: err.message };
        this.counts.active--;
        if (err.kind === 'cancelled') this.counts.cancelled++;
        else this.counts.failed++;
        reject(err);
      };
      // Like the router: a token is reported only once its text is certain to be in the
      // final text, so nothing past a stop sequence is ever streamed.
      let raw = '';
      let sent = 0;
      const timer = setInterval(() => {
        const i = job.completionTokens;
        if (prompt.includes('NO-NODE') && i === 2) return stop!(new JobError('every node of the group is offline or saving energy', 'no-node', 'g1'));
        if (prompt.includes('ASLEEP') && i === 0) return stop!(new JobError('group g1: all 2 nodes are unavailable (2 asleep); the group sleeps, its first node is planned to wake at 2026-01-01T05:00:00.000Z (in 90 s): retry then', 'no-node', 'g1', 90));
        if (prompt.includes('TIMEOUT') && i === 1) return stop!(new JobError('node pi-3 did not answer within 2000 ms and no other node was available', 'timeout', 'g0'));
        if (prompt.includes('CRASH') && i === 1) {
          clearInterval(timer);
          this.counts.active--;
          return reject(new Error('a bug in the router'));
        }
        raw += FAKE_TEXT[i % FAKE_TEXT.length]!;
        job.completionTokens++;
        const hit = req.stop.map((s) => raw.indexOf(s)).filter((k) => k >= 0).sort((a, b) => a - b)[0];
        const pending = Math.max(0, ...req.stop.map((s) => {
          for (let n = s.length - 1; n > 0; n--) if (raw.endsWith(s.slice(0, n))) return n;
          return 0;
        }));
        const certain = hit ?? raw.length - pending;
        for (; sent < certain; sent++) for (const l of listeners) l({ index: sent, id: raw.charCodeAt(sent), text: raw[sent]! });
        if (hit !== undefined || job.completionTokens >= req.maxTokens) {
          clearInterval(timer);
          job.text = hit !== undefined ? raw.slice(0, hit) : raw;
          job.finishReason = hit !== undefined ? 'stop' : 'length';
          job.status = 'done';
          job.finishedMs = Date.now();
          job.latencyMs = job.finishedMs - job.createdMs;
          // A short job on a node below its idle baseline reports a little less than nothing.
          job.energyJ = prompt.includes('COLD') ? -0.75 : 0.5 * job.completionTokens;
          job.served = [{ group: 'g0', nodes: ['pi-1'] }, { group: 'g1', nodes: ['pi-2', 'pi-3'] }];
          job.failovers = 1;
          this.counts.active--;
          this.counts.completed++;
          this.counts.completionTokens += job.completionTokens;
          this.counts.energyJ += job.energyJ;
          this.counts.failovers += 1;
          resolve(job);
        }
      }, this.tokenMs);
    });
    // Callers that never await a failed job must not crash the test process.
    done.catch(() => {});
    return {
      id,
      done,
      onToken: (l) => void listeners.push(l),
      cancel: (reason) => {
        this.cancelled.set(id, reason);
        stop?.(new JobError(reason, 'cancelled'));
      },
    };
  }

  job(id: string): JobSummary | undefined {
    return this.jobs.get(id);
  }

  recent(limit: number): JobSummary[] {
    return [...this.jobs.values()].reverse().slice(0, limit);
  }

  scheduler(): SchedulerView {
    return {
      policy: 'foresight',
      groups: [{ group: 'g0', nodes: [{ nodeId: 'pi-1', online: true, available: true, qLim: 0.4, weight: 1, probability: 1 }], lastDecision: null }],
    };
  }

  counters(): JobCounters {
    return { ...this.counts };
  }
}

export const chainProfile = (group: string): ChainProfile => ({
  group,
  shard: `bundled:${group}`,
  quantumJ: 1000,
  capacityJ: 100_000,
  eThJ: 10_000,
  eThUpJ: 15_000,
  modes: PAPER_MODES,
  modeTable: PAPER_DYNAMIC_TABLE,
  priorHarvestPmf: uniformOnGrid(0, 30),
});

/** A real registry with pi-1 (g0, solved) and pi-2 (g1, never solved, then offline). */
export function fleetRegistry(nowMs: number): Registry {
  const reg = new Registry({ silenceMs: 60_000, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, { update: () => {}, forget: () => {} });
  reg.birth('pi-1', chainProfile('g0'), nowMs - 5000);
  reg.slot('pi-1', { seq: 1, slotStartMs: nowMs - 4000, batteryJ: 64_000, harvestJ: 2000, gamma: 1, powerMode: 3, queue: 1 }, nowMs - 3000);
  reg.slot('pi-1', { seq: 4, slotStartMs: nowMs - 2000, batteryJ: 63_000, harvestJ: 2000, gamma: 1, powerMode: 3, queue: 1 }, nowMs - 1000);
  reg.applySolved('pi-1', toParams(chainProfile('g0'), uniformOnGrid(0, 30)), { qLim: 0.42, qEnergy: 0.42, qProc: 0.5, energyBinds: true, solves: 1, solveMs: 3, hash: 'h' }, nowMs);
  reg.birth('pi-2', chainProfile('g1'), nowMs - 5000);
  reg.will('pi-2', nowMs - 100);
  return reg;
}

export interface ApiUnderTest {
  api: HttpApi;
  base: string;
  jobs: FakeJobs;
  registry: Registry;
  cap: Captured;
  broker: { up: boolean; stats: BrokerCounters };
  store: StoreStats;
}

export async function startApi(http: HttpConfigInput = {}, opts: { apiKey?: string; tokenMs?: number; clock?: Clock } = {}): Promise<ApiUnderTest> {
  const cap = captureLog();
  const jobs = new FakeJobs(opts.tokenMs);
  const registry = fleetRegistry(Date.now());
  const broker = { up: true, stats: { clients: 3, publishesIn: 40, bytesIn: 9000, refusedAuth: 2, refusedAcl: 1, refusedRate: 0, refusedSize: 0, slowDisconnects: 0, refusedProtocol: 0, refusedPending: 0, refusedFull: 0 } };
  const store: StoreStats = { buffered: 12, dropped: 3, written: 700, outage: true, refused: 0 };
  const sources: GatewaySources = {
    jobs,
    registry,
    brokerUp: () => broker.up,
    brokerStats: () => broker.stats,
    store: { configured: true, stats: () => store },
    linkCounters: () => ({ messages: 55, invalid: 4, seqRewinds: 0 }),
  };
  const config = HttpConfigSchema.parse({ host: '127.0.0.1', port: 0, ...http });
  const api = await HttpApi.start(config, sources, { clock: opts.clock ?? new RealClock(), log: cap.log, apiKey: opts.apiKey, seed: () => 7 });
  return { api, base: `http://127.0.0.1:${api.port}`, jobs, registry, cap, broker, store };
}

export interface SseResult {
  events: unknown[];
  done: boolean;
}

/** Reads a server-sent event stream with fetch: each `data:` line, and whether [DONE] came. */
export async function readSse(res: Response): Promise<SseResult> {
  const text = await res.text();
  const events: unknown[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    if (!block.startsWith('data: ')) continue;
    const data = block.slice('data: '.length);
    if (data === '[DONE]') done = true;
    else events.push(JSON.parse(data));
  }
  return { events, done };
}

export function postJson(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** A completion response or stream chunk, as the tests read it. */
export interface Completion {
  id: string;
  object: string;
  model: string;
  choices: Array<{
    index: number;
    text?: string;
    message?: { role: string; content: string };
    delta?: { role?: string; content?: string };
    logprobs: null;
    finish_reason: string | null;
  }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  heliomesh: { job_id: string; energy_j: number; energy_uncertainty_j: number | null; latency_ms: number; failovers: number; served: Array<{ group: string; nodes: string[] }>; seed: number };
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export async function json<T>(res: Response | Promise<Response>): Promise<T> {
  return (await (await res).json()) as T;
}
