// One cell of a figure: a scenario run `iterations` times under one policy. This is the
// unit of work a worker thread takes.
import { DeviceModel, POLICIES, PAPER_XI_LIM, groupWeights, limits, uniformOnGrid } from '../gateway/scheduler/index.js';
import { NetworkSim, type NetworkScenario, type RunMetrics } from './network.js';
import { stream } from './rng.js';
import type { HarvestProcessSpec } from './harvest.js';

export interface Moments {
  mean: number;
  std: number;
}

export type CellResult = Record<keyof RunMetrics, Moments>;

const models = new Map<string, { model: DeviceModel; qLim: number }>();

/**
 * The chain a gateway would solve for this device: its harvest law put on the quantum
 * grid (uniform laws exactly; other processes by the histogram of a long sample, as the
 * gateway estimates f(e) from slot records). Cached by parameters, as the gateway does.
 */
export function solvedDevice(scenario: NetworkScenario, harvest: HarvestProcessSpec, histogram?: () => Float64Array) {
  const key = JSON.stringify([scenario.device, harvest]);
  let entry = models.get(key);
  if (!entry) {
    const harvestPmf =
      harvest.kind === 'uniform' ? uniformOnGrid(harvest.lo, harvest.hi) : harvest.kind === 'pmf' ? Float64Array.from(harvest.pmf) : histogram!();
    const model = new DeviceModel({ ...scenario.device, harvestPmf });
    entry = { model, qLim: limits(model, PAPER_XI_LIM).qLim };
    models.set(key, entry);
  }
  return entry;
}

export function scenarioModels(scenario: NetworkScenario, histogram?: (d: number) => Float64Array) {
  const solved = scenario.harvest.map((h, d) => solvedDevice(scenario, h, histogram ? () => histogram(d) : undefined));
  const weights: number[] = [];
  const N = scenario.devicesPerGroup;
  for (let g = 0; g < scenario.groups; g++) {
    weights.push(...groupWeights(solved.slice(g * N, (g + 1) * N).map((s) => s.qLim)));
  }
  return { models: solved.map((s) => s.model), weights };
}

export function runCell(
  scenario: NetworkScenario,
  policyName: string,
  iterations: number,
  seed: number,
  coords: number[],
  histogram?: (d: number) => Float64Array,
): CellResult {
  const policy = POLICIES[policyName];
  if (!policy) throw new Error(`unknown policy '${policyName}'; choose one of ${Object.keys(POLICIES).join(', ')}`);
  const { models: ms, weights } = scenarioModels(scenario, histogram);
  const keys: (keyof RunMetrics)[] = ['inactiveFraction', 'jobsInput', 'jobsDropped', 'jobsCompleted', 'throughputAccepted', 'throughputCompleted', 'meanBatteryPct', 'lowBatteryFraction', 'harvestQ', 'flatEvents', 'asleepFraction', 'darkGroupFraction'];
  const sum = new Float64Array(keys.length);
  const sumSq = new Float64Array(keys.length);
  const policyIndex = Object.keys(POLICIES).indexOf(policyName);
  const sim = new NetworkSim(scenario, ms, weights);
  for (let it = 0; it < iterations; it++) {
    const m = sim.run(
      policy,
      // The same world (arrivals, harvest) for every policy at one iteration: paired runs.
      stream(seed, ...coords, it),
      stream(seed ^ 0x5bd1e995, ...coords, it, policyIndex),
    );
    for (let i = 0; i < keys.length; i++) {
      const v = m[keys[i]!];
      sum[i] = (sum[i] as number) + v;
      sumSq[i] = (sumSq[i] as number) + v * v;
    }
  }
  const out = {} as CellResult;
  keys.forEach((k, i) => {
    const mean = (sum[i] as number) / iterations;
    const variance = Math.max(0, (sumSq[i] as number) / iterations - mean * mean);
    out[k] = { mean, std: Math.sqrt(variance) };
  });
  return out;
}
