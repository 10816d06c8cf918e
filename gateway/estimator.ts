// Each node's harvest law f(e) (SPEC.md §2), estimated from its own slot records: a
// rolling histogram of the energy harvested per slot, in battery quanta, over the last
// `windowSlots` slots, optionally kept separately for each hour of the day so that the
// chain sees the sun of the hours ahead rather than the day's average.
//
// A slot's harvest is rarely a whole number of quanta. Rounding would shift the mean by up
// to half a quantum per slot, so each sample's mass is split between the two neighbouring
// levels in proportion to its distance from them, which keeps the mean exact (the same
// rule `uniformOnGrid` uses for the paper's continuous laws).
import { z } from 'zod';
import { persistentForecast } from './scheduler/index.js';

export const EstimatorConfigSchema = z.strictObject({
  /** Slots remembered (per hour of day when `byHourOfDay`). */
  windowSlots: z.number().int().positive().default(2016),
  /** Fewer samples than this and the estimate is not trusted: the node's profile prior is used. */
  minSlots: z.number().int().positive().default(24),
  byHourOfDay: z.boolean().default(false),
  /** The site's offset from UTC, for the hour-of-day buckets. */
  utcOffsetMinutes: z.number().int().min(-14 * 60).max(14 * 60).default(0),
  /** An estimate counts as changed (worth a re-solve) once its total variation distance to the last solved one exceeds this. */
  changeThreshold: z.number().positive().max(1).default(0.02),
});

export type EstimatorConfig = z.infer<typeof EstimatorConfigSchema>;

/** A fixed-capacity ring of samples. */
class Ring {
  private readonly values: Float64Array;
  private next = 0;
  size = 0;
  constructor(capacity: number) {
    this.values = new Float64Array(capacity);
  }

  push(x: number): void {
    this.values[this.next] = x;
    this.next = (this.next + 1) % this.values.length;
    if (this.size < this.values.length) this.size++;
  }

  forEach(fn: (x: number) => void): void {
    for (let i = 0; i < this.size; i++) fn(this.values[i] as number);
  }
}

const HOUR_MS = 3_600_000;
/** Cloud regimes last 3–10 h on average: the sky of the last hour says little beyond ~4 h (sim/sleep-control.ts). */
const PERSIST_MS = 4 * HOUR_MS;
/** Records kept for the last hour's sky: an hour of the shortest slots the protocol allows is more than any fleet needs. */
const RECENT_KEPT = 720;

export class HarvestEstimator {
  private readonly buckets: Ring[];
  /**
   * The mean harvest per slot (quanta) by hour of the day, whatever `byHourOfDay` says: the
   * sleep planner's forecast. An exponential mean, so the season moves it; its memory is
   * `windowSlots / 24` samples of the hour, the same history the day's histogram keeps.
   */
  private readonly hourMean = new Float64Array(24);
  private readonly hourCount = new Uint32Array(24);
  /** The last records, oldest first: what the sky did in the last hour. */
  private readonly recent: Array<{ atMs: number; q: number }> = [];

  constructor(readonly config: EstimatorConfig, readonly quantumJ: number) {
    if (!(quantumJ > 0)) throw new Error(`battery quantum must be > 0 J, got ${quantumJ}`);
    this.buckets = Array.from({ length: config.byHourOfDay ? 24 : 1 }, () => new Ring(config.windowSlots));
  }

  /**
   * Records one slot's harvested energy; negative or non-finite values are refused.
   * `lowerBound`: the battery was full and the charger took no more, so the sun offered at
   * least this. Such a record below its hour's mean says nothing against the mean and is
   * left out (of the mean, the histogram and the last hour's sky): a full node's afternoons
   * would otherwise read as its own draw and look like night. One above it, or the first of
   * its hour, counts as it is.
   */
  add(harvestJ: number, slotStartMs: number, lowerBound = false): void {
    if (!(harvestJ >= 0) || !Number.isFinite(harvestJ)) throw new Error(`harvested energy must be a finite number ≥ 0 J, got ${harvestJ}`);
    const q = harvestJ / this.quantumJ;
    const h = this.hourOfDay(slotStartMs);
    if (lowerBound && this.hourCount[h]! > 0 && q < this.hourMean[h]!) return;
    this.bucket(slotStartMs).push(q);
    const n = ++this.hourCount[h]!;
    const weight = Math.max(1 / n, 24 / this.config.windowSlots);
    this.hourMean[h] = this.hourMean[h]! + weight * (q - this.hourMean[h]!);
    this.recent.push({ atMs: slotStartMs, q });
    if (this.recent.length > RECENT_KEPT) this.recent.shift();
  }

