// Physical bounds on every number a node sends. A node's messages are its word about the
// world, and the gateway sizes its arrays, its chain and its books from them: a number no
// field node could ever measure is refused here, not carried into the scheduler, the store
// or a reply. Two layers, both below:
//   - the bounds of any node (constants: what no panel, board, battery or slot can exceed),
//     applied in the message schemas (messages.ts);
//   - the bounds of one node (against the profile its birth declared: its battery, its
//     panel, its slot, its modes, its queue), applied where the gateway receives its
//     messages, with `slotBeyondProfile`, `eventBeyondProfile` and `jobEnergyBeyondProfile`.
// Each bound is generous: a real node never comes near it, so none is refused by accident.

/**
 * Most power a node's board can draw, W. A node is a single-board computer fed over USB-C
 * (a Pi 5 negotiates 5.1 V × 5 A = 25.5 W; a Pi 4 takes 15.3 W) or an edge board of the
 * paper's kind (its top mode draws 60 W). USB Power Delivery 3.1's Extended Power Range tops
 * out at 48 V × 5 A = 240 W, the most any USB-C source may deliver: no node draws more.
 */
export const MAX_NODE_W = 240;

/**
 * Largest panel a node carries, W at STC (1000 W/m², 25 °C). One full-size crystalline
 * module (72 cells, about 2 m², ~21 % efficient: ~420 W) is the most a field mast holds
 * beside one board; a Pi node's own panel is 10–100 W. 400 W is that module's class.
 */
export const MAX_PANEL_W = 400;

/**
 * What a panel can deliver over its STC rating, averaged over a slot: cloud-edge
 * enhancement reaches ~1.4–1.5 kW/m² for minutes, and a cell colder than 25 °C gains ~0.4 %
 * per kelvin. 1.5 × peak covers both at once.
 */
export const PANEL_OVER_STC = 1.5;

/**
 * Smallest usable battery, J (0.1 Wh). A Pi idles at ~3 W: it would run two minutes on
 * it. Anything smaller cannot carry a node through a single slot, and a capacity near zero
 * makes the chain's energy quantum (capacity / levels) meaningless.
 */
export const MIN_CAPACITY_J = 360;

/**
 * Largest usable battery, J (10 kWh). A node's own pack is at most a 12 V 200 Ah
 * LiFePO4 bank (2.56 kWh); 10 kWh is a whole home storage battery.
 */
export const MAX_CAPACITY_J = 36_000_000;

/** Shortest slot δ, ms: the agent samples its sensors at up to 50 Hz and a slot holds at least a second of them. */
export const MIN_SLOT_MS = 1000;

/**
 * Longest slot δ, ms (one hour). The harvest estimate keeps the hours of the day apart;
 * a slot longer than an hour would blur the sun's course that the chain follows.
 */
export const MAX_SLOT_MS = 3_600_000;

/**
 * Longest one slot record may cover, ms (a day). A slot closes on the node's timer, so a
 * node that stalled (suspended, starved of CPU) sends a longer record; one covering more
 * than a solar day is no slot.
 */
export const MAX_RECORD_SLOT_MS = 86_400_000;

/**
 * Longest one job may run, ms (a day): κ × δ of any mode, and a job report's duration.
 * A completion of a model's whole context on the slowest node takes minutes; a job's
 * stage that outlasted the day would cross the night the chain's harvest law stands for.
 */
export const MAX_JOB_MS = 86_400_000;

/**
 * Most jobs a node may hold at once (running and waiting). Each place holds a session with
 * its own KV cache in the node's memory; the agent's worker allows at most 8, the paper's
 * model 2.
 */
export const MAX_QUEUE_CAPACITY = 8;

/** Most power modes (cpufreq operating points) one node declares: a Pi's cpufreq offers about ten. */
export const MAX_POWER_MODES = 16;

/** Highest sensor sample rate the agent runs at (its config's sampleHz ≤ 50): bounds a slot's sample count. */
export const MAX_SAMPLE_HZ = 50;

/** Highest transformer block index: far above any model's depth (the largest public ones have ~126 blocks). */
export const MAX_BLOCK_INDEX = 65_535;

