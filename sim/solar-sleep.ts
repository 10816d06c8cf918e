// `heliomesh sim solar-sleep`: the same fleet on the same real days (sim/solar-fleet.ts),
// with and without the gateway's coordinated sleep (gateway/scheduler/sleep.ts).
//
// The planner sees what a gateway sees: each node's battery, its idle draw, the arrival
// rate, and a forecast of its harvest by time of day, the mean of each hour over the week
// of slot records before the run.
import { POLICIES } from '../gateway/scheduler/index.js';
import { NetworkSim, type RunMetrics } from './network.js';
import { FLEET_QUANTUM_J, FLEET_SLOT_MS, fleetPolicyStream, fleetSetup, fleetWorld, meanSd, type FleetLoad, type SolarFleetCase } from './solar-fleet.js';

const SLOTS_PER_DAY = 86_400_000 / FLEET_SLOT_MS;
const SLOTS_PER_HOUR = 3_600_000 / FLEET_SLOT_MS;
/** A gateway re-plans every 10 minutes (6 slots of 100 s). */
const PLAN_EVERY_SLOTS = 6;
/** A Pi 4's boot: about 40 s at ~4 W (gateway/sleep-planner.ts, checkInMs). */
const BOOT_J = 160;

export interface SolarSleepOptions {
  load: FleetLoad;
  p: number;
  seeds: number[];
  days: number;
  policy: string;
  /**
   * Draw of a node asleep: the Pi halted with its power board's RTC running. Taken as
   * 0.05 W (a few mA at 5 V); at 2 % of the idle draw the result barely depends on it.
   */
  sleepW: number;
  /**
   * Naps as the gateway gives them (`sleep.checkInMs`): a node not halted before running
   * flat sleeps at most this long, then boots, paying `BOOT_J`, and is planned again.
   * Absent: every sleep lasts as planned.
   */
  checkInMs?: number;
  onProgress?(): void;
}

export interface PlanOutcome {
  /** Per seed: runs flat (halts below E_th while on), per node and week. */
  flatPerNodeWeek: number[];
  completed: number[];
  /** Per seed: share of node-slots halted (ran flat) and asleep (planned). */
  halted: number[];
  asleep: number[];
  /** Per seed: share of slots in which some group had no node awake. */
  darkGroup: number[];
  jobsPerWh: number[];
}

export interface SolarSleepResult {
  label: string;
  without: PlanOutcome;
  with: PlanOutcome;
}

/** Mean harvest in each slot of the day over whole days of `samples`, averaged over each hour. */
export function timeOfDayProfile(samples: Float64Array, slotsPerDay = SLOTS_PER_DAY, smoothSlots = SLOTS_PER_HOUR): Float64Array {
  const days = Math.floor(samples.length / slotsPerDay);
  if (days < 1) throw new Error(`a time-of-day profile needs at least one whole day of samples, got ${samples.length} slots`);
  const hourly = new Float64Array(Math.ceil(slotsPerDay / smoothSlots));
  for (let t = 0; t < days * slotsPerDay; t++) {
    const h = Math.floor((t % slotsPerDay) / smoothSlots);
    hourly[h] = (hourly[h] as number) + (samples[t] as number) / (days * Math.min(smoothSlots, slotsPerDay - h * smoothSlots));
  }
  return Float64Array.from({ length: slotsPerDay }, (_, s) => hourly[Math.floor(s / smoothSlots)] as number);
}

const empty = (): PlanOutcome => ({ flatPerNodeWeek: [], completed: [], halted: [], asleep: [], darkGroup: [], jobsPerWh: [] });

function record(out: PlanOutcome, m: RunMetrics, nodes: number, days: number): void {
  out.flatPerNodeWeek.push(m.flatEvents / nodes / (days / 7));
  out.completed.push(m.jobsCompleted);
  out.halted.push(m.inactiveFraction);
  out.asleep.push(m.asleepFraction);
  out.darkGroup.push(m.darkGroupFraction);
  out.jobsPerWh.push(m.jobsCompleted / ((m.harvestQ * FLEET_QUANTUM_J) / 3600));
}

