// Coordinated sleep in the live gateway (docs/scheduling.md "Coordinated sleep"): every few
// minutes of the gateway's clock, each group's nodes are seen as gateway/scheduler/sleep.ts
// sees them (battery, idle draw, a forecast by time of day from their own slot records,
// the recent arrival rate of jobs), and the nodes planSleep sends to sleep get the `sleep`
// command with their alarm time. The orders and each group's count of sleeping nodes go
// to InfluxDB.
//
// Only a node whose birth says its wake path works can be sent to sleep: the others are
// shown to the planner as busy, so it keeps them awake and counts on them. What the planner
// believes of a node (sent to sleep, asleep, its planned wake) is kept by the registry
// (NodeState.sleep) until the node's next birth, where the scheduler reads it: a node sent
// to sleep takes no new job, and its going offline is no failure.
//
// A node is planned only once its estimator has records in all 24 hours of the day. Before
// that the forecast of an hour never seen is the mean of the hours seen: a gateway started
// on a low morning sun foresees no dawn, and would send the nodes it does not need to sleep
// until the next day, their slot records stopping with them. Until then a node is held
// awake and counted on; only a halt before running flat is still given (see planGroup).
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Clock, Timer } from '../ground/clock.js';
import { PROTOCOL_VERSION, type Command } from '../protocol/index.js';
import type { HarvestEstimator } from './estimator.js';
import type { NodeState, Registry } from './registry.js';
import { modeAt, neededAwake, planSleep, runtimeSlots, type GroupDemand, type SleepNodeView, type SleepOptions } from './scheduler/index.js';
import { sleepGroupPoint, sleepPlanPoint, type Store } from './store/index.js';

export const SleepPlannerConfigSchema = z.strictObject({
  /** Off unless asked for: sending nodes to sleep needs agents with a working wake path. */
  enabled: z.boolean().default(false),
  /** How often the groups are planned. */
  everyMs: z.number().int().positive().default(300_000),
  /** The window over which the arrival rate of jobs is measured. */
  demandWindowMs: z.number().int().positive().default(3_600_000),
  /** How far ahead a node's forecast is searched for its dawn. */
  horizonMs: z.number().int().positive().default(86_400_000),
  /** Busy share one awake node may carry (SleepOptions.targetUtilisation). */
  targetUtilisation: z.number().gt(0).max(1).default(0.7),
  /** Slots before an awake node's expected end at which its relief is woken. */
  reliefLeadSlots: z.number().int().nonnegative().default(6),
  /** Slots of service a node halted to save it from running flat is charged with before it wakes. */
  reserveSlots: z.number().int().nonnegative().default(36),
  /**
   * A node sent to sleep that is still online and has not said `sleeping` after this long
   * refused or never got the order: it is counted awake again and may take jobs.
   */
  settleMs: z.number().int().positive().default(600_000),
}).prefault({});

export type SleepPlannerConfig = z.infer<typeof SleepPlannerConfigSchema>;

export interface SleepPlannerDeps {
  fleet: string;
  registry: Pick<Registry, 'groups' | 'members' | 'sleepOrdered' | 'sleepSettled'>;
  clock: Clock;
  log: Logger;
  store: Pick<Store, 'write'>;
  /** Jobs submitted so far (the router's counter): their rate is the demand. */
  submitted: () => number;
  /** Jobs the router has handed the node and not yet closed. */
  inHand: (nodeId: string) => number;
  /** Publishes a command on the node's `cmd` topic (QoS 1). */
  command: (nodeId: string, command: Command) => void;
}

/** One `sleep` order sent. */
export interface SleepDecision {
  nodeId: string;
  group: string;
  wakeAtMs: number;
  reason: string;
}

/** On, not sent to sleep, with a slot length and a measured battery: a node the planner can give an order. */
function planned(n: NodeState): boolean {
  return n.online && !n.sleep && n.profile.slotMs !== undefined && n.lastSeq !== undefined;
}

/** Every hour of the day has a record: the forecast of the day ahead is the node's own. */
function dayKnown(n: NodeState): boolean {
  return n.estimator.hoursSeen() === 24;
}

export class SleepPlanner {
  private timer: Timer | undefined;
  private orders = 0;
  /** Histories already named in the log as not planned yet: one line a node's first day, not one a round. */
  private readonly toldUnplanned = new WeakSet<HarvestEstimator>();
  /** The router's submitted count at earlier rounds, oldest first, over the demand window. */
  private readonly arrivals: Array<{ atMs: number; submitted: number }> = [];

