// One group of one job, as a stage of the generation loop: the gateway's session with
// whichever node serves the group now, kept apart from the job as Petals keeps a server
// session apart from its client session. It offers the job to a node the scheduler picks
// and waits for the accept, sends each forward as activation frames and waits for the
// output, and keeps every row it sent (the group's input history). A hop that fails
// (timeout, will, refusal, hand-back, failed report, power saving) moves the group to
// another node, which first replays the history so its KV cache holds every earlier
// position. A node that went silent, or failed a job it had accepted, loses its standing
// with the scheduler; one that served the job to its close frame and reported it ok has it
// back. The history stays here, at the gateway, whoever sends the rows to the node.
//
// Chained hops: the serving node is told (in its offer, or a route message when the next
// group moves) to send its output straight to the next group's node; the gateway sees that
// frame on the way (job/hop), keeps it as the next group's input history, and the next
// stage then only waits for its own node's output instead of sending the rows again. A
// stage whose node did not get the rows that way (a replacement, the first hop) sends them.
import type { Logger } from 'pino';
import type { Stage } from '../../models/stage.js';
import { PROTOCOL_VERSION, encodeFrame, encodeJson, type Frame, type HopRoute, type JobControl, type JobReport } from '../../protocol/index.js';
import type { Clock } from '../../ground/clock.js';
import { JobError } from '../jobs.js';
import { Lane, blocks, fromServing, maxFrameRows, type Via } from './lane.js';
import type { GatewayModel, ModelGroup } from './model.js';
import type { SchedulerService } from './scheduler.js';
import type { PathCounts, StageJob } from './tally.js';
import { HopFailure, OneWait } from './wait.js';

export interface RouterSettings {
  hopTimeoutMs: number;
  queueTimeoutMs: number;
  reportTimeoutMs: number;
  frameDtype: 'f32' | 'f16';
  /** Largest activation frame sent; longer row blocks (prompt, replay) go in several. */
  maxFrameBytes: number;
  /** Nodes send their outputs to the next group's node (the broker's ACL must follow routes); absent: false. */
  chainHops?: boolean;
}

const POWER_SAVING = 'entered power saving';

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
  /** Where the router counts every job's frame path. */
  path?: PathCounts;
}

export class RemoteStage implements Stage {
  readonly lane: Lane;
  private readonly wait: OneWait;
  /** Rows per activation frame at most (maxFrameBytes). */
  private readonly maxRows: number;
  /** Forwards done so far: each frame carries it, and the node echoes it back. */
  private step = 0;
  /** The context positions the job can reach; each offer carries it, so nodes size their caches to it. */
  private positions = 0;
  private aborted: JobError | undefined;
  /** `node:session` of every offer this stage made: only those sessions may report to it. */
  private readonly offered = new Set<string>();
  /** `node:session` of the sessions run to their close frame: an ok report for one is a clean run. */
  private readonly closed = new Set<string>();
  /** Sessions whose energy report is counted, so a repeated report counts once. */
  private readonly reported = new Set<string>();
  private readonly awaitedReports = new Set<string>();
  /** The stages before and after this one in the job, for the route. */
  private prev: RemoteStage | undefined;
  private next: RemoteStage | undefined;
  /** The last forward's output went, whole, straight to this node and session at this step. */
  private handed: (HopRoute & { step: number }) | undefined;
  /** The output now awaited came along the node's route. */
  private lastViaHop = false;

  constructor(group: ModelGroup, private readonly job: StageJob, private readonly deps: JobDeps, historyRows: number) {
    const { dim } = deps.model.config;
    this.lane = new Lane(group, dim, historyRows);
    this.wait = new OneWait(deps.clock);
    this.maxRows = maxFrameRows(deps.settings, dim);
  }

  /** The job's stages around this one, in pipeline order. */
  link(prev: RemoteStage | undefined, next: RemoteStage | undefined): void {
    this.prev = prev;
    this.next = next;
  }

  /** Sizes the stage for the job; a group nobody can serve fails the job before any node is asked to hold it. */
  open(positions: number): void {
    this.positions = positions;
    const none = this.deps.scheduler.servable(this.lane.group, this.lane.tried);
    if (none && !none.ok) throw noNode(none, this.lane.group.name);
  }

