// The block worker: holds one model shard (sha256-verified on load) and runs its layer
// range for the gateway's jobs. A job is offered (JSON on job/in), accepted only when the
// node is active with queue room, then fed activation frames per session; each frame is
// run through the layers with the session's KV cache and answered with an output frame of
// the same header. A close frame (or the idle timeout) ends the session and the job, which
// is reported with its duration and measured energy: the node's consumption metered by the
// ledger over the samples around the job's part, above the idle draw over those same
// samples, with its uncertainty (agent/energy.ts, docs/agent.md "Per-job energy").
//
// The CPU time of the forwards is metered (ForwardCpuMeter), so that a virtual node can
// draw power for the work done rather than for the time a job is held.
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';
import { readManifest, readShards } from '../models/shards.js';
import { BlockStack, type BlockSession } from '../models/forward.js';
import { monotonicMs, type Clock, type Timer } from '../ground/clock.js';
import type { Log } from '../ground/log.js';
import {
  PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeJson, isFrame, parseJobControl, type Frame, type HopRoute, type JobReport,
} from '../protocol/index.js';
import { EnergyAccount, type MeteredInterval } from './energy.js';

/** Energy meter: the ledger's metered intervals, and a sample on demand to close one. */
export interface JobMeter {
  onInterval(listener: (i: MeteredInterval) => void): () => void;
  sampleNow(): Promise<unknown>;
}

export interface WorkerOptions {
  shardDir: string;
  firstBlock: number;
  lastBlock: number;
  /** Threads of the stage's matmul kernel (default: every core). */
  threads?: number;
  queueCapacity: number;
  sessionIdleMs: number;
  clock: Clock;
  log: Log;
  /** Or connected later (`meter`): the composition root builds the ledger after the worker. */
  meter?: JobMeter;
  /** The PM index in force, for the report; or connected later (`powerMode`), as the policy is built after the worker. */
  powerMode?: () => number;
  /**
   * Told when the first held job starts computing and when the last one ends (the virtual
   * node raises its load), with the meter of the CPU time the forwards take.
   */
  onBusy?: (busy: boolean, cpu: ForwardCpuMeter) => void;
}

/**
 * The CPU time spent in this worker's forwards, as a share of the host's cores. A forward is
 * synchronous and process.cpuUsage() counts every thread of the process, the matmul kernel's
 * worker threads included, so the CPU time across one forward call is that forward's work.
 * `sample()` gives the busy share since its previous call: that CPU time over the wall time
 * × the cores. A stage that waits two thirds of the time for the other stages, or that
 * finishes a forward in half the time on twice the threads, shows it.
 */
export class ForwardCpuMeter {
  /** CPU time inside forwards, µs (user + system, all threads). */
  private busyUs = 0;
  private sampledUs = 0;
  /** Real time, whatever the node's clock: CPU time is real, so its share is of real time. */
  private sampledAtMs = performance.now();
  private share = 0;

  constructor(readonly cores: number = availableParallelism()) {
    if (!Number.isInteger(cores) || cores < 1) throw new Error(`cores must be a positive integer, got ${cores}`);
  }

  /** Runs `work` and counts the process's CPU time it took. */
  time<T>(work: () => T): T {
    const start = process.cpuUsage();
    try {
      return work();
    } finally {
      const d = process.cpuUsage(start);
      this.busyUs += d.user + d.system;
    }
  }

  /** CPU seconds spent in forwards so far. */
  get busyCpuS(): number {
    return this.busyUs / 1e6;
  }

  /** Busy share of the cores (0..1) since the previous call; the last share when no time has passed. */
  sample(): number {
    const now = performance.now();
    const wallUs = (now - this.sampledAtMs) * 1000;
    if (wallUs <= 0) return this.share;
    this.share = Math.min(1, (this.busyUs - this.sampledUs) / (wallUs * this.cores));
    this.sampledUs = this.busyUs;
    this.sampledAtMs = now;
    return this.share;
  }
}

interface HeldJob {
  jobId: number;
  sessionId: number;
  /** KV-cache size asked by the offer (clamped to the model's context); undefined: the whole context. */
  positions: number | undefined;
  session: BlockSession | undefined;
  steps: number;
  /** Where outputs go: the next group's node (its job/hop), or the gateway when absent. */
  next: HopRoute | undefined;
  startedMs: number | undefined;
  /** Ends the session once it has been idle sessionIdleMs; armed once, not per frame (see touch). */
  idle: Timer | undefined;
  /** When the job last heard from the gateway (monotonic ms): the idle timeout counts from here. */
  lastHeardMs: number;
  /** Decode forwards (one-row frames, not replays) and their wall time, ms, for the report. */
  decode: { frames: number; forwardMs: number };
}

