// Scheduling policies (SPEC.md §5): for one job, the probability of handing it to each
// device of one group. The simulator and the live gateway call these same functions.
import { modeAt } from './chain.js';
import type { DeviceModel } from './metrics.js';

/** What a policy may know of one device at the moment of a decision. */
export interface DeviceView {
  /** γ = 1 and a free place in its queue: it may take the job. */
  available: boolean;
  /** Already working on a job, so a new one would wait. */
  busy: boolean;
  /** PM of the device now (1 = the low-battery 15 W mode); 0 while in power saving. */
  powerMode: number;
  /** Live battery level, in quanta. */
  energyQ: number;
  /** Energy already owed to jobs in hand and not yet paid (quanta). */
  committedQ: number;
  /** Long-term weight r_i of Eq. 6 within the group. */
  weight: number;
  /** The device's solved model (harvest estimate and tables); used by predictive policies. */
  model?: DeviceModel;
}

export interface Policy {
  readonly name: string;
  /**
   * Probabilities over the group's devices; zero for every unavailable device. Written into
   * `out` when given (the simulator's hot loop reuses one buffer), else into a new array.
   */
  probabilities(group: readonly DeviceView[], out?: Float64Array): Float64Array;
}

function fill(group: readonly DeviceView[], out: Float64Array | undefined, weight: (d: DeviceView) => number): Float64Array {
  const w = out ?? new Float64Array(group.length);
  for (let i = 0; i < group.length; i++) w[i] = weight(group[i]!);
  return w;
}

const allZero = (w: Float64Array) => w.every((x) => x === 0);

function renormalized(weights: Float64Array): Float64Array {
  let sum = 0;
  for (const w of weights) sum += w;
  if (sum > 0) for (let i = 0; i < weights.length; i++) weights[i] = (weights[i] as number) / sum;
  return weights;
}

/** Uniform among available devices. */
export const uniform: Policy = {
  name: 'uniform',
  probabilities: (group, out) => renormalized(fill(group, out, (d) => (d.available ? 1 : 0))),
};

/** Eq. 6 weights r_i, renormalized over the available devices. */
export const longTerm: Policy = {
  name: 'long-term',
  probabilities(group, out) {
    const w = fill(group, out, (d) => (d.available ? d.weight : 0));
    // Devices with r_i = 0 (no energy income at all) still serve when nothing else can.
    if (allZero(w)) return uniform.probabilities(group, w);
    return renormalized(w);
  },
};

/**
 * Algorithm 1: long-term weights, with every device now in PM 1 scaled by α/N_ℓ, where α
 * is the number of the group's active devices in PM 1 (devices in power saving have no PM,
 * so they are not counted: SPEC.md §7.5 leaves this open).
 */
export const adaptive: Policy = {
  name: 'adaptive',
  probabilities(group, out) {
    let alpha = 0;
    for (const d of group) if (d.powerMode === 1) alpha++;
    const factor = alpha / group.length;
    const w = fill(group, out, (d) => (d.available ? d.weight * (d.powerMode === 1 ? factor : 1) : 0));
    if (allZero(w)) return longTerm.probabilities(group, w);
    return renormalized(w);
  },
};

/** Battery levels closer than this (quanta) are a tie; the simulator's battery is continuous. */
const LEVEL_TIE = 1e-9;

/**
 * The baseline a predictive policy must beat: the available device with the most battery
 * left once it has paid what it owes to the jobs in hand and this job's C_E, at the mode
 * it will run it in (PM(E − owed), the level the stage starts from, Eq. 1). Without a
 * solved model the job's C_E is unknown and only the owed energy is subtracted. Tied
 * devices share the job evenly, so no device is favoured by its place in the group.
 */
export const greedy: Policy = {
  name: 'greedy',
  probabilities(group, out) {
    let best = -Infinity;
    const left = fill(group, out, (d) => {
      if (!d.available) return -Infinity;
      const level = d.energyQ - d.committedQ;
      const cost = d.model ? modeAt(d.model.params, Math.max(0, Math.floor(level))).costQ : 0;
      const v = level - cost;
      if (v > best) best = v;
      return v;
    });
    for (let i = 0; i < left.length; i++) left[i] = best > -Infinity && (left[i] as number) >= best - LEVEL_TIE ? 1 : 0;
    return renormalized(left);
  },
};
