// Charger status from open-drain status pins, for boards without an I2C charger:
// Microchip MCP73871 (STAT1, STAT2, PG) and TI BQ24074 (PGOOD, CHG). A pin is "asserted"
// when its open-drain output pulls low; with a pull-up that reads 0, hence activeLow.
import { monotonicMs, type Clock } from '../ground/clock.js';
import type { BinaryValue, GpioLine, GpioOpener, WatchCallback } from './gpio.js';

export type PinChargerKind = 'mcp73871' | 'bq24074';
export type PinChargerState =
  | 'no-input' | 'charging' | 'done' | 'standby' | 'low-battery' | 'fault' | 'invalid' | 'unknown';

/**
 * MCP73871 status outputs (DS20002090, Table 5-1 and Figure 4-1), asserted = LOW:
 *   STAT1 STAT2 PG
 *   Hi-Z  Hi-Z  Hi-Z  shutdown / no input power
 *   Hi-Z  Hi-Z  L     standby (charge disabled or battery above VREG) / no battery
 *   L     Hi-Z  L     preconditioning, constant current or constant voltage
 *   Hi-Z  L     L     charge complete
 *   L     L     L     temperature or timer fault
 *   L     Hi-Z  Hi-Z  low battery output (running from the battery, VBAT low)
 * The two remaining combinations (STAT2 low without PG) do not occur on a healthy board.
 */
export function decodeMcp73871(p: { stat1: boolean; stat2: boolean; pg: boolean }): PinChargerState {
  const key = `${+p.stat1}${+p.stat2}${+p.pg}`;
  const table: Record<string, PinChargerState> = {
    '000': 'no-input', '001': 'standby', '101': 'charging', '011': 'done', '111': 'fault', '100': 'low-battery',
  };
  return table[key] ?? 'invalid';
}

/**
 * BQ24074 (SLUS810, §9.3.5.7 Status Indicators), asserted = LOW: PGOOD low when the input
 * is valid; CHG low while a charge cycle runs, high-impedance when it completes. There is
 * no "done" pin, so done = CHG released while PGOOD is low. CHG low without PGOOD does not
 * occur (CHG is high-impedance without a valid input).
 */
export function decodeBq24074(p: { pgood: boolean; chg: boolean }): PinChargerState {
  if (p.pgood) return p.chg ? 'charging' : 'done';
  return p.chg ? 'invalid' : 'no-input';
}

export const CHARGER_PIN_NAMES: Record<PinChargerKind, readonly string[]> = {
  mcp73871: ['stat1', 'stat2', 'pg'],
  bq24074: ['pgood', 'chg'],
};
const POWER_GOOD_PIN: Record<PinChargerKind, string> = { mcp73871: 'pg', bq24074: 'pgood' };

export interface PinSpec {
  /** BCM GPIO number. */
  bcm: number;
  /** True when the pin is asserted at logic 0 (open-drain with pull-up). */
  activeLow: boolean;
}

export interface ChargerPinsOptions {
  kind: PinChargerKind;
  pins: Record<string, PinSpec>;
  open: GpioOpener;
  clock: Clock;
  /** More power-good edges than this within `flapWindowMs` mark the line as flapping. */
  flapEdges?: number;
  flapWindowMs?: number;
}

export interface PinChargerReading {
  state: PinChargerState;
  /** null while the power-good line flaps and its level means nothing. */
  powerGood: boolean | null;
  asserted: Record<string, boolean>;
  flapping: boolean;
  /** The last error an edge interrupt reported since the previous read, if any. */
  interruptError?: string;
}

export class ChargerPins {
  private readonly lines = new Map<string, { line: GpioLine; spec: PinSpec; watcher: WatchCallback }>();
  private readonly pgEdges: number[] = [];
  private readonly listeners = new Set<(powerGood: boolean) => void>();
  private readonly flapEdges: number;
  private readonly flapWindowMs: number;
  private interruptError: string | undefined;

  private constructor(private readonly options: ChargerPinsOptions) {
    this.flapEdges = options.flapEdges ?? 6;
    this.flapWindowMs = options.flapWindowMs ?? 10_000;
  }

  static async open(options: ChargerPinsOptions): Promise<ChargerPins> {
    const pins = new ChargerPins(options);
    const names = CHARGER_PIN_NAMES[options.kind];
    const missing = names.filter((n) => !options.pins[n]);
    if (missing.length) throw new Error(`${options.kind} needs pins ${names.join(', ')}; missing ${missing.join(', ')} in the hardware config`);
    try {
      for (const name of names) {
        const spec = options.pins[name]!;
        // Interrupts on both edges: a change of power-good is seen when it happens, not at the next poll.
        const line = await options.open(spec.bcm, 'both');
        const watcher: WatchCallback = (err, value) => pins.onEdge(name, err, value);
        line.watch(watcher);
        pins.lines.set(name, { line, spec, watcher });
      }
    } catch (err) {
      pins.close();
      throw err;
    }
    return pins;
  }

  get kind(): PinChargerKind {
    return this.options.kind;
  }

  /** Called on every power-good change while the line is not flapping. */
  onPowerGoodChange(listener: (powerGood: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async read(): Promise<PinChargerReading> {
    const asserted: Record<string, boolean> = {};
    for (const [name, { line, spec }] of this.lines) asserted[name] = isAsserted(await line.read(), spec);
    const flapping = this.isFlapping();
    const pgName = POWER_GOOD_PIN[this.options.kind];
    const state = flapping ? 'unknown'
      : this.options.kind === 'mcp73871'
        ? decodeMcp73871({ stat1: asserted.stat1!, stat2: asserted.stat2!, pg: asserted.pg! })
        : decodeBq24074({ pgood: asserted.pgood!, chg: asserted.chg! });
    const reading: PinChargerReading = { state, powerGood: flapping ? null : asserted[pgName]!, asserted, flapping };
    if (this.interruptError) reading.interruptError = this.interruptError;
    this.interruptError = undefined;
    return reading;
  }

  isFlapping(): boolean {
    // Monotonic: an NTP step must not empty or stretch the window.
    const since = monotonicMs(this.options.clock) - this.flapWindowMs;
    while (this.pgEdges.length && this.pgEdges[0]! < since) this.pgEdges.shift();
    return this.pgEdges.length > this.flapEdges;
  }

  close(): void {
    for (const { line, watcher } of this.lines.values()) {
      line.unwatch(watcher);
      line.unexport();
    }
    this.lines.clear();
    this.listeners.clear();
  }

  private onEdge(name: string, err: Error | null | undefined, value: BinaryValue): void {
    if (err) {
      this.interruptError = `${name}: ${err.message}`;
      return;
    }
    if (name !== POWER_GOOD_PIN[this.options.kind]) return;
    this.pgEdges.push(monotonicMs(this.options.clock));
    if (this.isFlapping()) return;
    const powerGood = isAsserted(value, this.lines.get(name)!.spec);
    for (const listener of this.listeners) listener(powerGood);
  }
}

function isAsserted(value: BinaryValue, spec: PinSpec): boolean {
  return spec.activeLow ? value === 0 : value === 1;
}