/** Publishes on the node's job/out, or with `hopTo` on that node's job/hop. */
type Send = (payload: Buffer, hopTo?: string) => Promise<void> | void;

/**
 * Job messages by outcome (every message on job/in lands in exactly one of the counts), and
 * where a frame's time goes on this node.
 */
export interface WorkerCounters {
  accepted: number;
  offersRefused: number;
  cancelled: number;
  /** Route moves for a held job. */
  routed: number;
  frames: number;
  /** Not a valid control message or frame by the protocol: dropped. */
  invalid: number;
  /** A valid frame or cancel for a job or session this node does not hold: dropped. */
  notHeld: number;
  /** Frames of one row, a decode step's: the hop every generated token makes. */
  decodeFrames: number;
  /** Wall time inside those frames' forwards, ms. */
  decodeForwardMs: number;
  /** Wall time from those frames' arrival to their output handed to the link, forwards included, ms. */
  decodeFrameMs: number;
}

export class BlockWorker {
  readonly counters: WorkerCounters = { accepted: 0, offersRefused: 0, cancelled: 0, routed: 0, frames: 0, invalid: 0, notHeld: 0, decodeFrames: 0, decodeForwardMs: 0, decodeFrameMs: 0 };
  private readonly jobs = new Map<number, HeldJob>();
  /** Per-job energy from the meter's intervals, and the idle baseline. */
  readonly energy = new EnergyAccount();
  private saving = false;
  /** Held jobs whose session is open (computing); onBusy follows 0 ↔ 1. */
  private computing = 0;
  /** CPU time of the forwards, for the virtual node's load. */
  readonly cpu = new ForwardCpuMeter();
  private jobMeter: JobMeter | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Jobs dropped from the queue whose report is still being sent. */
  private reporting = 0;
  private emptyWaiters: Array<() => void> = [];

  /** What the birth announces: the shard folder's name, the blocks and, when one file holds exactly them, its sha256. */
  readonly shard: { model: string; firstBlock: number; lastBlock: number; sha256?: string };

  /** The PM index in force, for the reports. */
  powerMode: () => number;

  private constructor(readonly stack: BlockStack, private readonly o: WorkerOptions, sha256: string | undefined) {
    this.shard = { model: basename(resolve(o.shardDir)), firstBlock: o.firstBlock, lastBlock: o.lastBlock, ...(sha256 ? { sha256 } : {}) };
    this.meter = o.meter;
    this.powerMode = o.powerMode ?? (() => 0);
  }

  get meter(): JobMeter | undefined {
    return this.jobMeter;
  }

  /** Set by the composition root once the ledger exists: every interval it meters is accounted. */
  set meter(m: JobMeter | undefined) {
    this.unsubscribe?.();
    this.jobMeter = m;
    this.unsubscribe = m?.onInterval((i) => this.energy.interval(i, this.jobs.size));
  }

  /** Loads blocks [firstBlock, lastBlock] from our shard folder; every file's sha256 is checked. */
  static load(o: WorkerOptions): BlockWorker {
    const range = { from: o.firstBlock, to: o.lastBlock + 1 };
    const manifest = readManifest(o.shardDir);
    // the shard's matrices are read straight into the stage's kernel memory: held once
    const stack = new BlockStack((allocate) => readShards(o.shardDir, { range, head: false }, manifest, allocate), range, { threads: o.threads });
    const exact = manifest.blocks.find((b) => b.from === range.from && b.to === range.to);
    const worker = new BlockWorker(stack, o, exact?.sha256);
    o.log.info({ shardDir: o.shardDir, from: range.from, to: range.to, dim: stack.config.dim, weightBytes: stack.kernel.weightBytes(), threads: stack.kernel.threads }, 'shard loaded');
    return worker;
  }

  queue(): number {
    return this.jobs.size;
  }

  /**
   * Power saving: no new jobs. A job already computing is finished (its energy is mostly
   * spent, and handing it over would make the gateway replay its whole context elsewhere);
   * a job accepted but not started is handed back so it can go to an active node now.
   */
  enterSaving(send?: Send): string {
    this.saving = true;
    return this.handBackWaiting('node entered power saving before the job started', send);
  }

