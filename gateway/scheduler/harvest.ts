// Harvest distributions f(e) on the battery-quantum grid (SPEC.md §2).

/** Normalize a non-negative PMF in place and return it. */
export function normalize(pmf: Float64Array): Float64Array {
  let sum = 0;
  for (const v of pmf) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`harvest PMF has an invalid entry ${v}`);
    sum += v;
  }
  if (sum <= 0) throw new Error('harvest PMF has no mass');
  for (let i = 0; i < pmf.length; i++) pmf[i] = (pmf[i] as number) / sum;
  return pmf;
}

export function convolve(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length - 1);
  for (let i = 0; i < a.length; i++) {
    const ai = a[i] as number;
    if (ai === 0) continue;
    for (let j = 0; j < b.length; j++) out[i + j] = (out[i + j] as number) + ai * (b[j] as number);
  }
  return out;
}

/**
 * The κ-fold convolution f^{*κ}: harvest over a κ-slot stage of i.i.d. slots (SPEC.md §2),
 * by repeated squaring. With `cap`, all mass at or above `cap` quanta is lumped at `cap`:
 * exact for the chain when cap ≥ E_max + the largest C_E, since Eq. 1 then clips every such
 * stage at E_max whatever the level it starts from; min(min(X, c) + min(Y, c), c) =
 * min(X + Y, c) keeps it exact through every product. It bounds the work by the battery's
 * size instead of κ, so a node declaring a huge κ cannot stall the solver.
 */
export function kFold(pmf: Float64Array, kappa: number, cap = Infinity): Float64Array {
  if (!Number.isInteger(kappa) || kappa < 1) throw new Error(`κ must be an integer ≥ 1, got ${kappa}`);
  let base = lumpAbove(pmf, cap);
  let out: Float64Array | undefined;
  for (let k = kappa; ;) {
    if (k % 2 === 1) out = out ? lumpAbove(convolve(out, base), cap) : base;
    k = Math.floor(k / 2);
    if (k === 0) break;
    base = lumpAbove(convolve(base, base), cap);
  }
  // f's own rounding (a sum of 1 − ε) compounds to 1 − κε: renormalised, so rows of P sum to 1.
  return trimTail(kappa > 1 ? normalize(out!) : out!);
}

/** `pmf` with the mass of every index above `cap` moved to `cap`. */
function lumpAbove(pmf: Float64Array, cap: number): Float64Array {
  if (!(cap < pmf.length - 1)) return pmf;
  const out = pmf.slice(0, cap + 1);
  let tail = 0;
  for (let i = cap + 1; i < pmf.length; i++) tail += pmf[i] as number;
  out[cap] = (out[cap] as number) + tail;
  return out;
}

/** Drop a negligible tail so convolutions stay short without moving measurable mass. */
function trimTail(pmf: Float64Array): Float64Array {
  let end = pmf.length;
  while (end > 1 && (pmf[end - 1] as number) < 1e-300) end--;
  return end === pmf.length ? pmf : pmf.slice(0, end);
}

export function mean(pmf: Float64Array): number {
  let m = 0;
  for (let i = 0; i < pmf.length; i++) m += i * (pmf[i] as number);
  return m;
}

/**
 * A continuous harvest law, uniform on [lo, hi] quanta per slot, put on the integer grid so
 * that the mean is kept exactly: each point's mass is split between the two neighbouring
 * levels in proportion to its distance from them (linear interpolation of the CDF).
 */
export function uniformOnGrid(lo: number, hi: number): Float64Array {
  if (!(lo >= 0) || !(hi >= lo)) throw new Error(`uniform harvest bounds must satisfy 0 ≤ lo ≤ hi, got [${lo}, ${hi}]`);
  const top = Math.ceil(hi) + 1;
  const pmf = new Float64Array(top + 1);
  if (hi - lo < 1e-12) {
    spread(pmf, lo, 1);
    return trimTail(pmf);
  }
  // Integrate the hat functions of the grid against the uniform density exactly.
  const width = hi - lo;
  for (let k = 0; k <= top; k++) {
    pmf[k] = (hatIntegral(k, hi) - hatIntegral(k, lo)) / width;
  }
  return trimTail(normalize(pmf));
}

function spread(pmf: Float64Array, x: number, mass: number): void {
  const k = Math.floor(x);
  const frac = x - k;
  pmf[k] = (pmf[k] as number) + mass * (1 - frac);
  if (frac > 0) pmf[k + 1] = (pmf[k + 1] as number) + mass * frac;
}

/** ∫_{-∞}^{x} max(0, 1 - |t - k|) dt: the cumulative integral of the hat centred at k. */
function hatIntegral(k: number, x: number): number {
  const t = x - k;
  if (t <= -1) return 0;
  if (t <= 0) return (t + 1) ** 2 / 2;
  if (t <= 1) return 1 - (1 - t) ** 2 / 2;
  return 1;
}
