import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FRAME_HEADER_BYTES, decodeFrame, encodeFrame, fromHalf, isFrame, toHalf } from '../../protocol/index.js';

function sample(n: number, seed = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    a[i] = (s / 2 ** 31 - 0.5) * 8;
  }
  return a;
}

test('f32 frames round-trip bit-exactly with every header field', () => {
  const data = sample(3 * 16);
  const buf = encodeFrame({ jobId: 7, sessionId: 4_000_000_000, step: 12, position: 33, rows: 3, dim: 16, data, replay: true });
  assert.ok(isFrame(buf));
  assert.equal(buf.length, FRAME_HEADER_BYTES + 3 * 16 * 4);
  const r = decodeFrame(buf);
  assert.ok(r.ok, !r.ok ? r.error : '');
  assert.deepEqual(r.frame.data, data);
  assert.equal(r.frame.jobId, 7);
  assert.equal(r.frame.sessionId, 4_000_000_000);
  assert.equal(r.frame.step, 12);
  assert.equal(r.frame.position, 33);
  assert.equal(r.frame.replay, true);
  assert.equal(r.frame.close, false);
  assert.equal(r.frame.dtype, 'f32');
});

test('f32 frames carry every bit of their values, NaN payloads and -0 included, from any byte offset', () => {
  const bits = new Uint32Array([0x7f800001, 0xffc12345, 0x80000000, 0x00000001, 0x7f7fffff, 0x3f800000, 0x7f800000, 0xff800000]);
  const data = new Float32Array(bits.buffer);
  const buf = encodeFrame({ jobId: 1, sessionId: 1, step: 0, position: 0, rows: 2, dim: 4, data });
  // As a frame arrives inside a larger MQTT packet buffer: at an odd offset.
  const packet = Buffer.concat([Buffer.from([0x30]), buf]);
  const r = decodeFrame(packet.subarray(1));
  assert.ok(r.ok, !r.ok ? r.error : '');
  assert.deepEqual([...new Uint32Array(r.frame.data.buffer)].map((b) => b.toString(16)), [...bits].map((b) => b.toString(16)));
});

test('f16 frames halve the payload and round to nearest even within half precision', () => {
  const data = sample(64, 3);
  const buf = encodeFrame({ jobId: 1, sessionId: 2, step: 0, position: 0, rows: 4, dim: 16, data, dtype: 'f16', close: true });
  assert.equal(buf.length, FRAME_HEADER_BYTES + 64 * 2);
  const r = decodeFrame(buf);
  assert.ok(r.ok);
  assert.equal(r.frame.close, true);
  for (let i = 0; i < data.length; i++) {
    // binary16 has 11 significant bits: relative error ≤ 2^-11 for normal values.
    assert.ok(Math.abs(r.frame.data[i]! - data[i]!) <= Math.abs(data[i]!) * 2 ** -11 + 2 ** -24, `value ${i}`);
  }
});

test('half conversion: exact values, ties to even, subnormals, overflow and NaN', () => {
  assert.equal(toHalf(1), 0x3c00);
  assert.equal(toHalf(-2), 0xc000);
  assert.equal(toHalf(65504), 0x7bff);
  assert.equal(toHalf(65520), 0x7c00); // rounds up to Inf (halfway, mantissa odd → up)
  assert.equal(toHalf(1e6), 0x7c00);
  assert.equal(toHalf(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(toHalf(2 ** -26), 0x0000); // below half the smallest subnormal
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00); // tie: 1.0 has an even mantissa, stays
  assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02); // tie: odd mantissa rounds up
  assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
  assert.equal(fromHalf(0x3555), 0.333251953125);
  for (let h = 0; h < 0x7c00; h += 37) assert.equal(toHalf(fromHalf(h)), h, `half 0x${h.toString(16)} round-trips`);
});

test('truncated, padded, corrupted and foreign frames are refused with a reason', () => {
  const buf = encodeFrame({ jobId: 1, sessionId: 1, step: 0, position: 0, rows: 2, dim: 8, data: sample(16) });
  const short = decodeFrame(buf.subarray(0, buf.length - 1));
  assert.ok(!short.ok && /truncated/.test(short.error));
  const header = decodeFrame(buf.subarray(0, 10));
  assert.ok(!header.ok && /header/.test(header.error));
  const padded = decodeFrame(Buffer.concat([buf, Buffer.alloc(4)]));
  assert.ok(!padded.ok && /padded/.test(padded.error));
  const flipped = Buffer.from(buf);
  flipped[FRAME_HEADER_BYTES + 5]! ^= 0x10;
  const bad = decodeFrame(flipped);
  assert.ok(!bad.ok && /checksum/.test(bad.error));
  const magic = Buffer.from(buf);
  magic[0] = 0x7b;
  assert.ok(!isFrame(magic));
  const m = decodeFrame(magic);
  assert.ok(!m.ok && /magic/.test(m.error));
  const version = Buffer.from(buf);
  version[4] = 9;
  const v = decodeFrame(version);
  assert.ok(!v.ok && /version 9/.test(v.error));
  const shape = Buffer.from(buf);
  shape.writeUInt32LE(1 << 20, 24);
  const s = decodeFrame(shape);
  assert.ok(!s.ok && /exceeds/.test(s.error));
});

test('encoding refuses data that does not match its shape', () => {
  assert.throws(() => encodeFrame({ jobId: 1, sessionId: 1, step: 0, position: 0, rows: 2, dim: 8, data: sample(15) }), /needs 16/);
  assert.throws(() => encodeFrame({ jobId: -1, sessionId: 1, step: 0, position: 0, rows: 1, dim: 1, data: [0] }), /jobId/);
});

test('random bytes never make the decoder throw', () => {
  const base = encodeFrame({ jobId: 1, sessionId: 1, step: 0, position: 0, rows: 2, dim: 4, data: sample(8) });
  let s = 9;
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(base.subarray(0, (i * 7) % (base.length + 1)));
    s = (s * 69069 + 1) >>> 0;
    if (b.length) b[s % b.length] = s & 0xff;
    const r = decodeFrame(b);
    if (!r.ok) refused++;
  }
  assert.ok(refused > 1900);
});
