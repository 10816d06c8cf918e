// A second scenario beside the paper's: the same 3 × 3 network under a realistic
// day/night solar profile with persistent clouds, over three days. The paper's i.i.d.
// uniform harvest is the easy case; here income is zero for hours and arrives in spells.
import type { Calibration } from './calibration.js';
import { harvestProcess, type SolarSpec } from './harvest.js';
import { stream } from './rng.js';

/** δ = 100 s: 864 slots a day. */
export const SLOTS_PER_DAY = 864;
export const SOLAR_DAYS = 3;

export function solarSpecs(axisJ: number, cal: Calibration): SolarSpec[] {
  const meanQ = (axisJ * cal.harvestScale) / cal.quantumJ;
  const specs: SolarSpec[] = [];
  for (let g = 0; g < 3; g++) {
    for (let j = 0; j < 3; j++) {
      specs.push({
        kind: 'solar',
        dailyMean: meanQ * (1 - cal.deviceSpread + cal.deviceSpread * j),
        slotsPerDay: SLOTS_PER_DAY,
        daylight: 0.5,
        // Clouds that persist for tens of slots (an hour or so at δ = 100 s).
        cloudPersistence: 0.97,
        // Panels facing slightly different ways see the sun at slightly different times.
        phase: (j - 1) * 0.01,
      });
    }
  }
  return specs;
}

/**
 * What a gateway would estimate as f(e) for one device: the histogram of a week of its
 * harvest per slot, put on the quantum grid with each sample's mass split between its two
 * neighbouring levels (so the mean is kept).
 */
export function empiricalPmf(spec: SolarSpec, seed: number): Float64Array {
  const rng = stream(seed, 0x501a7);
  const process = harvestProcess(spec, rng);
  const slots = 7 * spec.slotsPerDay;
  const counts: number[] = [];
  for (let t = 0; t < slots; t++) {
    const x = process.next(t);
    const k = Math.floor(x);
    const frac = x - k;
    counts[k] = (counts[k] ?? 0) + (1 - frac);
    if (frac > 0) counts[k + 1] = (counts[k + 1] ?? 0) + frac;
  }
  return Float64Array.from(counts, (c) => (c ?? 0) / slots);
}
