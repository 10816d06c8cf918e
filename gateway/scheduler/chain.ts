// The embedded Markov chain of one device's semi-Markov energy model (SPEC.md §4).
import { modeStepAt } from '../../protocol/rules.js';
import { kFold } from './harvest.js';
import type { DeviceParams, PowerModeSpec, StateSpace } from './types.js';

export function validateParams(params: DeviceParams): void {
  const { eMax, eTh, eThUp, modes, modeTable } = params;
  if (!Number.isInteger(eMax) || eMax < 1) throw new Error(`eMax must be a positive integer, got ${eMax}`);
  if (!(eTh >= 0 && eTh <= eThUp && eThUp <= eMax)) {
    throw new Error(`thresholds must satisfy 0 ≤ eTh ≤ eThUp ≤ eMax, got eTh=${eTh} eThUp=${eThUp} eMax=${eMax}`);
  }
  if (modeTable.length === 0 || modeTable[0]!.minFraction !== 0) throw new Error('modeTable must start at minFraction 0');
  for (let i = 1; i < modeTable.length; i++) {
    if (!(modeTable[i]!.minFraction > modeTable[i - 1]!.minFraction)) throw new Error('modeTable steps must have increasing minFraction');
  }
  for (const step of modeTable) {
    if (!modes.some((m) => m.powerMode === step.powerMode)) throw new Error(`modeTable names unknown power mode ${step.powerMode}`);
  }
  for (const m of modes) {
    if (!Number.isInteger(m.kappa) || m.kappa < 1) throw new Error(`mode ${m.name}: κ must be an integer ≥ 1`);
    if (!Number.isInteger(m.costQ) || m.costQ < 0) throw new Error(`mode ${m.name}: C_E must be a non-negative integer of quanta`);
  }
  const idle = params.idleQ ?? 0;
  if (!Number.isFinite(idle) || idle < 0) throw new Error(`idle draw must be a non-negative number of quanta per slot, got ${idle}`);
}

/** Quanta a stage of κ slots draws while on, beside C_E, on average: κ × idle (our extension; 0 in the paper's model). */
export function idleDrawQ(params: Pick<DeviceParams, 'idleQ'>, kappa: number): number {
  return kappa * (params.idleQ ?? 0);
}

/**
 * The idle draw of a stage of κ slots on the chain's integer grid, as [quanta, probability]
 * pairs: κ × idle rounded down, or up with the probability of its fraction, so that the
 * expected draw is exact. A Pi 4's 270 J per 100 s slot on a 36 Wh battery of 100 levels is
 * 0.21 of a quantum: rounded, the chain would see no idle draw at all.
 */
export function idleDraws(params: Pick<DeviceParams, 'idleQ'>, kappa: number): ReadonlyArray<readonly [number, number]> {
  const total = idleDrawQ(params, kappa);
  const lo = Math.floor(total);
  const up = total - lo;
  return up > 0 ? [[lo, 1 - up], [lo + 1, up]] : [[lo, 1]];
}

/** A halted device draws nothing. */
const NO_DRAW: ReadonlyArray<readonly [number, number]> = [[0, 1]];

interface ModeLookup {
  /** Each table step's mode, found once per parameter set: modeAt runs for every state and slot. */
  modes: PowerModeSpec[];
}
const lookups = new WeakMap<DeviceParams['modeTable'], WeakMap<PowerModeSpec[], ModeLookup>>();

function lookup(params: Pick<DeviceParams, 'eMax' | 'modes' | 'modeTable'>): ModeLookup {
  let byModes = lookups.get(params.modeTable);
  if (!byModes) lookups.set(params.modeTable, (byModes = new WeakMap()));
  let l = byModes.get(params.modes);
  if (!l) {
    l = {
      modes: params.modeTable.map((step) => params.modes.find((m) => m.powerMode === step.powerMode)!),
    };
    byModes.set(params.modes, l);
  }
  return l;
}

/** PM(E): the mode the dynamic table (or the single fixed mode) assigns to battery level E, by the node's own rule (protocol/rules.ts). */
export function modeAt(params: Pick<DeviceParams, 'eMax' | 'modes' | 'modeTable'>, e: number): PowerModeSpec {
  return lookup(params).modes[modeStepAt(params.modeTable, e, params.eMax)]!;
}

/**
 * The reachable states, ordered by battery level. γ = 1 needs E ≥ E_th (a device enters
 * power saving as soon as a stage ends below E_th) and γ = 0 needs E ≤ E′_th (it leaves as
 * soon as a stage ends above E′_th), so only the hysteresis band holds all four (Q, γ).
 */
