// Store-and-forward spool: every message worth keeping is appended here before it is
// published and removed when the broker acknowledges it (PUBACK), so a broker outage or
// a crash loses nothing that fits in the byte budget.
//
// One append-only file of records: [u32 bodyLength][u32 crc32(body)][body], little-endian.
// Body: [u8 op][u32 id] then, for PUT, [u8 class][u8 retain][u16 topicLength][topic][payload].
// REMOVE (acked) and DROP (evicted to stay within budget) carry only the id. A record is
// written with one write() then fsync'd, so after a crash at most the last record is torn;
// its length or checksum gives it away, and it is cut off on open. The file is rewritten
// with only live records (write to a temporary, fsync, rename) once most of it is dead.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, truncateSync, writeSync } from 'node:fs';
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

export interface SpoolOptions {
  dir: string;
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
}

export class Spool {
  private readonly entries = new Map<number, SpoolEntry>();
  private readonly path: string;
  private fd: number;
  private nextId = 1;
  private liveBytes = 0;
  private fileBytes = 0;
  private tornBytes = 0;
  private readonly dropped: Record<SpoolClass, number> = { telemetry: 0, event: 0, slot: 0 };

  private constructor(private readonly o: SpoolOptions) {
    mkdirSync(o.dir, { recursive: true });
    this.path = join(o.dir, 'spool.log');
    if (existsSync(this.path)) this.replay(readFileSync(this.path));
    this.fd = openSync(this.path, 'a');
  }

  static open(o: SpoolOptions): Spool {
    return new Spool(o);
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
    this.fileBytes = off;
    if (off < buf.length) {
      this.tornBytes = buf.length - off;
      truncateSync(this.path, off);
    }
  }

  private track(e: SpoolEntry): void {
    this.entries.set(e.id, e);
    this.liveBytes += e.bytes;
  }

  private untrack(e: SpoolEntry): void {
    this.entries.delete(e.id);
    this.liveBytes -= e.bytes;
  }

  private write(body: Buffer): number {
    const rec = Buffer.alloc(RECORD_HEAD + body.length);
    rec.writeUInt32LE(body.length, 0);
    rec.writeUInt32LE(crc32(body), 4);
    body.copy(rec, RECORD_HEAD);
    writeSync(this.fd, rec);
    if (this.o.fsync !== false) fsyncSync(this.fd);
    this.fileBytes += rec.length;
    return rec.length;
  }

  private marker(op: number, id: number): void {
    const body = Buffer.alloc(5);
    body.writeUInt8(op, 0);
    body.writeUInt32LE(id, 1);
    this.write(body);
  }

  /**
   * Stores a message, evicting the oldest of the least important ones if the budget
   * requires. Returns null (and counts a drop) when only more important messages are left.
   */
  append(cls: SpoolClass, topic: string, payload: Buffer, retain = false): SpoolEntry | null {
    const topicBytes = Buffer.from(topic, 'utf8');
    const size = RECORD_HEAD + 9 + topicBytes.length + payload.length;
    if (size > this.o.maxBytes) throw new Error(`a ${size}-byte ${cls} message does not fit the spool's ${this.o.maxBytes}-byte budget`);
    while (this.liveBytes + size > this.o.maxBytes) {
      if (!this.evictOne(cls)) {
        this.dropped[cls]++;
        return null;
      }
    }
    const id = this.nextId++;
    const body = Buffer.alloc(9 + topicBytes.length + payload.length);
    body.writeUInt8(OP_PUT, 0);
    body.writeUInt32LE(id, 1);
    body.writeUInt8(SPOOL_CLASSES.indexOf(cls), 5);
    body.writeUInt8(retain ? 1 : 0, 6);
    body.writeUInt16LE(topicBytes.length, 7);
    topicBytes.copy(body, 9);
    payload.copy(body, 9 + topicBytes.length);
    const bytes = this.write(body);
    const e: SpoolEntry = { id, cls, topic, payload, retain, bytes };
    this.track(e);
    return e;
  }

  /** Drops the oldest entry of the least important class not above `incoming`; false if none. */
  private evictOne(incoming: SpoolClass): boolean {
    const rank = SPOOL_CLASSES.indexOf(incoming);
    for (const cls of SPOOL_CLASSES.slice(0, rank + 1)) {
      for (const e of this.entries.values()) {
        if (e.cls !== cls) continue;
        this.marker(OP_DROP, e.id);
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
    this.marker(OP_REMOVE, id);
    this.untrack(e);
    if (this.fileBytes > 2 * this.liveBytes + 64 * 1024) this.compact();
  }

  has(id: number): boolean {
    return this.entries.has(id);
  }

  /** Pending messages, oldest first. */
  pending(): SpoolEntry[] {
    return [...this.entries.values()];
  }

  stats(): SpoolStats {
    return { entries: this.entries.size, liveBytes: this.liveBytes, fileBytes: this.fileBytes, dropped: { ...this.dropped }, tornBytes: this.tornBytes };
  }

  /** Rewrites the file with live records only; the rename makes the switch atomic. */
  compact(): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w');
    let bytes = 0;
    try {
      const live = [...this.entries.values()];
      this.entries.clear();
      this.liveBytes = 0;
      const parts: Buffer[] = [];
      for (const e of live) {
        const topicBytes = Buffer.from(e.topic, 'utf8');
        const body = Buffer.alloc(9 + topicBytes.length + e.payload.length);
        body.writeUInt8(OP_PUT, 0);
        body.writeUInt32LE(e.id, 1);
        body.writeUInt8(SPOOL_CLASSES.indexOf(e.cls), 5);
        body.writeUInt8(e.retain ? 1 : 0, 6);
        body.writeUInt16LE(topicBytes.length, 7);
        topicBytes.copy(body, 9);
        e.payload.copy(body, 9 + topicBytes.length);
        const head = Buffer.alloc(RECORD_HEAD);
        head.writeUInt32LE(body.length, 0);
        head.writeUInt32LE(crc32(body), 4);
        parts.push(head, body);
        bytes += RECORD_HEAD + body.length;
        this.track({ ...e, bytes: RECORD_HEAD + body.length });
      }
      writeSync(fd, Buffer.concat(parts));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    closeSync(this.fd);
    renameSync(tmp, this.path);
    const dirFd = openSync(this.o.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    this.fd = openSync(this.path, 'a');
    this.fileBytes = bytes;
  }

  close(): void {
    closeSync(this.fd);
  }
}
