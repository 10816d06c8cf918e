// Coordinated sleep (our extension; docs/scheduling.md, "Coordinated sleep"). A Pi draws its
// idle power whenever it is on, so a group that keeps every node awake through the night
// spends N idle draws to serve what one node could, and its nodes run flat together before
// dawn. The planner keeps awake, per group, the fewest nodes that cover the expected demand,
// and sends the others to sleep (halted, woken by an RTC alarm) until their own panel's
// forecast harvest first covers their idle draw, or until an awake node is expected to run
// out and someone must take over. A job passes every group, so the groups' plans are then
// aligned: while one group has no node up, the others' spare nodes sleep until it is back.
// Pure: state in, orders out; the gateway and the simulator call the same functions.
import { DEFAULT_QUEUE_CAPACITY } from '../../protocol/rules.js';

/** What the planner knows of one node, in quanta and slots. */
export interface SleepNodeView {
  /** On and reachable: it can take an order now. */
  awake: boolean;
  /** Holds a job: it is not sent to sleep before the job is done. */
  busy: boolean;
  /**
   * Kept awake and counted on like a node in daylight, unless it would run flat: the caller
   * cannot yet trust the forecast that would time its wake (the gateway's first day of it),
   * or jobs have found its group asleep and wait for it.
   */
  held?: boolean;
  /**
   * Jobs it may hold at once (its queue capacity; DEFAULT_QUEUE_CAPACITY if unsaid): it may
   * be handed that many before the planner sees it again, and must be able to finish them.
   */
  holds?: number;
  energyQ: number;
  /** E_th: the node halts (runs flat) below it. */
  eThQ: number;
  /** Idle draw per slot while awake. */
  idleQ: number;
  /**
   * Expected harvest in each coming slot, index 0 the slot that starts now (the gateway's
   * estimate by time of day, from the node's own slot records).
   */
  forecastQ: (slotsAhead: number) => number;
}

export interface GroupDemand {
  /** Expected job arrivals per slot (recent rate). */
  arrivalsPerSlot: number;
  /** Slots one job occupies a node (κ of the mode the awake nodes run). */
  stageSlots: number;
  /** Mean energy one job costs a node above idle, quanta. */
  jobQ: number;
}

export interface SleepOptions {
  /** How far ahead the forecast is searched for the node's dawn, slots (a day: 864 at δ = 100 s). */
  horizonSlots: number;
  /**
   * Busy share one awake node may carry: above it a job would often find every awake node's
   * queue full. 0.7 keeps a queue of two from overflowing at random arrivals most of the time.
   */
  targetUtilisation: number;
  /** Slots before an awake node's expected end at which its relief is woken. */
  reliefLeadSlots: number;
  /**
   * A node halted to save it from running flat sleeps until its forecast has charged it
   * with this many slots of service (idle draw and its share of jobs) above E_th, so that
   * it does not boot only to run flat again (and not before its dawn).
   */
  reserveSlots: number;
  /**
   * The shortest sleep given to a node only because another group of the pipeline is down
   * (rule 6). A halt and a boot cost a Pi 4 about 1 kJ (gateway/sleep-planner.ts, checkInMs),
   * 370 s of its 2.7 W idle draw: a sleep much shorter than 6 slots of 100 s saves less than
   * it costs.
   */
  pipelineMinSlots: number;
}

export const SLEEP_DEFAULTS: SleepOptions = { horizonSlots: 864, targetUtilisation: 0.7, reliefLeadSlots: 6, reserveSlots: 36, pipelineMinSlots: 6 };

/**
 * Why a node is sent to sleep: it would run flat (rule 1), the demand does not need it
 * (rule 2), or another group of the pipeline is down, so no job can pass (rule 6).
 */
export type SleepReason = 'flat' | 'spare' | 'pipeline';

/** An order for one node: stay awake, or sleep and wake after `wakeInSlots`. */
export type SleepOrder = { sleep: false } | { sleep: true; wakeInSlots: number; why: SleepReason };

/**
 * A forecast by time of day corrected by the sky now: `ratio` is the harvest of the last
 * hour over what the time-of-day mean expected, and the correction fades with the time a
 * cloud regime lasts (`persistSlots`; sim/weather's clear, broken and overcast spells last
 * 3–10 h on average), back to the mean.
 */
