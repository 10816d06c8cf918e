// The job service: takes completion requests, runs each as a Job over the fleet, routes
// what nodes send on job/out to the job it belongs to, and keeps finished jobs, counters
// and the scheduler's live view for the front ends (gateway/jobs.ts).
import type { Logger } from 'pino';
import { promptProblem, samplingProblem } from '../../models/generate.js';
import { GgufTokenizer } from '../../models/tokenizers/gguf.js';
import { decodeFrame, isFrame, nodeTopic, parseJobReport } from '../../protocol/index.js';
import type { Clock } from '../../ground/clock.js';
import {
  JobError, type CompletionRequest, type JobCounters, type JobHandle, type JobService, type JobSummary, type ModelCard, type SchedulerView,
} from '../jobs.js';
import type { Registry } from '../registry.js';
import { jobGroupPoint, jobPoint, type Store } from '../store/index.js';
import { Job } from './job.js';
import { maxFrameRows } from './lane.js';
import type { GatewayModel } from './model.js';
import type { RouterSettings } from './remote-stage.js';
import { SchedulerService } from './scheduler.js';
import type { PathCounts } from './tally.js';

export interface RouterConfig extends RouterSettings {
  fleet: string;
  policy: string;
  seed: number;
  /** Finished jobs kept for lookup. */
  keepJobs: number;
}

export interface RouterDeps {
  model: GatewayModel;
  registry: Registry;
  store: Store;
  clock: Clock;
  log: Logger;
  /** Publishes with the gateway's own MQTT client. */
  publish(topic: string, payload: Buffer, qos: 0 | 1): void;
}

export interface RouterStats {
  /** Messages on job/out that failed validation. */
  invalid: number;
  /** Valid messages for no job, a job or session that is over (late frames), or from a node not serving the job. */
  stale: number;
}

export class Router implements JobService {
  /** The live scheduler (named apart from JobService.scheduler(), its view). */
  readonly scheduling: SchedulerService;
  readonly stats: RouterStats = { invalid: 0, stale: 0 };
  /** Over every job, as the frames go: activation frames through the broker between processes, and hops chained node to node. */
  readonly path: PathCounts = { crossings: 0, handed: 0 };
  private readonly jobs = new Map<string, Job>();
  private readonly byNum = new Map<number, Job>();
  /** Running jobs, each with the promise of its run (which settles after its point is written). */
  private readonly active = new Map<Job, Promise<void>>();
  /** Per group, jobs that failed because every node able to serve it was asleep (503 group_asleep). */
  private readonly refusedAsleepBy = new Map<string, number>();
  private nextJob = 1;
  private nextSession = 1;
  private closing = false;
  private readonly totals: Omit<JobCounters, 'active'> = {
    submitted: 0, completed: 0, failed: 0, cancelled: 0, failovers: 0, promptTokens: 0, completionTokens: 0, energyJ: 0,
  };

  constructor(private readonly config: RouterConfig, private readonly deps: RouterDeps) {
    maxFrameRows(config, deps.model.config.dim); // a frame size that holds no row fails here, not per job
    this.scheduling = new SchedulerService(
      { fleet: config.fleet, policy: config.policy, seed: config.seed },
      {
        registry: deps.registry, model: deps.model, store: deps.store, clock: deps.clock, log: deps.log.child({ part: 'scheduler' }),
        // A freed queue place lets a job waiting for one look again at once.
        onRelease: () => this.wake(),
      },
    );
  }

  get model(): ModelCard {
    return this.deps.model.card;
  }

  encode(text: string): number[] {
    const tokenizer = this.deps.model.tokenizer;
    if (!tokenizer) throw new JobError(`model ${this.deps.model.name} has no tokenizer; send the prompt as token ids`, 'bad-request');
    // a GGUF tokenizer adds BOS only when its file says the model wants one (add_bos_token)
    return tokenizer.encode(text, { bos: tokenizer instanceof GgufTokenizer ? tokenizer.addBos : true });
  }

  chatIds(messages: { role: string; content: string }[]): number[] | undefined {
    const template = this.deps.model.chatTemplate;
    if (!template) return undefined;
    try {
      return template.encode(messages);
    } catch (err) {
      throw new JobError((err as Error).message, 'bad-request');
    }
  }

