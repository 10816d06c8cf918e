// A full SD card under the agent's spool and slot count. The disk is simulated: an
// in-memory file system with the calls the spool makes, allocating in 4 KiB pages as
// tmpfs and ext4 do, that writes what fits and then fails with ENOSPC the way write(2)
// does (a short write, then the error). The node is the spool, the slot count and the
// ledger wired as the agent wires them; its broker publishes every pending record and
// answers with a PUBACK, which removes it from the spool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger } from '../../agent/ledger.js';
import { SeqStore } from '../../agent/seq.js';
import { Spool, type SpoolFs } from '../../agent/spool.js';
import { monotonicMs, type Clock } from '../../ground/clock.js';
import { VirtualClock } from '../../hardware/clock.js';
import type { NodeReading } from '../../hardware/node.js';
import { encodeJson, parseSlotRecord } from '../../protocol/index.js';

const PAGE = 4096;
const DIR = '/var/lib/heliomesh/spool';
const SLOT_TOPIC = 'heliomesh/t/node/pi-1/slot';
const TELEMETRY_TOPIC = 'heliomesh/t/node/pi-1/telemetry';

function fsError(code: 'ENOSPC' | 'ENOENT' | 'EIO' | 'EBADF', syscall: string, path?: string): NodeJS.ErrnoException {
  const errno = { ENOSPC: -28, ENOENT: -2, EIO: -5, EBADF: -9 }[code];
  const text = { ENOSPC: 'no space left on device', ENOENT: 'no such file or directory', EIO: 'i/o error', EBADF: 'bad file descriptor' }[code];
  return Object.assign(new Error(`${code}: ${text}, ${syscall}${path ? ` '${path}'` : ''}`), { code, errno, syscall, path });
}

/** A disk of `capacityBytes`; `failing` makes every write and create fail with that code (EIO: the card is dying). */
class SmallDisk implements SpoolFs {
  readonly files = new Map<string, Buffer>();
  private readonly dirs = new Set<string>(['/']);
  private readonly fds = new Map<number, { path: string; append: boolean; dir: boolean }>();
  private nextFd = 3;
  failing: 'EIO' | null = null;
  /** ENOSPC errors raised (and short writes): proof the disk really was full. */
  refusals = 0;

  constructor(public capacityBytes: number) {}

  private pages(len: number): number {
    return Math.ceil(len / PAGE) * PAGE;
  }

  used(): number {
    let n = 0;
    for (const b of this.files.values()) n += this.pages(b.length);
    return n;
  }

  /** The longest `path` may grow to with the pages left. */
  private maxLength(path: string): number {
    const cur = this.files.get(path)?.length ?? 0;
    const free = Math.max(0, this.capacityBytes - this.used());
    return this.pages(cur) + Math.floor(free / PAGE) * PAGE;
  }

  existsSync(path: string): boolean {
    return this.files.has(path) || this.dirs.has(path);
  }

  mkdirSync(path: string): undefined {
    let p = '';
    for (const part of path.split('/').filter(Boolean)) this.dirs.add((p += `/${part}`));
    return undefined;
  }

  readFileSync(path: string): Buffer {
    const b = this.files.get(path);
    if (!b) throw fsError('ENOENT', 'open', path);
    return Buffer.from(b);
  }

  openSync(path: string, flags: string): number {
    const dir = this.dirs.has(path);
    if (!dir && !this.files.has(path)) {
      if (flags === 'r' || flags === 'r+') throw fsError('ENOENT', 'open', path);
      if (this.failing) throw fsError(this.failing, 'open', path);
      this.files.set(path, Buffer.alloc(0));
    } else if (flags.startsWith('w')) {
      if (this.failing) throw fsError(this.failing, 'open', path);
      this.files.set(path, Buffer.alloc(0));
    }
    const fd = this.nextFd++;
    this.fds.set(fd, { path, append: flags === 'a', dir });
    return fd;
  }

  private file(fd: number): { path: string; append: boolean } {
    const f = this.fds.get(fd);
    if (!f || f.dir) throw fsError('EBADF', 'write');
    return f;
  }

