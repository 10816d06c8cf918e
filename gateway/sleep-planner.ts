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
//
// A halted Pi hears no MQTT, so a node sent to sleep only because it is not needed naps: its
// alarm is at most `checkInMs` ahead. A job that finds its whole group asleep gets 503 with
// Retry-After (the group's first planned wake) and raises a wake request for the group; the
// nodes of it that check in are then held awake, unless they would run flat, and serve the
// client's retry. There is no command that takes a sleep order back, so a node ordered to
// sleep that has not halted yet is left to halt and check in.
//
// A job passes every group, so the groups are planned each on its own and then aligned
// (alignToPipeline): while one group has no node up, the others' spare nodes nap until it is
// back. That is known only of a group whose nodes are all asleep by order; a node offline
// for any other reason has no known return, and nothing is aligned to it.
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Clock, Timer } from '../ground/clock.js';
import { PROTOCOL_VERSION, type Command } from '../protocol/index.js';
import type { HarvestEstimator } from './estimator.js';
import type { NodeState, Registry } from './registry.js';
import { alignToPipeline, groupBackInSlots, modeAt, planSleep, type GroupDemand, type SleepNodeView, type SleepOptions, type SleepOrder } from './scheduler/index.js';
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
  /**
   * The longest sleep of a node that is not needed (not one halted before running flat): it
   * then boots and checks in, so jobs that found its group asleep wait no longer than this.
   * A check-in costs a boot and the minutes awake until the next round sends it back (on a
   * Pi 4 about 40 s at ~4 W, then up to `everyMs` at its 2.7 W idle draw: about 1 kJ),
   * against the 4.9 kJ of idle draw it saves over 30 min asleep: a nap keeps about four
   * fifths of what a sleep saves. Clock time, like every other duration here.
   */
  checkInMs: z.number().int().positive().default(1_800_000),
  /**
   * The shortest nap given to a node only because another group is down (SleepOptions.
   * pipelineMinSlots): below about 10 min a halt and a boot cost more than the idle draw
   * they save.
   */
  pipelineMinMs: z.number().int().positive().default(600_000),
}).prefault({});

export type SleepPlannerConfig = z.infer<typeof SleepPlannerConfigSchema>;

export interface SleepPlannerDeps {
  fleet: string;
  registry: Pick<Registry, 'groups' | 'members' | 'sleepOrdered' | 'sleepSettled'>;
  clock: Clock;
  log: Logger;
  store: Pick<Store, 'write'>;
  /**
   * Jobs submitted so far (the router's counter): their rate is the demand. A job refused
   * because its group sleeps was submitted too, so the refused ones count in it.
   */
  submitted: () => number;
  /** Jobs so far that found the group asleep (the router's counter): each raises a wake request. */
  refusedAsleep: (group: string) => number;
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

/** One group's round: its own orders, and when it has a node up again under them (Infinity: not known). */
interface GroupRound {
  group: string;
  members: NodeState[];
  views: SleepNodeView[];
  orders: SleepOrder[];
  /** Undefined when no node of the group could take an order. */
  slotMs?: number;
  arrivalsPerSlot: number;
  backMs: number;
}

/** On, not sent to sleep, with a slot length and a measured battery: a node the planner can give an order. */
function planned(n: NodeState): boolean {
  return n.online && !n.sleep && n.profile.slotMs !== undefined && n.lastSeq !== undefined;
}

/** Time until the node is up: 0 while on and not sent to sleep, its planned wake if sent, else not known. */
function upInMs(n: NodeState, now: number): number {
  if (n.online && !n.sleep) return 0;
  return n.sleep?.wakeAtMs !== undefined ? Math.max(0, n.sleep.wakeAtMs - now) : Infinity;
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
  /** Per group, the router's count of jobs refused as asleep at the last round. */
  private readonly refusalsSeen = new Map<string, number>();
  /** Groups whose sleep turned jobs away, since when: held awake as their nodes check in. */
  private readonly wakeRequested = new Map<string, number>();
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
    const rounds: GroupRound[] = [];
    let pipelineBackMs = 0;
    for (const group of this.deps.registry.groups()) {
      try {
        const round = this.planGroup(group, this.deps.registry.members(group), perMs, now);
        rounds.push(round);
        pipelineBackMs = Math.max(pipelineBackMs, round.backMs);
      } catch (err) {
        this.deps.log.error({ group, err: (err as Error).message }, 'sleep plan failed for the group; its nodes stay as they are');
        pipelineBackMs = Infinity;
      }
    }
    const sent: SleepDecision[] = [];
    for (const round of rounds) {
      try {
        if (round.slotMs !== undefined) sent.push(...this.send(round, alignToPipeline(round.views, round.orders, pipelineBackMs / round.slotMs, this.options(round.slotMs)), now));
      } catch (err) {
        this.deps.log.error({ group: round.group, err: (err as Error).message }, 'sleep orders failed for the group; its nodes stay as they are');
      }
      this.writeGroup(round.group, round.members, round.arrivalsPerSlot, now);
    }
    return sent;
  }

  /** Jobs per ms over the demand window, from the router's counter. */
  private arrivalsPerMs(now: number): number {
    const submitted = this.deps.submitted();
    this.arrivals.push({ atMs: now, submitted });
    while (this.arrivals.length > 2 && this.arrivals[1]!.atMs <= now - this.config.demandWindowMs) this.arrivals.shift();
    const first = this.arrivals[0]!;
    // Over less than a round (a round run by hand just after the start), one job would read
    // as a flood, and every node as about to run flat on its share.
    return now > first.atMs ? (submitted - first.submitted) / Math.max(now - first.atMs, this.config.everyMs) : 0;
  }

