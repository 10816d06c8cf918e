// What the terminal view shows, gathered once per refresh: the gateway's view of every
// node (what arrived over MQTT), the plant's truth for the sun and the panels, the job
// service's recent jobs and counters, and the load generator's tallies.
import { clearSkyGhi, cosZenith } from '../hardware/virtual/sun.js';
import type { JobCounters, JobSummary } from '../gateway/jobs.js';
import type { Field } from './field.js';
import type { LoadCounters } from './load.js';
import type { NodePower } from './node.js';

export interface NodeRow {
  nodeId: string;
  group: string;
  power: NodePower;
  /** As the gateway sees it; null before its birth arrived. */
  online: boolean | null;
  batteryPct: number | null;
  gamma: 0 | 1 | null;
  powerMode: number | null;
  queue: number | null;
  qLim: number | null;
  weight: number | null;
  /** What the panel delivers now, W (plant). */
  harvestW: number | null;
  restarts: number;
  /** A node asleep: when its RTC alarm powers it up (simulated ms since the epoch). */
  wakeAtMs?: number;
  /**
   * The chain behind the node's q_lim assumed no harvest at all, under which any job rate
   * drains the battery, so q_lim is 0 whatever the battery holds (gateway/scheduler/metrics.ts).
   * That is the gateway's cautious prior until the node's own estimate is trusted.
   */
  noHarvest: boolean | null;
  /**
   * Slot records in the gateway's harvest estimate for this node now, and how many it needs
   * before it trusts them (gateway/estimator.ts minSlots). Null before its birth.
   */
  harvestSlots: number | null;
  harvestMinSlots: number | null;
}

export interface Snapshot {
  timeMs: number;
  /** Days since the field started, from 1. */
  day: number;
  /** Local solar time at the field, hours 0–24. */
  solarHour: number;
  sunElevationDeg: number;
  clearSkyWm2: number;
  speed: number;
  /** δ, simulated ms. */
  slotMs: number;
  policy: string;
  nodes: NodeRow[];
  jobs: JobSummary[];
  counters: JobCounters;
  load: LoadCounters | undefined;
  /** Completion tokens per wall-clock second over the last refreshes. */
  tokensPerS: number | null;
  curl: string | undefined;
  notes: string[];
}

/** The `curl` line that works against this field's HTTP API, as printed. */
export function curlLine(httpPort: number, modelId: string): string {
  const body = JSON.stringify({ model: modelId, prompt: 'The state of the Union is', max_tokens: 48 });
  return `curl -s http://localhost:${httpPort}/v1/completions -H 'Content-Type: application/json' -d '${body}'`;
}

/** Keeps a short history of token counts to turn them into a rate. */
export class RateMeter {
  private readonly samples: Array<{ atMs: number; tokens: number }> = [];

  constructor(private readonly windowMs = 30_000) {}

  add(atMs: number, tokens: number): number | null {
    this.samples.push({ atMs, tokens });
    while (this.samples.length > 2 && atMs - this.samples[0]!.atMs > this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (atMs - first.atMs) / 1000;
    return dt > 0 ? (tokens - first.tokens) / dt : null;
  }
}

export function takeSnapshot(field: Field, extra: { load?: LoadCounters; rate?: RateMeter; notes?: string[] }): Snapshot {
  const { clock, gateway, jobs, options: o } = field;
  const now = clock.now();
  const registry = gateway.registry;
  const view = jobs.scheduler();
  const fromScheduler = new Map(view.groups.flatMap((g) => g.nodes.map((n) => [n.nodeId, n] as const)));
  const nodes: NodeRow[] = field.nodes.map((fn) => {
    const st = registry.get(fn.nodeId);
    const sv = fromScheduler.get(fn.nodeId);
    const plant = fn.plant();
    return {
      nodeId: fn.nodeId,
      group: fn.plan.group,
      power: fn.power,
      online: st ? st.online : null,
      batteryPct: st ? (100 * st.batteryJ) / st.profile.capacityJ : null,
      gamma: st ? st.gamma : null,
      powerMode: st ? st.powerMode : null,
      queue: st ? st.queue : null,
      qLim: sv?.qLim ?? st?.solved?.qLim ?? null,
      weight: sv?.weight ?? null,
      harvestW: plant ? plant.state().panel.powerW : null,
      restarts: fn.restarts,
      ...(fn.power === 'off' && fn.wakeAtMs !== undefined ? { wakeAtMs: fn.wakeAtMs } : {}),
      // limits()'s own test for a chain without income: all of f(e)'s mass at 0.
      noHarvest: st?.model ? (st.model.params.harvestPmf[0] ?? 0) >= 1 - 1e-15 : null,
      harvestSlots: st ? st.estimator.samples(now) : null,
      harvestMinSlots: st ? st.estimator.config.minSlots : null,
    };
  });
  const counters = jobs.counters();
  const started = o.startMs;
  const solarHour = ((((now / 3_600_000 + o.longitudeDeg / 15) % 24) + 24) % 24);
  const cz = cosZenith(now, o.latitudeDeg, o.longitudeDeg);
  return {
    timeMs: now,
    day: Math.floor((now - started) / 86_400_000) + 1,
    solarHour,
    sunElevationDeg: (Math.asin(Math.max(-1, Math.min(1, cz))) * 180) / Math.PI,
    clearSkyWm2: clearSkyGhi(now, o.latitudeDeg, o.longitudeDeg),
    speed: clock.speed,
    slotMs: field.slotMs,
    policy: view.policy,
    nodes,
    jobs: jobs.recent(6),
    counters,
    load: extra.load,
    tokensPerS: extra.rate ? extra.rate.add(Date.now(), counters.completionTokens) : null,
    curl: field.ports.http !== undefined ? curlLine(field.ports.http, jobs.model.id) : undefined,
    notes: extra.notes ?? [],
  };
}