  writeSync(fd: number, buffer: Uint8Array, offset = 0, length = buffer.length - offset, position: number | null = null): number {
    const f = this.file(fd);
    if (this.failing) throw fsError(this.failing, 'write');
    const cur = this.files.get(f.path)!;
    const at = f.append || position === null ? cur.length : position;
    const n = Math.min(length, Math.max(0, this.maxLength(f.path) - at));
    if (n === 0 && length > 0) {
      this.refusals++;
      throw fsError('ENOSPC', 'write');
    }
    if (n < length) this.refusals++;
    const next = Buffer.alloc(Math.max(cur.length, at + n));
    cur.copy(next);
    Buffer.from(buffer.buffer, buffer.byteOffset + offset, n).copy(next, at);
    this.files.set(f.path, next);
    return n;
  }

  fsyncSync(fd: number): void {
    if (!this.fds.has(fd)) throw fsError('EBADF', 'fsync');
    if (this.failing) throw fsError(this.failing, 'fsync');
  }

  closeSync(fd: number): void {
    if (!this.fds.delete(fd)) throw fsError('EBADF', 'close');
  }

  renameSync(from: string, to: string): void {
    const b = this.files.get(from);
    if (!b) throw fsError('ENOENT', 'rename', from);
    if (this.failing) throw fsError(this.failing, 'rename', from);
    this.files.delete(from);
    this.files.set(to, b);
  }

  private resize(path: string, length: number): void {
    const b = this.files.get(path);
    if (!b) throw fsError('ENOENT', 'truncate', path);
    if (length > this.maxLength(path)) throw fsError('ENOSPC', 'truncate', path);
    const next = Buffer.alloc(length);
    b.copy(next, 0, 0, Math.min(length, b.length));
    this.files.set(path, next);
  }

  truncateSync(path: string, length: number): void {
    this.resize(path, length);
  }

  ftruncateSync(fd: number, length: number): void {
    this.resize(this.file(fd).path, length);
  }

  unlinkSync(path: string): void {
    if (!this.files.delete(path)) throw fsError('ENOENT', 'unlink', path);
  }
}

/** A steady reading: 2 W in, 1.5 W out, a battery at 60 %. */
function steadySource(clock: Clock): { read(): Promise<NodeReading> } {
  return {
    read: async () => ({
      timeMs: clock.now(), monotonicMs: monotonicMs(clock),
      sensors: [
        { role: 'solar', name: 'solar', address: 0x40, ok: true, busVoltageV: 18, currentMa: 111, powerMw: 2000 },
        { role: 'load', name: 'load', address: 0x41, ok: true, busVoltageV: 5, currentMa: 300, powerMw: 1500 },
      ],
      charger: { kind: 'none', ok: true, powerGood: null },
      battery: { source: 'ina219', energyJ: 43_200, capacityJ: 72_000, socPct: 60, resting: false, ocvCorrected: false, unmeasuredMs: 0, lastSampleMs: null },
      harvest: { totalJ: 0, unmeasuredMs: 0 }, powerMode: null, cpu: null, health: [],
    }),
  };
}

/** One boot of the node on `disk`: what the agent builds at start, and its broker. */
function boot(disk: SmallDisk, maxBytes = 1 << 20, maxHeld?: number) {
  const clock = new VirtualClock(Date.parse('2026-06-21T10:00:00Z'));
  const spool = Spool.open({ dir: DIR, fs: disk, maxBytes });
  const seq = SeqStore.open({ dir: DIR, fs: disk, spool });
  const ledger = new Ledger({
    nodeId: 'pi-1', clock, source: steadySource(clock), policy: { gamma: () => 1, powerMode: () => 1, queue: () => 0 },
    slotMs: 10_000, samplePeriodMs: 1000, firstSeq: seq.nextSeq, seqStore: seq, maxHeld,
    onSlot: (r) => spool.append('slot', SLOT_TOPIC, encodeJson(r)),
  });
  /** Slot numbers the broker took, in order of arrival. */
  const published: number[] = [];
  let broker = true;
  const node = {
    spool, seq, ledger, published,
    set brokerUp(up: boolean) {
      broker = up;
    },
    /** The broker takes every pending record (telemetry too) and acknowledges it. */
    deliver(): void {
      if (!broker) return;
      for (const e of spool.pending()) {
        if (e.cls === 'slot') {
          const r = parseSlotRecord(e.payload);
          assert.ok(r.ok, r.ok ? '' : r.error);
          published.push(r.value.seq);
        }
        spool.remove(e.id); // the PUBACK
      }
    },
    /** One slot: ten seconds of 1 Hz telemetry, the slot record, each delivered as it is spooled. */
    async slot(): Promise<void> {
      for (let i = 0; i < 10; i++) {
        await clock.advance(1000);
        spool.append('telemetry', TELEMETRY_TOPIC, Buffer.from(JSON.stringify({ v: 1, nodeId: 'pi-1', atMs: clock.now(), sensors: [{ name: 'solar', ok: true, busVoltageV: 18.004, currentMa: 111.2, powerMw: 2001.6 }] })));
        node.deliver();
      }
      await ledger.closeSlot();
      node.deliver();
    },
  };
  return node;
}

