// A seeded generator for reproducible runs. sfc32 (Chris Doty-Humphrey's "small fast
// chaotic" generator, public domain) is eight lines, passes PractRand, and runs identically
// in every worker thread; a package would add a dependency for nothing more.
export type Rng = () => number;

export function sfc32(a: number, b: number, c: number, d: number): Rng {
  return () => {
    a |= 0; b |= 0; c |= 0; d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** Mix any list of integers into four 32-bit words (splitmix32-style finalizer). */
function mix(...parts: number[]): number[] {
  let h = 0x9e3779b9;
  const words: number[] = [];
  for (let k = 0; k < 4; k++) {
    for (const p of parts) {
      h = Math.imul(h ^ (p | 0), 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
    }
    h = (h + 0x6d2b79f5 + k) | 0;
    words.push(h >>> 0);
  }
  return words;
}

/** An independent stream for each (seed, ...coordinates). */
export function stream(seed: number, ...coords: number[]): Rng {
  const [a, b, c, d] = mix(seed, ...coords) as [number, number, number, number];
  const rng = sfc32(a, b, c, d);
  for (let i = 0; i < 12; i++) rng(); // discard the warm-up outputs
  return rng;
}
