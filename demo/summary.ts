// A run's account of itself (`heliomesh demo --summary FILE`), kept from the components'
// own counters and events rather than from what the plan says should happen: each node's
// power board (FieldNode's power events: critical shutdowns, planned halts, boots), the
// plants' energy ledgers, the gateway's job counters and its registry's slot records.
// Counters only grow, so a window of the run (the second day, once the gateway's
// estimator has seen every hour) is the difference of two tallies.
import type { Field } from './field.js';
import type { FieldNode, PowerEvent } from './node.js';

const HOUR_MS = 3_600_000;
const WH_J = 3600;

/** One node's counts and times, cumulative from the tally's start. */
interface NodeCount {
  /** Critical shutdowns: the battery ran flat and the board cut the Pi. */
  flat: number;
  /** Halts for a planned sleep (the gateway's order, the RTC alarm set). */
  sleeps: number;
  /** Power-ons by the board: an RTC alarm, or a flat battery back at the recovery level. */
  boots: number;
  asleepMs: number;
  downFlatMs: number;
  /** Slot records the gateway took from the node. */
  slotRecords: number;
  /** Slot records the gateway found missing from sequence gaps (its own lifetime count). */
  missedSlots: number;
  harvestedJ: number;
  consumedJ: number;
  storedJ: number;
}

interface Tally {
  atMs: number;
  nodes: Record<string, NodeCount>;
  submitted: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Jobs refused because their group slept (HTTP 503 group_asleep); also counted in failed. */
  refusedAsleep: number;
  /** Jobs in flight at the tally. */
  active: number;
  groupWithoutAwakeMs: number;
}

export interface NodeFigures {
  group: string;
  flatEvents: number;
  plannedSleeps: number;
  boots: number;
  asleepHours: number;
  downFlatHours: number;
  /** Slot records the gateway took over the slots the node was powered on for: below 1, slots were lost or late. */
  slotRecords: number;
  slotsKeptShare: number;
  missedSlots: number;
  harvestedWh: number;
  consumedWh: number;
}

export interface Figures {
  fromMs: number;
  toMs: number;
  from: string;
  to: string;
  hours: number;
  nodes: Record<string, NodeFigures>;
  fleet: {
    flatEvents: number;
    flatEventsPerNode: number;
    plannedSleeps: number;
    boots: number;
    asleepNodeHours: number;
    jobsSubmitted: number;
    jobsCompleted: number;
    jobsFailed: number;
    jobsRefusedAsleep: number;
    jobsCancelled: number;
    jobsInFlightAtEnd: number;
    /** Simulated hours during which at least one group had no node powered on. */
    someGroupWithoutAwakeHours: number;
    someGroupWithoutAwakeShare: number;
    harvestedWh: number;
    consumedWh: number;
    storedWhAtStart: number;
    storedWhAtEnd: number;
    /** Completed jobs per Wh the panels delivered; null when nothing was harvested. */
    jobsPerWhHarvested: number | null;
    /** The worst node's share of its slots that reached the gateway. */
    slotsKeptShareWorst: number;
  };
}

/** One power-off or power-on of a node, as its board saw it. */
export interface PowerRecord {
  node: string;
  at: string;
  event: 'flat' | 'sleep' | 'boot';
  batteryPct: number;
  reason: string;
}

export interface RunSummary {
  /** How the run was set up (the demo's options, as given). */
  run: Record<string, unknown>;
  /** The simulated time the field's clock started at (the learning starts there). */
  fieldStart: string;
  slotMs: number;
  /** The whole run, from the field being up to the end. */
  whole: Figures;
  /** The measured window, from `measureFromMs` to the end; absent when none was asked for or the run ended first. */
  window?: Figures;
  /** Every power event of the run, in order: when each node ran flat, went to sleep and booted. */
  events: PowerRecord[];
}

interface NodeTrack {
  node: FieldNode;
  count: Omit<NodeCount, 'missedSlots' | 'harvestedJ' | 'consumedJ' | 'storedJ'>;
  /** Why and since when the node is off; undefined while powered on. */
  off?: { cause: 'sleep' | 'flat'; sinceMs: number };
}

/**
 * Follows a running field from now on. `tally()` reads everything at the clock's now;
 * `mark()` keeps that reading as the start of the measured window.
 */
export class RunRecorder {
  private readonly tracks = new Map<string, NodeTrack>();
  private readonly groups: string[];
  private groupWithoutAwakeMs = 0;
  /** Since when some group has had no node powered on; undefined while every group has one. */
  private withoutAwakeSinceMs: number | undefined;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly start: Tally;
  private readonly events: PowerRecord[] = [];
  private windowStart: Tally | undefined;