export function persistentForecast(byTimeOfDay: (slotsAhead: number) => number, ratio: number, persistSlots: number): (slotsAhead: number) => number {
  const k = Math.max(0, Math.min(2, Number.isFinite(ratio) ? ratio : 1));
  return (t) => byTimeOfDay(t) * (1 + (k - 1) * Math.exp(-t / persistSlots));
}

/** First coming slot whose forecast covers the idle draw; 0 while it does now; the horizon if never. */
export function dawnSlots(node: SleepNodeView, horizonSlots: number): number {
  for (let t = 0; t < horizonSlots; t++) if (node.forecastQ(t) >= node.idleQ) return t;
  return horizonSlots;
}

/** Slots an awake node can carry its idle draw and its share of the jobs before it reaches E_th, on its forecast. */
export function runtimeSlots(node: SleepNodeView, loadQPerSlot: number, horizonSlots: number): number {
  let e = node.energyQ;
  for (let t = 0; t < horizonSlots; t++) {
    e += node.forecastQ(t) - node.idleQ - loadQPerSlot;
    if (e < node.eThQ) return t;
  }
  return horizonSlots;
}

/** Slots asleep (drawing nothing) until the forecast has charged the node to `targetQ`; the horizon if never. */
export function chargeSlots(node: SleepNodeView, targetQ: number, horizonSlots: number): number {
  let e = node.energyQ;
  for (let t = 0; t < horizonSlots; t++) {
    if (e >= targetQ) return t;
    e += node.forecastQ(t);
  }
  return horizonSlots;
}

/** Awake nodes the demand needs: its busy share over the target, at least one while jobs arrive. */
export function neededAwake(demand: GroupDemand, groupSize: number, o: SleepOptions = SLEEP_DEFAULTS): number {
  if (!(demand.arrivalsPerSlot > 0)) return 0;
  return Math.min(groupSize, Math.max(1, Math.ceil((demand.arrivalsPerSlot * demand.stageSlots) / o.targetUtilisation)));
}

/**
 * Slots of runtime below which a node is halted before running flat: the relief lead, and
 * the stages of the jobs it may hold, since between two rounds it may be handed as many as
 * its queue takes, and a stage once started runs to its end.
 */
export function haltLeadSlots(node: SleepNodeView, demand: GroupDemand, o: SleepOptions = SLEEP_DEFAULTS): number {
  return o.reliefLeadSlots + (node.holds ?? DEFAULT_QUEUE_CAPACITY) * demand.stageSlots;
}

/**
 * Nodes the group's energy above E_th can keep awake until its first dawn: the sum of its
 * nodes' margins over what one awake node draws in that time (its idle draw, and its share
 * of the jobs, at most one stage after another). In a night the energy cannot carry, more
 * nodes awake serve no more jobs: the same margin is spent either way, but each node not
 * kept busy draws its idle power between jobs, so fewer jobs are served with it.
 */
export function affordableAwake(group: readonly SleepNodeView[], demand: GroupDemand, need: number, nightSlots: number): number {
  let margin = 0;
  let idle = 0;
  for (const n of group) {
    margin += Math.max(0, n.energyQ - n.eThQ);
    idle += n.idleQ / group.length;
  }
  const perNode = idle + Math.min(demand.arrivalsPerSlot / Math.max(1, need), 1 / Math.max(1e-9, demand.stageSlots)) * demand.jobQ;
  return Math.floor(margin / (Math.max(1, nightSlots) * perNode));
}

/**
 * Orders for one group. Only awake nodes get orders (a sleeping node cannot be reached until
 * its alarm).
 * 1. A node about to run flat on its forecast (within `haltLeadSlots`) halts now, with its
 *    alarm at its dawn (when its forecast covers its idle draw) or once the forecast has
 *    charged it with an hour's service, whichever is later: a planned halt keeps the reserve
 *    it needs to boot and serve, where running flat would not, and boots it only when it
 *    can stay up. A busy node takes the order too: it serves what it holds, takes nothing
 *    new, and then halts. If no node is left awake, every node would have run flat anyway.
 * 2. Of the others, a node in daylight, busy or held stays awake; at night the planner keeps
 *    the `neededAwake` nodes with the most energy above E_th (no more than
 *    `affordableAwake`, at least one) and sends the rest to sleep until their dawn, except
 *    the one with the most energy, which relieves the first kept node expected to run out
 *    before its dawn: it is woken a little before.
 */
