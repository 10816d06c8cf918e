// Brent's method (Brent 1973, "Algorithms for Minimization without Derivatives", ch. 4):
// bisection's guarantee with inverse quadratic interpolation's speed. The issue asks for
// this method by name; it is 40 lines, so it is written here rather than imported.

export interface RootResult {
  x: number;
  evaluations: number;
}

export function brent(fn: (x: number) => number, a: number, b: number, tol = 1e-6, maxIter = 100): RootResult {
  let fa = fn(a);
  let fb = fn(b);
  let evaluations = 2;
  if (fa * fb > 0) throw new Error(`brent: f(${a}) and f(${b}) have the same sign`);
  if (Math.abs(fa) < Math.abs(fb)) { [a, b] = [b, a]; [fa, fb] = [fb, fa]; }
  let c = a;
  let fc = fa;
  let d = b - a;
  let e = d;
  for (let iter = 0; iter < maxIter; iter++) {
    if (fb === 0) break;
    if (fa * fb > 0) { a = c; fa = fc; d = b - c; e = d; }
    if (Math.abs(fa) < Math.abs(fb)) { c = b; b = a; a = c; fc = fb; fb = fa; fa = fc; }
    const tol1 = 2 * Number.EPSILON * Math.abs(b) + tol / 2;
    const m = (a - b) / 2;
    if (Math.abs(m) <= tol1) break;
    if (Math.abs(e) >= tol1 && Math.abs(fc) > Math.abs(fb)) {
      // Interpolate: secant when two points are known, inverse quadratic with three.
      const s = fb / fc;
      let p: number;
      let q: number;
      if (a === c) {
        p = 2 * m * s;
        q = 1 - s;
      } else {
        const qa = fc / fa;
        const r = fb / fa;
        p = s * (2 * m * qa * (qa - r) - (b - c) * (r - 1));
        q = (qa - 1) * (r - 1) * (s - 1);
      }
      if (p > 0) q = -q; else p = -p;
      if (2 * p < Math.min(3 * m * q - Math.abs(tol1 * q), Math.abs(e * q))) {
        e = d;
        d = p / q;
      } else {
        d = m;
        e = m;
      }
    } else {
      d = m;
      e = m;
    }
    c = b;
    fc = fb;
    b += Math.abs(d) > tol1 ? d : m > 0 ? tol1 : -tol1;
    fb = fn(b);
    evaluations++;
  }
  return { x: b, evaluations };
}
