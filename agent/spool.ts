// Store-and-forward spool: every message worth keeping is appended here before it is
// published and removed when the broker acknowledges it (PUBACK), so a broker outage or
// a crash loses nothing that fits in the byte budget.
//
// One append-only file of records: [u32 bodyLength][u32 crc32(body)][body], little-endian.
// Body: [u8 op][u32 id] then, for PUT, [u8 class][u8 retain][u16 topicLength][topic][payload].
// REMOVE (acked) and DROP (evicted to stay within budget) carry only the id. A record is
// written with one write() at the end of what is known good, then fsync'd, so after a
// crash at most the last record is torn; its length or checksum gives it away, and it is
// cut off on open. The file is rewritten with only live records (write to a temporary,
// fsync, rename) once most of it is dead.
//
// The disk can refuse (ENOSPC on a full card, EIO, EROFS). No file-system error leaves
// this class: a record that cannot be written stays in memory, within the same byte
// budget, and is still published from there; a marker that cannot be written waits. Both
// are written, in order, at the next append or acknowledgement after the disk takes
// writes again. Failures are counted in stats().
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

/** Eviction order under pressure: telemetry first, slot records last. */
export const SPOOL_CLASSES = ['telemetry', 'event', 'slot'] as const;
export type SpoolClass = (typeof SPOOL_CLASSES)[number];

const OP_PUT = 1;
const OP_REMOVE = 2;
const OP_DROP = 3;
const RECORD_HEAD = 8;

export interface SpoolEntry {
  id: number;
  cls: SpoolClass;
  topic: string;
  payload: Buffer;
  retain: boolean;
  /** Bytes this entry counts against the budget. */
  bytes: number;
}

/** The file-system calls the spool and the slot count make; node:fs unless a test injects a disk. */
export interface SpoolFs {
  existsSync(path: string): boolean;
  mkdirSync(path: string, options: { recursive: true }): unknown;
  readFileSync(path: string): Buffer;
  openSync(path: string, flags: string): number;
  writeSync(fd: number, buffer: Uint8Array, offset?: number, length?: number, position?: number | null): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  truncateSync(path: string, length: number): void;
  ftruncateSync(fd: number, length: number): void;
  unlinkSync(path: string): void;
}

export const NODE_FS: SpoolFs = nodeFs;

export interface SpoolOptions {
  dir: string;
  fs?: SpoolFs;
  maxBytes: number;
  /** fsync after every record (default true); off only for tests of throughput. */
  fsync?: boolean;
}

export interface SpoolStats {
  entries: number;
  liveBytes: number;
  fileBytes: number;
  dropped: Record<SpoolClass, number>;
  /** Bytes cut off the end on open: a record torn by a crash mid-write. */
  tornBytes: number;
  /** Entries held only in memory because the disk refused them (lost if the node stops now). */
  unstored: number;
  /** Markers (acknowledged, evicted) waiting to be written. */
  markersWaiting: number;
  /** File-system calls that failed since start (ENOSPC, EIO, EROFS...). */
  fsFailures: number;
  /** The last of them, e.g. "ENOSPC: no space left on device, write". */
  lastError: string | null;
}

interface Marker { op: typeof OP_REMOVE | typeof OP_DROP; id: number }

function errorText(err: unknown): string {
  return (err as Error).message.slice(0, 200);
}

export class Spool {
  private readonly entries = new Map<number, SpoolEntry>();
  /** Ids of entries not yet on disk, oldest first. */
  private readonly unstored = new Set<number>();
  private markers: Marker[] = [];
  private readonly path: string;
  private readonly fs: SpoolFs;
  private fd: number | null = null;
  /** The file could not be read at start: writing would overwrite what it holds, so nothing is written. */
  private memoryOnly = false;
  /** A compaction failed; it is tried again once a write has succeeded (the disk has room). */
  private compactBlocked = false;
  private nextId = 1;
  private liveBytes = 0;
  private fileBytes = 0;
  private tornBytes = 0;
  private fsFailures = 0;
  private lastError: string | null = null;
  private readonly dropped: Record<SpoolClass, number> = { telemetry: 0, event: 0, slot: 0 };

  private constructor(private readonly o: SpoolOptions) {
    this.fs = o.fs ?? NODE_FS;
    this.path = join(o.dir, 'spool.log');
    try {
      if (this.fs.existsSync(this.path)) this.replay(this.fs.readFileSync(this.path));
    } catch (err) {
      this.failed(err);
      this.memoryOnly = true;
      return;
    }
    this.openFile();
  }

  static open(o: SpoolOptions): Spool {
    return new Spool(o);
  }

  private failed(err: unknown): void {
    this.fsFailures++;
    this.lastError = errorText(err);
  }

  /** Opens the file for writes at known offsets (not O_APPEND: a failed write is written over). */
  private openFile(): boolean {
    if (this.memoryOnly) return false;
    try {
      if (this.fs.existsSync(this.path)) {
        this.fd = this.fs.openSync(this.path, 'r+');
      } else {
        this.fs.mkdirSync(this.o.dir, { recursive: true });
        this.fd = this.fs.openSync(this.path, 'w+');
      }
      return true;
    } catch (err) {
      this.failed(err);
      return false;
    }
  }