/**
 * What a node's battery reading may exceed its declared capacity by, J: the agent rounds
 * energies to 0.001 J on the wire, and its battery estimate is clamped at capacity.
 */
export const BATTERY_ROUNDING_J = 0.001;

/** Most energy any node can harvest over `ms` at `panelW` (default: the largest panel), J. */
export function maxHarvestJ(ms: number, panelW = MAX_PANEL_W): number {
  return (panelW * PANEL_OVER_STC * ms) / 1000;
}

/** Most energy any node's board can draw over `ms`, J. */
export function maxDrawJ(ms: number): number {
  return (MAX_NODE_W * ms) / 1000;
}

/** The part of a node's birth that bounds what its later messages may say. */
export interface DeclaredBounds {
  slotMs: number;
  capacityJ: number;
  /** The panel's STC peak, W, when the birth declares it. */
  panelPeakW?: number;
  queueCapacity: number;
  modes: ReadonlyArray<{ powerMode: number }>;
}

/** Why a well-formed message is beyond what its node's profile allows: the bound and the numbers. */
export interface BeyondProfile {
  /** Which bound: a short, stable name (for counters and logs). */
  bound: 'battery' | 'harvest' | 'queue' | 'power-mode' | 'job-energy';
  message: string;
}

function batteryBeyond(batteryJ: number, p: DeclaredBounds): BeyondProfile | undefined {
  if (batteryJ > p.capacityJ + BATTERY_ROUNDING_J) {
    return { bound: 'battery', message: `batteryJ ${batteryJ} J is above the declared capacity of ${p.capacityJ} J` };
  }
  return undefined;
}

function powerModeBeyond(powerMode: number, p: DeclaredBounds): BeyondProfile | undefined {
  // 0 is power saving (SPEC.md §3); any other PM must be one the birth declared.
  if (powerMode !== 0 && !p.modes.some((m) => m.powerMode === powerMode)) {
    return { bound: 'power-mode', message: `powerMode ${powerMode} is none of the declared modes` };
  }
  return undefined;
}

/** A slot record against its node's profile: battery within capacity, harvest within the panel, queue within capacity. */
export function slotBeyondProfile(
  s: { batteryJ: number; harvestJ: number; slotMs: number; queue: number; powerMode: number },
  p: DeclaredBounds,
): BeyondProfile | undefined {
  const battery = batteryBeyond(s.batteryJ, p);
  if (battery) return battery;
  const panelW = p.panelPeakW ?? MAX_PANEL_W;
  const harvestMax = maxHarvestJ(s.slotMs, panelW);
  if (s.harvestJ > harvestMax) {
    return { bound: 'harvest', message: `harvestJ ${s.harvestJ} J in ${s.slotMs} ms is above the ${harvestMax} J a ${panelW} W panel can deliver` };
  }
  if (s.queue > p.queueCapacity) return { bound: 'queue', message: `queue ${s.queue} is above the declared queueCapacity ${p.queueCapacity}` };
  return powerModeBeyond(s.powerMode, p);
}

/** An event or a birth's state against its node's profile. */
export function eventBeyondProfile(e: { batteryJ?: number; powerMode?: number }, p: DeclaredBounds): BeyondProfile | undefined {
  return (e.batteryJ === undefined ? undefined : batteryBeyond(e.batteryJ, p)) ?? (e.powerMode === undefined ? undefined : powerModeBeyond(e.powerMode, p));
}

/**
 * A job's reported energy against its node: the node's meter counts whole sample
 * intervals, each at most a slot long (every slot closes with a sample), so a job can show
 * at most the board's maximum over its duration plus one slot; and never more than a full
 * battery plus all its panel could deliver over that time.
 */
export function jobEnergyBeyondProfile(r: { energyJ: number; durationMs: number }, p: DeclaredBounds): BeyondProfile | undefined {
  const ms = r.durationMs + p.slotMs;
  const max = Math.min(maxDrawJ(ms), p.capacityJ + maxHarvestJ(ms, p.panelPeakW ?? MAX_PANEL_W));
  if (r.energyJ > max) {
    return { bound: 'job-energy', message: `energyJ ${r.energyJ} J over ${r.durationMs} ms is above the ${max} J the node could draw` };
  }
  return undefined;
}
