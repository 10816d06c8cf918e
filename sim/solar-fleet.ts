// `heliomesh sim solar-fleet`: every policy on real solar days, with Pi-class loads.
//
// The paper's 3 × 3 network, each node a Raspberry Pi with a 10, 15 or 20 W_p panel facing
// south-east, south or south-west under one shared sky (sim/solar.ts: solar geometry, a
// tilted module and persistent cloud regimes), a 36 or 48 Wh pack, its idle draw and the
// per-mode κ and C_E of a job as `agent profile` measures them. Thirty days in summer and
// in winter, at two latitudes; each node's f(e) for the chain is the histogram of its own
// harvest in the week before, as the gateway estimates it from slot records.
//
// The chain and the simulator both carry the idle draw (idleQ, our extension): an active
// node draws it every slot; one in power saving is halted, as a power board halts a Pi at
// its shutdown level and boots it again at the higher E′_th, so it draws nothing.
import { DeviceModel, PAPER_XI_LIM, POLICIES, groupWeights, limits, type ModeStep } from '../gateway/scheduler/index.js';
import { SMALL_PANEL } from '../sunlight.js';
import { MID_LATITUDE_WEATHER } from '../weather.js';
import { NetworkSim, type NetworkScenario } from './network.js';
import { stream } from './rng.js';
import { meanSd } from './solar-eval.js';
export { meanSd };
import { gridPmf, solarDayHarvestJ, type SolarSite } from './solar.js';

const DAY_MS = 86_400_000;
/** δ = 100 s, the paper's slot (SPEC.md §2) and the agent's default. */
export const FLEET_SLOT_MS = 100_000;
const SLOTS_PER_DAY = DAY_MS / FLEET_SLOT_MS;
/**
 * One quantum is 135 J: a Pi 4's 2.7 W idle over δ = 100 s is exactly 2 quanta, and a
 * 36 Wh pack is 960 levels, which keeps the chain (dense in its state count) small enough
 * to solve for nine nodes in a second or two.
 */
export const FLEET_QUANTUM_J = 135;
/** E_th: the paper's 10 % of the battery (SPEC.md §3); a power board's shutdown level. */
const E_TH_FRACTION = 0.1;
/** E′_th: the 15 % of sim/calibration.ts; a power board's higher boot level. */
const E_TH_UP_FRACTION = 0.15;
/** Each node of a group: its panel's peak power and the way it faces (south = 180°). */
const NODES = [
  { peakW: 10, azimuthDeg: 135 },
  { peakW: 15, azimuthDeg: 180 },
  { peakW: 20, azimuthDeg: 225 },
];
const GROUPS = 3;
/** The harvest estimate is a week of slot records, as the gateway's estimator keeps. */
const ESTIMATE_DAYS = 7;

/** What one node draws: its idle power and one job's κ and C_E above idle per power mode. */
export interface FleetLoad {
  idleW: number;
  modes: { powerMode: number; name: string; kappa: number; costJ: number }[];
  modeTable: ModeStep[];
}

export interface SolarFleetCase {
  site: SolarSite;
  season: 'summer' | 'winter';
  /** First evaluated day, UTC midnight; the estimate uses the week before it. */
  startMs: number;
  batteryWh: number;
}

export interface SolarFleetOptions {
  load: FleetLoad;
  /** Job arrival probability per slot. */
  p: number;
  seeds: number[];
  days: number;
  policies: string[];
  /** Told after each seed of a case. */
  onProgress?(): void;
}

export interface PolicyOutcome {
  policy: string;
  /** Per seed: share of node-slots in power saving (halted). */
  downtime: number[];
  /** Per seed: jobs every group finished within the days. */
  completed: number[];
  /** Per seed: jobs offered. */
  input: number[];
  /** Per seed: completed jobs per Wh the panels delivered. */
  jobsPerWh: number[];
}

export interface SolarFleetResult {
  label: string;
  /** Per seed: Wh a node's panel delivered per day, mean over the fleet. */
  harvestWhPerNodeDay: number[];
  /** Per seed: the downtime of the same fleet with no jobs (its idle draw alone). */
  idleOnlyDowntime: number[];
  outcomes: PolicyOutcome[];
}