  constructor(private readonly config: SleepPlannerConfig, private readonly deps: SleepPlannerDeps) {
    this.arrivals.push({ atMs: deps.clock.now(), submitted: deps.submitted() });
  }

  start(): void {
    this.timer ??= this.deps.clock.setInterval(() => this.plan(), this.config.everyMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One planning round over every group; returns the orders sent. */
  plan(): SleepDecision[] {
    const now = this.deps.clock.now();
    const perMs = this.arrivalsPerMs(now);
    const sent: SleepDecision[] = [];
    for (const group of this.deps.registry.groups()) {
      try {
        sent.push(...this.planGroup(group, this.deps.registry.members(group), perMs, now));
      } catch (err) {
        this.deps.log.error({ group, err: (err as Error).message }, 'sleep plan failed for the group; its nodes stay as they are');
      }
    }
    return sent;
  }

  /** Jobs per ms over the demand window, from the router's counter. */
  private arrivalsPerMs(now: number): number {
    const submitted = this.deps.submitted();
    this.arrivals.push({ atMs: now, submitted });
    while (this.arrivals.length > 2 && this.arrivals[1]!.atMs <= now - this.config.demandWindowMs) this.arrivals.shift();
    const first = this.arrivals[0]!;
    return now > first.atMs ? (submitted - first.submitted) / (now - first.atMs) : 0;
  }

  private planGroup(group: string, members: NodeState[], perMs: number, now: number): SleepDecision[] {
    for (const n of members) this.settle(n, now);
    const awake = members.filter(planned);
    for (const n of awake) this.tellUnplanned(n, group);
    if (awake.length === 0) {
      this.writeGroup(group, members, 0, now);
      return [];
    }
    // The group's slot: its members' slot lengths are alike in practice; the views are scaled to it.
    const slotMs = awake[0]!.profile.slotMs!;
    const views = members.map((n) => this.view(n, slotMs, now));
    const demand = this.demand(awake, perMs, slotMs);
    const options = this.options(slotMs);
    const orders = planSleep(views, demand, options);
    const need = Math.max(1, neededAwake(demand, members.length, options));
    const loadQ = (demand.arrivalsPerSlot * demand.jobQ) / need;
    const sent: SleepDecision[] = [];
    orders.forEach((order, i) => {
      const node = members[i]!;
      if (!order.sleep || !views[i]!.awake) return;
      if (!node.profile.canWake) {
        this.deps.log.warn({ node: node.nodeId, group }, 'node would be sent to sleep but has no working wake path: it stays on');
        return;
      }
      const flat = runtimeSlots(views[i]!, loadQ, options.horizonSlots) <= options.reliefLeadSlots + (views[i]!.busy ? 2 * demand.stageSlots : 0);
      const reason = flat ? 'would run flat: halted with its reserve' : 'not needed until its forecast covers its idle draw';
      // The command carries whole ms; a scaled clock reads fractions of one.
      let wakeAtMs = Math.ceil(now + order.wakeInSlots * slotMs);
      const unseen = dayKnown(node) ? undefined : node.estimator.nextUnseenHourMs(now);
      // A held node's only order is a halt before running flat. That is decided on the next
      // few slots, within the hour of its latest record; its alarm would rest on hours it was
      // never heard in, so it wakes at the first of them at the latest, records that hour and
      // is planned again: on a first night, an hour's idle draw traded for a boot.
      if (unseen !== undefined) wakeAtMs = Math.min(wakeAtMs, Math.max(Math.ceil(now + slotMs), unseen));
      sent.push(this.order(node, views[i]!, wakeAtMs, reason, now));
    });
    this.writeGroup(group, members, demand.arrivalsPerSlot, now);
    return sent;
  }

  /** An order the node neither obeyed nor refused in time: it is awake after all. */
  private settle(node: NodeState, now: number): void {
    const s = node.sleep;
    if (!s || s.asleepSinceMs !== undefined || s.orderedAtMs === undefined || !node.online) return;
    if (now - s.orderedAtMs < this.config.settleMs) return;
    this.deps.log.warn({ node: node.nodeId, orderedAtMs: s.orderedAtMs }, 'node sent to sleep is still on and never said it sleeps: counted awake again');
    this.deps.registry.sleepSettled(node.nodeId);
  }

  /**
   * What planSleep sees of a node, in quanta per slot of the group's `slotMs`. A node with
   * no slot record since its birth has no battery level or forecast to plan with: it is
   * given no order (shown as not awake) until its first record.
   */
  private view(n: NodeState, slotMs: number, now: number): SleepNodeView {
    const q = n.profile.quantumJ;
    const scale = slotMs / (n.profile.slotMs ?? slotMs);
    const idleQ = (n.profile.idleQ ?? 0) * scale;
    const forecast = n.estimator.forecast(now, n.profile.slotMs ?? slotMs);
    return {
      awake: planned(n) && forecast !== undefined,
      busy: !n.profile.canWake || this.deps.inHand(n.nodeId) > 0 || n.queue > 0,
      held: !dayKnown(n),
      energyQ: n.batteryJ / q,
      eThQ: n.profile.eThJ / q,
      idleQ,
      forecastQ: forecast ? (t) => forecast(t / scale) * scale : () => idleQ,
    };
  }

  private tellUnplanned(n: NodeState, group: string): void {
    if (dayKnown(n) || this.toldUnplanned.has(n.estimator)) return;
    this.toldUnplanned.add(n.estimator);
    this.deps.log.info({ node: n.nodeId, group, hoursSeen: n.estimator.hoursSeen() },
      'node not planned for sleep yet: its slot records cover only some hours of the day, so its forecast cannot time a wake; it stays awake unless it would run flat');
  }

  /** The arrival rate per slot, and κ and C_E of the modes the awake nodes run at their battery now. */
  private demand(awake: NodeState[], perMs: number, slotMs: number): GroupDemand {
    let stageSlots = 0;
    let jobQ = 0;
    for (const n of awake) {
      const p = n.profile;
      const eMax = Math.floor(p.capacityJ / p.quantumJ);
      const mode = modeAt({ eMax, modes: p.modes, modeTable: p.modeTable }, Math.max(0, Math.min(eMax, Math.floor(n.batteryJ / p.quantumJ))));
      stageSlots += (mode.kappa * (p.slotMs ?? slotMs)) / slotMs;
      jobQ += mode.costQ;
    }
    return { arrivalsPerSlot: perMs * slotMs, stageSlots: stageSlots / awake.length, jobQ: jobQ / awake.length };
  }

  private options(slotMs: number): SleepOptions {
    const c = this.config;
    return {
      horizonSlots: Math.max(1, Math.ceil(c.horizonMs / slotMs)),
      targetUtilisation: c.targetUtilisation,
      reliefLeadSlots: c.reliefLeadSlots,
      reserveSlots: c.reserveSlots,
    };
  }

  private order(node: NodeState, view: SleepNodeView, wakeAtMs: number, reason: string, now: number): SleepDecision {
    const { nodeId } = node;
    const group = node.profile.group;
    this.deps.command(nodeId, { v: PROTOCOL_VERSION, id: `sleep-${++this.orders}`, op: 'sleep', wakeAtMs, reason });
    this.deps.registry.sleepOrdered(nodeId, wakeAtMs, now);
    this.deps.log.info({ node: nodeId, group, wakeAt: new Date(wakeAtMs).toISOString(), reason }, 'node sent to sleep');
    this.deps.store.write(sleepPlanPoint({ fleet: this.deps.fleet, node: nodeId, group }, {
      wakeAtMs, wakeInS: (wakeAtMs - now) / 1000, reason, energyQ: Math.floor(view.energyQ),
    }, now));
    return { nodeId, group, wakeAtMs, reason };
  }

  private writeGroup(group: string, members: NodeState[], arrivalsPerSlot: number, now: number): void {
    const asleep = members.filter((n) => n.sleep);
    const wakes = asleep.flatMap((n) => (n.sleep?.wakeAtMs !== undefined ? [n.sleep.wakeAtMs] : []));
    this.deps.store.write(sleepGroupPoint(this.deps.fleet, group, {
      asleep: asleep.length,
      awake: members.filter((n) => n.online && !n.sleep).length,
      arrivalsPerSlot,
      nextWakeAtMs: wakes.length ? Math.min(...wakes) : undefined,
    }, now));
  }
}