  constructor(private readonly field: Field) {
    const now = field.clock.now();
    for (const node of field.nodes) {
      const track: NodeTrack = { node, count: { flat: 0, sleeps: 0, boots: 0, asleepMs: 0, downFlatMs: 0, slotRecords: 0 } };
      // A node already off when the tally starts (halted while the others were starting) is counted off from now.
      if (node.power === 'off') track.off = { cause: node.wakeAtMs !== undefined ? 'sleep' : 'flat', sinceMs: now };
      this.tracks.set(node.nodeId, track);
      this.unsubscribe.push(node.onPower((e) => this.power(track, e)));
    }
    this.groups = [...new Set(field.nodes.map((n) => n.plan.group))];
    this.awakeChanged(now);
    const onSlot = (n: { nodeId: string }) => {
      const t = this.tracks.get(n.nodeId);
      if (t) t.count.slotRecords++;
    };
    field.gateway.registry.on('slot', onSlot);
    this.unsubscribe.push(() => field.gateway.registry.off('slot', onSlot));
    this.start = this.tally();
  }

  private power(track: NodeTrack, e: PowerEvent): void {
    const c = track.count;
    this.events.push({
      node: track.node.nodeId, at: new Date(e.atMs).toISOString(), event: e.kind === 'on' ? 'boot' : e.cause,
      batteryPct: Math.round(e.batteryPct * 10) / 10, reason: e.kind === 'on' ? e.why : e.reason,
    });
    if (e.kind === 'off') {
      if (e.cause === 'flat') c.flat++;
      else c.sleeps++;
      track.off = { cause: e.cause, sinceMs: e.atMs };
    } else {
      c.boots++;
      if (track.off) this.closeOff(track, e.atMs);
      track.off = undefined;
    }
    this.awakeChanged(e.atMs);
  }

  private closeOff(track: NodeTrack, atMs: number): void {
    const off = track.off!;
    const ms = Math.max(0, atMs - off.sinceMs);
    if (off.cause === 'sleep') track.count.asleepMs += ms;
    else track.count.downFlatMs += ms;
  }

  private awakeChanged(atMs: number): void {
    const tracks = [...this.tracks.values()];
    const someGroupDark = this.groups.some((g) => tracks.every((t) => t.node.plan.group !== g || t.off !== undefined));
    if (someGroupDark && this.withoutAwakeSinceMs === undefined) this.withoutAwakeSinceMs = atMs;
    if (!someGroupDark && this.withoutAwakeSinceMs !== undefined) {
      this.groupWithoutAwakeMs += Math.max(0, atMs - this.withoutAwakeSinceMs);
      this.withoutAwakeSinceMs = undefined;
    }
  }

  /** Everything counted so far, with the intervals still open counted up to now. */
  tally(): Tally {
    const now = this.field.clock.now();
    const { gateway } = this.field;
    const nodes: Record<string, NodeCount> = {};
    for (const [id, t] of this.tracks) {
      const open = t.off ? Math.max(0, now - t.off.sinceMs) : 0;
      const e = t.node.energy();
      nodes[id] = {
        ...t.count,
        asleepMs: t.count.asleepMs + (t.off?.cause === 'sleep' ? open : 0),
        downFlatMs: t.count.downFlatMs + (t.off?.cause === 'flat' ? open : 0),
        missedSlots: gateway.registry.get(id)?.missedSlots ?? 0,
        harvestedJ: e.harvestedJ, consumedJ: e.consumedJ, storedJ: e.storedJ,
      };
    }
    const c = gateway.router.counters();
    return {
      atMs: now, nodes,
      submitted: c.submitted, completed: c.completed, failed: c.failed, cancelled: c.cancelled, active: c.active,
      refusedAsleep: this.groups.reduce((sum, g) => sum + gateway.router.refusedAsleep(g), 0),
      groupWithoutAwakeMs: this.groupWithoutAwakeMs + (this.withoutAwakeSinceMs !== undefined ? Math.max(0, now - this.withoutAwakeSinceMs) : 0),
    };
  }

  /** The start of the measured window: now. */
  mark(): void {
    this.windowStart = this.tally();
  }

  get marked(): boolean {
    return this.windowStart !== undefined;
  }

