// One job's lifecycle: queued until a node accepts it, running while the generation loop
// (models/generate.ts, the same loop `heliomesh model generate` runs in one process) drives
// the model's head here and one remote stage per group on the fleet, then done, failed or
// cancelled. It streams the text as the tokens come (cut at the request's stop sequences)
// and keeps the summary. What the nodes say is routed to the stage it concerns.
import { emptyStats, generateTokens, type FinishReason, type GenerationStats } from '../../models/generate.js';
import type { Frame, JobReport } from '../../protocol/index.js';
import { JobError, type CompletionRequest, type JobHandle, type JobStatus, type JobSummary, type TokenEvent } from '../jobs.js';
import { RemoteStage, type JobDeps } from './remote-stage.js';
import { JobTally, type StageJob } from './tally.js';
import { StopText } from './text.js';

export class Job implements JobHandle, StageJob {
  readonly id: string;
  readonly done: Promise<JobSummary>;
  status: JobStatus = 'queued';
  readonly createdMs: number;
  finishedMs: number | undefined;
  readonly tally: JobTally;
  completionTokens = 0;
  finishReason: FinishReason | undefined;
  error: JobError | undefined;
  /** One per group, in pipeline order. */
  private readonly stages: RemoteStage[];
  private readonly timing: GenerationStats;
  private readonly text: StopText;
  private readonly listeners: Array<(t: TokenEvent) => void> = [];
  private aborted = false;
  private settle!: { resolve(s: JobSummary): void; reject(e: JobError): void };

  constructor(
    readonly num: number,
    readonly req: CompletionRequest,
    readonly promptIds: number[],
    private readonly deps: JobDeps,
  ) {
    this.id = `job-${num}`;
    this.createdMs = deps.clock.now();
    this.tally = new JobTally(deps.path);
    const { seqLen } = deps.model.config;
    // Room for the prompt and a few dozen tokens; the history doubles when it needs more.
    const historyRows = Math.min(seqLen, promptIds.length + Math.min(req.maxTokens, 64));
    this.stages = deps.model.groups.map((g) => new RemoteStage(g, this, deps, historyRows));
    this.stages.forEach((stage, i) => stage.link(this.stages[i - 1], this.stages[i + 1]));
    this.timing = emptyStats(this.stages.length);
    this.text = new StopText(deps.model.tokenizer, req.stop);
    this.done = new Promise<JobSummary>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // The caller may only look at `done` later; an unobserved rejection must not crash the process.
    this.done.catch(() => undefined);
  }

  get hops(): number {
    return this.tally.hops;
  }

  onToken(listener: (t: TokenEvent) => void): void {
    this.listeners.push(listener);
  }

  cancel(reason: string): void {
    this.abort(new JobError(`job ${this.id} cancelled: ${reason}`, 'cancelled'));
  }

  abort(err: JobError): void {
    if (this.aborted || this.finishedMs !== undefined) return;
    this.aborted = true;
    for (const stage of this.stages) stage.abort(err);
  }

  get finished(): boolean {
    return this.finishedMs !== undefined;
  }

  onAccepted(): void {
    if (this.status === 'queued') this.status = 'running';
  }

  /** Runs the job to its end; never rejects (the outcome goes to `done`). */
  async run(): Promise<void> {
    try {
      const { model } = this.deps;
      const { req } = this;
      const tokens = generateTokens(model.head, (positions) => {
        for (const stage of this.stages) stage.open(positions);
        return this.stages;
      }, {
        promptIds: this.promptIds,
        maxTokens: req.maxTokens,
        sampler: { temperature: req.temperature, topP: req.topP, seed: req.seed },
        stopIds: model.stopIds,
      }, this.timing);
      this.finishReason = await this.stream(tokens);
      this.end('done');
    } catch (err) {
      const e = err instanceof JobError ? err : new JobError(`job ${this.id} failed: ${(err as Error).message}`, 'internal');
      this.end(e.kind === 'cancelled' ? 'cancelled' : 'failed', e);
    }
  }

  /** Streams the tokens as text; a stop sequence ends the generation (its stages close as after the last token). */
  private async stream(tokens: AsyncGenerator<number, FinishReason>): Promise<FinishReason> {
    for (;;) {
      const next = await tokens.next();
      if (next.done) return next.value;
      const { events, stopped } = this.text.push(this.completionTokens, next.value);
      this.completionTokens++;
      this.emit(events);
      if (stopped) {
        await tokens.return('stop');
        return 'stop';
      }
    }
  }

  private emit(events: TokenEvent[]): void {
    for (const e of events) {
      for (const l of this.listeners) {
        try {
          l(e);
        } catch (err) {
          this.deps.log.warn({ jobId: this.id, err: (err as Error).message }, 'a token listener threw');
        }
      }
    }
  }

  private end(status: 'done' | 'failed' | 'cancelled', err?: JobError): void {
    if (status === 'done') this.emit(this.text.end());
    // A kept job must not hold its hidden states: rows × dim floats per group.
    for (const stage of this.stages) stage.lane.history.release();
    this.status = status;
    this.finishedMs = this.deps.clock.now();
    this.error = err;
    if (err) this.settle.reject(err);
    else this.settle.resolve(this.summary());
  }

  // --- what the nodes say, routed here by the router -----------------------------------

  /** An output frame on a node's job/out. */
  onFrame(nodeId: string, f: Frame): boolean {
    return this.stages.some((s) => s.onFrame('out', nodeId, f));
  }

  /** A frame one node sent the next on the job's route, seen on `toNodeId`'s job/hop. */
  onHop(toNodeId: string, f: Frame): boolean {
    return this.stages.some((s) => s.onFrame('hop', toNodeId, f));
  }

  /** False when the message concerns none of this job's stages (see RemoteStage.onReport). */
  onReport(nodeId: string, r: JobReport): boolean {
    let ours = false;
    for (const stage of this.stages) ours = stage.onReport(nodeId, r) || ours;
    return ours;
  }

  /** The node's will, or its silence: a hop waiting on it fails now. */
  onNodeDown(nodeId: string, reason: string): void {
    for (const stage of this.stages) stage.onNodeDown(nodeId, reason);
  }

  /** The node entered power saving: the group leaves it before its next hop. */
  onPowerSaving(nodeId: string): void {
    for (const stage of this.stages) stage.onPowerSaving(nodeId);
  }

  /** Queue room or a node's state changed somewhere: a job waiting for room looks again. */
  wake(): void {
    for (const stage of this.stages) stage.wake();
  }

  summary(): JobSummary {
    const { tally } = this;
    return {
      id: this.id,
      status: this.status,
      model: this.deps.model.name,
      createdMs: this.createdMs,
      ...(this.finishedMs !== undefined ? { finishedMs: this.finishedMs, latencyMs: this.finishedMs - this.createdMs } : {}),
      promptTokens: this.promptIds.length,
      completionTokens: this.completionTokens,
      text: this.text.text,
      ...(this.finishReason ? { finishReason: this.finishReason } : {}),
      energyJ: tally.energyJ,
      ...(tally.energyUncertaintyJ !== undefined ? { energyUncertaintyJ: tally.energyUncertaintyJ } : {}),
      failovers: tally.failovers,
      served: this.stages.map(({ lane }) => ({
        group: lane.group.name, nodes: [...lane.served],
        ...(lane.decode.frames > 0 ? { decode: { ...lane.decode } } : {}),
      })),
      ...(this.error ? { error: { ...(this.error.group ? { group: this.error.group } : {}), message: this.error.message } } : {}),
      timing: { ...this.timing, stageDecodeMs: [...this.timing.stageDecodeMs] },
    };
  }
}
