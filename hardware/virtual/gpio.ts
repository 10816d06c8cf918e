// Virtual GPIO input lines with the surface the pin driver uses from onoff (read, watch,
// unwatch, unexport, edge), driven by the plant, with stuck and flapping faults.
import type { Clock, Timer } from '../../ground/clock.js';
import type { BinaryValue, Edge, GpioLine, GpioOpener, WatchCallback } from '../gpio.js';

export class VirtualGpioLine implements GpioLine {
  private driven: BinaryValue;
  private stuck: BinaryValue | null = null;
  private flapLevel: BinaryValue | null = null;
  private flapTimer: Timer | null = null;
  private readonly watchers = new Set<WatchCallback>();
  private exported = true;
  private last: BinaryValue;

  constructor(readonly bcm: number, public edge: Edge, initial: BinaryValue) {
    this.driven = initial;
    this.last = initial;
  }

  /** Exports the line again (after unexport) with interrupts on `edge`. */
  open(edge: Edge): void {
    this.exported = true;
    this.edge = edge;
  }

  /** The level the charger's output puts on the line. */
  drive(level: BinaryValue): void {
    this.driven = level;
    this.update();
  }

  /** Fault: the line stays at `level` whatever the charger does (null releases it). */
  stick(level: BinaryValue | null): void {
    this.stuck = level;
    this.update();
  }

  /** Fault: the line toggles every `periodMs` (a loose connector, a marginal input). */
  flap(clock: Clock, periodMs: number): void {
    this.stopFlapping();
    this.flapLevel = this.level();
    this.flapTimer = clock.setInterval(() => {
      this.flapLevel = this.flapLevel === 1 ? 0 : 1;
      this.update();
    }, periodMs);
  }

  stopFlapping(): void {
    this.flapTimer?.cancel();
    this.flapTimer = null;
    this.flapLevel = null;
    this.update();
  }

  level(): BinaryValue {
    return this.stuck ?? this.flapLevel ?? this.driven;
  }

  async read(): Promise<BinaryValue> {
    if (!this.exported) throw Object.assign(new Error(`GPIO ${this.bcm} is not exported`), { code: 'ENOENT' });
    return this.level();
  }

  /** The lines are inputs: like onoff on a Pi, writing one fails with EPERM. */
  async write(value: BinaryValue): Promise<void> {
    throw Object.assign(new Error(`EPERM: GPIO ${this.bcm} is an input, cannot write ${value}`), { code: 'EPERM' });
  }

  watch(callback: WatchCallback): void {
    this.watchers.add(callback);
  }

  unwatch(callback?: WatchCallback): void {
    if (callback) this.watchers.delete(callback);
    else this.watchers.clear();
  }

  unexport(): void {
    this.exported = false;
    this.watchers.clear();
    this.flapTimer?.cancel();
  }

  private update(): void {
    const now = this.level();
    if (now === this.last) return;
    this.last = now;
    const fires = this.edge === 'both' || (this.edge === 'rising' && now === 1) || (this.edge === 'falling' && now === 0);
    if (!fires) return;
    // Interrupts arrive from the event loop, never inside the code that changed the level.
    for (const w of [...this.watchers]) queueMicrotask(() => w(null, now));
  }
}

/** The header's lines, by BCM number, created on first use. */
export class VirtualGpio {
  private readonly lines = new Map<number, VirtualGpioLine>();

  line(bcm: number, initial: BinaryValue = 1): VirtualGpioLine {
    let line = this.lines.get(bcm);
    if (!line) {
      line = new VirtualGpioLine(bcm, 'none', initial);
      this.lines.set(bcm, line);
    }
    return line;
  }

  opener(): GpioOpener {
    return async (bcm, edge) => {
      const line = this.line(bcm);
      line.open(edge);
      return line;
    };
  }
}
