// Cloud regimes with persistence: a continuous-time Markov chain over clear, broken and
// overcast skies, each held for an exponentially distributed spell, with the sun flicking
// in and out of cumulus shadows inside a broken spell. A function of time and seed only:
// the weather is drawn lazily from `originMs`, so asking often or rarely sees the same sky.
import { mulberry32 } from './sunlight.js';

export type CloudRegime = 'clear' | 'broken' | 'overcast';
export const REGIMES: readonly CloudRegime[] = ['clear', 'broken', 'overcast'];

export interface RegimeSpec {
  /** Mean spell length, minutes. */
  meanDwellMin: number;
  /** Where the chain goes when the spell ends (probabilities over the other regimes). */
  next: Partial<Record<CloudRegime, number>>;
}

export interface WeatherSpec {
  seed: number;
  regimes: Record<CloudRegime, RegimeSpec>;
  /** Inside a broken spell: mean minutes in sun and in a cloud's shadow. */
  brokenSunMin: number;
  brokenShadeMin: number;
  /** Global irradiance under a cloud's shadow or an overcast deck, as a share of clear-sky GHI, all of it diffuse. */
  shadeTransmittance: number;
  overcastTransmittance: number;
  /** Diffuse light in the gaps between cumulus, as a multiple of the clear sky's. */
  brokenDiffuseGain: number;
}

/**
 * Mid-latitude defaults. Spells: fair weather under a high lasts most of a day (8 h mean),
 * a frontal or stratus deck half a day (10 h), broken cumulus a few hours (3 h): the
 * synoptic timescale of 2–5 days split among three regimes. From clear the sky mostly
 * goes broken (cumulus build up before a deck does); from overcast it clears through
 * broken. Inside broken spells a shadow passes in minutes (cumulus 0.5–2 km across at
 * 5–10 m/s), here 8 min in sun and 6 min in shade.
 * Transmittance: a full deck passes 25 % of clear-sky GHI, Kasten & Czeplak (1980),
 * 1 − 0.75 (N/8)^3.4 at N = 8; under a single cumulus 35 % (a thinner, sunlit cloud); in the
 * gaps the clouds' edges scatter extra diffuse light, taken as 1.5× the clear sky's.
 */
export const MID_LATITUDE_WEATHER: Omit<WeatherSpec, 'seed'> = {
  regimes: {
    clear: { meanDwellMin: 8 * 60, next: { broken: 0.75, overcast: 0.25 } },
    broken: { meanDwellMin: 3 * 60, next: { clear: 0.5, overcast: 0.5 } },
    overcast: { meanDwellMin: 10 * 60, next: { broken: 0.75, clear: 0.25 } },
  },
  brokenSunMin: 8,
  brokenShadeMin: 6,
  shadeTransmittance: 0.35,
  overcastTransmittance: 0.25,
  brokenDiffuseGain: 1.5,
};

export interface Spell {
  regime: CloudRegime;
  startMs: number;
  endMs: number;
}

export interface SkyState {
  regime: CloudRegime;
  /** Inside a broken spell: is the sun out of every shadow? (true in clear, false overcast) */
  sunlit: boolean;
}

/** How a sky state dims clear-sky light: factors on the clear-sky beam and diffuse, and the overcast share of GHI. */
export interface SkyFilter {
  beamFactor: number;
  diffuseFactor: number;
  /** When set, the sky passes this share of clear-sky GHI as diffuse light instead. */
  globalShare?: number;
}

export class Weather {
  private readonly rng: () => number;
  /** Regime spells and, inside broken ones, the sun/shade flips, both in time order. */
  private readonly spells: Spell[] = [];
  private readonly flips: { startMs: number; sunlit: boolean }[] = [];
  private cursor = 0;
  private flipCursor = 0;

  constructor(readonly spec: WeatherSpec, readonly originMs: number, initial?: CloudRegime) {
    this.rng = mulberry32(spec.seed);
    const first = initial ?? this.stationaryDraw();
    this.spells.push({ regime: first, startMs: originMs, endMs: originMs + this.dwellMs(first) });
    this.fillFlips(this.spells[0]!);
  }

