// The sun over a virtual node: clear-sky irradiance from NOAA's solar position at the
// node's latitude and longitude (sunlight.ts, shared with the simulator), dimmed by a
// seeded stochastic cloud cover.
import { haurwitzGhi, mulberry32, sunAngles } from '../../sunlight.js';

export { mulberry32 };

const DEG = Math.PI / 180;

/** Standard normal draw (Box–Muller). */
export function gaussian(rng: () => number): number {
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export function dayOfYear(timeMs: number): number {
  const d = new Date(timeMs);
  return Math.floor((timeMs - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
}

/**
 * Cosine of the solar zenith angle from NOAA's solar position (sunlight.ts), the one
 * geometry the simulator uses too: geometric, without refraction.
 */
export function cosZenith(timeMs: number, latitudeDeg: number, longitudeDeg: number): number {
  return Math.sin(sunAngles(timeMs, latitudeDeg, longitudeDeg).elevationDeg * DEG);
}

/**
 * Global horizontal irradiance under a clear sky, W/m², Haurwitz (1945): 1098 cosθz
 * e^(−0.057/cosθz). The plant's panel lies flat (its derate stands for orientation), so it
 * needs the global light only, which Haurwitz fits with one formula; the simulator's tilted
 * panels split beam from diffuse with Meinel's model instead (sunlight.ts).
 */
export function clearSkyGhi(timeMs: number, latitudeDeg: number, longitudeDeg: number): number {
  return haurwitzGhi(sunAngles(timeMs, latitudeDeg, longitudeDeg).elevationDeg);
}

export interface CloudOptions {
  seed: number;
  /** Long-run mean cloud cover, 0 (clear) … 1 (overcast). */
  meanCover: number;
  /** Standard deviation of the cover around its mean. */
  sdCover: number;
  /** How long a cloud situation persists (the process's correlation time). */
  correlationMinutes: number;
}

/**
 * Cloud cover as a mean-reverting (Ornstein–Uhlenbeck) process sampled on a one-minute
 * grid from `originMs`, clipped to [0, 1]. The grid makes the weather a function of time
 * and seed only, however often or rarely it is asked for.
 */
export class CloudProcess {
  private static readonly STEP_MS = 60_000;
  private readonly cover: number[] = [];
  private readonly rng: () => number;
  private readonly a: number;

  constructor(private readonly o: CloudOptions, private readonly originMs: number) {
    this.rng = mulberry32(o.seed);
    this.a = Math.exp(-1 / o.correlationMinutes);
    this.cover.push(clamp01(o.meanCover + o.sdCover * gaussian(this.rng)));
  }

  coverAt(timeMs: number): number {
    const x = Math.max(0, (timeMs - this.originMs) / CloudProcess.STEP_MS);
    const i = Math.floor(x);
    while (this.cover.length <= i + 1) {
      // Exact discretisation of the OU process: x' = μ + a(x − μ) + σ√(1 − a²)·N(0,1).
      const prev = this.cover[this.cover.length - 1]!;
      const next = this.o.meanCover + this.a * (prev - this.o.meanCover) + this.o.sdCover * Math.sqrt(1 - this.a * this.a) * gaussian(this.rng);
      this.cover.push(clamp01(next));
    }
    const f = x - i;
    return this.cover[i]! * (1 - f) + this.cover[i + 1]! * f;
  }

  /** Fraction of clear-sky irradiance that gets through, Kasten & Czeplak (1980): 1 − 0.75 (N/8)^3.4. */
  transmissionAt(timeMs: number): number {
    return 1 - 0.75 * this.coverAt(timeMs) ** 3.4;
  }
}

export interface SunOptions {
  latitudeDeg: number;
  longitudeDeg: number;
  clouds: CloudOptions;
}

export class Sun {
  private readonly clouds: CloudProcess;

  constructor(private readonly o: SunOptions, originMs: number) {
    this.clouds = new CloudProcess(o.clouds, originMs);
  }

  /** Global horizontal irradiance now, W/m², and its parts. */
  irradianceAt(timeMs: number): { clearSkyWm2: number; cloudCover: number; ghiWm2: number } {
    const clearSkyWm2 = clearSkyGhi(timeMs, this.o.latitudeDeg, this.o.longitudeDeg);
    const cloudCover = this.clouds.coverAt(timeMs);
    return { clearSkyWm2, cloudCover, ghiWm2: clearSkyWm2 * this.clouds.transmissionAt(timeMs) };
  }
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