  /** Hands back the jobs accepted but not started; says what was handed back and what still runs. */
  handBackWaiting(reason: string, send?: Send): string {
    const handed: number[] = [];
    for (const job of [...this.jobs.values()]) {
      if (job.steps > 0) continue;
      this.drop(job);
      handed.push(job.jobId);
      const report: JobReport = { v: PROTOCOL_VERSION, type: 'handed-back', jobId: job.jobId, reason };
      void send?.(encodeJson(report));
    }
    this.settleIfEmpty();
    const running = [...this.jobs.values()].map((j) => j.jobId);
    return `${running.length ? `finishing running job ${running.join(', ')}` : 'no running job'}; ${handed.length ? `handed back ${handed.join(', ')}` : 'nothing waiting'}`;
  }

  /** Resolves once no job is held and the last one's report has been sent. */
  whenEmpty(): Promise<void> {
    if (this.jobs.size === 0 && this.reporting === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  private settleIfEmpty(): void {
    if (this.jobs.size > 0 || this.reporting > 0) return;
    const waiters = this.emptyWaiters;
    this.emptyWaiters = [];
    for (const w of waiters) w();
  }

  leaveSaving(): void {
    this.saving = false;
  }

  /** One message from job/in: a JSON control message or an activation frame. */
  async handle(payload: Buffer, send: Send, active: boolean, inactiveBecause = 'node is in power saving'): Promise<void> {
    if (!isFrame(payload)) {
      const c = parseJobControl(payload);
      if (!c.ok) {
        this.counters.invalid++;
        this.o.log.warn({ error: c.error }, 'refused a job message');
        return;
      }
      if (c.value.type === 'offer') {
        const { jobId, sessionId } = c.value;
        const positions = c.value.positions === undefined ? undefined : Math.min(c.value.positions, this.stack.config.seqLen);
        let reason: string | null = null;
        if (!active) reason = inactiveBecause;
        else if (this.saving) reason = 'node is in power saving';
        else if (this.jobs.has(jobId)) reason = `job ${jobId} is already held`;
        else if (this.jobs.size >= this.o.queueCapacity) reason = `queue full (${this.o.queueCapacity})`;
        if (reason) {
          this.counters.offersRefused++;
          await send(encodeJson({ v: PROTOCOL_VERSION, type: 'refused', jobId, reason } satisfies JobReport));
          return;
        }
        this.counters.accepted++;
        const job: HeldJob = { jobId, sessionId, positions, session: undefined, steps: 0, next: c.value.next, startedMs: undefined, idle: undefined, lastHeardMs: 0, decode: { frames: 0, forwardMs: 0 } };
        this.jobs.set(jobId, job);
        this.touch(job, send);
        await send(encodeJson({ v: PROTOCOL_VERSION, type: 'accepted', jobId } satisfies JobReport));
      } else if (c.value.type === 'route') {
        const job = this.jobs.get(c.value.jobId);
        if (job) {
          this.counters.routed++;
          job.next = c.value.next;
        } else {
          this.counters.notHeld++;
        }
      } else {
        const job = this.jobs.get(c.value.jobId);
        if (job) {
          this.counters.cancelled++;
          await this.finish(job, send, false, `cancelled: ${c.value.reason}`);
        } else {
          this.counters.notHeld++;
        }
      }
      return;
    }
    const arrivedMs = performance.now();
    const d = decodeFrame(payload);
    if (!d.ok) {
      this.counters.invalid++;
      this.o.log.warn({ error: d.error }, 'refused an activation frame');
      return;
    }
    const f = d.frame;
    const job = this.jobs.get(f.jobId);
    if (!job || job.sessionId !== f.sessionId) {
      this.counters.notHeld++;
      this.o.log.warn({ jobId: f.jobId, sessionId: f.sessionId }, 'frame for a job this node does not hold');
      return;
    }
    this.counters.frames++;
    try {
      const out = this.run(job, f);
      if (out) {
        const sent = send(out, job.next?.nodeId);
        if (f.rows === 1) this.counters.decodeFrameMs += performance.now() - arrivedMs;
        await sent;
      }
    } catch (err) {
      await this.finish(job, send, false, (err as Error).message);
      return;
    }
    if (f.close) await this.finish(job, send, true);
    else this.touch(job, send);
  }

  /** Runs one frame; returns the output frame, or null for replay and empty close frames. */
  run(job: HeldJob, f: Frame): Buffer | null {
    if (f.rows === 0) return null;
    const dim = this.stack.geometry.dim;
    if (f.dim !== dim) throw new Error(`frame width ${f.dim} does not match this shard's dim ${dim}`);
    if (!job.session) {
      job.session = this.stack.openSession({ capacity: job.positions });
      job.startedMs = monotonicMs(this.o.clock);
      this.energy.start(job.jobId);
      if (this.computing++ === 0) {
        this.cpu.sample(); // the busy share counts from here
        this.o.onBusy?.(true, this.cpu);
      }
    }
    if (f.position !== job.session.length) throw new Error(`frame position ${f.position} but the session's cache holds ${job.session.length} positions; replay the context first`);
    const session = job.session;
    const cpuBefore = this.cpu.busyCpuS;
    const forwardFrom = performance.now();
    const out = this.cpu.time(() => this.stack.forward(session, f.data, f.rows));
    if (f.rows === 1 && !f.replay) {
      const ms = performance.now() - forwardFrom;
      this.counters.decodeFrames++;
      this.counters.decodeForwardMs += ms;
      job.decode.frames++;
      job.decode.forwardMs += ms;
    }
    this.energy.addCpu(job.jobId, this.cpu.busyCpuS - cpuBefore);
    job.steps++;
    if (f.replay) return null;
    // A chained output enters the next node's session; the step and position stay the hop's.
    return encodeFrame({ jobId: f.jobId, sessionId: job.next?.sessionId ?? f.sessionId, step: f.step, position: f.position, rows: f.rows, dim, dtype: f.dtype, data: out });
  }

  /**
   * The job heard from the gateway. Cancelling and re-arming a timer for every frame cost
   * two timer-list operations per hop on the token's path; the one timer armed here checks
   * on firing whether the job was heard from since, and waits out the rest if so.
   */
  private touch(job: HeldJob, send: Send): void {
    job.lastHeardMs = monotonicMs(this.o.clock);
    if (!job.idle) this.armIdle(job, send, this.o.sessionIdleMs);
  }

  private armIdle(job: HeldJob, send: Send, inMs: number): void {
    job.idle = this.o.clock.setTimeout(() => {
      const left = job.lastHeardMs + this.o.sessionIdleMs - monotonicMs(this.o.clock);
      if (left > 0) this.armIdle(job, send, left);
      else void this.finish(job, send, false, `session idle for ${this.o.sessionIdleMs} ms`);
    }, inMs);
  }

  private drop(job: HeldJob): void {
    job.idle?.cancel();
    job.session?.close();
    this.jobs.delete(job.jobId);
    if (job.session && --this.computing === 0) this.o.onBusy?.(false, this.cpu);
  }

  private async finish(job: HeldJob, send: Send, ok: boolean, error?: string): Promise<void> {
    if (!this.jobs.has(job.jobId)) return;
    this.reporting++;
    try {
      await this.report(job, send, ok, error);
    } finally {
      this.reporting--;
      this.settleIfEmpty();
    }
  }

  private async report(job: HeldJob, send: Send, ok: boolean, error?: string): Promise<void> {
    const now = monotonicMs(this.o.clock);
    const durationMs = job.startedMs === undefined ? 0 : now - job.startedMs;
    // The queue place is free at once (the gateway counts it free once it sent the close
    // frame); the energy account charges the job until the closing sample below.
    this.drop(job);
    // The sample that ends the job's part: its last interval is metered, not cut at the last periodic sample.
    if (job.startedMs !== undefined && this.jobMeter) {
      await this.jobMeter.sampleNow().catch((err: Error) => this.o.log.warn({ jobId: job.jobId, err: err.message }, 'closing sample failed'));
    }
    // A job that never started used nothing.
    const e = this.energy.finish(job.jobId);
    const baselineW = this.energy.baselineW;
    const report: JobReport = {
      v: PROTOCOL_VERSION, type: 'report', jobId: job.jobId, sessionId: job.sessionId, ok, ...(error ? { error } : {}),
      steps: job.steps, durationMs, energyJ: e.energyJ, ...(this.jobMeter ? { energyUncertaintyJ: e.uncertaintyJ } : {}), baselineW, powerMode: this.powerMode(),
      decode: { ...job.decode },
    };
    this.o.log.info({ jobId: job.jobId, ok, steps: job.steps, durationMs, energyJ: e.energyJ, energyUncertaintyJ: e.uncertaintyJ, rawEnergyJ: e.rawJ, error }, 'job finished');
    await send(encodeJson(report));
  }

  /**
   * The node is going away (critical battery, shutdown command, SIGTERM): every job it
   * holds is reported failed with `reason`, so the gateway can fail over now instead of
   * waiting for the session to time out.
   */
  async abandon(send: Send, reason: string): Promise<number> {
    const held = [...this.jobs.values()];
    for (const job of held) await this.finish(job, send, false, reason);
    return held.length;
  }

  close(): void {
    this.meter = undefined;
    for (const job of [...this.jobs.values()]) this.drop(job);
    this.settleIfEmpty();
    this.stack.dispose();
  }
}