  /** The regime fractions in the long run: the embedded chain's stationary law weighted by mean dwell. */
  stationary(): Record<CloudRegime, number> {
    // Power iteration on the jump chain (three states: converges in a few dozen steps).
    let p = [1 / 3, 1 / 3, 1 / 3];
    for (let k = 0; k < 200; k++) {
      const q = [0, 0, 0];
      REGIMES.forEach((from, i) => REGIMES.forEach((to, j) => { q[j]! += p[i]! * (this.spec.regimes[from].next[to] ?? 0); }));
      p = q;
    }
    const w = REGIMES.map((r, i) => p[i]! * this.spec.regimes[r].meanDwellMin);
    const s = w.reduce((a, b) => a + b, 0);
    return { clear: w[0]! / s, broken: w[1]! / s, overcast: w[2]! / s };
  }

  /** Every spell that has begun by `untilMs` (the last one may still be running). */
  spellsUntil(untilMs: number): Spell[] {
    this.extendTo(untilMs);
    return this.spells.filter((s) => s.startMs <= untilMs);
  }

  at(timeMs: number): SkyState {
    this.extendTo(timeMs);
    if (timeMs < this.spells[this.cursor]!.startMs) this.cursor = 0;
    while (this.spells[this.cursor]!.endMs <= timeMs) this.cursor++;
    const regime = this.spells[this.cursor]!.regime;
    if (regime !== 'broken') return { regime, sunlit: regime === 'clear' };
    if (this.flipCursor >= this.flips.length || timeMs < this.flips[this.flipCursor]!.startMs) this.flipCursor = 0;
    while (this.flipCursor + 1 < this.flips.length && this.flips[this.flipCursor + 1]!.startMs <= timeMs) this.flipCursor++;
    return { regime, sunlit: this.flips[this.flipCursor]!.sunlit };
  }

  filter(s: SkyState): SkyFilter {
    if (s.regime === 'clear') return { beamFactor: 1, diffuseFactor: 1 };
    if (s.regime === 'overcast') return { beamFactor: 0, diffuseFactor: 0, globalShare: this.spec.overcastTransmittance };
    return s.sunlit ? { beamFactor: 1, diffuseFactor: this.spec.brokenDiffuseGain } : { beamFactor: 0, diffuseFactor: 0, globalShare: this.spec.shadeTransmittance };
  }

  private extendTo(timeMs: number): void {
    let last = this.spells[this.spells.length - 1]!;
    while (last.endMs <= timeMs) {
      const regime = this.jump(last.regime);
      last = { regime, startMs: last.endMs, endMs: last.endMs + this.dwellMs(regime) };
      this.spells.push(last);
      this.fillFlips(last);
    }
  }

  private fillFlips(spell: Spell): void {
    if (spell.regime !== 'broken') return;
    let t = spell.startMs;
    let sunlit = this.rng() < this.spec.brokenSunMin / (this.spec.brokenSunMin + this.spec.brokenShadeMin);
    while (t < spell.endMs) {
      this.flips.push({ startMs: t, sunlit });
      t += exponential(this.rng, (sunlit ? this.spec.brokenSunMin : this.spec.brokenShadeMin) * 60_000);
      sunlit = !sunlit;
    }
  }

  private dwellMs(regime: CloudRegime): number {
    return exponential(this.rng, this.spec.regimes[regime].meanDwellMin * 60_000);
  }

  private jump(from: CloudRegime): CloudRegime {
    const u = this.rng();
    let acc = 0;
    for (const to of REGIMES) {
      acc += this.spec.regimes[from].next[to] ?? 0;
      if (u < acc) return to;
    }
    return REGIMES.find((r) => r !== from && (this.spec.regimes[from].next[r] ?? 0) > 0) ?? from;
  }

  private stationaryDraw(): CloudRegime {
    const p = this.stationary();
    const u = this.rng();
    return u < p.clear ? 'clear' : u < p.clear + p.broken ? 'broken' : 'overcast';
  }
}

function exponential(rng: () => number, mean: number): number {
  return -mean * Math.log(1 - rng());
}

/** Clear-sky light after the clouds: beam and diffuse, W/m². */
export function throughClouds(sky: { dniWm2: number; dhiWm2: number; ghiWm2: number }, f: SkyFilter): { dniWm2: number; dhiWm2: number } {
  if (f.globalShare !== undefined) return { dniWm2: 0, dhiWm2: f.globalShare * sky.ghiWm2 };
  return { dniWm2: sky.dniWm2 * f.beamFactor, dhiWm2: sky.dhiWm2 * f.diffuseFactor };
}
