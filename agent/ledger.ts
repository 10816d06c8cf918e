// The energy ledger: samples the node's sensors on the clock, integrates power into joules
// and closes one slot record every δ (SPEC.md §2). Energy is integrated by the node's one
// integrator (hardware/energy.ts: the trapezoid, over intervals bounded by two good
// samples); an interval with a failed read is left out and the slot is flagged degraded,
// so a record can undercount but never invent energy.
import { monotonicMs, type Clock, type Timer } from '../ground/clock.js';
import { EnergyIntegrator } from '../hardware/energy.js';
import type { NodeReading, SensorReading } from '../hardware/node.js';
import type { SlotRecord } from '../protocol/index.js';
import { PROTOCOL_VERSION } from '../protocol/index.js';
import type { SeqStats, SeqStore } from './seq.js';
import { consumedResolutionW, type MeteredInterval, type SensorResolution } from './energy.js';

export interface SensorSource {
  read(): Promise<NodeReading>;
  /** The INA219s behind the readings: their registers fix the readings' resolution (agent/energy.ts). */
  readonly sensors?: ReadonlyArray<{ config: { role: SensorResolution['role']; shuntOhms: number }; ina: { calibration: { currentLsbA: number; powerLsbW: number } } }>;
}

/** What the ledger records about the node's policy state at the close of a slot. */
export interface PolicyView {
  gamma(): 0 | 1;
  /** PM index in force (0 in power saving). */
  powerMode(): number;
  queue(): number;
}

export interface LedgerOptions {
  nodeId: string;
  clock: Clock;
  source: SensorSource;
  policy: PolicyView;
  slotMs: number;
  samplePeriodMs: number;
  /** Sequence number of the first slot closed (persisted by the caller across restarts). */
  firstSeq: number;
  /**
   * Where the next number is kept across restarts (none: not kept, e.g. a profiling run).
   * A record is handed to onSlot only once the number after it is stored there.
   */
  seqStore?: SeqStore;
  /** The slot count could not be stored (once per run of failures; the counts are in seqStats()). */
  onSeqError?(err: string): void;
  /** Slot records held back at most while their numbers cannot be stored (default HELD_MAX). */
  maxHeld?: number;
  onSlot(record: SlotRecord): void;
  onSample?(reading: NodeReading): void;
  onError?(err: Error): void;
}

export interface BatteryLevel {
  energyJ: number;
  capacityJ: number;
  socPct: number;
  atMs: number;
}

/** Solar power in; load power out, or, without a load sensor, the balance harvest − battery. */
function powersOf(sensors: SensorReading[]): { harvestW: number | null; consumedW: number | null } {
  const by = (role: SensorReading['role']) => sensors.find((s) => s.role === role);
  const solar = by('solar');
  const harvestW = solar?.ok ? Math.max(0, solar.powerMw! / 1000) : null;
  const load = by('load');
  if (load) return { harvestW, consumedW: load.ok ? Math.max(0, load.powerMw! / 1000) : null };
  const bat = by('battery');
  // INA219 POWER is unsigned (datasheet §8.6.3.4); the sign comes from the current.
  if (!bat?.ok || harvestW === null) return { harvestW, consumedW: null };
  const batteryW = (bat.busVoltageV! * bat.currentMa!) / 1000;
  return { harvestW, consumedW: Math.max(0, harvestW - batteryW) };
}

/**
 * Slot records held back at most while their numbers cannot be stored: a day of 100 s
 * slots (the gateway keeps gaps for as many, MISSING_KEPT), about 0.5 MiB of records.
 * Beyond it the oldest go, counted; the gateway sees their numbers as missing.
 */
export const HELD_MAX = 1024;

