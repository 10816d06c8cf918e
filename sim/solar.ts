// Two solar scenarios beside the paper's i.i.d. uniform harvest.
// - The figures' `solar`: the same 3 × 3 network under a 12-hour sine arc with AR(1)
//   clouds, over three days, scaled to the figure's energy axis. Kept as it is so that
//   `sim all` reproduces the same numbers.
// - The real day (end of this file): solar geometry, a tilted 10–20 W_p panel and
//   persistent cloud regimes, in joules, for the evaluation of the policies.
import type { Calibration } from './calibration.js';
import { harvestProcess, type SolarSpec } from './harvest.js';
import { stream } from './rng.js';
import { clearSky, moduleOutputW, planeOfArray, sunAngles, type PanelPlane, type PvModule } from '../sunlight.js';
import { throughClouds, Weather, type SkyState, type WeatherSpec } from '../weather.js';

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
  const samples = new Float64Array(7 * spec.slotsPerDay);
  for (let t = 0; t < samples.length; t++) samples[t] = process.next(t);
  return gridPmf(samples);
}

/** The histogram of per-slot harvests (quanta) on the quantum grid, each sample's mass split between its two neighbouring levels. */
export function gridPmf(samples: Float64Array): Float64Array {
  const counts: number[] = [];
  for (const x of samples) {
    const k = Math.floor(x);
    const frac = x - k;
    counts[k] = (counts[k] ?? 0) + (1 - frac);
    if (frac > 0) counts[k + 1] = (counts[k + 1] ?? 0) + frac;
  }
  return Float64Array.from(counts, (c) => (c ?? 0) / samples.length);
}

// ---------------------------------------------------------------------------------------
// The real day: harvest from the sun's geometry, a tilted panel and persistent clouds
// (sunlight.ts, weather.ts). The `solar` figure above keeps its sine arc, so the figures
// reproduce as before; the evaluation of the policies on real days uses what follows.

export interface SolarSite {
  name: string;
  latitudeDeg: number;
  /** East positive. */
  longitudeDeg: number;
  /** Mean daytime air temperature for the season, °C (sets the cell temperature). */
  ambientC: number;
}

export interface SolarDaySpec {
  site: SolarSite;
  plane: PanelPlane;
  module: PvModule;
  weather: WeatherSpec;
  /** UTC instant of slot 0. */
  startMs: number;
  slotMs: number;
  slots: number;
}

/** Light on the panel's plane at one instant, W/m², and the sky state that made it. */
export function planeIrradianceAt(spec: Pick<SolarDaySpec, 'site' | 'plane'>, weather: Weather, timeMs: number): { poaWm2: number; sky: SkyState } {
  const sun = sunAngles(timeMs, spec.site.latitudeDeg, spec.site.longitudeDeg);
  const sky = weather.at(timeMs);
  if (sun.elevationDeg <= 0) return { poaWm2: 0, sky };
  const light = throughClouds(clearSky(sun.elevationDeg), weather.filter(sky));
  return { poaWm2: planeOfArray(sun, light, spec.plane), sky };
}

/** Sub-steps per slot: the broken sky flips every few minutes, so sample each minute (or finer). */
const SAMPLE_MS = 60_000;

/** Energy delivered to the battery side in each slot, J (midpoint rule on one-minute steps). */
export function solarDayHarvestJ(spec: SolarDaySpec): Float64Array {
  const weather = new Weather(spec.weather, spec.startMs);
  const out = new Float64Array(spec.slots);
  const steps = Math.max(1, Math.round(spec.slotMs / SAMPLE_MS));
  const dt = spec.slotMs / steps;
  for (let s = 0; s < spec.slots; s++) {
    let j = 0;
    for (let k = 0; k < steps; k++) {
      const t = spec.startMs + s * spec.slotMs + (k + 0.5) * dt;
      j += moduleOutputW(spec.module, planeIrradianceAt(spec, weather, t).poaWm2, spec.site.ambientC) * (dt / 1000);
    }
    out[s] = j;
  }
  return out;
}
