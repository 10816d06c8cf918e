import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../agent/spool.js';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-spool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('pending messages survive a restart in order; removed ones stay removed', (t) => {
  const dir = tempDir(t);
  const a = Spool.open({ dir, maxBytes: 1 << 20 });
  const ids = [1, 2, 3, 4].map((i) => a.append('slot', `t/${i}`, Buffer.from(`slot ${i}`))!.id);
  a.remove(ids[1]!);
  a.close();
  const b = Spool.open({ dir, maxBytes: 1 << 20 });
  assert.deepEqual(b.pending().map((e) => e.payload.toString()), ['slot 1', 'slot 3', 'slot 4']);
  assert.deepEqual(b.pending().map((e) => e.topic), ['t/1', 't/3', 't/4']);
  // New ids never reuse old ones, so a late PUBACK cannot remove the wrong record.
  const next = b.append('event', 't/e', Buffer.from('e'))!;
  assert.ok(next.id > ids[3]!);
  b.close();
});

test('a record torn by a crash mid-write is detected, cut off and the rest kept', (t) => {
  const dir = tempDir(t);
  const a = Spool.open({ dir, maxBytes: 1 << 20 });
  a.append('slot', 't', Buffer.from('one'));
  a.append('slot', 't', Buffer.from('two'));
  a.close();
  const path = join(dir, 'spool.log');
  const full = statSync(path).size;
  const s = Spool.open({ dir, maxBytes: 1 << 20 });
  s.append('slot', 't', Buffer.from('three-which-will-be-torn'));
  s.close();
  truncateSync(path, statSync(path).size - 5);
  const b = Spool.open({ dir, maxBytes: 1 << 20 });
  assert.deepEqual(b.pending().map((e) => e.payload.toString()), ['one', 'two']);
  assert.ok(b.stats().tornBytes > 0);
  assert.equal(statSync(path).size, full, 'the torn tail is truncated away');
  b.append('slot', 't', Buffer.from('four'));
  b.close();
  // A flipped byte (checksum) ends the log there as well.
  const bytes = readFileSync(path);
  bytes[bytes.length - 2]! ^= 0xff;
  writeFileSync(path, bytes);
  const c = Spool.open({ dir, maxBytes: 1 << 20 });
  assert.deepEqual(c.pending().map((e) => e.payload.toString()), ['one', 'two']);
  c.close();
  // Garbage appended after good records is refused too.
  appendFileSync(path, Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
  const d = Spool.open({ dir, maxBytes: 1 << 20 });
  assert.equal(d.pending().length, 2);
  d.close();
});

test('over budget: oldest telemetry goes first, slot records last, with counters that persist', (t) => {
  const dir = tempDir(t);
  const payload = Buffer.alloc(100, 1);
  const s = Spool.open({ dir, maxBytes: 1200, fsync: false });
  // Each record is 8 + 9 + 1 + 100 = 118 bytes: ten fit in 1200.
  for (let i = 0; i < 4; i++) s.append('slot', 's', payload);
  for (let i = 0; i < 3; i++) s.append('event', 'e', payload);
  for (let i = 0; i < 3; i++) s.append('telemetry', 'x', payload);
  assert.equal(s.stats().entries, 10);
  s.append('slot', 's', payload);
  assert.deepEqual(s.stats().dropped, { telemetry: 1, event: 0, slot: 0 });
  for (let i = 0; i < 4; i++) s.append('slot', 's', payload);
  assert.deepEqual(s.stats().dropped, { telemetry: 3, event: 2, slot: 0 });
  // Telemetry cannot push out slot records or events: it is dropped itself.
  s.append('slot', 's', payload);
  assert.equal(s.append('telemetry', 'x', payload), null);
  assert.deepEqual(s.stats().dropped, { telemetry: 4, event: 3, slot: 0 });
  // Only slot records left: the oldest slot record goes.
  for (let i = 0; i < 2; i++) s.append('slot', 's', payload);
  assert.equal(s.stats().dropped.slot, 2);
  assert.ok(s.stats().liveBytes <= 1200);
  s.close();
  const b = Spool.open({ dir, maxBytes: 1200 });
  assert.deepEqual(b.stats().dropped, { telemetry: 3, event: 3, slot: 2 }, 'drops of stored records are replayed; refusals of new ones are not stored');
  assert.throws(() => b.append('slot', 's', Buffer.alloc(2000)), /does not fit/);
  b.close();
});

test('compaction keeps the file near the live size', (t) => {
  const dir = tempDir(t);
  const s = Spool.open({ dir, maxBytes: 1 << 20, fsync: false });
  for (let i = 0; i < 3000; i++) {
    const e = s.append('slot', 'topic', Buffer.alloc(64, i & 0xff))!;
    if (i % 100 !== 0) s.remove(e.id);
  }
  const st = s.stats();
  assert.equal(st.entries, 30);
  assert.ok(st.fileBytes < 2 * st.liveBytes + 64 * 1024 + 200, `file ${st.fileBytes} live ${st.liveBytes}`);
  s.close();
  const b = Spool.open({ dir, maxBytes: 1 << 20 });
  assert.equal(b.pending().length, 30);
  assert.equal(b.pending()[1]!.payload[0], 100);
  b.close();
});