export class Ledger {
  private seq: number;
  private slotStartMs = 0;
  /** Monotonic time the slot started at: its length is measured on it, never on the wall clock. */
  private slotStartMono = 0;
  private harvestJ = 0;
  private consumedJ = 0;
  private consumedTotal = 0;
  private consumedW: number | null = null;
  private samples = 0;
  private health = new Set<string>();
  private readonly harvest = new EnergyIntegrator();
  private readonly consumption = new EnergyIntegrator();
  /** The consumption reading's resolution at the last sample, for the next interval's start. */
  private lastResolutionW = 0;
  private charger: string | null = null;
  private battery: BatteryLevel | null = null;
  private sampleTimer: Timer | undefined;
  private slotTimer: Timer | undefined;
  private reading: Promise<void> = Promise.resolve();
  private closing: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(b: BatteryLevel) => void>();
  /** Closed slot records whose numbers are not stored yet, oldest first (at most maxHeld). */
  private held: SlotRecord[] = [];
  private heldDropped = 0;
  private seqFailing = false;
  private readonly intervalListeners = new Set<(i: MeteredInterval) => void>();
  private readonly resolution: SensorResolution[];

  constructor(private readonly o: LedgerOptions) {
    this.seq = o.firstSeq;
    // A slot runs from construction until start() restarts it, so a record closed before
    // start() covers its own time, never the clock's whole epoch.
    this.slotStartMs = Math.round(o.clock.now());
    this.slotStartMono = monotonicMs(o.clock);
    this.resolution = (o.source.sensors ?? []).map((s) => ({ role: s.config.role, shuntOhms: s.config.shuntOhms, ...s.ina.calibration }));
  }

  /** Called with every interval of consumption integrated: the worker's job meter. */
  onInterval(listener: (i: MeteredInterval) => void): () => void {
    this.intervalListeners.add(listener);
    return () => this.intervalListeners.delete(listener);
  }

  /** The next sequence number to be used. */
  get nextSeq(): number {
    return this.seq;
  }

  /** The slot count's store and the records held back for it. */
  seqStats(): SeqStats & { held: number; heldDropped: number } {
    return { ...(this.o.seqStore?.stats() ?? { fsFailures: 0, lastError: null }), held: this.held.length, heldDropped: this.heldDropped };
  }

  /** Energy the node consumed since start, over measured intervals (J): the worker's job meter. */
  get consumedTotalJ(): number {
    return this.consumedTotal;
  }

  /** The node's consumption at the last good sample (W). */
  get lastConsumedW(): number | null {
    return this.consumedW;
  }

  latest(): BatteryLevel | null {
    return this.battery;
  }