  submit(req: CompletionRequest): JobHandle {
    if (this.closing) throw new JobError('the gateway is shutting down; retry on its next start', 'shutdown');
    const promptIds = this.checked(req);
    const num = this.nextJob++;
    const log = this.deps.log;
    const job = new Job(num, req, promptIds, {
      model: this.deps.model,
      scheduler: this.scheduling,
      settings: this.config,
      clock: this.deps.clock,
      log,
      send: (nodeId, payload, qos) => this.deps.publish(nodeTopic(this.config.fleet, nodeId, 'jobIn'), payload, qos),
      isOnline: (nodeId) => this.deps.registry.get(nodeId)?.online ?? false,
      // Session ids only have to differ per node and job; one counter keeps them unique.
      nextSessionId: () => (this.nextSession = (this.nextSession + 1) >>> 0),
      path: this.path,
    });
    this.jobs.set(job.id, job);
    this.byNum.set(num, job);
    this.totals.submitted++;
    log.info({ jobId: job.id, promptTokens: promptIds.length, maxTokens: req.maxTokens, temperature: req.temperature }, 'job submitted');
    this.active.set(job, job.run().then(() => this.finished(job)));
    return job;
  }

  job(id: string): JobSummary | undefined {
    return this.jobs.get(id)?.summary();
  }

  recent(limit: number): JobSummary[] {
    if (!(limit > 0)) return [];
    return [...this.jobs.values()].slice(-limit).reverse().map((j) => j.summary());
  }

  scheduler(): SchedulerView {
    return this.scheduling.view();
  }

  counters(): JobCounters {
    return { ...this.totals, active: this.active.size };
  }

  /** Jobs so far that found `group` asleep: the sleep planner's sign that a wake-up is wanted. */
  refusedAsleep(group: string): number {
    return this.refusedAsleepBy.get(group) ?? 0;
  }

  // --- from the link ----------------------------------------------------------------------

  /** A message on a node's job/out: a frame or a JSON report, validated here; never throws. */
  jobOut(nodeId: string, payload: Buffer): void {
    try {
      if (isFrame(payload)) {
        const d = decodeFrame(payload);
        if (!d.ok) return this.invalid(nodeId, d.error);
        this.scheduling.heard(nodeId);
        if (!this.byNum.get(d.frame.jobId)?.onFrame(nodeId, d.frame)) this.stats.stale++;
        return;
      }
      const r = parseJobReport(payload);
      if (!r.ok) return this.invalid(nodeId, r.error);
      this.scheduling.heard(nodeId);
      const job = this.byNum.get(r.value.jobId);
      // A report after reportTimeoutMs (a node slow to close, a loaded host) still counts
      // while the job is kept: its energy is added to the job's record, not lost.
      const before = job?.finished ? job.summary() : undefined;
      if (!job?.onReport(nodeId, r.value)) this.stats.stale++;
      else if (before !== undefined) this.lateReport(job, nodeId, before);
    } catch (err) {
      this.invalid(nodeId, `handling failed: ${(err as Error).message}`);
    }
  }

  /** A frame on a node's job/hop, sent there by the node before it on a job's route; never throws. */
  jobHop(toNodeId: string, payload: Buffer): void {
    try {
      const d = decodeFrame(payload);
      if (!d.ok) return this.invalid(toNodeId, d.error);
      if (!this.byNum.get(d.frame.jobId)?.onHop(toNodeId, d.frame)) this.stats.stale++;
    } catch (err) {
      this.invalid(toNodeId, `handling failed: ${(err as Error).message}`);
    }
  }

  /** The node went offline (will or silence). */
  nodeDown(nodeId: string, reason: string): void {
    for (const job of this.active.keys()) job.onNodeDown(nodeId, `node ${nodeId} went offline (${reason})`);
    this.wake();
  }

  /** The node reported γ = 0. */
  nodePowerSaving(nodeId: string): void {
    for (const job of this.active.keys()) job.onPowerSaving(nodeId);
    this.wake();
  }

  /** Something about a node changed (birth, slot, event): jobs waiting for room look again. */
  wake(): void {
    for (const job of this.active.keys()) job.wake();
  }

  /** Fails every active job with JobError('shutdown') and waits for them to end. */
  async close(): Promise<void> {
    this.closing = true;
    const running = [...this.active];
    for (const [job] of running) job.abort(new JobError('the gateway is shutting down', 'shutdown'));
    // The runs settle after their job points are written, so the store still takes them.
    await Promise.allSettled(running.map(([, run]) => run));
  }

  // ---------------------------------------------------------------------------------------

