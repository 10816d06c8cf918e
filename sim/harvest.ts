// Energy arrival processes for the simulator, in quanta per slot.
import type { Rng } from './rng.js';

export interface HarvestSpec {
  kind: 'uniform';
  lo: number;
  hi: number;
}

/**
 * A realistic day: clear-sky output follows the sun's elevation (zero at night), scaled by
 * a cloud factor that persists from slot to slot (an AR(1) process clipped to [0.1, 1]).
 * Unlike the paper's i.i.d. slots, income is strongly correlated in time.
 */
export interface SolarSpec {
  kind: 'solar';
  /** Mean harvest per slot over a whole day, in quanta. */
  dailyMean: number;
  slotsPerDay: number;
  /** Fraction of the day with sun. */
  daylight: number;
  /** Slot-to-slot persistence of the cloud factor (0 = i.i.d., → 1 = long spells). */
  cloudPersistence: number;
  /** Phase of the day at slot 0, in [0, 1). */
  phase: number;
}

/** A discrete law on whole quanta, f(e) for e = 0..len-1: the chain's own input. */
export interface PmfSpec {
  kind: 'pmf';
  pmf: number[];
}

/**
 * A harvest already computed slot by slot (a real solar day from sim/solar.ts), in quanta;
 * a run longer than the trace starts it again from its first slot.
 */
export interface TraceSpec {
  kind: 'trace';
  quanta: Float64Array;
}

export type HarvestProcessSpec = HarvestSpec | SolarSpec | PmfSpec | TraceSpec;

export interface HarvestProcess {
  next(slot: number): number;
}

export function harvestProcess(spec: HarvestProcessSpec, rng: Rng): HarvestProcess {
  if (spec.kind === 'uniform') {
    const { lo, hi } = spec;
    return { next: () => lo + (hi - lo) * rng() };
  }
  if (spec.kind === 'trace') {
    const { quanta } = spec;
    return { next: (slot) => quanta[slot % quanta.length] as number };
  }
  if (spec.kind === 'pmf') {
    const cdf: number[] = [];
    let acc = 0;
    for (const v of spec.pmf) cdf.push((acc += v));
    return {
      next: () => {
        const u = rng() * acc;
        let e = 0;
        while (e < cdf.length - 1 && u >= (cdf[e] as number)) e++;
        return e;
      },
    };
  }
  const { dailyMean, slotsPerDay, daylight, cloudPersistence, phase } = spec;
  // ∫ sin over the daylight arc is 2/π of its peak, and clouds average 0.55 (uniform on
  // [0.1, 1]): scale the peak so the daily mean is what the scenario asks for.
  const cloudMean = 0.55;
  const peak = dailyMean / (daylight * (2 / Math.PI) * cloudMean);
  let cloud = 0.1 + 0.9 * rng();
  return {
    next(slot: number) {
      const innovation = 0.1 + 0.9 * rng();
      cloud = cloudPersistence * cloud + (1 - cloudPersistence) * innovation;
      const dayPos = (slot / slotsPerDay + phase) % 1;
      const sunPos = (dayPos - (1 - daylight) / 2) / daylight;
      if (sunPos <= 0 || sunPos >= 1) return 0;
      return peak * Math.sin(Math.PI * sunPos) * cloud;
    },
  };
}