  /** Called after every sample with a battery estimate. */
  onBattery(listener: (b: BatteryLevel) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private stopped = false;
  private tickPending = false;

  async start(): Promise<void> {
    this.stopped = false;
    this.slotStartMs = Math.round(this.o.clock.now());
    this.slotStartMono = monotonicMs(this.o.clock);
    await this.sample();
    // The first reading can stop the node (a battery already below critical): no timers then,
    // or they would keep sampling into a closed spool.
    if (this.stopped) return;
    this.sampleTimer = this.o.clock.setInterval(() => {
      // A read slower than the sample period skips ticks rather than queueing them: the queue
      // would grow without bound (a slow bus, a sped-up clock), every slot close would wait
      // behind it, and slots would go on closing from it long after stop().
      if (this.tickPending) return;
      this.tickPending = true;
      void this.queueSample().finally(() => { this.tickPending = false; });
    }, this.o.samplePeriodMs);
    this.slotTimer = this.o.clock.setInterval(() => {
      this.closing = this.closeSlot().then(() => undefined);
    }, this.o.slotMs);
  }

  /**
   * Resolves when the samples and slot closes started so far are done. Reads take real
   * I/O time, so a caller stepping a virtual clock waits on this between steps.
   */
  async settled(): Promise<void> {
    await this.reading;
    await this.closing;
  }

  stop(): void {
    this.stopped = true;
    this.sampleTimer?.cancel();
    this.slotTimer?.cancel();
    this.sampleTimer = this.slotTimer = undefined;
  }

  /** Samples now, after any sample in flight: closes the interval running (the worker ends a job's part so). */
  sampleNow(): Promise<void> {
    return this.queueSample();
  }

  private queueSample(): Promise<void> {
    // Reads are serialised: a slow bus must not interleave two samples.
    this.reading = this.reading.then(async () => {
      await this.sample();
    });
    return this.reading;
  }

  /** Takes one sample now (also used by the worker to meter a job). */
  async sample(): Promise<NodeReading | null> {
    let reading: NodeReading;
    try {
      reading = await this.o.source.read();
    } catch (err) {
      this.health.add(`read-failed:${(err as Error).message.slice(0, 80)}`);
      this.harvest.restart();
      this.consumption.restart();
      this.o.onError?.(err as Error);
      return null;
    }
    this.samples++;
    for (const h of reading.health) this.health.add(h);
    const p = powersOf(reading.sensors);
    // Intervals on monotonic time: an NTP step of the wall clock neither adds nor removes energy.
    const resolutionW = consumedResolutionW(reading.sensors, this.resolution);
    this.harvestJ += this.harvest.add(reading.monotonicMs, p.harvestW)?.energyJ ?? 0;
    const used = this.consumption.add(reading.monotonicMs, p.consumedW);
    if (used) {
      this.consumedJ += used.energyJ;
      this.consumedTotal += used.energyJ;
      const i: MeteredInterval = { ...used, fromResolutionW: this.lastResolutionW, toResolutionW: resolutionW };
      for (const l of this.intervalListeners) l(i);
    }
    if (p.harvestW === null) this.health.add('harvest-unmeasured');
    if (p.consumedW === null) this.health.add('consumption-unmeasured');
    this.lastResolutionW = resolutionW;
    this.consumedW = p.consumedW;
    const c = reading.charger;
    this.charger = c.status?.chrgStat ?? c.pins?.state ?? (c.ok ? null : 'unreadable');
    if (reading.battery) {
      this.battery = { energyJ: reading.battery.energyJ, capacityJ: reading.battery.capacityJ, socPct: reading.battery.socPct, atMs: reading.timeMs };
      for (const l of this.listeners) l(this.battery);
    }
    this.o.onSample?.(reading);
    if (this.held.length) this.release();
    return reading;
  }

  /** Closes the current slot: emits its record and starts the next. */
  async closeSlot(): Promise<SlotRecord> {
    // The slot ends with a fresh sample so its last interval is counted in this slot.
    await this.queueSample();
    // Whole milliseconds on the wire; a scaled clock reads fractions. The start is wall time
    // (the node's best idea of when the slot began, stepped if NTP stepped), the length is
    // monotonic (how long it really lasted).
    const now = Math.round(this.o.clock.now());
    const mono = monotonicMs(this.o.clock);
    const b = this.battery;
    const degraded = [...this.health].some((h) => !h.startsWith('power-good-inconsistent'));
    const record: SlotRecord = {
      v: PROTOCOL_VERSION,
      nodeId: this.o.nodeId,
      seq: this.seq++,
      slotStartMs: this.slotStartMs,
      slotMs: Math.max(1, Math.round(mono - this.slotStartMono)),
      harvestJ: round3(this.harvestJ),
      consumedJ: round3(this.consumedJ),
      batteryJ: round3(Math.max(0, b?.energyJ ?? 0)),
      batteryPct: Math.min(100, Math.max(0, round3(b?.socPct ?? 0))),
      powerMode: this.o.policy.powerMode(),
      gamma: this.o.policy.gamma(),
      queue: this.o.policy.queue(),
      charger: this.charger,
      health: [...this.health].slice(0, 32).map((h) => h.slice(0, 120)),
      degraded: degraded || b === null,
      samples: this.samples,
    };
    this.slotStartMs = now;
    this.slotStartMono = mono;
    this.harvestJ = this.consumedJ = 0;
    this.samples = 0;
    this.health = new Set();
    this.held.push(record);
    if (this.held.length > (this.o.maxHeld ?? HELD_MAX)) {
      this.held.shift();
      this.heldDropped++;
    }
    this.release();
    return record;
  }

  /**
   * Hands on the records held back, oldest first, once the number after the newest is
   * stored: whatever went out, a restart numbers above it. If the disk refuses, they wait
   * (the next sample tries again) and the node goes on sampling.
   */
  private release(): void {
    const newest = this.held[this.held.length - 1];
    if (!newest) return;
    const store = this.o.seqStore;
    if (store && !store.commit(newest.seq + 1)) {
      if (!this.seqFailing) this.o.onSeqError?.(store.stats().lastError ?? 'unknown error');
      this.seqFailing = true;
      return;
    }
    this.seqFailing = false;
    const out = this.held;
    this.held = [];
    for (const r of out) this.o.onSlot(r);
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
