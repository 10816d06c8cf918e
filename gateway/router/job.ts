// One job through the block pipeline: tokenize → embed → for each group in order, the
// hidden states to the chosen node and back → head → sample, per token, as
// `Pipeline.generate` does in one process (models/generate.ts). A hop that fails (timeout,
// will, refusal, hand-back, failed report, power saving) moves the group to another node,
// which first replays the group's history so its KV cache holds every earlier position.
// A node that went silent, or failed a job it had accepted, loses its standing with the
// scheduler; one that served a job to its close frame and reported it ok has it back.
import type { Logger } from 'pino';
import { Sampler } from '../../models/head.js';
import { PROTOCOL_VERSION, encodeFrame, encodeJson, type Frame, type JobControl, type JobReport } from '../../protocol/index.js';
import type { Clock } from '../../ground/clock.js';
import { JobError, type CompletionRequest, type JobHandle, type JobStatus, type JobSummary, type TokenEvent } from '../jobs.js';
import { Lane, blocks, maxFrameRows } from './lane.js';
import type { GatewayModel } from './model.js';
import type { SchedulerService } from './scheduler.js';
import { StopText } from './text.js';
import { HopFailure, OneWait } from './wait.js';

export interface RouterSettings {
  hopTimeoutMs: number;
  queueTimeoutMs: number;
  reportTimeoutMs: number;
  frameDtype: 'f32' | 'f16';
  /** Largest activation frame sent; longer row blocks (prompt, replay) go in several. */
  maxFrameBytes: number;
}

export interface JobDeps {
  model: GatewayModel;
  scheduler: SchedulerService;
  settings: RouterSettings;
  clock: Clock;
  log: Logger;
  /** Publishes on the node's job/in topic. */
  send(nodeId: string, payload: Buffer, qos: 0 | 1): void;
  isOnline(nodeId: string): boolean;
  nextSessionId(): number;
}

export class Job implements JobHandle {
  readonly id: string;
  readonly done: Promise<JobSummary>;
  status: JobStatus = 'queued';
  readonly createdMs: number;
  finishedMs: number | undefined;
  failovers = 0;
  hops = 0;
  energyJ = 0;
  /** Sum of the reports' uncertainties; undefined until a report carries one. */
  energyUncertaintyJ: number | undefined;
  completionTokens = 0;
  finishReason: 'stop' | 'length' | undefined;
  error: JobError | undefined;
  private readonly lanes: Lane[];
  /** Rows per activation frame at most (maxFrameBytes). */
  private readonly maxRows: number;
  private readonly text: StopText;
  private readonly listeners: Array<(t: TokenEvent) => void> = [];
  private readonly wait: OneWait;
  private aborted: JobError | undefined;
  /** Energy reports by node and session, so a repeated report counts once. */
  private readonly reports = new Map<string, number>();
  private awaitedReports = new Set<string>();
  /** `node:session` of every offer this job made: only those sessions may report to it. */
  private readonly offered = new Set<string>();
  /** `node:session` of the sessions the job ran to its close frame: an ok report for one is a clean run. */
  private readonly closed = new Set<string>();
  /** The context positions the job can reach; each offer carries it, so nodes size their caches to it. */
  private positions = 0;
  private settle!: { resolve(s: JobSummary): void; reject(e: JobError): void };

  constructor(
    readonly num: number,
    readonly req: CompletionRequest,
    readonly promptIds: number[],
    private readonly deps: JobDeps,
  ) {
    this.id = `job-${num}`;
    this.createdMs = deps.clock.now();
    this.wait = new OneWait(deps.clock);
    const { dim, seqLen } = deps.model.config;
    // Room for the prompt and a few dozen tokens; the history doubles when it needs more.
    this.lanes = deps.model.groups.map((g) => new Lane(g, dim, Math.min(seqLen, promptIds.length + Math.min(req.maxTokens, 64))));
    this.maxRows = maxFrameRows(deps.settings, dim);
    this.text = new StopText(deps.model.tokenizer, req.stop);
    this.done = new Promise<JobSummary>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // The caller may only look at `done` later; an unobserved rejection must not crash the process.
    this.done.catch(() => undefined);
  }

  onToken(listener: (t: TokenEvent) => void): void {
    this.listeners.push(listener);
  }

  cancel(reason: string): void {
    this.abort(new JobError(`job ${this.id} cancelled: ${reason}`, 'cancelled'));
  }

  abort(err: JobError): void {
    if (this.aborted || this.finishedMs !== undefined) return;
    this.aborted = err;
    this.wait.fail(err);
  }