export function stateSpace(params: DeviceParams): StateSpace {
  const { eMax, eTh, eThUp } = params;
  const qs: number[] = [];
  const es: number[] = [];
  const gs: number[] = [];
  const index = new Int32Array((eMax + 1) * 4).fill(-1);
  for (let e = 0; e <= eMax; e++) {
    for (const gamma of [0, 1]) {
      if (gamma === 0 && e > eThUp) continue;
      if (gamma === 1 && e < eTh) continue;
      for (const q of [0, 1]) {
        index[e * 4 + q * 2 + gamma] = qs.length;
        qs.push(q);
        es.push(e);
        gs.push(gamma);
      }
    }
  }
  return { q: Uint8Array.from(qs), e: Int32Array.from(es), gamma: Uint8Array.from(gs), index, size: qs.length };
}

export interface Chain {
  space: StateSpace;
  /** Row-major n×n transition matrix of the embedded chain. */
  matrix: Float64Array;
  /** Dwell time of each state in slots: κ(PM) for (1,E,1), else 1 (T_S = κ_S·δ). */
  dwell: Float64Array;
  /** Largest downward (toward lower index) jump of any transition. */
  bandDown: number;
  /** Largest upward jump of any transition. */
  bandUp: number;
}

/** Harvest PMFs per stage length κ, shared across solves of one parameter set. */
export function stageHarvest(params: DeviceParams): Map<number, Float64Array> {
  const byKappa = new Map<number, Float64Array>([[1, params.harvestPmf]]);
  // Harvest beyond E_max + the largest draw of a stage ends every stage at E_max (Eq. 1): lumped there.
  const cap = params.eMax + Math.max(0, ...params.modes.map((m) => m.costQ + Math.ceil(idleDrawQ(params, m.kappa))));
  for (const m of params.modes) if (!byKappa.has(m.kappa)) byKappa.set(m.kappa, kFold(params.harvestPmf, m.kappa, cap));
  return byKappa;
}

/** Build P for arrival probability p (per slot). `harvest` may be passed to reuse convolutions. */
export function buildChain(params: DeviceParams, p: number, space = stateSpace(params), harvest = stageHarvest(params)): Chain {
  if (!(p >= 0 && p <= 1)) throw new Error(`arrival probability must lie in [0, 1], got ${p}`);
  const { eMax, eTh, eThUp } = params;
  const n = space.size;
  const matrix = new Float64Array(n * n);
  const dwell = new Float64Array(n).fill(1);
  const idx = (q: number, e: number, gamma: number) => space.index[e * 4 + q * 2 + gamma] as number;
  const f1 = harvest.get(1)!;
  let bandDown = 0;
  let bandUp = 0;
  const add = (from: number, to: number, prob: number) => {
    if (prob === 0) return;
    matrix[from * n + to] = (matrix[from * n + to] as number) + prob;
    if (to < from) bandDown = Math.max(bandDown, from - to);
    else bandUp = Math.max(bandUp, to - from);
  };

  for (let s = 0; s < n; s++) {
    const q = space.q[s] as number;
    const e = space.e[s] as number;
    const gamma = space.gamma[s] as number;
    if (gamma === 1 && q === 1) {
      // Processing stage: κ(PM) slots, harvest f^{*κ}, cost C_E(PM) (and κ slots of idle
      // draw); Eq. 1 clips at E_max and 0.
      const mode = modeAt(params, e);
      const fk = harvest.get(mode.kappa)!;
      const pm = 1 - (1 - p) ** mode.kappa; // p_m: at least one arrival during the stage (SPEC §2)
      dwell[s] = mode.kappa;
      for (const [idle, pd] of idleDraws(params, mode.kappa)) {
        const spend = mode.costQ + idle;
        for (let h = 0; h < fk.length; h++) {
          const ph = (fk[h] as number) * pd;
          if (ph === 0) continue;
          const next = Math.max(Math.min(e + h - spend, eMax), 0);
          const g = next < eTh ? 0 : 1;
          add(s, idx(0, next, g), ph * (1 - pm));
          add(s, idx(1, next, g), ph * pm);
        }
      }
    } else {
      // One-slot stage: idle and active (arrivals allowed), or power saving (job kept, no
      // arrivals). In the paper's model the battery only rises here. With an idle draw an
      // active device can fall, and enters power saving when it ends the slot below E_th
      // (§2); a device in power saving is halted, as a power board halts a Pi at its
      // shutdown level and boots it at a higher one (E′_th), so it draws nothing.
      for (const [idle, pd] of gamma === 1 ? idleDraws(params, 1) : NO_DRAW) {
        for (let h = 0; h < f1.length; h++) {
          const ph = (f1[h] as number) * pd;
          if (ph === 0) continue;
          const next = Math.max(Math.min(e + h - idle, eMax), 0);
          if (gamma === 1) {
            const g = next < eTh ? 0 : 1;
            add(s, idx(0, next, g), ph * (1 - p));
            add(s, idx(1, next, g), ph * p);
          } else {
            add(s, idx(q, next, next > eThUp ? 1 : 0), ph);
          }
        }
      }
    }
  }
  return { space, matrix, dwell, bandDown, bandUp };
}