  /** The group's own plan (planSleep), and when it has a node up again under it. */
  private planGroup(group: string, members: NodeState[], perMs: number, now: number): GroupRound {
    for (const n of members) this.settle(n, now);
    this.noteRefusals(group, now);
    const awake = members.filter(planned);
    for (const n of awake) this.tellUnplanned(n, group);
    if (awake.length === 0) return { group, members, views: [], orders: [], arrivalsPerSlot: 0, backMs: this.backMs(members, now) };
    // The group's slot: its members' slot lengths are alike in practice; the views are scaled to it.
    const slotMs = awake[0]!.profile.slotMs!;
    const views = members.map((n) => this.view(n, slotMs, now, this.wakeRequested.has(group)));
    const demand = this.demand(awake, perMs, slotMs);
    const orders = planSleep(views, demand, this.options(slotMs));
    const upIn = members.map((n) => upInMs(n, now) / slotMs);
    return { group, members, views, orders, slotMs, arrivalsPerSlot: demand.arrivalsPerSlot, backMs: groupBackInSlots(views, orders, upIn) * slotMs };
  }

  /** When a group none of whose nodes can take an order is up: its first node's return. */
  private backMs(members: NodeState[], now: number): number {
    return Math.min(Infinity, ...members.map((n) => upInMs(n, now)));
  }

  /** The orders of a round, sent; then a wake request the round meets is closed. */
  private send(round: GroupRound, orders: SleepOrder[], now: number): SleepDecision[] {
    const { group, members, views } = round;
    const slotMs = round.slotMs!;
    const sent: SleepDecision[] = [];
    orders.forEach((order, i) => {
      const node = members[i]!;
      if (!order.sleep || !views[i]!.awake) return;
      if (!node.profile.canWake) {
        this.deps.log.warn({ node: node.nodeId, group }, 'node would be sent to sleep but has no working wake path: it stays on');
        return;
      }
      // The command carries whole ms; a scaled clock reads fractions of one.
      const plannedMs = Math.ceil(now + order.wakeInSlots * slotMs);
      const { wakeAtMs, reason } = order.why === 'flat' ? this.halt(node, plannedMs, slotMs, now) : this.nap(plannedMs, now, order.why);
      sent.push(this.order(node, views[i]!, wakeAtMs, reason, now));
    });
    // A node of the group kept awake and able to serve meets the request: the refused jobs'
    // share of the demand keeps one awake from here while their clients come back.
    if (this.wakeRequested.has(group) && orders.some((o, i) => !o.sleep && views[i]!.awake && members[i]!.gamma === 1)) {
      this.deps.log.info({ group, requestedAtMs: this.wakeRequested.get(group) }, 'a node of the group is awake again: wake request met');
      this.wakeRequested.delete(group);
    }
    return sent;
  }

  /**
   * A halt before running flat, with its reserve. A node whose day is not known yet is
   * halted too: that is decided on the next few slots, within the hour of its latest record.
   * Its alarm would rest on hours it was never heard in, so it wakes at the first of them at
   * the latest, records that hour and is planned again: on a first night, an hour's idle
   * draw traded for a boot.
   */
  private halt(node: NodeState, plannedMs: number, slotMs: number, now: number): { wakeAtMs: number; reason: string } {
    const reason = 'would run flat: halted with its reserve';
    const unseen = dayKnown(node) ? undefined : node.estimator.nextUnseenHourMs(now);
    return { wakeAtMs: unseen === undefined ? plannedMs : Math.min(plannedMs, Math.max(Math.ceil(now + slotMs), unseen)), reason };
  }

  /**
   * A node not needed sleeps until its forecast covers its idle draw, or until the whole
   * pipeline is up again; or its check-in if that is sooner.
   */
  private nap(plannedMs: number, now: number, why: 'spare' | 'pipeline'): { wakeAtMs: number; reason: string } {
    const checkInAtMs = Math.ceil(now + this.config.checkInMs);
    const reason = why === 'spare' ? 'not needed until its forecast covers its idle draw' : 'another group of the pipeline has no node up until then';
    return plannedMs <= checkInAtMs ? { wakeAtMs: plannedMs, reason } : { wakeAtMs: checkInAtMs, reason: `${reason}; checks in before` };
  }

  /** Jobs refused since the last round because the group sleeps: a wake-up is wanted. */
  private noteRefusals(group: string, now: number): void {
    const refused = this.deps.refusedAsleep(group);
    const seen = this.refusalsSeen.get(group) ?? 0;
    this.refusalsSeen.set(group, refused);
    if (refused <= seen || this.wakeRequested.has(group)) return;
    this.wakeRequested.set(group, now);
    this.deps.log.info({ group, refused: refused - seen }, 'jobs found the group asleep: wake requested, its next node to check in stays awake unless it would run flat');
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
  private view(n: NodeState, slotMs: number, now: number, wakeRequested: boolean): SleepNodeView {
    const q = n.profile.quantumJ;
    const scale = slotMs / (n.profile.slotMs ?? slotMs);
    // Unrounded (chainProfile): a Pi 4 on a 36 Wh battery draws a fifth of a quantum a slot.
    const idleQ = (n.profile.idleQ ?? 0) * scale;
    const forecast = n.estimator.forecast(now, n.profile.slotMs ?? slotMs);
    return {
      awake: planned(n) && forecast !== undefined,
      busy: !n.profile.canWake || this.deps.inHand(n.nodeId) > 0 || n.queue > 0,
      held: wakeRequested || !dayKnown(n),
      energyQ: n.batteryJ / q,
      eThQ: n.profile.eThJ / q,
      idleQ,
      holds: n.profile.queueCapacity,
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
      pipelineMinSlots: c.pipelineMinMs / slotMs,
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
      wakeRequested: this.wakeRequested.has(group),
    }, now));
  }
}