  get finished(): boolean {
    return this.finishedMs !== undefined;
  }

  /** Runs the job to its end; never rejects (the outcome goes to `done`). */
  async run(): Promise<void> {
    try {
      await this.generate();
      await this.close();
      this.end('done');
    } catch (err) {
      const e = err instanceof JobError ? err : new JobError(`job ${this.id} failed: ${(err as Error).message}`, 'internal');
      for (const lane of this.lanes) if (lane.nodeId) this.leave(lane, e.message);
      this.end(e.kind === 'cancelled' ? 'cancelled' : 'failed', e);
    }
  }

  private async generate(): Promise<void> {
    const { model } = this.deps;
    const { req, promptIds } = this;
    const sampler = new Sampler({ temperature: req.temperature, topP: req.topP, seed: req.seed });
    const stop = new Set(model.stopIds);
    // As Pipeline.generate: the last token is never fed back, so P + maxTokens - 1 positions suffice.
    const capacity = Math.min(model.config.seqLen, promptIds.length + Math.max(0, req.maxTokens - 1));
    this.positions = capacity;
    if (req.maxTokens === 0) {
      this.finishReason = 'length';
      return;
    }
    // A group nobody can serve fails the job before any node is asked to hold it.
    for (const lane of this.lanes) {
      const none = this.deps.scheduler.servable(lane.group, lane.tried);
      if (none && !none.ok) throw new JobError(none.message, 'no-node', lane.group.name);
    }
    let x = model.head.embed(promptIds);
    let rows = promptIds.length;
    let position = 0;
    for (let step = 0; ; step++) {
      for (const lane of this.lanes) x = await this.hop(lane, x, rows, position, step);
      const token = sampler.sample(model.head.logits(x));
      position += rows;
      if (stop.has(token)) {
        this.finishReason = 'stop';
        return;
      }
      const { events, stopped } = this.text.push(this.completionTokens, token);
      this.completionTokens++;
      this.emit(events);
      if (stopped) {
        this.finishReason = 'stop';
        return;
      }
      if (this.completionTokens >= req.maxTokens || position >= capacity) {
        this.finishReason = 'length';
        return;
      }
      x = model.head.embed([token]);
      rows = 1;
    }
  }

  /** One group's forward of `x` (rows at `position`): the output rows, from whichever node serves. */
  private async hop(lane: Lane, x: Float32Array, rows: number, position: number, step: number): Promise<Float32Array> {
    const { dim } = this.deps.model.config;
    const frame = { jobId: this.num, step, dim, dtype: this.deps.settings.frameDtype };
    for (;;) {
      this.checkAbort();
      if (lane.nodeId && lane.move) this.abandon(lane, lane.move);
      if (!lane.nodeId) await this.assign(lane);
      const nodeId = lane.nodeId!;
      const { sessionId } = lane;
      if (lane.fresh && position > 0) {
        // The replacement rebuilds its cache from the group's inputs so far, without output.
        for (const [at, n] of blocks(position, this.maxRows)) {
          this.deps.send(nodeId, encodeFrame({ ...frame, sessionId, position: at, rows: n, replay: true, data: lane.history.rows(at, n) }), 0);
        }
      }
      lane.fresh = false;
      try {
        // One frame per hop, unless the rows (a long prompt) exceed maxFrameBytes.
        let out: Float32Array | undefined;
        for (const [at, n] of blocks(rows, this.maxRows)) {
          const wait = this.wait.expect({ kind: 'frame', nodeId, sessionId, step, position: position + at, rows: n }, this.deps.settings.hopTimeoutMs);
          this.deps.send(nodeId, encodeFrame({ ...frame, sessionId, position: position + at, rows: n, data: n === rows ? x : x.subarray(at * dim, (at + n) * dim) }), 0);
          const part = (await wait)!;
          if (n === rows) out = part;
          else (out ??= new Float32Array(rows * dim)).set(part, at * dim);
        }
        lane.history.append(x);
        this.hops++;
        return out!;
      } catch (err) {
        if (!(err instanceof HopFailure)) throw err;
        this.abandon(lane, err.message, err.silent);
      }
    }
  }

