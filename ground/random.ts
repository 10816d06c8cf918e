/**
 * A seeded PRNG: SplitMix32 (Steele, Lea & Flood 2014, the 32-bit variant of SplitMix's
 * mixing function). Deterministic across platforms, so a seed reproduces a generation, a
 * routing decision or a benchmark's load.
 */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  }
}
