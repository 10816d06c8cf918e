// Seeded test data: uniform and Gaussian values from the project's one PRNG (ground/random.ts).
import { Random } from '../../ground/random.js';

/** Uniform values in [0, 1) and standard Gaussian ones (Box–Muller) from one seeded stream. */
export function seededValues(seed: number): { uniform: () => number; gauss: () => number } {
  const r = new Random(seed);
  const uniform = () => r.next();
  const gauss = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, gauss };
}
