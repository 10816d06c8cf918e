// The device-level quantities of SPEC.md §4: Eqs. 2–6.
import { brent } from './brent.js';
import { buildChain, stageHarvest, stateSpace, validateParams, type Chain } from './chain.js';
import { stationary } from './stationary.js';
import type { DeviceParams } from './types.js';

export interface Solution {
  chain: Chain;
  pi: Float64Array;
  /** Eq. 2 in its time-average form Σπ E T / Σπ T, in quanta (the paper prints Σπ E / Σπ T). */
  meanBattery: number;
  /** Eq. 3: ξ = time share of states with E ≤ E_lim (= E_th). */
  xi: number;
  /** Eq. 4: mean processing slots per job, over processing states. NaN when none is reached. */
  kappaBar: number;
}

/** A parameter set prepared once: validated, its state space and stage harvests built. */
export class DeviceModel {
  readonly space;
  readonly harvest;
  constructor(readonly params: DeviceParams) {
    validateParams(params);
    this.space = stateSpace(params);
    this.harvest = stageHarvest(params);
  }

  solve(p: number): Solution {
    const chain = buildChain(this.params, p, this.space, this.harvest);
    const pi = stationary(chain);
    return summarize(this.params, chain, pi);
  }
}

function summarize(params: DeviceParams, chain: Chain, pi: Float64Array): Solution {
  const { space, dwell } = chain;
  let time = 0;
  let energyTime = 0;
  let riskTime = 0;
  let procMass = 0;
  let procKappa = 0;
  for (let s = 0; s < space.size; s++) {
    const w = (pi[s] as number) * (dwell[s] as number);
    const e = space.e[s] as number;
    time += w;
    energyTime += w * e;
    if (e <= params.eTh) riskTime += w;
    if (space.q[s] === 1 && space.gamma[s] === 1) {
      procMass += pi[s] as number;
      procKappa += (pi[s] as number) * (dwell[s] as number);
    }
  }
  return {
    chain,
    pi,
    meanBattery: energyTime / time,
    xi: Math.min(1, riskTime / time),
    kappaBar: procMass > 0 ? procKappa / procMass : Number.NaN,
  };
}

export interface Limits {
  /**
   * q^energy_lim: the input rate at which ξ(q) = ξ_lim (1 when ξ(1) ≤ ξ_lim, 0 when ξ(0⁺) >
   * ξ_lim). Unless `exact` was asked for, it is only searched when it binds: when ξ at the
   * processing bound is already within ξ_lim, it is reported as that bound, a lower bound
   * of the true value, and `energyBinds` is false.
   */
  qEnergy: number;
  /**
   * The processing bound 1/κ̄. κ̄ itself depends on q under the dynamic table (lower
   * batteries run slower modes), so we take the q at which q·κ̄(q) = 1: the rate at which the
   * device is busy all the time. For a fixed mode this is exactly 1/κ.
   */
  qProc: number;
  /** Eq. 5: q_lim = min(q^energy_lim, 1/κ̄). */
  qLim: number;
  /** Whether the energy bound is the smaller one. */
  energyBinds: boolean;
  /** Solves of the chain that this took. */
  solves: number;
}

const Q_MIN = 1e-6;

export function limits(model: DeviceModel, xiLim: number, opts: { tol?: number; exact?: boolean } = {}): Limits {
  if (!(xiLim > 0 && xiLim < 1)) throw new Error(`tolerated risk ξ_lim must lie in (0, 1), got ${xiLim}`);
  const tol = opts.tol ?? 1e-5;
  let solves = 0;
  const cache = new Map<number, Solution>();
  const at = (q: number) => {
    let s = cache.get(q);
    if (!s) {
      s = model.solve(q);
      solves++;
      cache.set(q, s);
    }
    return s;
  };

  // With no income at all, any job rate drains the battery for good: ξ(q) = 1 for q > 0.
  const noHarvest = (model.params.harvestPmf[0] as number) >= 1 - 1e-15;
  if (noHarvest) return { qEnergy: 0, qProc: 0, qLim: 0, energyBinds: true, solves };

  // q·κ̄(q) − 1 is increasing in q; at q = 1 it is κ̄(1) − 1 ≥ 0.
  const busy = (q: number) => {
    const k = at(q).kappaBar;
    return q * (Number.isNaN(k) ? 1 : k) - 1;
  };
  const qProc = busy(1) <= 0 ? 1 : brent(busy, Q_MIN, 1, tol).x;

  // ξ is non-decreasing in q: if it is within ξ_lim at qProc, the energy root lies above.
  const risk = (q: number) => at(q).xi - xiLim;
  let qEnergy: number;
  if (!opts.exact && risk(qProc) <= 0) {
    return { qEnergy: qProc, qProc, qLim: qProc, energyBinds: false, solves };
  }
  if (risk(1) <= 0) qEnergy = 1;
  else if (risk(Q_MIN) >= 0) qEnergy = 0;
  else qEnergy = brent(risk, Q_MIN, 1, tol).x;
  return { qEnergy, qProc, qLim: Math.min(qEnergy, qProc), energyBinds: qEnergy < qProc, solves };
}

/** Eq. 6: r_i = q_lim,i / Σ_j q_lim,j over one group; uniform when no device has any capacity. */
export function groupWeights(qLims: readonly number[]): number[] {
  const sum = qLims.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) return qLims.map(() => 1 / qLims.length);
  return qLims.map((q) => q / sum);
}
