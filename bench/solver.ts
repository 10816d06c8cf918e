// `heliomesh bench solver`: one node's chain solved with q_lim by Brent (goal < 50 ms),
// and a fleet of 1,000 distinct nodes re-solved on every core (goal < 20 s).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DeviceModel, PAPER_DYNAMIC_TABLE, PAPER_MODES, PAPER_XI_LIM, limits, uniformOnGrid, type DeviceParams } from '../gateway/scheduler/index.js';
import type { Bench } from './types.js';
import { median } from './median.js';

/** Node i of a synthetic fleet: E_max = 100, dynamic table, its own harvest law. */
export function fleetNode(i: number): DeviceParams {
  const mean = 2 + ((i * 7919) % 1000) / 100; // 2–12 kJ per slot, spread over the fleet
  return { eMax: 100, eTh: 10, eThUp: 15, modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, harvestPmf: uniformOnGrid(0, 2 * mean) };
}

export const solverBench: Bench = {
  description: 'median single-node solve (q_lim by Brent) and 1,000 nodes re-solved on every core',
  async run() {
    for (let i = 0; i < 30; i++) limits(new DeviceModel(fleetNode(i)), PAPER_XI_LIM); // warm-up
    const times: number[] = [];
    const solves: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      const lim = limits(new DeviceModel(fleetNode(i)), PAPER_XI_LIM);
      times.push(performance.now() - t0);
      solves.push(lim.solves);
    }
    const medianMs = median(times);

    const fleet = 1000;
    const threads = availableParallelism();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: threads }, (_, w) => {
        const from = Math.floor((w * fleet) / threads);
        const to = Math.floor(((w + 1) * fleet) / threads);
        return new Promise<number>((resolve, reject) => {
          const worker = new Worker(new URL('./solver-worker.js', import.meta.url), { workerData: { from, to } });
          worker.once('message', resolve);
          worker.once('error', reject);
        });
      }),
    );
    const fleetS = (performance.now() - t0) / 1000;
    return {
      summary:
        `solver: median ${medianMs.toFixed(1)} ms per node (goal < 50 ms, ${median(solves)} chain solves each); ` +
        `1,000 nodes in ${fleetS.toFixed(1)} s on ${threads} threads (goal < 20 s)`,
      metrics: { medianMs, p90Ms: times.sort((a, b) => a - b)[Math.floor(times.length * 0.9)], medianChainSolves: median(solves), fleetNodes: fleet, fleetSeconds: fleetS, threads, goals: { medianMs: 50, fleetSeconds: 20 } },
    };
  },
};
