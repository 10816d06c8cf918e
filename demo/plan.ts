// The virtual field's physical plan: G groups × N nodes, each a Pi 4 with its own panel,
// battery pack and sky, all drawn from one seed so a run can be repeated. This file holds
// the numbers and why they are what they are; demo/field.ts turns them into agents.
import { PI4_POWER_MODES, referenceHardwareConfig, parseHardwareConfig, type HardwareConfig } from '../hardware/config.js';
import { mulberry32 } from '../hardware/virtual/sun.js';
import type { ModeStep, PowerModeEntry } from '../protocol/index.js';

/**
 * δ, the slot length: the paper's 100 s (SPEC.md §2). At the default 10-minute day
 * (144× real time) a slot closes every 0.7 s of wall time, so a battery bar moves a step
 * about once a second, and a day is 864 slots, enough for the harvest estimate to settle.
 */
export const PAPER_SLOT_MS = 100_000;
/**
 * A slot close costs the agent a sensor read and an fsync'd spool append; a read of the
 * virtual sensors waits on several driver timers and takes 10 ms of wall time when idle,
 * up to a few hundred under inference load, and reads queue behind each other. So a slot
 * lasts at least 0.6 s of wall time: days faster than the default get longer slots.
 */
const MIN_SLOT_WALL_MS = 600;

export function slotMsFor(speed: number): number {
  return Math.max(PAPER_SLOT_MS, Math.ceil((MIN_SLOT_WALL_MS * speed) / 1000) * 1000);
}

/**
 * One 18650 cell: 3.35 Ah at 3.6 V nominal ≈ 12 Wh. The packs are 1S3P (36 Wh) and 1S4P
 * (48 Wh). A Pi 4 idles at 2.7 W (the virtual load's idleW); a midsummer night at 40° N
 * is about 9 h of darkness plus an hour at each end when the panel cannot carry the Pi,
 * so ≈ 30 Wh. A 3P pack full at dusk just makes it to dawn, a 4P pack with a margin; a
 * node with a weak panel or a cloudy afternoon starts the night part-full and drops
 * below E_th (power saving) or to the critical level before sunrise. That spread is
 * what the scheduler has to work with.
 */
const CELL_WH = 3.35 * 3.6;
const PACK_CELLS = [3, 4];

/**
 * 6 V panels of the sizes sold for Pi projects. Their rated power at 1000 W/m² is well
 * above the Pi's needs; orientation (east/west-facing instead of south), tilt, soiling
 * and wiring take 10–45 % of it (the plant's derate).
 */
const PANEL_W = [10, 15, 20];
const DERATE = { min: 0.55, max: 0.9 };
/** Long-run mean cloud cover per node's sky: clear (0.1) to mostly overcast (0.6). */
const CLOUD_COVER = { min: 0.1, max: 0.6 };
/** Where the demo starts each battery: a field that has already lived through some days. */
const INITIAL_SOC_PCT = { min: 40, max: 80 };

/** The SPEC.md §3 hand-found table: < 40 % → PM1, 40–60 % → PM2, ≥ 60 % → PM3. */
export const MODE_TABLE: ModeStep[] = [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.4, powerMode: 2 }, { minFraction: 0.6, powerMode: 3 }];

export interface NodePlan {
  nodeId: string;
  group: string;
  /** 0-based group index: which block range the node serves. */
  groupIndex: number;
  hardware: HardwareConfig;
  powerModes: PowerModeEntry[];
  /** For the view: what makes this node different. */
  summary: { batteryWh: number; panelW: number; derate: number; cloudCover: number; initialSocPct: number };
}

export interface FieldPlanOptions {
  groups: number;
  /** δ in simulated ms (slotMsFor). */
  slotMs: number;
  nodesPerGroup: number;
  seed: number;
  latitudeDeg?: number;
  longitudeDeg?: number;
  /** Overrides every node's seeded start level. */
  initialSocPct?: number;
  /**
   * Every node's pack holds this, Wh, instead of its seeded 3 or 4 cells; the draws of the
   * seed stay the same, so the panels, skies and start levels are those of the seeded field.
   */
  batteryWh?: number;
}

export function groupName(i: number): string {
  return `g${i + 1}`;
}

export function nodeName(group: number, node: number): string {
  return `g${group + 1}-n${node + 1}`;
}

/**
 * κ and C_E per power mode from the virtual Pi's own load model (hardware config
 * `virtual.load` and `cpu.modes`), with a job defined as one slot δ of work at the top
 * mode. Work per second scales with online cores × clock; the extra power over idle is
 * computeW × core share × (f/fmax)^freqExponent, as the plant computes it. So a job takes
 * κ = ceil(top throughput / mode throughput) slots and costs C_E = extra power × κ·δ.
 *
 * (In the demo the block worker itself runs at the host's speed in every mode; the modes
 * change what the virtual Pi draws while it works, which is what the batteries feel.)
 */