  /**
   * Expected harvest per slot (quanta) for the slot starting at `atMs`, from the mean of its
   * hour of the day; an hour never seen yet takes the mean of the hours seen. Undefined
   * before any record: nothing is known of the node's panel.
   */
  meanAt(atMs: number): number | undefined {
    const h = this.hourOfDay(atMs);
    if (this.hourCount[h]! > 0) return this.hourMean[h]!;
    let sum = 0;
    let seen = 0;
    for (let k = 0; k < 24; k++) {
      if (this.hourCount[k]! === 0) continue;
      sum += this.hourMean[k]!;
      seen++;
    }
    return seen ? sum / seen : undefined;
  }

  /**
   * The harvest of each coming slot of `slotMs` from `nowMs` (index 0 the slot starting
   * now), in quanta: the time-of-day mean, corrected by how the last hour's records
   * compared with what that mean expected of them, the correction fading over a cloud
   * regime's length (persistentForecast). Undefined before any record.
   */
  forecast(nowMs: number, slotMs: number): ((slotsAhead: number) => number) | undefined {
    if (this.meanAt(nowMs) === undefined) return undefined;
    let seen = 0;
    let expected = 0;
    for (const r of this.recent) {
      if (r.atMs < nowMs - HOUR_MS || r.atMs > nowMs) continue;
      seen += r.q;
      expected += this.meanAt(r.atMs)!;
    }
    const ratio = expected > 1e-9 ? seen / expected : 1;
    return persistentForecast((t) => this.meanAt(nowMs + t * slotMs)!, ratio, PERSIST_MS / slotMs);
  }

  /** Hours of the day with at least one record: 24 once the node has been heard through a whole day. */
  hoursSeen(): number {
    let seen = 0;
    for (let k = 0; k < 24; k++) if (this.hourCount[k]! > 0) seen++;
    return seen;
  }

  /**
   * The start (epoch ms) of the first hour after `nowMs` whose hour of the day has no record
   * yet: where the forecast stops being the node's own and becomes a guess. Undefined once
   * every hour has one.
   */
  nextUnseenHourMs(nowMs: number): number | undefined {
    const offsetMs = this.config.utcOffsetMinutes * 60_000;
    const hourStart = Math.floor((nowMs + offsetMs) / HOUR_MS);
    for (let k = 1; k <= 24; k++) {
      const atMs = (hourStart + k) * HOUR_MS - offsetMs;
      if (this.hourCount[this.hourOfDay(atMs)]! === 0) return atMs;
    }
    return undefined;
  }

  samples(atMs: number): number {
    return this.bucket(atMs).size;
  }

  /**
   * f(e) for the slots around `atMs`, or undefined while there are fewer than `minSlots`
   * samples. Harvests above `topLevel` quanta count as `topLevel`, so the PMF's length never
   * depends on what a node reported; with topLevel = E_max + the largest C_E this is exact
   * for the chain, since Eq. 1 clips every stage whose harvest reaches it at E_max.
   */
  pmf(atMs: number, topLevel: number): Float64Array | undefined {
    if (!Number.isInteger(topLevel) || topLevel < 0) throw new Error(`top harvest level must be a whole number of quanta ≥ 0, got ${topLevel}`);
    const ring = this.bucket(atMs);
    if (ring.size < this.config.minSlots) return undefined;
    let top = 0;
    ring.forEach((x) => {
      top = Math.max(top, Math.ceil(Math.min(x, topLevel)));
    });
    const pmf = new Float64Array(top + 1);
    ring.forEach((raw) => {
      const x = Math.min(raw, topLevel);
      const k = Math.floor(x);
      const frac = x - k;
      pmf[k] = (pmf[k] as number) + (1 - frac);
      if (frac > 0) pmf[k + 1] = (pmf[k + 1] as number) + frac;
    });
    for (let i = 0; i < pmf.length; i++) pmf[i] = (pmf[i] as number) / ring.size;
    return pmf;
  }

  private bucket(atMs: number): Ring {
    return this.buckets.length === 1 ? this.buckets[0]! : this.buckets[this.hourOfDay(atMs)]!;
  }

  private hourOfDay(atMs: number): number {
    const minutes = Math.floor(atMs / 60_000) + this.config.utcOffsetMinutes;
    return Math.floor((((minutes % 1440) + 1440) % 1440) / 60);
  }
}

/** Total variation distance ½Σ|a−b| between two PMFs of possibly different lengths. */
export function totalVariation(a: Float64Array, b: Float64Array): number {
  let d = 0;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) d += Math.abs((a[i] ?? 0) - (b[i] ?? 0));
  return d / 2;
}