test('a full disk: PUBACKs keep arriving, nothing throws, what cannot be written stays in memory and is counted', async () => {
  const disk = new SmallDisk(4 * PAGE);
  const node = boot(disk);
  // Until the card is full (the spool file's markers fill it), and well beyond.
  for (let s = 0; s < 60; s++) await node.slot();
  assert.ok(disk.refusals > 0, `the disk was full: ${disk.used()} of ${disk.capacityBytes} bytes`);
  assert.deepEqual(node.published, Array.from({ length: 60 }, (_, i) => i), 'every slot record went out, once, in order');

  // The broker goes away while the disk is full: records wait in memory.
  node.brokerUp = false;
  for (let s = 0; s < 5; s++) await node.slot();
  const st = node.spool.stats();
  assert.equal(st.entries, 5 * 11, 'five slots of records wait');
  assert.ok(st.unstored > 0 && st.unstored <= st.entries, `${st.unstored} of them only in memory`);
  assert.ok(st.fsFailures > 0, 'the failed writes are counted');
  assert.ok(st.lastError?.startsWith('ENOSPC'), `${st.lastError}`);
});

test('the in-memory spool is bounded: beyond spool.maxBytes the oldest telemetry goes first, and each drop is counted', async () => {
  const disk = new SmallDisk(2 * PAGE);
  const node = boot(disk, 16 * 1024);
  node.brokerUp = false;
  for (let s = 0; s < 40; s++) await node.slot();
  const st = node.spool.stats();
  assert.ok(st.liveBytes <= 16 * 1024, `${st.liveBytes} bytes held`);
  assert.ok(st.dropped.telemetry > 0, 'telemetry was dropped to make room');
  assert.equal(st.dropped.slot, 0, 'no slot record while telemetry could go');
  const slots = node.spool.pending().filter((e) => e.cls === 'slot').length;
  assert.equal(slots, 40, 'every slot record is kept');
});

test('space returns: what waited in memory is written out, and after a crash nothing is lost or sent twice', async () => {
  const disk = new SmallDisk(3 * PAGE);
  let node = boot(disk);
  for (let s = 0; s < 30; s++) await node.slot();
  assert.ok(disk.refusals > 0, 'the disk filled');
  node.brokerUp = false;
  for (let s = 0; s < 6; s++) await node.slot();
  assert.ok(node.spool.stats().unstored > 0);

  // Someone deletes a log file: the card has room again. The next record written retries.
  disk.capacityBytes = 64 * PAGE;
  await node.slot();
  const st = node.spool.stats();
  assert.equal(st.unstored, 0, 'everything waiting is on disk now');
  assert.equal(st.entries, 7 * 11);
  const published = [...node.published];

  // A power cut: the objects are gone, the next boot reads the disk.
  node = boot(disk);
  assert.equal(node.spool.stats().entries, 7 * 11, 'the reopened spool holds every record that was waiting');
  node.deliver();
  for (let s = 0; s < 3; s++) await node.slot();
  const all = [...published, ...node.published];
  assert.deepEqual(all, Array.from({ length: 40 }, (_, i) => i), 'no number lost, none twice');
});