  /** Picks a node for the lane and has it accept the job; waits while the group is only busy. */
  private async assign(lane: Lane): Promise<void> {
    const { scheduler, settings, clock } = this.deps;
    const group = lane.group;
    const waitUntil = clock.now() + settings.queueTimeoutMs;
    for (;;) {
      this.checkAbort();
      const reason = lane.served.length > 0 || lane.tried.size > 0 ? 'failover' : 'dispatch';
      const pick = scheduler.pick(this.id, group, lane.tried, reason);
      if (!pick.ok) {
        if (pick.why === 'none') throw new JobError(pick.message, 'no-node', group.name);
        const left = waitUntil - clock.now();
        if (left <= 0) {
          throw new JobError(`${pick.message} for ${settings.queueTimeoutMs} ms; retry later`, 'no-node', group.name);
        }
        await this.wait.expect({ kind: 'room' }, left, true);
        const none = scheduler.servable(group, lane.tried);
        if (none && !none.ok) throw new JobError(none.message, 'no-node', group.name);
        continue;
      }
      const nodeId = pick.nodeId;
      scheduler.hold(nodeId);
      const sessionId = this.deps.nextSessionId();
      this.offered.add(`${nodeId}:${sessionId}`);
      const wait = this.wait.expect({ kind: 'offer', nodeId }, settings.hopTimeoutMs);
      this.control(nodeId, { v: PROTOCOL_VERSION, type: 'offer', jobId: this.num, sessionId, positions: this.positions });
      try {
        await wait;
      } catch (err) {
        scheduler.release(nodeId);
        // It may still accept later: tell it the job is gone, so its queue place frees.
        this.cancelAt(nodeId, err instanceof HopFailure ? err.message : 'job ended');
        if (!(err instanceof HopFailure)) throw err;
        lane.tried.add(nodeId);
        this.failovers++;
        if (err.silent) scheduler.suspect(nodeId, clock.now());
        this.deps.log.warn({ jobId: this.id, group: group.name, node: nodeId, reason: err.message }, 'offer not taken; trying another node');
        continue;
      }
      lane.nodeId = nodeId;
      lane.sessionId = sessionId;
      lane.fresh = true;
      lane.move = undefined;
      lane.served.push(nodeId);
      if (this.status === 'queued') this.status = 'running';
      return;
    }
  }

  /** Leaves the lane's node for good in this job and counts a failover. */
  private abandon(lane: Lane, reason: string, silent = false): void {
    const nodeId = lane.nodeId!;
    this.deps.log.warn({ jobId: this.id, group: lane.group.name, node: nodeId, reason }, 'failover: the group moves to another node');
    lane.tried.add(nodeId);
    if (silent) this.deps.scheduler.suspect(nodeId, this.deps.clock.now());
    this.leave(lane, reason);
    this.failovers++;
  }

  /** Releases the lane's node, cancelling its session when it can still hear us. */
  private leave(lane: Lane, reason: string): void {
    const nodeId = lane.nodeId!;
    this.deps.scheduler.release(nodeId);
    this.cancelAt(nodeId, reason);
    lane.nodeId = undefined;
    lane.move = undefined;
  }

  private cancelAt(nodeId: string, reason: string): void {
    if (this.deps.isOnline(nodeId)) this.control(nodeId, { v: PROTOCOL_VERSION, type: 'cancel', jobId: this.num, reason: reason.slice(0, 200) });
  }

  private control(nodeId: string, msg: JobControl): void {
    // QoS 1: an offer or cancel that is lost would hold a queue place until the node's idle timeout.
    this.deps.send(nodeId, encodeJson(msg), 1);
  }

