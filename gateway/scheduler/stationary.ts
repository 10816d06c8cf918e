// π = πP, Σπ = 1 for the embedded chain (SPEC.md §4).
import type { Chain } from './chain.js';

/**
 * Grassmann–Taksar–Heyman state reduction. It never subtracts, so probabilities as small
 * as 1e-13 (the 15 W curve of Fig. 2b) keep their relative accuracy, which Gaussian
 * elimination on I − Pᵀ does not. States are ordered by battery level, so P is banded and
 * elimination stays inside the band: the cost is n·bandUp·bandDown instead of n³.
 *
 * When some state k cannot reach any lower state once the higher ones are eliminated, and
 * no state from k up has a transition below k, the states below k are transient: π is 0
 * there and the reduction stops at k. That happens with an idle draw (idleQ): a device in
 * power saving is halted and only climbs, so it never falls further than E_th minus one
 * stage's draw. Otherwise (for instance with no harvest at all, where the empty battery
 * is a closed class of its own) it returns null; `stationary` then falls back to the
 * long-run distribution from a full battery.
 */
export function gth(chain: Chain): Float64Array | null {
  const n = chain.space.size;
  const a = chain.matrix.slice();
  const { bandUp, bandDown } = chain;
  const s = new Float64Array(n);
  let base = 0;
  for (let k = n - 1; k >= 1; k--) {
    const jLo = Math.max(0, k - bandDown);
    const rowK = k * n;
    let sum = 0;
    for (let j = jLo; j < k; j++) sum += a[rowK + j] as number;
    if (!(sum > 0)) {
      if (!closedFrom(chain, k)) return null;
      base = k;
      break;
    }
    s[k] = sum;
    const iLo = Math.max(0, k - bandUp);
    for (let i = iLo; i < k; i++) {
      const rowI = i * n;
      const aik = a[rowI + k] as number;
      if (aik === 0) continue;
      const factor = aik / sum;
      for (let j = jLo; j < k; j++) {
        const akj = a[rowK + j] as number;
        if (akj !== 0) a[rowI + j] = (a[rowI + j] as number) + factor * akj;
      }
    }
  }
  const pi = new Float64Array(n);
  pi[base] = 1;
  let total = 1;
  for (let k = base + 1; k < n; k++) {
    const iLo = Math.max(base, k - bandUp);
    let acc = 0;
    for (let i = iLo; i < k; i++) acc += (pi[i] as number) * (a[i * n + k] as number);
    const v = acc / (s[k] as number);
    pi[k] = v;
    total += v;
  }
  for (let k = 0; k < n; k++) pi[k] = (pi[k] as number) / total;
  return pi;
}

/** No state at index ≥ k has a transition to a state below k in the original P. */
function closedFrom(chain: Chain, k: number): boolean {
  const n = chain.space.size;
  for (let i = k; i < Math.min(n, k + chain.bandDown); i++) {
    for (let j = Math.max(0, i - chain.bandDown); j < k; j++) if ((chain.matrix[i * n + j] as number) > 0) return false;
  }
  return true;
}

/**
 * Long-run distribution of the embedded chain started in `start`, by repeated steps over
 * the band of each row. Only used for chains with several closed classes.
 */
export function longRun(chain: Chain, start: number, tolerance = 1e-12, maxSteps = 20_000): Float64Array {
  const n = chain.space.size;
  const { bandUp, bandDown, matrix } = chain;
  let cur = new Float64Array(n);
  let next = new Float64Array(n);
  cur[start] = 1;
  // Averaging successive iterates (Cesàro) makes periodic chains converge too.
  const avg = new Float64Array(n);
  for (let step = 1; step <= maxSteps; step++) {
    next.fill(0);
    for (let i = 0; i < n; i++) {
      const pi = cur[i] as number;
      if (pi === 0) continue;
      const row = i * n;
      const hi = Math.min(n - 1, i + bandUp);
      for (let j = Math.max(0, i - bandDown); j <= hi; j++) {
        const pij = matrix[row + j] as number;
        if (pij !== 0) next[j] = (next[j] as number) + pi * pij;
      }
    }
    let diff = 0;
    for (let j = 0; j < n; j++) diff += Math.abs((next[j] as number) - (cur[j] as number));
    [cur, next] = [next, cur];
    if (diff < tolerance) return cur;
    for (let j = 0; j < n; j++) avg[j] = (avg[j] as number) + ((cur[j] as number) - (avg[j] as number)) / step;
  }
  return avg;
}

export function stationary(chain: Chain): Float64Array {
  const pi = gth(chain);
  if (pi) return pi;
  const { space } = chain;
  const eMax = space.e[space.size - 1] as number;
  const full = space.index[eMax * 4 + 0 * 2 + 1] as number;
  return longRun(chain, full >= 0 ? full : space.size - 1);
}