  /** The summary at the clock's now; the recorder stops following the field. */
  finish(run: Record<string, unknown>): RunSummary {
    const end = this.tally();
    for (const u of this.unsubscribe) u();
    const nodeGroup = new Map(this.field.nodes.map((n) => [n.nodeId, n.plan.group]));
    return {
      run, fieldStart: new Date(this.field.options.startMs).toISOString(), slotMs: this.field.slotMs,
      whole: figures(this.start, end, nodeGroup, this.field.slotMs),
      ...(this.windowStart ? { window: figures(this.windowStart, end, nodeGroup, this.field.slotMs) } : {}),
      events: this.events,
    };
  }
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** What happened between two tallies. */
export function figures(a: Tally, b: Tally, nodeGroup: Map<string, string>, slotMs: number): Figures {
  const spanMs = b.atMs - a.atMs;
  const nodes: Record<string, NodeFigures> = {};
  let stored0 = 0;
  let stored1 = 0;
  for (const [id, n1] of Object.entries(b.nodes)) {
    const n0 = a.nodes[id]!;
    const asleepMs = n1.asleepMs - n0.asleepMs;
    const downFlatMs = n1.downFlatMs - n0.downFlatMs;
    const poweredSlots = (spanMs - asleepMs - downFlatMs) / slotMs;
    const slotRecords = n1.slotRecords - n0.slotRecords;
    nodes[id] = {
      group: nodeGroup.get(id) ?? '',
      flatEvents: n1.flat - n0.flat,
      plannedSleeps: n1.sleeps - n0.sleeps,
      boots: n1.boots - n0.boots,
      asleepHours: round(asleepMs / HOUR_MS),
      downFlatHours: round(downFlatMs / HOUR_MS),
      slotRecords,
      slotsKeptShare: poweredSlots > 0 ? round(slotRecords / poweredSlots) : 1,
      missedSlots: n1.missedSlots - n0.missedSlots,
      harvestedWh: round((n1.harvestedJ - n0.harvestedJ) / WH_J),
      consumedWh: round((n1.consumedJ - n0.consumedJ) / WH_J),
    };
    stored0 += n0.storedJ;
    stored1 += n1.storedJ;
  }
  const rows = Object.values(nodes);
  const sum = (f: (n: NodeFigures) => number) => rows.reduce((s, n) => s + f(n), 0);
  const joules = (f: (n: NodeCount) => number) => Object.keys(b.nodes).reduce((s, id) => s + f(b.nodes[id]!) - f(a.nodes[id]!), 0);
  const harvestedWh = joules((n) => n.harvestedJ) / WH_J;
  const completed = b.completed - a.completed;
  const withoutAwakeMs = b.groupWithoutAwakeMs - a.groupWithoutAwakeMs;
  return {
    fromMs: a.atMs, toMs: b.atMs, from: new Date(a.atMs).toISOString(), to: new Date(b.atMs).toISOString(),
    hours: round(spanMs / HOUR_MS),
    nodes,
    fleet: {
      flatEvents: sum((n) => n.flatEvents),
      flatEventsPerNode: round(sum((n) => n.flatEvents) / Math.max(1, rows.length)),
      plannedSleeps: sum((n) => n.plannedSleeps),
      boots: sum((n) => n.boots),
      asleepNodeHours: round(sum((n) => n.asleepHours)),
      jobsSubmitted: b.submitted - a.submitted,
      jobsCompleted: completed,
      jobsFailed: b.failed - a.failed,
      jobsRefusedAsleep: b.refusedAsleep - a.refusedAsleep,
      jobsCancelled: b.cancelled - a.cancelled,
      jobsInFlightAtEnd: b.active,
      someGroupWithoutAwakeHours: round(withoutAwakeMs / HOUR_MS),
      someGroupWithoutAwakeShare: spanMs > 0 ? round(withoutAwakeMs / spanMs) : 0,
      harvestedWh: round(harvestedWh),
      consumedWh: round(joules((n) => n.consumedJ) / WH_J),
      storedWhAtStart: round(stored0 / WH_J),
      storedWhAtEnd: round(stored1 / WH_J),
      jobsPerWhHarvested: harvestedWh > 0 ? round(completed / harvestedWh, 4) : null,
      slotsKeptShareWorst: rows.length ? Math.min(...rows.map((n) => n.slotsKeptShare)) : 1,
    },
  };
}

/** A few lines for the terminal: the fleet's figures of the whole run and of the window. */
export function describeSummary(s: RunSummary): string {
  const part = (name: string, f: Figures) => {
    const x = f.fleet;
    return [
      `${name}: ${f.from} → ${f.to} (${f.hours} h simulated)`,
      `  battery-flat events ${x.flatEvents} (${x.flatEventsPerNode} per node), planned sleeps ${x.plannedSleeps}, boots ${x.boots}, ${x.asleepNodeHours} node-hours asleep`,
      `  jobs: ${x.jobsSubmitted} submitted, ${x.jobsCompleted} completed, ${x.jobsFailed} failed (${x.jobsRefusedAsleep} refused: group asleep), ${x.jobsInFlightAtEnd} in flight at the end`,
      `  some group without an awake node ${x.someGroupWithoutAwakeHours} h (${(100 * x.someGroupWithoutAwakeShare).toFixed(1)} %)`,
      `  harvested ${x.harvestedWh} Wh, consumed ${x.consumedWh} Wh, stored ${x.storedWhAtStart} → ${x.storedWhAtEnd} Wh; ${x.jobsPerWhHarvested ?? '–'} jobs per Wh harvested; worst node kept ${(100 * x.slotsKeptShareWorst).toFixed(1)} % of its slots`,
    ].join('\n');
  };
  return [part('whole run', s.whole), ...(s.window ? [part('measured window', s.window)] : [])].join('\n');
}
