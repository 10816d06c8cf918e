// The node's half of coordinated sleep (docs/agent.md "Sleeping"): the gateway's `sleep`
// command is accepted only when the wake path's check() passes and the wake time is one the
// alarm can hold after the node has had time to go down. Then the node stops taking offers,
// lets the jobs it holds finish (handing back those that would not), sets the alarm, says
// it is sleeping, stops like at a shutdown and halts. An alarm that cannot be set keeps it
// up: a node halted without one stays off until someone walks out to it.
import type { Logger } from 'pino';
import type { Clock } from '../ground/clock.js';
import type { OpenedWake } from '../hardware/wake/open.js';
import { errorText } from '../hardware/i2c.js';
import type { NodeProfile } from '../protocol/index.js';
import { within } from './deadline.js';
import type { BlockWorker } from './worker.js';

/**
 * The furthest wake time accepted: the Witty Pi 4 matches its alarm on day of month only
 * (hardware/wake/wittyPi4.ts), so one bound every path can hold.
 */
export const MAX_SLEEP_MS = 27 * 86_400_000;
/** Time a Pi takes from the halt command to power off; an alarm due before then is lost. */
export const HALT_MS = 60_000;

export type WakeState = NonNullable<NodeProfile['wake']>;

/** What the sleep needs of the agent, which builds it. */
export interface SleepParts {
  clock: Clock;
  log: Logger;
  wake: OpenedWake;
  worker: BlockWorker | undefined;
  /** The longest the held jobs may take to finish, and the stop's own network budget (ms of the clock). */
  drainMs: number;
  stopFlushMs: number;
  /** Publishes an event with the node's battery, γ and PM. */
  event(kind: 'sleeping' | 'config-changed', detail: string): void;
  /** Sends job/out (hand-backs). */
  publishJobOut(payload: Buffer): Promise<void>;
  /** Re-publishes the retained birth (the wake state changed). */
  announce(): void;
  stop(reason: string): Promise<void>;
  /** Whether the agent has stopped for another reason (SIGTERM, critical battery) meanwhile. */
  stopped(): boolean;
  halt(reason: string): Promise<void>;
}