  /** Close frames to every serving node, then their energy reports (up to reportTimeoutMs). */
  private async close(): Promise<void> {
    const { dim } = this.deps.model.config;
    for (const lane of this.lanes) {
      const nodeId = lane.nodeId;
      if (!nodeId) continue;
      const key = `${nodeId}:${lane.sessionId}`;
      if (!this.reports.has(key)) this.awaitedReports.add(key);
      this.closed.add(key);
      // The close frame frees the node's queue place: QoS 1, and the place is ours no more.
      this.deps.send(nodeId, encodeFrame({ jobId: this.num, sessionId: lane.sessionId, step: 0, position: lane.history.length, rows: 0, dim, close: true, data: new Float32Array(0) }), 1);
      this.deps.scheduler.release(nodeId);
      lane.nodeId = undefined;
    }
    if (this.awaitedReports.size === 0) return;
    try {
      await this.wait.expect({ kind: 'reports' }, this.deps.settings.reportTimeoutMs, true);
    } catch {
      // Cancelled or shut down while only the energy reports were outstanding: the text is complete.
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
    for (const lane of this.lanes) lane.history.release();
    this.status = status;
    this.finishedMs = this.deps.clock.now();
    this.error = err;
    if (err) this.settle.reject(err);
    else this.settle.resolve(this.summary());
  }

  // --- what the nodes say, routed here by the router -----------------------------------

  onFrame(nodeId: string, f: Frame): boolean {
    const w = this.wait.what;
    if (w?.kind !== 'frame' || w.nodeId !== nodeId || w.sessionId !== f.sessionId || w.step !== f.step || w.position !== f.position || f.replay) return false;
    if (f.rows !== w.rows || f.dim !== this.deps.model.config.dim) {
      this.deps.scheduler.suspect(nodeId, this.deps.clock.now(), 'failing');
      this.wait.fail(new HopFailure(`answered with a [${f.rows}, ${f.dim}] frame for [${w.rows}, ${this.deps.model.config.dim}]`));
    } else {
      this.wait.resolve(f.data);
    }
    return true;
  }

  /**
   * False when the message is not about this job's hops: from a node it is not waiting on
   * and that serves none of its groups, or an energy report for a session it never offered
   * (anyone could otherwise add energy to a job).
   */
  onReport(nodeId: string, r: JobReport): boolean {
    const w = this.wait.what;
    const waitingOn = w && 'nodeId' in w && w.nodeId === nodeId;
    const lane = this.lanes.find((l) => l.nodeId === nodeId);
    switch (r.type) {
      case 'accepted':
        if (waitingOn && w.kind === 'offer') this.wait.resolve();
        return !!waitingOn || lane !== undefined;
      case 'refused':
        if (waitingOn && w.kind === 'offer') this.wait.fail(new HopFailure(`refused: ${r.reason}`));
        return !!waitingOn || lane !== undefined;
      case 'handed-back':
        if (waitingOn) this.wait.fail(new HopFailure(`handed back: ${r.reason}`));
        else if (lane) lane.move = `handed back: ${r.reason}`;
        return !!waitingOn || lane !== undefined;
      case 'report': {
        const key = `${nodeId}:${r.sessionId}`;
        if (!this.offered.has(key)) return false;
        if (!this.reports.has(key)) {
          this.reports.set(key, r.energyJ);
          this.energyJ += r.energyJ;
          if (r.energyUncertaintyJ !== undefined) this.energyUncertaintyJ = (this.energyUncertaintyJ ?? 0) + r.energyUncertaintyJ;
        }
        if (r.ok && this.closed.has(key)) this.deps.scheduler.cleanRun(nodeId);
        if (!r.ok && lane && lane.sessionId === r.sessionId) {
          // It took the job and could not run it: as costly as silence, and answering proves nothing.
          this.deps.scheduler.suspect(nodeId, this.deps.clock.now(), 'failing');
          const why = `failed: ${r.error ?? 'no reason given'}`;
          if (waitingOn) this.wait.fail(new HopFailure(why));
          else lane.move = why;
        }
        this.awaitedReports.delete(key);
        if (w?.kind === 'reports' && this.awaitedReports.size === 0) this.wait.resolve();
        return true;
      }
    }
  }

  /** The node's will, or its silence: a hop waiting on it fails now. */
  onNodeDown(nodeId: string, reason: string): void {
    const w = this.wait.what;
    if (w && 'nodeId' in w && w.nodeId === nodeId) this.wait.fail(new HopFailure(reason));
    const lane = this.lanes.find((l) => l.nodeId === nodeId);
    if (lane) lane.move = reason;
    for (const key of this.awaitedReports) if (key.startsWith(`${nodeId}:`)) this.awaitedReports.delete(key);
    if (w?.kind === 'reports' && this.awaitedReports.size === 0) this.wait.resolve();
  }

  /** The node entered power saving: the group leaves it before its next hop. */
  onPowerSaving(nodeId: string): void {
    const lane = this.lanes.find((l) => l.nodeId === nodeId);
    if (lane) lane.move = 'entered power saving';
  }

  /** Queue room or a node's state changed somewhere: a job waiting for room looks again. */
  wake(): void {
    if (this.wait.what?.kind === 'room') this.wait.resolve();
  }

  private checkAbort(): void {
    if (this.aborted) throw this.aborted;
  }

  summary(): JobSummary {
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
      energyJ: this.energyJ,
      ...(this.energyUncertaintyJ !== undefined ? { energyUncertaintyJ: this.energyUncertaintyJ } : {}),
      failovers: this.failovers,
      served: this.lanes.map((l) => ({ group: l.group.name, nodes: [...l.served] })),
      ...(this.error ? { error: { ...(this.error.group ? { group: this.error.group } : {}), message: this.error.message } } : {}),
    };
  }
}
