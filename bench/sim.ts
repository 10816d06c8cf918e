// `heliomesh bench sim`: the wall time of `heliomesh sim all` at the paper's 1,000
// iterations (goal < 60 s on a 2-core machine), without writing plots.
import { availableParallelism, loadavg } from 'node:os';
import { CALIBRATION } from '../sim/calibration.js';
import { FIGURES } from '../sim/figures.js';
import { runFigures } from '../sim/run.js';
import type { Bench } from './types.js';

export const simBench: Bench = {
  description: 'wall time of every figure at 1,000 iterations (goal < 60 s)',
  async run() {
    const loadBefore = loadavg()[0]!;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let cells = 0;
    await runFigures({
      figures: FIGURES,
      policies: ['uniform', 'long-term', 'adaptive', 'foresight'],
      iterations: 1000,
      seed: 1,
      calibration: CALIBRATION,
      onProgress: (_done, total) => (cells = total),
    });
    const seconds = (performance.now() - t0) / 1000;
    // Worker threads' CPU is counted in the process's usage.
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    return {
      summary: `sim: all figures at 1,000 iterations in ${seconds.toFixed(1)} s wall, ${cpuSeconds.toFixed(1)} s CPU on ${availableParallelism()} threads (goal < 60 s; load average ${loadBefore.toFixed(1)} at start)`,
      metrics: { seconds, cpuSeconds, cells, threads: availableParallelism(), loadAverageAtStart: loadBefore, goalSeconds: 60 },
    };
  },
};