test('a crash after records went out while seq.json could not be rewritten: the restart numbers above all of them', async () => {
  const disk = new SmallDisk(3 * PAGE);
  let node = boot(disk);
  for (let s = 0; s < 40; s++) await node.slot();
  assert.ok(disk.refusals > 0, 'the disk filled');
  const published = [...node.published];
  const top = Math.max(...published);
  // Power cut while the card is still full.
  node = boot(disk);
  assert.ok(node.ledger.nextSeq > top, `restart at ${node.ledger.nextSeq}, ${top} already published`);
  assert.equal(node.ledger.nextSeq, top + 1, 'seq.json, rewritten in place, kept up on the full disk: no gap either');
  for (let s = 0; s < 3; s++) await node.slot();
  const all = [...published, ...node.published];
  assert.equal(new Set(all).size, all.length, `no number twice: ${all.join(',')}`);
});

test('a card that fails every write (EIO): the ledger keeps sampling, holds its records until their numbers are stored, and never numbers twice', async () => {
  const disk = new SmallDisk(64 * PAGE);
  let node = boot(disk);
  for (let s = 0; s < 3; s++) await node.slot();
  disk.failing = 'EIO';
  for (let s = 0; s < 4; s++) await node.slot();
  assert.ok(node.seq.stats().fsFailures > 0, 'the failed writes of seq.json are counted');
  assert.deepEqual(node.published, [0, 1, 2], 'no record goes out before its number is stored');
  assert.equal(node.ledger.nextSeq, 7, 'the slots were still closed');
  disk.failing = null;
  await node.slot();
  assert.deepEqual(node.published, [0, 1, 2, 3, 4, 5, 6, 7], 'the held records follow, in order, once the card writes again');

  disk.failing = 'EIO';
  for (let s = 0; s < 2; s++) await node.slot();
  const published = [...node.published];
  // Power cut while the card fails; it works again at the next boot.
  disk.failing = null;
  node = boot(disk);
  assert.ok(node.ledger.nextSeq > Math.max(...published), `restart at ${node.ledger.nextSeq}, ${Math.max(...published)} already published`);
  for (let s = 0; s < 3; s++) await node.slot();
  const all = [...published, ...node.published];
  assert.equal(new Set(all).size, all.length, `no number twice: ${all.join(',')}`);
});

test('a seq.json from an older agent keeps its count and epoch, and takes the fixed size that is rewritten in place', () => {
  const disk = new SmallDisk(64 * PAGE);
  disk.mkdirSync(DIR);
  disk.files.set(`${DIR}/seq.json`, Buffer.from(JSON.stringify({ nextSeq: 812, epoch: '0123456789abcdef' })));
  const seq = SeqStore.open({ dir: DIR, fs: disk });
  assert.equal(seq.nextSeq, 812);
  assert.equal(seq.epoch, '0123456789abcdef');
  const file = disk.files.get(`${DIR}/seq.json`)!;
  assert.equal(file.length, 128);
  assert.deepEqual(JSON.parse(file.toString('utf8')), { nextSeq: 812, epoch: '0123456789abcdef' });
  // Full from now on: the rewrite in place still goes through.
  disk.capacityBytes = disk.used();
  assert.equal(seq.commit(813), true);
  assert.equal((JSON.parse(disk.files.get(`${DIR}/seq.json`)!.toString('utf8')) as { nextSeq: number }).nextSeq, 813);
  assert.equal(seq.stats().fsFailures, 0);
});

test('records held back for their numbers are bounded: beyond the bound the oldest go, counted, and the rest follow in order', async () => {
  const disk = new SmallDisk(64 * PAGE);
  const node = boot(disk, 1 << 20, 4);
  await node.slot();
  disk.failing = 'EIO';
  for (let s = 0; s < 7; s++) await node.slot();
  const st = node.ledger.seqStats();
  assert.equal(st.held, 4, 'four held');
  assert.equal(st.heldDropped, 3, 'three dropped');
  assert.ok(st.fsFailures > 0 && st.lastError?.startsWith('EIO'), `${st.fsFailures} failures, ${st.lastError}`);
  disk.failing = null;
  await node.slot();
  assert.deepEqual(node.published, [0, 4, 5, 6, 7, 8], 'the three oldest held records were dropped; the gateway counts 1..3 missing');
  assert.equal(node.ledger.seqStats().held, 0);
});
