// The median every benchmark reports: the middle value, or the mean of the two middle ones.

/** The median of `xs`; NaN when there are none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The index of the value of `xs` nearest to `x` (the first of equals); -1 when there are none. */
export function nearestIndex(xs: readonly number[], x: number): number {
  let best = -1;
  for (let i = 0; i < xs.length; i++) if (best < 0 || Math.abs(xs[i]! - x) < Math.abs(xs[best]! - x)) best = i;
  return best;
}