export interface SleepPlan {
  wakeAtMs: number;
  reason: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class NodeSleep {
  /** The accepted sleep, from the command until the halt or until it is given up: offers are refused meanwhile. */
  plan: SleepPlan | undefined;
  private state: WakeState;

  constructor(private readonly parts: SleepParts) {
    this.state = parts.wake.path ? { path: parts.wake.kind, ok: false, reason: 'not checked yet' } : noPath();
  }

  /** The birth's `wake`: the last check's result. */
  wakeState(): WakeState {
    return this.state;
  }

  /** Checks the wake path again; true when the result differs from the one the birth carried. */
  async recheck(): Promise<boolean> {
    const path = this.parts.wake.path;
    if (!path) return false;
    const c = await path.check();
    const next: WakeState = { path: this.parts.wake.kind, ok: c.ok, ...(c.ok ? {} : { reason: (c.reason ?? 'check failed').slice(0, 300) }) };
    const changed = next.ok !== this.state.ok || next.reason !== this.state.reason;
    this.state = next;
    return changed;
  }

  /** The sleep command: refuses with the reason, or accepts and goes to sleep right after the reply. */
  async command(plan: SleepPlan): Promise<Record<string, unknown>> {
    const path = this.parts.wake.path;
    if (!path) throw new Error(noPath().reason);
    if (this.plan) throw new Error(`already going to sleep until ${iso(this.plan.wakeAtMs)}`);
    if (await this.recheck()) this.parts.announce();
    if (!this.state.ok) throw new Error(`${path.describe()} cannot wake this node: ${this.state.reason}; it refuses to sleep`);
    const nowMs = this.parts.clock.now();
    const leadMs = this.parts.drainMs + this.parts.stopFlushMs + HALT_MS;
    if (!(plan.wakeAtMs - nowMs >= leadMs)) {
      throw new Error(`the wake time ${iso(plan.wakeAtMs)} is less than ${leadMs / 1000} s after now (${iso(nowMs)}): finishing the held jobs (sleepDrainMs), the stop (stopFlushMs) and the halt could take longer, and the alarm would be lost`);
    }
    if (plan.wakeAtMs - nowMs > MAX_SLEEP_MS) {
      throw new Error(`the wake time ${iso(plan.wakeAtMs)} is more than ${MAX_SLEEP_MS / 86_400_000} days ahead, beyond what every wake path can hold`);
    }
    this.plan = plan;
    // Reply first (the caller publishes it when this returns), then go.
    setImmediate(() => void this.goToSleep(plan));
    return { sleeping: true, wakeAtMs: plan.wakeAtMs, wakePath: path.describe() };
  }

  private async goToSleep(plan: SleepPlan): Promise<void> {
    const { parts } = this;
    const path = parts.wake.path!;
    const { worker, log } = parts;
    if (worker) {
      const held = worker.handBackWaiting('node going to sleep before the job started', (p) => parts.publishJobOut(p));
      if (worker.queue() > 0) log.info({ detail: held, drainMs: parts.drainMs }, 'sleep: finishing the held jobs');
      // Those still running after the drain are handed back by the stop, as at a shutdown.
      if ((await within(parts.clock, worker.whenEmpty(), parts.drainMs)) === 'late') {
        log.warn({ jobs: worker.queue(), drainMs: parts.drainMs }, 'sleep: held jobs not finished in time; the stop hands them back');
      }
    }
    if (parts.stopped()) {
      log.warn({ wakeAtMs: plan.wakeAtMs }, 'sleep given up: the agent stopped while the held jobs finished');
      return;
    }
    try {
      await path.setWakeAt(plan.wakeAtMs);
    } catch (err) {
      await this.stayUp(plan, errorText(err));
      return;
    }
    log.warn({ wakeAtMs: plan.wakeAtMs, wakeAt: iso(plan.wakeAtMs), reason: plan.reason, path: path.describe() }, 'sleep: alarm set, halting');
    parts.event('sleeping', `asleep until ${iso(plan.wakeAtMs)} (wakeAtMs ${plan.wakeAtMs}), woken by ${path.describe()}: ${plan.reason}`.slice(0, 500));
    const why = `sleep until ${iso(plan.wakeAtMs)}: ${plan.reason}`;
    // The stop flushes the spool (the sleeping event with it) within stopFlushMs.
    await parts.stop(why).catch((err: Error) => log.error({ err: err.message }, 'error while stopping for sleep'));
    await parts.halt(why).catch((err: Error) => log.error({ err: err.message }, 'halt command failed; the alarm stays set'));
  }

  /** The alarm was not taken: the node stays up, takes offers again and says why. */
  private async stayUp(plan: SleepPlan, error: string): Promise<void> {
    const { parts } = this;
    const path = parts.wake.path!;
    parts.log.error({ err: error, wakeAtMs: plan.wakeAtMs }, 'sleep given up: the wake alarm could not be set; staying up');
    // A half-written alarm would power the node up at a time nobody asked for.
    await path.clear().catch((err: Error) => parts.log.warn({ err: err.message }, 'alarm not cleared after the failed set'));
    await this.recheck();
    if (this.state.ok) this.state = { path: parts.wake.kind, ok: false, reason: `the last alarm was not taken: ${error}`.slice(0, 300) };
    this.plan = undefined;
    // The event re-announces the birth, which now carries the failed wake path.
    parts.event('config-changed', `sleep until ${iso(plan.wakeAtMs)} given up, staying up: ${path.describe()} did not take the alarm: ${error}`.slice(0, 500));
  }
}

function noPath(): WakeState & { reason: string } {
  return { path: 'none', ok: false, reason: 'this node has no wake path configured (wake.path in its config, docs/hardware.md "Wake paths"): it refuses to sleep, since nothing would wake it' };
}
