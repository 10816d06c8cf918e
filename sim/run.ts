// Runs figures: network sweeps on the worker pool, Fig. 2b from the chain directly.
import { DeviceModel, PAPER_XI_LIM, limits, uniformOnGrid } from '../gateway/scheduler/index.js';
import type { Calibration } from './calibration.js';
import { FIG2B_Q, FIG2_MODES, NETWORK_FIGURES, deviceParams, type FigureName } from './figures.js';
import { runPool } from './pool.js';
import type { CellTask } from './task.js';

export interface Row {
  x: number | string;
  policy: string;
  metric: string;
  mean: number;
  std: number;
}

export interface FigureResult {
  figure: FigureName;
  xLabel: string;
  yLabel: string;
  rows: Row[];
  /** Other metrics of the same cells, reported beside the plotted one but not drawn. */
  also?: Row[];
}

export interface RunOptions {
  figures: FigureName[];
  policies: string[];
  iterations: number;
  seed: number;
  calibration: Calibration;
  threads?: number;
  /** Called after each finished cell with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Fig. 2b: ξ(q) of Eq. 3 and q_lim of Eq. 5 for each power-mode strategy. */
export function fig2b(cal: Calibration): FigureResult {
  const rows: Row[] = [];
  for (const mode of FIG2_MODES) {
    const model = new DeviceModel({ ...deviceParams(cal, mode.table), harvestPmf: uniformOnGrid(cal.fig2HarvestLo, cal.fig2HarvestHi) });
    for (const q of FIG2B_Q) rows.push({ x: q, policy: mode.name, metric: 'xi', mean: model.solve(q).xi, std: 0 });
    const lim = limits(model, PAPER_XI_LIM, { exact: true });
    rows.push({ x: '', policy: mode.name, metric: 'q_lim', mean: lim.qLim, std: 0 });
    rows.push({ x: '', policy: mode.name, metric: 'q_energy_lim', mean: lim.qEnergy, std: 0 });
    rows.push({ x: '', policy: mode.name, metric: 'q_proc_lim', mean: lim.qProc, std: 0 });
  }
  return { figure: 'fig2b', xLabel: 'job input rate q', yLabel: 'risk ξ', rows };
}

export async function runFigures(opts: RunOptions): Promise<FigureResult[]> {
  const tasks: CellTask[] = [];
  const base = { iterations: opts.iterations, seed: opts.seed, calibration: opts.calibration };
  for (const figure of opts.figures) {
    if (figure === 'fig2b') continue;
    if (figure === 'fig2a') {
      FIG2_MODES.forEach((_, point) => tasks.push({ figure, point, policy: 'uniform', ...base }));
      continue;
    }
    // A solar run spans three days (2,592 slots, 18–43× a paper run): a tenth of the runs.
    const iterations = figure === 'solar' ? Math.max(1, Math.ceil(opts.iterations / 10)) : opts.iterations;
    NETWORK_FIGURES[figure].xs.forEach((_, point) => {
      for (const policy of opts.policies) tasks.push({ figure, point, policy, ...base, iterations });
    });
  }

  const results = new Map<FigureName, FigureResult>();
  for (const figure of opts.figures) {
    if (figure === 'fig2b') results.set(figure, fig2b(opts.calibration));
    else if (figure === 'fig2a') results.set(figure, { figure, xLabel: 'power-mode strategy', yLabel: 'jobs completed / battery %', rows: [] });
    else {
      const f = NETWORK_FIGURES[figure];
      results.set(figure, { figure, xLabel: f.xLabel, yLabel: f.yLabel, rows: [] });
    }
  }

  let done = 0;
  opts.onProgress?.(0, tasks.length);
  await runPool(
    tasks,
    ({ task, result }) => {
      const fig = results.get(task.figure)!;
      if (task.figure === 'fig2a') {
        const x = FIG2_MODES[task.point]!.name;
        fig.rows.push({ x, policy: 'single-device', metric: 'jobs_completed', ...result.jobsCompleted });
        fig.rows.push({ x, policy: 'single-device', metric: 'avg_battery_pct', ...result.meanBatteryPct });
      } else {
        const f = NETWORK_FIGURES[task.figure];
        const x = f.xs[task.point]!;
        if (task.figure === 'solar') {
          fig.rows.push({ x, policy: task.policy, metric: 'inactive_fraction', ...result.inactiveFraction });
          fig.rows.push({ x, policy: task.policy, metric: 'throughput', ...result.throughputCompleted });
        } else {
          fig.rows.push({ x, policy: task.policy, metric: f.metric, ...result[f.metric] });
          for (const m of f.also ?? []) (fig.also ??= []).push({ x, policy: task.policy, metric: m, ...result[m] });
        }
      }
      done++;
      opts.onProgress?.(done, tasks.length);
    },
    opts.threads,
  );

  const order = (r: Row) => [opts.policies.indexOf(r.policy), typeof r.x === 'number' ? r.x : FIG2_MODES.findIndex((m) => m.name === r.x)];
  const byCell = (a: Row, b: Row) => {
    const [pa, xa] = order(a);
    const [pb, xb] = order(b);
    return (pa as number) - (pb as number) || (xa as number) - (xb as number) || a.metric.localeCompare(b.metric);
  };
  for (const fig of results.values()) {
    if (fig.figure === 'fig2b') continue;
    fig.rows.sort(byCell);
    fig.also?.sort(byCell);
  }
  return opts.figures.map((f) => results.get(f)!);
}