export function solarFleetCases(): SolarFleetCase[] {
  const out: SolarFleetCase[] = [];
  // Midday air: 25 °C / 8 °C at 40° N, 18 °C / 2 °C at 55° N (as `sim solar-day`).
  const sites = [
    { site: { name: '40° N', latitudeDeg: 40, longitudeDeg: 0, ambientC: 25 }, winterC: 8 },
    { site: { name: '55° N', latitudeDeg: 55, longitudeDeg: 0, ambientC: 18 }, winterC: 2 },
  ];
  for (const { site, winterC } of sites) {
    for (const season of ['summer', 'winter'] as const) {
      const s = season === 'summer' ? site : { ...site, ambientC: winterC };
      const startMs = season === 'summer' ? Date.UTC(2026, 5, 6) : Date.UTC(2026, 11, 6);
      for (const batteryWh of [36, 48]) out.push({ site: s, season, startMs, batteryWh });
    }
  }
  return out;
}

/**
 * One group's harvest, node by node, in quanta per slot: the estimate week, then the
 * evaluated days. Every group has the same three panels under the same sky, so the groups
 * differ only in the jobs they are given.
 */
function groupHarvest(c: SolarFleetCase, seed: number, days: number): Float64Array[] {
  return NODES.map((node) =>
    solarDayHarvestJ({
      site: c.site,
      plane: { tiltDeg: c.site.latitudeDeg, azimuthDeg: node.azimuthDeg },
      module: { ...SMALL_PANEL, peakW: node.peakW },
      // One sky over the whole field: the same seed for every node.
      weather: { ...MID_LATITUDE_WEATHER, seed },
      startMs: c.startMs - ESTIMATE_DAYS * DAY_MS,
      slotMs: FLEET_SLOT_MS,
      slots: (ESTIMATE_DAYS + days) * SLOTS_PER_DAY,
    }).map((j) => j / FLEET_QUANTUM_J),
  );
}

export function fleetDevice(load: FleetLoad, batteryWh: number): NetworkScenario['device'] {
  const eMax = Math.round((batteryWh * 3600) / FLEET_QUANTUM_J);
  return {
    eMax,
    eTh: Math.round(E_TH_FRACTION * eMax),
    eThUp: Math.round(E_TH_UP_FRACTION * eMax),
    // A job's cost on the grid, never 0: the chain would take a free job for one that cannot end.
    modes: load.modes.map((m) => ({ powerMode: m.powerMode, name: m.name, kappa: m.kappa, costQ: Math.max(1, Math.round(m.costJ / FLEET_QUANTUM_J)) })),
    modeTable: load.modeTable,
    idleQ: Math.round((load.idleW * FLEET_SLOT_MS) / 1000 / FLEET_QUANTUM_J),
  };
}

/** One seed's fleet: each node's harvest, its chain solved on the week before, Eq. 6 weights. */
export interface FleetSetup {
  scenario: NetworkScenario;
  models: DeviceModel[];
  weights: number[];
  /** Per node of a group: the estimate week's harvest, quanta per slot. */
  estimate: Float64Array[];
}

export function fleetSetup(c: SolarFleetCase, seed: number, load: FleetLoad, p: number, days: number): FleetSetup {
  const estimateSlots = ESTIMATE_DAYS * SLOTS_PER_DAY;
  const device = fleetDevice(load, c.batteryWh);
  const traces = groupHarvest(c, seed, days);
  const estimate = traces.map((t) => t.subarray(0, estimateSlots));
  const nodeModels = estimate.map((t) => new DeviceModel({ ...device, harvestPmf: gridPmf(t) }));
  const nodeWeights = groupWeights(nodeModels.map((m) => limits(m, PAPER_XI_LIM).qLim));
  const scenario: NetworkScenario = {
    groups: GROUPS,
    devicesPerGroup: NODES.length,
    slots: days * SLOTS_PER_DAY,
    p,
    device,
    harvest: Array.from({ length: GROUPS }, () => traces.map((t) => ({ kind: 'trace' as const, quanta: t.subarray(estimateSlots) }))).flat(),
    initialFraction: 0.5,
  };
  const models = Array.from({ length: GROUPS }, () => nodeModels).flat();
  const weights = Array.from({ length: GROUPS }, () => nodeWeights).flat();
  return { scenario, models, weights, estimate };
}

/** The world's stream of one case and seed: the same arrivals for every policy and plan (paired runs). */
export const fleetWorld = (seed: number, caseIndex: number) => stream(seed, 0x50f1ee7, caseIndex);
/** A policy's own stream. */
export const fleetPolicyStream = (seed: number, caseIndex: number, policy: string) => stream(seed ^ 0x5bd1e995, 0x50f1ee7, caseIndex, Object.keys(POLICIES).indexOf(policy));

