// The store's bounded queue of points not yet acknowledged by InfluxDB. Points leave it
// only from the front, so they reach the database in the order they were written. When
// the bound is hit the oldest point is dropped and counted: during a long outage the most
// recent state of the fleet is worth more than the oldest.
//
// With a spool file configured the queue also lives on disk while InfluxDB is away, so a
// gateway restart during an outage loses nothing within the bound. The file is JSON lines,
// appended per point and rewritten whole only when points were dropped or sent. It is
// written synchronously: it is touched only during an outage, the writes are small, and a
// synchronous append keeps the file in exactly the queue's order.
import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import type { StorePoint } from './schema.js';

const StorePointSchema = z.object({
  measurement: z.string().min(1),
  tags: z.record(z.string(), z.string()),
  fields: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])),
  timestampMs: z.number().int(),
});

export class PointBuffer {
  private queue: StorePoint[] = [];
  /** Points dropped because the bound was hit, since start. */
  dropped = 0;
  private spooling = false;
  private spoolStale = false;

  constructor(readonly maxPoints: number, private readonly spoolPath?: string) {
    if (!(Number.isInteger(maxPoints) && maxPoints > 0)) throw new Error(`buffer bound must be a positive integer, got ${maxPoints}`);
  }

  get length(): number {
    return this.queue.length;
  }

  /**
   * Reads points left on disk by an earlier run. Lines that do not parse (a torn last line
   * after a power cut) or that `accept` refuses are counted, not loaded, and the caller
   * reports them: one bad point must not block the queue for good.
   */
  loadSpool(accept: (p: StorePoint) => boolean = () => true): { loaded: number; unreadable: number } {
    if (!this.spoolPath || !existsSync(this.spoolPath)) return { loaded: 0, unreadable: 0 };
    const lines = readFileSync(this.spoolPath, 'utf8').split('\n').filter((l) => l.trim() !== '');
    let loaded = 0;
    let unreadable = 0;
    for (const line of lines) {
      let p: StorePoint;
      try {
        const parsed = StorePointSchema.safeParse(JSON.parse(line));
        if (!parsed.success || !accept(parsed.data)) throw new Error('not a point');
        p = parsed.data;
      } catch {
        unreadable++;
        continue;
      }
      this.pushMemory(p);
      loaded++;
    }
    this.spooling = loaded > 0;
    this.spoolStale = true;
    if (!this.spooling) rmSync(this.spoolPath, { force: true });
    return { loaded, unreadable };
  }

  push(p: StorePoint): void {
    const dropped = this.pushMemory(p);
    if (!this.spooling || !this.spoolPath) return;
    if (dropped) this.spoolStale = true;
    else appendFileSync(this.spoolPath, JSON.stringify(p) + '\n');
  }

  /** The first `n` points, still queued until `commit`. */
  peek(n: number): StorePoint[] {
    return this.queue.slice(0, n);
  }

  /** Removes the first `n` points once InfluxDB has acknowledged them. */
  commit(n: number): void {
    this.queue.splice(0, n);
    if (this.spooling) {
      if (this.queue.length === 0) this.stopSpooling();
      else this.spoolStale = true;
    }
  }

  /** Starts mirroring the queue to disk (called when a write fails). */
  startSpooling(): void {
    if (!this.spoolPath) return;
    if (!this.spooling) {
      this.spooling = true;
      this.spoolStale = true;
    }
    this.syncSpool();
  }

  /** Rewrites the spool when points were dropped or sent since the last rewrite. */
  syncSpool(): void {
    if (!this.spoolPath || !this.spooling || !this.spoolStale) return;
    const tmp = `${this.spoolPath}.tmp`;
    writeFileSync(tmp, this.queue.map((p) => JSON.stringify(p) + '\n').join(''));
    renameSync(tmp, this.spoolPath);
    this.spoolStale = false;
  }

  private stopSpooling(): void {
    this.spooling = false;
    this.spoolStale = false;
    if (this.spoolPath) rmSync(this.spoolPath, { force: true });
  }

  private pushMemory(p: StorePoint): boolean {
    this.queue.push(p);
    if (this.queue.length <= this.maxPoints) return false;
    this.queue.shift();
    this.dropped++;
    return true;
  }
}
