// The slot count on disk (seq.json): the next sequence number and the count's epoch. The
// ledger stores the number after a record before it hands the record on, so whatever the
// node published, a restart numbers above it, even if the disk filled in between.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseSlotRecord } from '../protocol/index.js';
import { NODE_FS, type Spool, type SpoolFs } from './spool.js';

const SEQ_FILE = 'seq.json';
/**
 * seq.json is one JSON object padded with spaces to this many bytes and rewritten in place:
 * an overwrite needs no new block, so it still succeeds on a full disk, and it lies within
 * one 512-byte sector, which a disk writes whole (a power cut leaves the old or the new).
 */
const SEQ_BYTES = 128;

export interface SeqStats {
  /** File-system calls on seq.json that failed (disk full, read-only, I/O error). */
  fsFailures: number;
  lastError: string | null;
}

/**
 * The slot sequence's state on disk: the next number, and the epoch, a random id drawn
 * when the sequence starts at 0 (first start, or the spool folder lost). Births carry
 * both, so the gateway tells a node that reconnects from one whose count started again.
 */
export class SeqStore {
  private failures = 0;
  private lastError: string | null = null;
  private durable: number;

  private constructor(
    private readonly dir: string,
    private readonly fs: SpoolFs,
    readonly epoch: string,
    nextSeq: number,
    /** The file exists with its fixed size: it is rewritten in place. */
    private inPlace: boolean,
  ) {
    this.durable = nextSeq;
  }

  /**
   * Reads seq.json (a folder without one starts at 0 in a new epoch), moves the next number
   * past the newest slot record still in the spool if that is later, and stores the result
   * at once, so a new epoch holds even if the node stops before its first slot closes.
   * Throws only for a file it cannot make sense of; a disk that refuses writes is counted.
   */
  static open(o: { dir: string; fs?: SpoolFs; spool?: Pick<Spool, 'pending'> }): SeqStore {
    const fs = o.fs ?? NODE_FS;
    const path = join(o.dir, SEQ_FILE);
    let state: { nextSeq: number; epoch: string } | null = null;
    let inPlace = false;
    try {
      const raw = fs.readFileSync(path);
      const j = JSON.parse(raw.toString('utf8')) as { nextSeq?: unknown; epoch?: unknown };
      const nextSeq = typeof j.nextSeq === 'number' && Number.isInteger(j.nextSeq) && j.nextSeq >= 0 ? j.nextSeq : 0;
      // A file from before epochs existed gets one now: the gateway then starts the sequence afresh once.
      const epoch = typeof j.epoch === 'string' && /^[0-9a-f]{16}$/.test(j.epoch) ? j.epoch : newEpoch();
      state = { nextSeq, epoch };
      inPlace = raw.length === SEQ_BYTES;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${path}: ${(err as Error).message}; delete it to restart the slot sequence at 0`);
    }
    state ??= { nextSeq: 0, epoch: newEpoch() };
    for (const e of o.spool?.pending() ?? []) {
      if (e.cls !== 'slot') continue;
      const r = parseSlotRecord(e.payload);
      if (r.ok) state.nextSeq = Math.max(state.nextSeq, r.value.seq + 1);
    }
    const store = new SeqStore(o.dir, fs, state.epoch, state.nextSeq, inPlace);
    store.commit(state.nextSeq);
    return store;
  }

  /** The next number as last stored. */
  get nextSeq(): number {
    return this.durable;
  }

  private failed(err: unknown): false {
    this.failures++;
    this.lastError = (err as Error).message.slice(0, 200);
    return false;
  }

  private record(nextSeq: number): Buffer {
    const json = JSON.stringify({ nextSeq, epoch: this.epoch });
    return Buffer.from(json.padEnd(SEQ_BYTES - 1, ' ') + '\n', 'utf8');
  }

  /**
   * Stores `nextSeq` as the next number, durably (fsync'd) before it returns true; false,
   * counted, when the disk refused. The file is rewritten in place once it has its fixed
   * size; until then (first start, or a file from before) it is written beside and renamed.
   */
  commit(nextSeq: number): boolean {
    const rec = this.record(nextSeq);
    if (!this.inPlace) {
      if (!this.create(rec)) return false;
      this.inPlace = true;
    } else {
      let fd: number | null = null;
      try {
        // Opened per write: an existing file opens without new space, and no descriptor outlives the agent.
        fd = this.fs.openSync(join(this.dir, SEQ_FILE), 'r+');
        const n = this.fs.writeSync(fd, rec, 0, rec.length, 0);
        if (n !== rec.length) throw new Error(`ENOSPC: no space left on device, write (${n} of ${rec.length} bytes)`);
        this.fs.fsyncSync(fd);
      } catch (err) {
        return this.failed(err);
      } finally {
        if (fd !== null) this.closeQuietly(fd);
      }
    }
    this.durable = nextSeq;
    return true;
  }

  private create(rec: Buffer): boolean {
    const path = join(this.dir, SEQ_FILE);
    const tmp = `${path}.tmp`;
    let fd: number | null = null;
    try {
      fd = this.fs.openSync(tmp, 'w');
      const n = this.fs.writeSync(fd, rec, 0, rec.length, 0);
      if (n !== rec.length) throw new Error(`ENOSPC: no space left on device, write (${n} of ${rec.length} bytes)`);
      this.fs.fsyncSync(fd);
      this.fs.closeSync(fd);
      fd = null;
      this.fs.renameSync(tmp, path);
      const dirFd = this.fs.openSync(this.dir, 'r');
      try {
        this.fs.fsyncSync(dirFd);
      } finally {
        this.fs.closeSync(dirFd);
      }
    } catch (err) {
      if (fd !== null) this.closeQuietly(fd);
      return this.failed(err);
    }
    return true;
  }

  private closeQuietly(fd: number): void {
    try {
      this.fs.closeSync(fd);
    } catch {
      // What was written is fsync'd or already counted as failed; a close error adds nothing.
    }
  }

  stats(): SeqStats {
    return { fsFailures: this.failures, lastError: this.lastError };
  }
}

function newEpoch(): string {
  return randomBytes(8).toString('hex');
}