export function powerModesFor(hw: HardwareConfig, slotMs: number): PowerModeEntry[] {
  const modes = Object.entries(hw.cpu.modes);
  const maxKhz = Math.max(...modes.map(([, m]) => m.maxFreqKhz));
  const cores = Math.max(...modes.map(([, m]) => m.onlineCores));
  const throughput = (m: { maxFreqKhz: number; onlineCores: number }) => m.onlineCores * m.maxFreqKhz;
  const top = Math.max(...modes.map(([, m]) => throughput(m)));
  const { computeW, freqExponent } = hw.virtual.load;
  return modes
    .sort(([, a], [, b]) => throughput(a) - throughput(b))
    .map(([name, m], i) => {
      const kappa = Math.ceil(top / throughput(m) - 1e-9);
      const extraW = computeW * (m.onlineCores / cores) * (m.maxFreqKhz / maxKhz) ** freqExponent;
      return { powerMode: i + 1, name, kappa, costJ: Math.round(extraW * kappa * (slotMs / 1000)) };
    });
}

function between(rng: () => number, r: { min: number; max: number }): number {
  return r.min + (r.max - r.min) * rng();
}

function pick<T>(rng: () => number, xs: T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

/** The field's nodes, in group order; the same seed always gives the same field. */
export function planField(o: FieldPlanOptions): NodePlan[] {
  const rng = mulberry32(o.seed);
  const plans: NodePlan[] = [];
  for (let g = 0; g < o.groups; g++) {
    for (let n = 0; n < o.nodesPerGroup; n++) {
      const base = referenceHardwareConfig('virtual');
      const cells = pick(rng, PACK_CELLS);
      const panelW = pick(rng, PANEL_W);
      const derate = between(rng, DERATE);
      const cloudCover = between(rng, CLOUD_COVER);
      const seededSocPct = between(rng, INITIAL_SOC_PCT);
      const initialSocPct = o.initialSocPct ?? seededSocPct;
      const batteryWh = o.batteryWh ?? Math.round(cells * CELL_WH * 10) / 10;
      const hardware = parseHardwareConfig({
        ...base,
        // The agent's estimator starts from the plant's true level, as an agent restarted
        // on a Pi starts from its last estimate, instead of guessing it from the voltage.
        battery: { ...base.battery, capacityWh: batteryWh, initialSocPct },
        cpu: { ...base.cpu, modes: PI4_POWER_MODES },
        virtual: {
          ...base.virtual,
          ...(o.latitudeDeg !== undefined ? { latitudeDeg: o.latitudeDeg } : {}),
          ...(o.longitudeDeg !== undefined ? { longitudeDeg: o.longitudeDeg } : {}),
          initialSocPct,
          panel: { ...base.virtual.panel, peakW: panelW, derate },
          // Each node its own weather: a seed of its own, its own mean cover.
          clouds: { ...base.virtual.clouds, seed: Math.floor(rng() * 2 ** 31), meanCover: cloudCover },
        },
      });
      plans.push({
        nodeId: nodeName(g, n), group: groupName(g), groupIndex: g, hardware,
        powerModes: powerModesFor(hardware, o.slotMs),
        summary: { batteryWh, panelW, derate, cloudCover, initialSocPct },
      });
    }
  }
  return plans;
}

/**
 * Where the field stands: 40.4° from the equator (the virtual node's default site, near
 * Madrid) in whichever hemisphere has summer now. A 2.7 W Pi 4 on these panels runs flat
 * in a 40° winter whatever the scheduler does; summer gives the Pis a surplus by day and
 * a real test by night. Keeping the season of the real date (rather than a fixed date)
 * keeps the simulated time near the wall clock, so the points logged to InfluxDB fall in
 * the time ranges a dashboard opens with.
 */
export function summerSite(nowMs: number): { latitudeDeg: number; longitudeDeg: number } {
  const month = new Date(nowMs).getUTCMonth(); // 0 = January
  const northernSummer = month >= 3 && month <= 8;
  return { latitudeDeg: northernSummer ? 40.4 : -40.4, longitudeDeg: -3.7 };
}

/**
 * Default start of the simulated day: the last 04:00 local solar time at the field's
 * longitude before `nowMs`, half an hour before a midsummer sunrise at 40°, so a run
 * opens with the dawn and the whole first day is within a day of the wall clock.
 */
export function defaultStartMs(nowMs: number, longitudeDeg: number): number {
  const solarFourUtcMs = Math.round((4 - longitudeDeg / 15) * 3_600_000);
  const day = 86_400_000;
  let start = Math.floor(nowMs / day) * day + solarFourUtcMs;
  while (start > nowMs) start -= day;
  while (start + day <= nowMs) start += day;
  return start;
}
