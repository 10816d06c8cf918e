// Joules per token on the virtual node, by the load model its plant uses
// (hardware/virtual/plant.ts): P = idleW + computeW × (busy cores / cores) × (f/fmax)^freqExponent,
// at the top power mode (every core online, f = fmax). Integrated over a stage's decode,
// with the busy cores measured as the stage process's CPU time:
//   E = idleW × wall + computeW × cpu / cores,
// where cpu is the process's CPU seconds (all threads) and cores the host's, whose busy
// share stands for the node's, as the agent meters it (agent/worker.ts ForwardCpuMeter).
import { availableParallelism } from 'node:os';
import { referenceHardwareConfig } from '../../hardware/config.js';
import type { LoadSpec } from '../../hardware/virtual/plant.js';

/** The default virtual node's load (hardware/config.ts virtual.load). */
export function defaultNodeLoad(): LoadSpec {
  return { ...referenceHardwareConfig('virtual').virtual.load };
}

export interface StageEnergy {
  /** idleW × wall + computeW × cpu / cores, per decode token. */
  jPerToken: number;
  /** Of which the compute part (what the work adds over an idle node). */
  computeJPerToken: number;
  /** The busy share of the cores over the decode. */
  busyShare: number;
  /** What the plant charged before it measured work: computeW for the whole time a job is held. */
  wallTimeModelJPerToken: number;
}

export function stageEnergy(load: LoadSpec, cpuS: number, wallS: number, tokens: number, cores = availableParallelism()): StageEnergy {
  const computeJ = (load.computeW * cpuS) / cores;
  return {
    jPerToken: (load.idleW * wallS + computeJ) / tokens,
    computeJPerToken: computeJ / tokens,
    busyShare: cpuS / (wallS * cores),
    wallTimeModelJPerToken: ((load.idleW + load.computeW) * wallS) / tokens,
  };
}
