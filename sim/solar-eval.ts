// `heliomesh sim solar-day`: what a real solar day gives a Pi-class node, before any policy
// is asked to share it. Thirty days of harvest from sunlight.ts and weather.ts, in summer
// and winter at 40° N and 55° N, for 10 and 20 W_p panels and 36 and 48 Wh batteries,
// against a node that draws its idle power whenever it is up. No job is served here, so
// the downtime is a floor: every policy's node draws at least the idle power while up.
import { SMALL_PANEL } from '../sunlight.js';
import { MID_LATITUDE_WEATHER } from '../weather.js';
import { solarDayHarvestJ, type SolarSite } from './solar.js';

/** Idle draw of a Raspberry Pi 4 node with its radio up, W (the virtual node's profile, 2.7 W). */
export const PI_IDLE_W = 2.7;
/** A node that ran flat comes back at this share of its battery: E′_th = 15 % (sim/calibration.ts). */
const RESTART_FRACTION = 0.15;
const DAY_MS = 86_400_000;
/** Slots of δ = 100 s, as in the figures' solar scenario. */
const SLOT_MS = 100_000;

export interface SolarDayCase {
  site: SolarSite;
  season: 'summer' | 'winter';
  /** First day of the 30, UTC midnight. */
  startMs: number;
  peakW: number;
  batteryWh: number;
}

export interface SolarDayRow {
  label: string;
  /** Mean daily harvest, Wh, and its standard deviation over seeds. */
  harvestWh: { mean: number; sd: number };
  /** Share of the 30 days an always-idle node spends down, mean and sd over seeds. */
  downtime: { mean: number; sd: number };
  /** Days simulated per seed. */
  days: number;
}

export function solarDayCases(): SolarDayCase[] {
  const sites: SolarSite[] = [
    // Summer air at midday ~25 °C at 40° N and ~18 °C at 55° N; winter ~8 °C and ~2 °C (climate normals of Madrid/Boulder and Edinburgh/Copenhagen, rounded).
    { name: '40° N', latitudeDeg: 40, longitudeDeg: 0, ambientC: 25 },
    { name: '55° N', latitudeDeg: 55, longitudeDeg: 0, ambientC: 18 },
  ];
  const out: SolarDayCase[] = [];
  for (const site of sites) {
    for (const season of ['summer', 'winter'] as const) {
      const winterC = site.latitudeDeg < 50 ? 8 : 2;
      const s = season === 'summer' ? site : { ...site, ambientC: winterC };
      // Thirty days centred on the solstice.
      const startMs = season === 'summer' ? Date.UTC(2026, 5, 6) : Date.UTC(2026, 11, 6);
      for (const peakW of [10, 20]) for (const batteryWh of [36, 48]) out.push({ site: s, season, startMs, peakW, batteryWh });
    }
  }
  return out;
}

export function evaluateSolarDay(c: SolarDayCase, seeds: number[], days = 30): SolarDayRow {
  const harvest: number[] = [];
  const down: number[] = [];
  for (const seed of seeds) {
    const j = solarDayHarvestJ({
      site: c.site,
      // Tilted at the latitude, due south: the fixed tilt that maximizes the yearly yield.
      plane: { tiltDeg: c.site.latitudeDeg, azimuthDeg: 180 },
      module: { ...SMALL_PANEL, peakW: c.peakW },
      weather: { ...MID_LATITUDE_WEATHER, seed },
      startMs: c.startMs,
      slotMs: SLOT_MS,
      slots: (days * DAY_MS) / SLOT_MS,
    });
    const capJ = c.batteryWh * 3600;
    let e = capJ / 2;
    let up = true;
    let downSlots = 0;
    let total = 0;
    for (const h of j) {
      total += h;
      e = Math.min(capJ, e + h - (up ? PI_IDLE_W * (SLOT_MS / 1000) : 0));
      if (e <= 0) [e, up] = [0, false];
      else if (!up && e >= RESTART_FRACTION * capJ) up = true;
      if (!up) downSlots++;
    }
    harvest.push(total / 3600 / days);
    down.push(downSlots / j.length);
  }
  return { label: `${c.site.name} ${c.season} ${c.peakW} W_p ${c.batteryWh} Wh`, harvestWh: meanSd(harvest), downtime: meanSd(down), days };
}

export function meanSd(xs: readonly number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
  return { mean, sd };
}
