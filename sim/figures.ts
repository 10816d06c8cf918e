// The six figures of the paper as experiments: which x values, which scenario at each,
// and which metric is plotted. The paper's digitized results live in
// ../shared/paper/figures.json; the runner reads those separately, for comparison only.
import { PAPER_BATTERY_KJ, PAPER_DYNAMIC_TABLE, PAPER_E_TH_FRACTION, PAPER_MODES, fixedTable, uniformOnGrid, type ModeStep } from '../gateway/scheduler/index.js';
import type { Calibration } from './calibration.js';
import type { HarvestProcessSpec } from './harvest.js';
import { SLOTS_PER_DAY, SOLAR_DAYS, solarSpecs } from './solar.js';
import type { NetworkScenario, RunMetrics } from './network.js';

/** The paper's six figures, and `solar`: the same comparison under a day/night profile. */
export type FigureName = 'fig2a' | 'fig2b' | 'fig3a' | 'fig3b' | 'fig4a' | 'fig4b' | 'solar';
export const FIGURES: FigureName[] = ['fig2a', 'fig2b', 'fig3a', 'fig3b', 'fig4a', 'fig4b', 'solar'];

/** A simulated figure: a sweep of scenarios, each run once per policy and iteration. */
export interface NetworkFigure {
  name: FigureName;
  xLabel: string;
  yLabel: string;
  xs: number[];
  /** The metric this figure plots. */
  metric: keyof RunMetrics;
  /** Metrics reported beside it (in the deviations), not plotted. */
  also?: (keyof RunMetrics)[];
  scenario: (x: number, cal: Calibration) => NetworkScenario;
}

export const FIG2_MODES: { name: string; table: ModeStep[] }[] = [
  { name: '15W', table: fixedTable(1) },
  { name: '30W', table: fixedTable(2) },
  { name: '60W', table: fixedTable(3) },
  { name: 'dynamic', table: PAPER_DYNAMIC_TABLE },
];

export const FIG2B_Q = [0.05, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.9];

export function deviceParams(cal: Calibration, table: ModeStep[] = PAPER_DYNAMIC_TABLE) {
  const eMax = Math.round((PAPER_BATTERY_KJ * 1000) / cal.quantumJ);
  return {
    eMax,
    eTh: Math.round(PAPER_E_TH_FRACTION * eMax),
    eThUp: Math.round(cal.eThUpFraction * eMax),
    modes: PAPER_MODES.map((m) => ({ ...m, costQ: Math.round((m.costQ * 1000) / cal.quantumJ) })),
    modeTable: table,
  };
}

/** Per-device harvest for a group mean of `axisJ` J/slot on the figures' axis. */
export function groupHarvest(axisJ: number, groups: number, perGroup: number, cal: Calibration): HarvestProcessSpec[] {
  const meanQ = (axisJ * cal.harvestScale) / cal.quantumJ;
  const out: HarvestProcessSpec[] = [];
  for (let g = 0; g < groups; g++) {
    for (let j = 0; j < perGroup; j++) {
      const factor = perGroup === 1 ? 1 : 1 - cal.deviceSpread + (2 * cal.deviceSpread * j) / (perGroup - 1);
      const mu = meanQ * factor;
      const lo = mu * (1 - cal.halfWidth);
      const hi = mu * (1 + cal.halfWidth);
      out.push(cal.battery === 'integer' ? { kind: 'pmf', pmf: Array.from(uniformOnGrid(lo, hi)) } : { kind: 'uniform', lo, hi });
    }
  }
  return out;
}

const range = (from: number, to: number, step: number) => {
  const xs: number[] = [];
  for (let x = from; x <= to + 1e-9; x += step) xs.push(Math.round(x * 1000) / 1000);
  return xs;
};

/** The calibration's readings of what the paper leaves open, as scenario options. */
function readings(cal: Calibration): Pick<NetworkScenario, 'groupOrder' | 'costRule' | 'pendingInSaving' | 'queueCapacity' | 'alpha'> {
  return {
    groupOrder: cal.groupOrder,
    costRule: cal.costRule,
    pendingInSaving: cal.pendingInSaving,
    queueCapacity: cal.queueCapacity,
    alpha: { reading: cal.alpha, countSleeping: cal.alphaCountsSleeping },
  };
}

function paperNetwork(slots: number, p: number, axisJ: number, cal: Calibration): NetworkScenario {
  return {
    groups: 3,
    devicesPerGroup: 3,
    slots,
    p,
    device: deviceParams(cal),
    harvest: groupHarvest(axisJ, 3, 3, cal),
    initialFraction: cal.initialFraction,
    ...readings(cal),
  };
}

export type NetworkFigureName = 'fig3a' | 'fig3b' | 'fig4a' | 'fig4b' | 'solar';

export const NETWORK_FIGURES: Record<NetworkFigureName, NetworkFigure> = {
  fig3a: {
    name: 'fig3a', xLabel: 'average energy arrival [J/slot]', yLabel: 'fraction of inactive devices',
    xs: range(25, 625, 25), metric: 'inactiveFraction',
    scenario: (x, cal) => paperNetwork(cal.slots.fig3a, 0.3, x, cal),
  },
  fig3b: {
    name: 'fig3b', xLabel: 'job arrival probability p', yLabel: 'fraction of inactive devices',
    xs: range(0.05, 1, 0.05), metric: 'inactiveFraction',
    scenario: (x, cal) => paperNetwork(cal.slots.fig3b, x, 550, cal),
  },
  fig4a: {
    name: 'fig4a', xLabel: 'average energy arrival [J/slot]', yLabel: 'normalized throughput',
    // The paper's "jobs processed / jobs input"; accepted / input is reported beside it.
    xs: range(0, 170, 10), metric: 'throughputCompleted', also: ['throughputAccepted'],
    scenario: (x, cal) => paperNetwork(cal.slots.fig4a, 0.3, x, cal),
  },
  fig4b: {
    name: 'fig4b', xLabel: 'job arrival probability p', yLabel: 'jobs dropped',
    xs: range(0.1, 1, 0.05), metric: 'jobsDropped',
    scenario: (x, cal) => paperNetwork(cal.slots.fig4b, x, 550, cal),
  },
  solar: {
    name: 'solar', xLabel: 'average energy arrival over the day [J/slot]', yLabel: 'fraction of inactive devices',
    xs: [100, 200, 300, 400, 500, 600, 800], metric: 'inactiveFraction',
    // Three days from a half-charged battery at midnight, p = 0.3 as in Figs. 3a/4a.
    scenario: (x, cal) => ({ ...paperNetwork(SOLAR_DAYS * SLOTS_PER_DAY, 0.3, x, cal), harvest: solarSpecs(x, cal), initialFraction: 0.5 }),
  },
};

/** Fig. 2a: one device, 100 slots, per power-mode strategy. */
export function fig2aScenario(table: ModeStep[], cal: Calibration): NetworkScenario {
  return {
    groups: 1,
    devicesPerGroup: 1,
    slots: 100,
    p: cal.fig2P,
    device: deviceParams(cal, table),
    harvest: [{ kind: 'uniform', lo: cal.fig2HarvestLo, hi: cal.fig2HarvestHi }],
    initialFraction: cal.initialFraction,
    ...readings(cal),
  };
}