  /** The group's forward of `x` at `position`: the output rows, from whichever node serves. */
  async forward(x: Float32Array, position: number): Promise<Float32Array> {
    const { dim } = this.deps.model.config;
    const lane = this.lane;
    const rows = x.length / dim;
    const step = this.step;
    const frame = { jobId: this.job.num, step, dim, dtype: this.deps.settings.frameDtype };
    for (;;) {
      this.checkAbort();
      // Rows already handed to a node going into power saving: it finishes them (as it does
      // any job it is running), and the group leaves it after this hop.
      const hasRows = this.handedHere(step);
      if (lane.nodeId && lane.move && !(hasRows && lane.move === POWER_SAVING)) this.abandon(lane.move);
      if (!lane.nodeId) await this.assign();
      const nodeId = lane.nodeId!;
      const { sessionId } = lane;
      const chained = this.handedHere(step);
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
        let hopped = 0;
        let parts = 0;
        for (const [at, n] of blocks(rows, this.maxRows)) {
          const part = await this.output(nodeId, sessionId, step, position + at, n, chained ? undefined : x.subarray(at * dim, (at + n) * dim));
          parts++;
          if (this.lastViaHop) hopped++;
          if (n === rows) out = part;
          else (out ??= new Float32Array(rows * dim)).set(part, at * dim);
        }
        this.handed = lane.route && hopped === parts ? { ...lane.route, step } : undefined;
        if (lane.move === POWER_SAVING && chained) this.abandon(lane.move);
        lane.history.append(x);
        this.step++;
        this.job.tally.hops++;
        return out!;
      } catch (err) {
        if (!(err instanceof HopFailure)) throw err;
        this.abandon(err.message, err.silent);
      }
    }
  }

  /**
   * One block's output: kept if it came early, else awaited; `data` is sent first unless the
   * node already has it from the node before it on the route.
   */
  private async output(nodeId: string, sessionId: number, step: number, position: number, rows: number, data: Float32Array | undefined): Promise<Float32Array> {
    const { dim } = this.deps.model.config;
    const frame = { jobId: this.job.num, sessionId, step, position, rows, dim, dtype: this.deps.settings.frameDtype };
    const tally = this.job.tally;
    if (!data) tally.handedOn();
    const early = this.lane.early.take(step, position);
    if (early) {
      this.lastViaHop = early.via === 'hop';
      if (early.frame.rows !== rows) throw this.misshapen(nodeId, early.frame, rows);
      tally.crossed();
      return early.frame.data;
    }
    const wait = this.wait.expect({ kind: 'frame', nodeId, sessionId, step, position, rows }, this.deps.settings.hopTimeoutMs);
    if (data) {
      this.deps.send(nodeId, encodeFrame({ ...frame, data }), 0);
      tally.crossed();
    }
    const out = (await wait)!;
    tally.crossed();
    return out;
  }

  /** Did the stage before this one hand this step's rows straight to the node serving here? */
  private handedHere(step: number): boolean {
    const h = this.prev?.handed;
    const lane = this.lane;
    return h !== undefined && !lane.fresh && h.step === step && h.nodeId === lane.nodeId && h.sessionId === lane.sessionId;
  }

  /** Where this group's node should send its output: the next group's node now, or the gateway. */
  private successor(): HopRoute | undefined {
    const next = this.next?.lane;
    if (!this.deps.settings.chainHops || !next?.nodeId) return undefined;
    return { nodeId: next.nodeId, sessionId: next.sessionId };
  }

  /** The next group has a new node: this group's node sends there from its next output on. */
  private reroute(): void {
    const lane = this.lane;
    const next = this.successor();
    if (!lane.nodeId || (next?.nodeId === lane.route?.nodeId && next?.sessionId === lane.route?.sessionId)) return;
    lane.route = next;
    this.control(lane.nodeId, { v: PROTOCOL_VERSION, type: 'route', jobId: this.job.num, ...(next ? { next } : {}) });
  }

  private misshapen(nodeId: string, f: Frame, rows: number): HopFailure {
    const { dim } = this.deps.model.config;
    this.deps.scheduler.suspect(nodeId, this.deps.clock.now(), 'failing');
    return new HopFailure(`answered with a [${f.rows}, ${f.dim}] frame for [${rows}, ${dim}]`);
  }

  /**
   * After a finished generation: the close frame to the serving node, then its energy
   * report (up to reportTimeoutMs). After a failed one: the node is released and told.
   */
  async close(failure?: Error): Promise<void> {
    const lane = this.lane;
    const nodeId = lane.nodeId;
    if (!nodeId) return;
    if (failure) {
      this.leave(failure.message);
      return;
    }
    const key = `${nodeId}:${lane.sessionId}`;
    if (!this.reported.has(key)) this.awaitedReports.add(key);
    this.closed.add(key);
    // The close frame frees the node's queue place: QoS 1, and the place is ours no more.
    const { dim } = this.deps.model.config;
    this.deps.send(nodeId, encodeFrame({ jobId: this.job.num, sessionId: lane.sessionId, step: 0, position: lane.history.length, rows: 0, dim, close: true, data: new Float32Array(0) }), 1);
    this.deps.scheduler.release(nodeId);
    lane.nodeId = undefined;
    if (this.awaitedReports.size === 0) return;
    try {
      await this.wait.expect({ kind: 'reports' }, this.deps.settings.reportTimeoutMs, true);
    } catch {
      // Cancelled or shut down while only the energy report was outstanding: the text is complete.
    }
  }

  /** The job is cancelled or the gateway shuts down: a wait fails now, the next hop before it starts. */
  abort(err: JobError): void {
    this.aborted = err;
    this.wait.fail(err);
  }

  /** Picks a node for the lane and has it accept the job; waits while the group is only busy. */
  private async assign(): Promise<void> {
    const { scheduler, settings, clock } = this.deps;
    const lane = this.lane;
    const group = lane.group;
    const waitUntil = clock.now() + settings.queueTimeoutMs;
    for (;;) {
      this.checkAbort();
      const reason = lane.served.length > 0 || lane.tried.size > 0 ? 'failover' : 'dispatch';
      const pick = scheduler.pick(this.job.id, group, lane.tried, reason);
      if (!pick.ok) {
        if (pick.why === 'none') throw noNode(pick, group.name);
        const left = waitUntil - clock.now();
        if (left <= 0) {
          throw new JobError(`${pick.message} for ${settings.queueTimeoutMs} ms; retry later`, 'no-node', group.name);
        }
        await this.wait.expect({ kind: 'room' }, left, true);
        const none = scheduler.servable(group, lane.tried);
        if (none && !none.ok) throw noNode(none, group.name);
        continue;
      }
      const nodeId = pick.nodeId;
      scheduler.hold(nodeId);
      const sessionId = this.deps.nextSessionId();
      this.offered.add(`${nodeId}:${sessionId}`);
      const wait = this.wait.expect({ kind: 'offer', nodeId }, settings.hopTimeoutMs);
      const next = this.successor();
      this.control(nodeId, { v: PROTOCOL_VERSION, type: 'offer', jobId: this.job.num, sessionId, positions: this.positions, ...(next ? { next } : {}) });
      try {
        await wait;
      } catch (err) {
        scheduler.release(nodeId);
        // It may still accept later: tell it the job is gone, so its queue place frees.
        this.cancelAt(nodeId, err instanceof HopFailure ? err.message : 'job ended');
        if (!(err instanceof HopFailure)) throw err;
        lane.tried.add(nodeId);
        this.job.tally.failovers++;
        if (err.silent) scheduler.suspect(nodeId, clock.now());
        this.deps.log.warn({ jobId: this.job.id, group: group.name, node: nodeId, reason: err.message }, 'offer not taken; trying another node');
        continue;
      }
      lane.nodeId = nodeId;
      lane.sessionId = sessionId;
      lane.fresh = true;
      lane.move = undefined;
      lane.route = next;
      lane.early.clear();
      lane.served.push(nodeId);
      this.job.onAccepted();
      this.prev?.reroute();
      return;
    }
  }

  /** Leaves the lane's node for good in this job and counts a failover. */
  private abandon(reason: string, silent = false): void {
    const nodeId = this.lane.nodeId!;
    this.deps.log.warn({ jobId: this.job.id, group: this.lane.group.name, node: nodeId, reason }, 'failover: the group moves to another node');
    this.lane.tried.add(nodeId);
    if (silent) this.deps.scheduler.suspect(nodeId, this.deps.clock.now());
    this.leave(reason);
    this.job.tally.failovers++;
  }

  /** Releases the lane's node, cancelling its session when it can still hear us. */
  private leave(reason: string): void {
    const nodeId = this.lane.nodeId!;
    this.deps.scheduler.release(nodeId);
    this.cancelAt(nodeId, reason);
    this.lane.nodeId = undefined;
    this.lane.move = undefined;
  }

  private cancelAt(nodeId: string, reason: string): void {
    if (this.deps.isOnline(nodeId)) this.control(nodeId, { v: PROTOCOL_VERSION, type: 'cancel', jobId: this.job.num, reason: reason.slice(0, 200) });
  }

  private control(nodeId: string, msg: JobControl): void {
    // QoS 1: an offer or cancel that is lost would hold a queue place until the node's idle timeout.
    this.deps.send(nodeId, encodeJson(msg), 1);
  }

  private checkAbort(): void {
    if (this.aborted) throw this.aborted;
  }

  // --- what the nodes say, routed here by the job -----------------------------------------

  /**
   * True when the frame is an output of the node serving this stage: seen on its job/out
   * (`via` out, `topicNode` the sender), or on the job/hop of the node its route names
   * (`via` hop, `topicNode` the receiver). Awaited, it ends the wait; early, it is kept.
   */
  onFrame(via: Via, topicNode: string, f: Frame): boolean {
    const lane = this.lane;
    // On job/out, an output the node sent before it read a route message is still its own.
    if (f.replay || !lane.nodeId || !fromServing({ nodeId: lane.nodeId, sessionId: lane.sessionId, route: lane.route }, via, topicNode, f)) return false;
    const w = this.wait.what;
    if (w?.kind === 'frame' && w.step === f.step && w.position === f.position) {
      if (f.rows !== w.rows || f.dim !== this.deps.model.config.dim) {
        this.wait.fail(this.misshapen(w.nodeId, f, w.rows));
      } else {
        this.lastViaHop = via === 'hop';
        this.wait.resolve(f.data);
      }
      return true;
    }
    return f.step === this.step && f.dim === this.deps.model.config.dim && f.position + f.rows <= this.positions && lane.early.keep(f.step, f, via);
  }


  /**
   * False when the message is not about this stage: from a node it is not waiting on and
   * that does not serve it, or an energy report for a session it never offered (anyone
   * could otherwise add energy to a job).
   */
  onReport(nodeId: string, r: JobReport): boolean {
    const w = this.wait.what;
    const waitingOn = w !== undefined && 'nodeId' in w && w.nodeId === nodeId;
    const lane = this.lane.nodeId === nodeId ? this.lane : undefined;
    switch (r.type) {
      case 'accepted':
        if (waitingOn && w.kind === 'offer') this.wait.resolve();
        return waitingOn || lane !== undefined;
      case 'refused':
        if (waitingOn && w.kind === 'offer') this.wait.fail(new HopFailure(`refused: ${r.reason}`));
        return waitingOn || lane !== undefined;
      case 'handed-back':
        if (waitingOn) this.wait.fail(new HopFailure(`handed back: ${r.reason}`));
        else if (lane) lane.move = `handed back: ${r.reason}`;
        return waitingOn || lane !== undefined;
      case 'report': {
        const key = `${nodeId}:${r.sessionId}`;
        if (!this.offered.has(key)) return false;
        if (!this.reported.has(key)) {
          this.reported.add(key);
          this.job.tally.addReport(r);
          if (r.decode) {
            this.lane.decode.frames += r.decode.frames;
            this.lane.decode.forwardMs += r.decode.forwardMs;
          }
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
        this.reportsIn();
        return true;
      }
    }
  }

  /** The node's will, or its silence: a hop waiting on it fails now. */
  onNodeDown(nodeId: string, reason: string): void {
    const w = this.wait.what;
    if (w && 'nodeId' in w && w.nodeId === nodeId) this.wait.fail(new HopFailure(reason));
    if (this.lane.nodeId === nodeId) this.lane.move = reason;
    for (const key of this.awaitedReports) if (key.startsWith(`${nodeId}:`)) this.awaitedReports.delete(key);
    this.reportsIn();
  }

  /** The node entered power saving: the group leaves it before its next hop. */
  onPowerSaving(nodeId: string): void {
    if (this.lane.nodeId === nodeId) this.lane.move = POWER_SAVING;
  }

  /** Queue room or a node's state changed somewhere: a stage waiting for room looks again. */
  wake(): void {
    if (this.wait.what?.kind === 'room') this.wait.resolve();
  }

  private reportsIn(): void {
    if (this.wait.what?.kind === 'reports' && this.awaitedReports.size === 0) this.wait.resolve();
  }
}

/** The job's refusal when nobody in the group can serve, with when to retry if the group sleeps. */
function noNode(none: { message: string; retryAfterS?: number }, group: string): JobError {
  return new JobError(none.message, 'no-node', group, none.retryAfterS);
}
