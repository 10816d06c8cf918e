// The unit of work sent to a worker thread, and how a worker does it.
import type { Calibration } from './calibration.js';
import { runCell, type CellResult } from './cell.js';
import { FIG2_MODES, NETWORK_FIGURES, fig2aScenario, type NetworkFigureName } from './figures.js';
import { empiricalPmf } from './solar.js';

export interface CellTask {
  figure: 'fig2a' | NetworkFigureName;
  /** Index of the x value (or of the mode, for fig2a). */
  point: number;
  policy: string;
  iterations: number;
  seed: number;
  calibration: Calibration;
}

export interface CellDone {
  task: CellTask;
  result: CellResult;
}

const FIGURE_INDEX = { fig2a: 0, fig3a: 2, fig3b: 3, fig4a: 4, fig4b: 5, solar: 6 } as const;

export function doTask(task: CellTask): CellDone {
  const scenario =
    task.figure === 'fig2a'
      ? fig2aScenario(FIG2_MODES[task.point]!.table, task.calibration)
      : NETWORK_FIGURES[task.figure].scenario(NETWORK_FIGURES[task.figure].xs[task.point]!, task.calibration);
  // Streams depend on (figure, point, iteration) only, so every policy sees the same world.
  // Solar harvest is not i.i.d.: each device's f(e) is estimated from a week of its own slots.
  const histogram = task.figure === 'solar'
    ? (d: number) => {
        const spec = scenario.harvest[d]!;
        if (spec.kind !== 'solar') throw new Error('solar scenario with a non-solar device');
        return empiricalPmf(spec, task.seed + d);
      }
    : undefined;
  const result = runCell(scenario, task.policy, task.iterations, task.seed, [FIGURE_INDEX[task.figure], task.point], histogram);
  return { task, result };
}