export function evaluateSolarFleet(c: SolarFleetCase, caseIndex: number, o: SolarFleetOptions): SolarFleetResult {
  const outcomes = o.policies.map((policy) => ({ policy, downtime: [] as number[], completed: [] as number[], input: [] as number[], jobsPerWh: [] as number[] }));
  const harvestWh: number[] = [];
  const floor: number[] = [];
  for (const seed of o.seeds) {
    const { scenario, models, weights } = fleetSetup(c, seed, o.load, o.p, o.days);
    // The same fleet with no jobs at all: the downtime its idle draw alone causes, which no
    // choice of node can remove.
    const idleOnly = new NetworkSim({ ...scenario, p: 0 }, models, weights).run(POLICIES.uniform!, fleetWorld(seed, caseIndex), stream(seed, 0));
    floor.push(idleOnly.inactiveFraction);
    const sim = new NetworkSim(scenario, models, weights);
    let wh = 0;
    o.policies.forEach((name, i) => {
      const policy = POLICIES[name];
      if (!policy) throw new Error(`unknown policy '${name}'; choose one of ${Object.keys(POLICIES).join(', ')}`);
      const m = sim.run(policy, fleetWorld(seed, caseIndex), fleetPolicyStream(seed, caseIndex, name));
      wh = (m.harvestQ * FLEET_QUANTUM_J) / 3600;
      const out = outcomes[i]!;
      out.downtime.push(m.inactiveFraction);
      out.completed.push(m.jobsCompleted);
      out.input.push(m.jobsInput);
      out.jobsPerWh.push(m.jobsCompleted / wh);
    });
    harvestWh.push(wh / scenario.harvest.length / o.days);
    o.onProgress?.();
  }
  return { label: `${c.site.name} ${c.season} ${c.batteryWh} Wh`, harvestWhPerNodeDay: harvestWh, idleOnlyDowntime: floor, outcomes };
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

/** Paired per seed: (ours − theirs) / theirs, mean and sd over seeds. */
function change(ours: readonly number[], theirs: readonly number[]): string {
  const r = meanSd(ours.map((v, i) => (v - (theirs[i] as number)) / (theirs[i] as number)));
  return `${r.mean >= 0 ? '+' : ''}${(100 * r.mean).toFixed(1)} % ± ${(100 * r.sd).toFixed(1)}`;
}

/** The results as Markdown: one table of every policy per case, then foresight against adaptive and greedy. */
export function formatFleetTables(results: readonly SolarFleetResult[]): string {
  const lines: string[] = [];
  lines.push('| case | harvest Wh/node/day | downtime with no jobs | policy | downtime (± sd) | completed jobs (± sd) / offered | jobs per Wh harvested |');
  lines.push('|---|---|---|---|---|---|---|');
  for (const r of results) {
    const h = meanSd(r.harvestWhPerNodeDay);
    const f = meanSd(r.idleOnlyDowntime);
    r.outcomes.forEach((o, i) => {
      const d = meanSd(o.downtime);
      const c = meanSd(o.completed);
      const head = i === 0 ? `| ${r.label} | ${h.mean.toFixed(1)} ± ${h.sd.toFixed(1)} | ${pct(f.mean)} ± ${pct(f.sd)} ` : '| | | ';
      lines.push(`${head}| ${o.policy} | ${pct(d.mean)} ± ${pct(d.sd)} | ${c.mean.toFixed(0)} ± ${c.sd.toFixed(0)} / ${meanSd(o.input).mean.toFixed(0)} | ${meanSd(o.jobsPerWh).mean.toFixed(3)} |`);
    });
  }
  const by = (r: SolarFleetResult, name: string) => r.outcomes.find((o) => o.policy === name);
  if (results.every((r) => by(r, 'foresight') && by(r, 'adaptive') && by(r, 'greedy'))) {
    lines.push('');
    lines.push('| case | foresight downtime vs adaptive | vs greedy | foresight completed vs adaptive | vs greedy | downtime any policy could remove (adaptive − no jobs) |');
    lines.push('|---|---|---|---|---|---|');
    for (const r of results) {
      const [fo, ad, gr] = [by(r, 'foresight')!, by(r, 'adaptive')!, by(r, 'greedy')!];
      const room = meanSd(ad.downtime.map((v, i) => v - (r.idleOnlyDowntime[i] as number)));
      lines.push(`| ${r.label} | ${change(fo.downtime, ad.downtime)} | ${change(fo.downtime, gr.downtime)} | ${change(fo.completed, ad.completed)} | ${change(fo.completed, gr.completed)} | ${(100 * room.mean).toFixed(2)} points ± ${(100 * room.sd).toFixed(2)} |`);
    }
  }
  return lines.join('\n') + '\n';
}