  /** The job's point in the store. Written again, same time and tags, it replaces the first (a late report's energy). */
  private writeJob(job: Job, s: JobSummary): void {
    const latencyMs = s.latencyMs ?? 0;
    const outcome = s.status === 'done' ? 'ok' : s.status === 'cancelled' ? 'cancelled' : 'failed';
    const at = job.finishedMs ?? this.deps.clock.now();
    const decoded = s.timing && s.timing.decodeTokens > 0 ? s.timing : undefined;
    this.deps.store.write(jobPoint(this.config.fleet, {
      jobId: s.id, outcome, model: s.model, hops: job.hops, promptTokens: s.promptTokens, outputTokens: s.completionTokens,
      latencyMs, energyJ: s.energyJ, energyUncertaintyJ: s.energyUncertaintyJ, failovers: s.failovers,
      nodes: s.served.flatMap((g) => g.nodes).join(','),
      tokensPerS: latencyMs > 0 ? (1000 * s.completionTokens) / latencyMs : 0,
      headMsPerToken: decoded && decoded.headDecodeMs / decoded.decodeTokens,
    }, at));
    // Where the decode tokens' time went, group by group: a slow group shows on the dashboard.
    if (!decoded) return;
    s.served.forEach((g, i) => {
      const hopMsPerToken = decoded.stageDecodeMs[i]! / decoded.decodeTokens;
      // The nodes' own time per forward, and the rest of the hop: the links both ways, the
      // broker and the node's handling. A group slow on its Wi-Fi shows apart from a slow Pi.
      const forwardMsPerToken = g.decode && g.decode.forwardMs / g.decode.frames;
      this.deps.store.write(jobGroupPoint(this.config.fleet, g.group, {
        jobId: s.id, model: s.model, nodes: g.nodes.join(','), decodeTokens: decoded.decodeTokens, hopMsPerToken,
        ...(forwardMsPerToken !== undefined ? { forwardMsPerToken, linkMsPerToken: hopMsPerToken - forwardMsPerToken } : {}),
      }, at));
    });
  }

  /** An energy report that came after its job had finished. */
  private lateReport(job: Job, nodeId: string, before: JobSummary): void {
    const s = job.summary();
    const frames = (x: JobSummary) => x.served.reduce((n, g) => n + (g.decode?.frames ?? 0), 0);
    if (s.energyJ === before.energyJ && frames(s) === frames(before)) return;
    this.totals.energyJ += s.energyJ - before.energyJ;
    this.writeJob(job, s);
    this.deps.log.info({ jobId: s.id, node: nodeId, energyJ: s.energyJ }, 'a late energy report is counted in the finished job');
  }

  private finished(job: Job): void {
    this.active.delete(job);
    const s = job.summary();
    const t = this.totals;
    if (s.status === 'done') t.completed++;
    else if (s.status === 'cancelled') t.cancelled++;
    else t.failed++;
    // The refusal with a Retry-After is the one that says the group sleeps (http/errors.ts).
    const e = job.error;
    if (e?.kind === 'no-node' && e.retryAfterS !== undefined && e.group) this.refusedAsleepBy.set(e.group, this.refusedAsleep(e.group) + 1);
    t.failovers += s.failovers;
    t.promptTokens += s.promptTokens;
    t.completionTokens += s.completionTokens;
    t.energyJ += s.energyJ;
    const latencyMs = s.latencyMs ?? 0;
    this.writeJob(job, s);
    const level = s.status === 'done' ? 'info' : 'warn';
    this.deps.log[level]({
      jobId: s.id, status: s.status, tokens: s.completionTokens, latencyMs, failovers: s.failovers, energyJ: s.energyJ,
      served: s.served, ...(s.error ? { error: s.error.message } : {}),
    }, 'job finished');
    // Keep the newest finished jobs; the oldest go first.
    for (const [id, j] of this.jobs) {
      if (this.jobs.size <= this.config.keepJobs) break;
      if (!j.finished) continue;
      this.jobs.delete(id);
      this.byNum.delete(j.num);
    }
    this.wake();
  }

  /** The request's ids, checked as the generation loop checks them, but before a job exists. */
  private checked(req: CompletionRequest): number[] {
    const bad = (msg: string) => new JobError(msg, 'bad-request');
    const sampling = samplingProblem(req.maxTokens, req);
    if (sampling) throw bad(sampling);
    if (!Array.isArray(req.stop) || req.stop.some((s) => typeof s !== 'string')) throw bad('stop must be a list of strings');
    const ids = typeof req.prompt === 'string' ? this.encode(req.prompt) : req.prompt.ids;
    const prompt = promptProblem(this.deps.model.config, ids);
    if (prompt) throw bad(prompt);
    return [...ids];
  }

  private invalid(nodeId: string, error: string): void {
    this.stats.invalid++;
    this.deps.log.warn({ node: nodeId, err: error }, 'job message refused');
  }
}