  private replay(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      if (off + RECORD_HEAD > buf.length) break;
      const len = buf.readUInt32LE(off);
      if (len < 5 || off + RECORD_HEAD + len > buf.length) break;
      const body = buf.subarray(off + RECORD_HEAD, off + RECORD_HEAD + len);
      if (crc32(body) !== buf.readUInt32LE(off + 4)) break;
      const op = body.readUInt8(0);
      const id = body.readUInt32LE(1);
      if (op === OP_PUT) {
        const cls = SPOOL_CLASSES[body.readUInt8(5)];
        if (!cls) break;
        const topicLen = body.readUInt16LE(7);
        const topic = body.subarray(9, 9 + topicLen).toString('utf8');
        const payload = Buffer.from(body.subarray(9 + topicLen));
        this.track({ id, cls, topic, payload, retain: body.readUInt8(6) === 1, bytes: RECORD_HEAD + len });
      } else if (op === OP_REMOVE || op === OP_DROP) {
        const e = this.entries.get(id);
        if (e) this.untrack(e);
        if (op === OP_DROP && e) this.dropped[e.cls]++;
      } else {
        break;
      }
      this.nextId = Math.max(this.nextId, id + 1);
      off += RECORD_HEAD + len;
    }
    // Records that waited in memory reach the file after younger ones: pending() is by id.
    const live = [...this.entries.values()].sort((a, b) => a.id - b.id);
    this.entries.clear();
    for (const e of live) this.entries.set(e.id, e);
    this.fileBytes = off;
    if (off < buf.length) {
      this.tornBytes = buf.length - off;
      try {
        this.fs.truncateSync(this.path, off);
      } catch (err) {
        // Writes start at `off` all the same, over the torn bytes.
        this.failed(err);
      }
    }
  }

  private track(e: SpoolEntry): void {
    this.entries.set(e.id, e);
    this.liveBytes += e.bytes;
  }

  private untrack(e: SpoolEntry): void {
    this.entries.delete(e.id);
    this.unstored.delete(e.id);
    this.liveBytes -= e.bytes;
  }

  private static frame(body: Buffer): Buffer {
    const rec = Buffer.alloc(RECORD_HEAD + body.length);
    rec.writeUInt32LE(body.length, 0);
    rec.writeUInt32LE(crc32(body), 4);
    body.copy(rec, RECORD_HEAD);
    return rec;
  }

  private static putBody(e: Pick<SpoolEntry, 'id' | 'cls' | 'topic' | 'payload' | 'retain'>): Buffer {
    const topicBytes = Buffer.from(e.topic, 'utf8');
    const body = Buffer.alloc(9 + topicBytes.length + e.payload.length);
    body.writeUInt8(OP_PUT, 0);
    body.writeUInt32LE(e.id, 1);
    body.writeUInt8(SPOOL_CLASSES.indexOf(e.cls), 5);
    body.writeUInt8(e.retain ? 1 : 0, 6);
    body.writeUInt16LE(topicBytes.length, 7);
    topicBytes.copy(body, 9);
    e.payload.copy(body, 9 + topicBytes.length);
    return body;
  }

  private static markerBody(m: Marker): Buffer {
    const body = Buffer.alloc(5);
    body.writeUInt8(m.op, 0);
    body.writeUInt32LE(m.id, 1);
    return body;
  }

  /** Writes one record at the end of the good part of the file; false (counted) if the disk refused. */
  private write(body: Buffer): boolean {
    if (this.fd === null && !this.openFile()) return false;
    const fd = this.fd!;
    const rec = Spool.frame(body);
    try {
      const n = this.fs.writeSync(fd, rec, 0, rec.length, this.fileBytes);
      // write(2) on a full disk writes what fits and says so; the error comes on the next call.
      if (n !== rec.length) throw Object.assign(new Error(`ENOSPC: no space left on device, write (${n} of ${rec.length} bytes)`), { code: 'ENOSPC' });
      if (this.o.fsync !== false) this.fs.fsyncSync(fd);
    } catch (err) {
      this.failed(err);
      // Cut off what part of it reached the file, so a crash now leaves no torn record
      // ahead of the ones written later (the next write goes over it anyway).
      try {
        this.fs.ftruncateSync(fd, this.fileBytes);
      } catch {
        // Counted once above; the next write at this offset covers these bytes.
      }
      return false;
    }
    this.fileBytes += rec.length;
    this.compactBlocked = false;
    return true;
  }

  /** Writes what waited (markers first, then entries oldest first); true when nothing waits any more. */
  private catchUp(): boolean {
    if (this.markers.length === 0 && this.unstored.size === 0) return true;
    while (this.markers.length) {
      if (!this.write(Spool.markerBody(this.markers[0]!))) return false;
      this.markers.shift();
    }
    for (const id of this.unstored) {
      const e = this.entries.get(id)!;
      if (!this.write(Spool.putBody(e))) return false;
      this.unstored.delete(id);
    }
    return true;
  }

  private mark(op: Marker['op'], e: SpoolEntry): void {
    // An entry that never reached the disk needs no marker.
    if (this.unstored.has(e.id)) return;
    const m: Marker = { op, id: e.id };
    if (this.markers.length || !this.write(Spool.markerBody(m))) this.markers.push(m);
  }

  /**
   * Stores a message, evicting the oldest of the least important ones if the budget
   * requires. Returns null (and counts a drop) when only more important messages are left.
   * A disk that refuses the write does not refuse the message: it is kept in memory.
   */
  append(cls: SpoolClass, topic: string, payload: Buffer, retain = false): SpoolEntry | null {
    const size = RECORD_HEAD + 9 + Buffer.byteLength(topic, 'utf8') + payload.length;
    if (size > this.o.maxBytes) throw new Error(`a ${size}-byte ${cls} message does not fit the spool's ${this.o.maxBytes}-byte budget`);
    const caughtUp = this.catchUp();
    while (this.liveBytes + size > this.o.maxBytes) {
      if (!this.evictOne(cls)) {
        this.dropped[cls]++;
        return null;
      }
    }
    const e: SpoolEntry = { id: this.nextId++, cls, topic, payload, retain, bytes: size };
    this.track(e);
    if (!caughtUp || !this.write(Spool.putBody(e))) this.unstored.add(e.id);
    return e;
  }

  /** Drops the oldest entry of the least important class not above `incoming`; false if none. */
  private evictOne(incoming: SpoolClass): boolean {
    const rank = SPOOL_CLASSES.indexOf(incoming);
    for (const cls of SPOOL_CLASSES.slice(0, rank + 1)) {
      for (const e of this.entries.values()) {
        if (e.cls !== cls) continue;
        this.mark(OP_DROP, e);
        this.untrack(e);
        this.dropped[cls]++;
        return true;
      }
    }
    return false;
  }

  /** The broker acknowledged it. */
  remove(id: number): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.catchUp();
    this.mark(OP_REMOVE, e);
    this.untrack(e);
    if (!this.compactBlocked && this.fileBytes > 2 * this.liveBytes + 64 * 1024) this.compact();
  }

  /** Writes what waits in memory now, if the disk takes it (the spool also tries at every append and acknowledgement). */
  retry(): boolean {
    return this.catchUp();
  }

  has(id: number): boolean {
    return this.entries.has(id);
  }

  /** Pending messages, oldest first. */
  pending(): SpoolEntry[] {
    return [...this.entries.values()];
  }

  stats(): SpoolStats {
    return {
      entries: this.entries.size, liveBytes: this.liveBytes, fileBytes: this.fileBytes, dropped: { ...this.dropped }, tornBytes: this.tornBytes,
      unstored: this.unstored.size, markersWaiting: this.markers.length, fsFailures: this.fsFailures, lastError: this.lastError,
    };
  }

  /**
   * Rewrites the file with live records only (those waiting in memory too); the rename
   * makes the switch atomic. False (counted, the old file still in use) if the disk refused.
   */
  compact(): boolean {
    if (this.memoryOnly) return false;
    const tmp = `${this.path}.tmp`;
    const live = [...this.entries.values()];
    const records = live.map((e) => Spool.frame(Spool.putBody(e)));
    const all = Buffer.concat(records);
    let fd: number | null = null;
    try {
      fd = this.fs.openSync(tmp, 'w');
      const n = this.fs.writeSync(fd, all, 0, all.length, 0);
      if (n !== all.length) throw Object.assign(new Error(`ENOSPC: no space left on device, write (${n} of ${all.length} bytes)`), { code: 'ENOSPC' });
      this.fs.fsyncSync(fd);
      this.fs.closeSync(fd);
      fd = null;
      this.fs.renameSync(tmp, this.path);
    } catch (err) {
      this.failed(err);
      this.compactBlocked = true;
      try {
        if (fd !== null) this.fs.closeSync(fd);
        this.fs.unlinkSync(tmp);
      } catch {
        // A temporary left behind is overwritten by the next compaction.
      }
      return false;
    }
    // The new file is in place: the old descriptor points at the unlinked one.
    if (this.fd !== null) {
      try {
        this.fs.closeSync(this.fd);
      } catch (err) {
        this.failed(err);
      }
      this.fd = null;
    }
    this.fileBytes = all.length;
    this.markers = [];
    this.unstored.clear();
    live.forEach((e, i) => {
      this.liveBytes += records[i]!.length - e.bytes;
      e.bytes = records[i]!.length;
    });
    try {
      const dirFd = this.fs.openSync(this.o.dir, 'r');
      try {
        this.fs.fsyncSync(dirFd);
      } finally {
        this.fs.closeSync(dirFd);
      }
    } catch (err) {
      // The rename may not be durable yet: after a crash the old file may come back, and
      // what it still lists is sent again (QoS 1 delivers at least once; repeats are expected).
      this.failed(err);
    }
    this.openFile();
    return true;
  }

  close(): void {
    this.catchUp();
    if (this.fd === null) return;
    try {
      this.fs.closeSync(this.fd);
    } catch (err) {
      this.failed(err);
    }
    this.fd = null;
  }
}