export function planSleep(group: readonly SleepNodeView[], demand: GroupDemand, o: SleepOptions = SLEEP_DEFAULTS): SleepOrder[] {
  const orders: SleepOrder[] = group.map(() => ({ sleep: false }));
  const dawn = group.map((n) => dawnSlots(n, o.horizonSlots));
  const need = Math.max(1, neededAwake(demand, group.length, o));
  const loadQ = (demand.arrivalsPerSlot * demand.jobQ) / need;
  const runtime = group.map((n) => (n.awake ? runtimeSlots(n, loadQ, o.horizonSlots) : Infinity));
  const awake: number[] = [];
  group.forEach((n, i) => {
    if (!n.awake) return;
    if ((runtime[i] as number) > haltLeadSlots(n, demand, o)) {
      awake.push(i);
      return;
    }
    const reserve = n.eThQ + o.reserveSlots * (n.idleQ + loadQ);
    orders[i] = { sleep: true, wakeInSlots: Math.max(1, dawn[i] as number, chargeSlots(n, reserve, o.horizonSlots)), why: 'flat' };
  });
  const night = (i: number) => !group[i]!.busy && !group[i]!.held && (dawn[i] as number) > 0;
  const margin = (i: number) => group[i]!.energyQ - group[i]!.eThQ;
  const keep = new Set(awake.filter((i) => !night(i)));
  const candidates = awake.filter(night).sort((a, b) => margin(b) - margin(a));
  const affordable = Math.max(1, Math.min(need, affordableAwake(group, demand, need, Math.min(...dawn))));
  for (const i of candidates) if (keep.size < affordable) keep.add(i);
  const sleepers = candidates.filter((i) => !keep.has(i));
  let reliefAt = Infinity;
  for (const i of keep) if ((runtime[i] as number) < (dawn[i] as number)) reliefAt = Math.min(reliefAt, runtime[i] as number);
  sleepers.forEach((i, rank) => {
    const own = dawn[i] as number;
    const wake = rank === 0 && reliefAt < Infinity ? Math.min(own, reliefAt - o.reliefLeadSlots) : own;
    orders[i] = { sleep: true, wakeInSlots: Math.max(1, wake), why: 'spare' };
  });
  return orders;
}

/**
 * Slots until the group has a node up again under its orders: 0 while one stays up, else the
 * first wake among its nodes. `upInSlots` gives, per node not awake, when it is back (its
 * alarm, or its recovery after running flat); Infinity when nobody knows.
 */
export function groupBackInSlots(group: readonly SleepNodeView[], orders: readonly SleepOrder[], upInSlots: readonly number[]): number {
  let back = Infinity;
  for (let i = 0; i < group.length; i++) {
    const order = orders[i]!;
    if (group[i]!.awake) {
      if (!order.sleep) return 0;
      back = Math.min(back, order.wakeInSlots);
    } else back = Math.min(back, upInSlots[i] as number);
  }
  return back;
}

/**
 * 6. The pipeline (our extension). A job passes every group, so while one group has no node
 *    up, a node awake in another serves nothing and spends its idle draw for it. Given when
 *    the whole pipeline is up again (the latest of the groups' `groupBackInSlots`), each
 *    node of this group that stays awake, is not busy and is not held sleeps until then, if
 *    that is at least `pipelineMinSlots` away and known at all. The groups then wake
 *    together with what they saved, instead of taking turns to be awake in vain.
 */
export function alignToPipeline(group: readonly SleepNodeView[], orders: readonly SleepOrder[], pipelineBackInSlots: number, o: SleepOptions = SLEEP_DEFAULTS): SleepOrder[] {
  if (!Number.isFinite(pipelineBackInSlots) || pipelineBackInSlots < o.pipelineMinSlots) return [...orders];
  return orders.map((order, i) => {
    const n = group[i]!;
    if (order.sleep || !n.awake || n.busy || n.held) return order;
    return { sleep: true, wakeInSlots: Math.ceil(pipelineBackInSlots), why: 'pipeline' };
  });
}