export function evaluateSolarSleep(c: SolarFleetCase, caseIndex: number, o: SolarSleepOptions): SolarSleepResult {
  const result: SolarSleepResult = { label: `${c.site.name} ${c.season} ${c.batteryWh} Wh`, without: empty(), with: empty() };
  for (const seed of o.seeds) {
    const { scenario, models, weights, estimate } = fleetSetup(c, seed, o.load, o.p, o.days);
    const nodes = scenario.harvest.length;
    const profiles = Array.from({ length: scenario.groups }, () => estimate.map((t) => timeOfDayProfile(t))).flat();
    const policy = POLICIES[o.policy];
    if (!policy) throw new Error(`unknown policy '${o.policy}'; choose one of ${Object.keys(POLICIES).join(', ')}`);
    const plain = new NetworkSim(scenario, models, weights).run(policy, fleetWorld(seed, caseIndex), fleetPolicyStream(seed, caseIndex, o.policy));
    record(result.without, plain, nodes, o.days);
    const sleep = {
      profiles, startSlotOfDay: 0, sleepQ: (o.sleepW * FLEET_SLOT_MS) / 1000 / FLEET_QUANTUM_J, everySlots: PLAN_EVERY_SLOTS,
      ...(o.checkInMs !== undefined ? { checkInSlots: Math.max(1, Math.round(o.checkInMs / FLEET_SLOT_MS)), bootQ: BOOT_J / FLEET_QUANTUM_J } : {}),
    };
    const planned = new NetworkSim({ ...scenario, sleep }, models, weights).run(policy, fleetWorld(seed, caseIndex), fleetPolicyStream(seed, caseIndex, o.policy));
    record(result.with, planned, nodes, o.days);
    o.onProgress?.();
  }
  return result;
}

const pct = (xs: readonly number[]) => {
  const r = meanSd(xs);
  return `${(100 * r.mean).toFixed(1)} % ± ${(100 * r.sd).toFixed(1)}`;
};
const num = (xs: readonly number[], digits: number) => {
  const r = meanSd(xs);
  return `${r.mean.toFixed(digits)} ± ${r.sd.toFixed(digits)}`;
};

/** The comparison as Markdown: each case without and with the planner, then the goals' ratios. */
export function formatSleepTables(results: readonly SolarSleepResult[]): string {
  const lines = [
    '| case | plan | runs flat per node-week | completed jobs | halted (ran flat) | asleep (planned) | some group with no node awake | jobs per Wh harvested |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    for (const [name, out] of [['always on', r.without], ['coordinated sleep', r.with]] as const) {
      lines.push(`| ${name === 'always on' ? r.label : ''} | ${name} | ${num(out.flatPerNodeWeek, 2)} | ${num(out.completed, 0)} | ${pct(out.halted)} | ${pct(out.asleep)} | ${pct(out.darkGroup)} | ${num(out.jobsPerWh, 3)} |`);
    }
  }
  const worst = (xs: readonly number[]) => `${(100 * Math.min(...xs)).toFixed(1)} %`;
  lines.push('', '| case | fall in runs flat | worst seed | completed jobs, with / without | worst seed | jobs per Wh, with / without |', '|---|---|---|---|---|---|');
  for (const r of results) {
    const fall = r.with.flatPerNodeWeek.map((v, i) => {
      const before = r.without.flatPerNodeWeek[i] as number;
      return before > 0 ? 1 - v / before : 0;
    });
    const served = r.with.completed.map((v, i) => v / (r.without.completed[i] as number));
    const perWh = r.with.jobsPerWh.map((v, i) => v / (r.without.jobsPerWh[i] as number));
    lines.push(`| ${r.label} | ${pct(fall)} | ${worst(fall)} | ${pct(served)} | ${worst(served)} | ${pct(perWh)} |`);
  }
  return lines.join('\n') + '\n';
}
