// Binary activation frame: what flows between hops on job/in and job/out. A fixed 36-byte
// little-endian header, then T×dim values row-major. The CRC-32 (zlib's, ISO 3309) covers
// the header and data, so a frame damaged anywhere is refused rather than computed on.
//
//   off size field
//   0   4    magic "HMAF"
//   4   1    version (1)
//   5   1    dtype: 0 = f32, 1 = f16 (IEEE 754 binary16)
//   6   2    flags: bit 0 replay (rebuild the KV cache, no output wanted), bit 1 close
//   8   4    jobId
//   12  4    sessionId
//   16  4    step
//   20  4    position: token position of the first row
//   24  4    T (rows)
//   28  4    dim (columns)
//   32  4    CRC-32 of bytes 0..32 and the data
import { crc32 } from 'node:zlib';
import { getFloat16, setFloat16 } from '@petamoriken/float16';

export const FRAME_MAGIC = 0x46414d48; // "HMAF" read as a little-endian u32
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 36;
/** Largest frame accepted: bounds memory per message on a 1–8 GB Pi. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
export const MAX_ROWS = 4096;
export const MAX_DIM = 16384;

export const FLAG_REPLAY = 1;
export const FLAG_CLOSE = 2;
const KNOWN_FLAGS = FLAG_REPLAY | FLAG_CLOSE;

export type Dtype = 'f32' | 'f16';

export interface Frame {
  jobId: number;
  sessionId: number;
  step: number;
  position: number;
  rows: number;
  dim: number;
  dtype: Dtype;
  replay: boolean;
  close: boolean;
  /** rows×dim values, row-major. Empty for a close frame without data. */
  data: Float32Array;
}

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; error: string };

const u32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

// The wire is little-endian. On a little-endian host (every Pi and x86 one) f32 rows are
// the bytes of a Float32Array as they are, so they cross in one copy rather than a
// readFloatLE or writeFloatLE call per value, which was most of the codec's time.
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// binary16 through @petamoriken/float16 (Node 20 has no Float16Array of its own); its
// setFloat16 rounds to nearest even as IEEE 754 §4.3.1 requires.
const scratch = new DataView(new ArrayBuffer(2));

/** f32 → binary16 bits, rounding to nearest even; overflow gives ±Inf, NaN stays NaN. */
export function toHalf(value: number): number {
  setFloat16(scratch, 0, value, true);
  return scratch.getUint16(0, true);
}

/** binary16 bits → number. */
export function fromHalf(h: number): number {
  scratch.setUint16(0, h, true);
  return getFloat16(scratch, 0, true);
}

/** What encodeFrame takes: a Frame whose flags and dtype may be left out (f32, no flags), with values of any array. */
export type FrameInput = Omit<Frame, 'dtype' | 'replay' | 'close' | 'data'> & Partial<Pick<Frame, 'dtype' | 'replay' | 'close'>> & {
  data: Float32Array | ArrayLike<number>;
};

export function encodeFrame(f: FrameInput): Buffer {
  const dtype = f.dtype ?? 'f32';
  for (const k of ['jobId', 'sessionId', 'step', 'position', 'rows', 'dim'] as const) {
    if (!u32(f[k])) throw new RangeError(`frame ${k} must be an integer in 0..2^32-1, got ${f[k]}`);
  }
  if (f.rows > MAX_ROWS || f.dim > MAX_DIM) throw new RangeError(`frame shape [${f.rows}, ${f.dim}] exceeds [${MAX_ROWS}, ${MAX_DIM}]`);
  const n = f.rows * f.dim;
  if (f.data.length !== n) throw new RangeError(`frame data has ${f.data.length} values, shape [${f.rows}, ${f.dim}] needs ${n}`);
  const bytesPer = dtype === 'f32' ? 4 : 2;
  const total = FRAME_HEADER_BYTES + n * bytesPer;
  if (total > MAX_FRAME_BYTES) throw new RangeError(`frame of ${total} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
  // Not zero-filled: the header and every data byte are written below.
  const buf = Buffer.allocUnsafe(total);
  buf.writeUInt32LE(FRAME_MAGIC, 0);
  buf.writeUInt8(FRAME_VERSION, 4);
  buf.writeUInt8(dtype === 'f32' ? 0 : 1, 5);
  buf.writeUInt16LE((f.replay ? FLAG_REPLAY : 0) | (f.close ? FLAG_CLOSE : 0), 6);
  buf.writeUInt32LE(f.jobId, 8);
  buf.writeUInt32LE(f.sessionId, 12);
  buf.writeUInt32LE(f.step, 16);
  buf.writeUInt32LE(f.position, 20);
  buf.writeUInt32LE(f.rows, 24);
  buf.writeUInt32LE(f.dim, 28);
  const at = buf.byteOffset + FRAME_HEADER_BYTES;
  if (dtype === 'f32' && HOST_LITTLE_ENDIAN && at % 4 === 0) {
    new Float32Array(buf.buffer, at, n).set(f.data);
  } else if (dtype === 'f32') {
    for (let i = 0; i < n; i++) buf.writeFloatLE(f.data[i]!, FRAME_HEADER_BYTES + 4 * i);
  } else {
    for (let i = 0; i < n; i++) buf.writeUInt16LE(toHalf(f.data[i]!), FRAME_HEADER_BYTES + 2 * i);
  }
  buf.writeUInt32LE(frameCrc(buf), 32);
  return buf;
}

function frameCrc(buf: Buffer): number {
  return crc32(buf.subarray(FRAME_HEADER_BYTES), crc32(buf.subarray(0, 32)));
}

/** Does the payload start like a frame (as opposed to a JSON control message)? */
export function isFrame(payload: Uint8Array): boolean {
  // "HMAF" byte by byte: asked of every job message on both sides, so no Buffer view is made for it.
  return payload.length >= 4 && payload[0] === 0x48 && payload[1] === 0x4d && payload[2] === 0x41 && payload[3] === 0x46;
}

/**
 * The job, session and close flag of what looks like a frame, read from the header alone
 * (no CRC, no data): enough for the broker to authorize a hop without decoding it.
 */
export function frameAddress(payload: Uint8Array): { jobId: number; sessionId: number; close: boolean } | undefined {
  if (payload.length < FRAME_HEADER_BYTES || !isFrame(payload)) return undefined;
  const buf = Buffer.from(payload.buffer, payload.byteOffset, FRAME_HEADER_BYTES);
  return { jobId: buf.readUInt32LE(8), sessionId: buf.readUInt32LE(12), close: (buf.readUInt16LE(6) & FLAG_CLOSE) !== 0 };
}

/** Validates and decodes; never throws. */
export function decodeFrame(payload: Uint8Array): DecodeResult {
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  if (buf.length < FRAME_HEADER_BYTES) return { ok: false, error: `frame of ${buf.length} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header` };
  if (buf.length > MAX_FRAME_BYTES) return { ok: false, error: `frame of ${buf.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit` };
  if (buf.readUInt32LE(0) !== FRAME_MAGIC) return { ok: false, error: 'not an activation frame (bad magic)' };
  const version = buf.readUInt8(4);
  if (version !== FRAME_VERSION) return { ok: false, error: `frame version ${version} is not supported (this side speaks ${FRAME_VERSION})` };
  const dtypeCode = buf.readUInt8(5);
  if (dtypeCode > 1) return { ok: false, error: `unknown frame dtype code ${dtypeCode}` };
  const flags = buf.readUInt16LE(6);
  if (flags & ~KNOWN_FLAGS) return { ok: false, error: `unknown frame flags 0x${flags.toString(16)}` };
  const rows = buf.readUInt32LE(24);
  const dim = buf.readUInt32LE(28);
  if (rows > MAX_ROWS || dim > MAX_DIM) return { ok: false, error: `frame shape [${rows}, ${dim}] exceeds [${MAX_ROWS}, ${MAX_DIM}]` };
  const bytesPer = dtypeCode === 0 ? 4 : 2;
  const expected = FRAME_HEADER_BYTES + rows * dim * bytesPer;
  if (buf.length !== expected) return { ok: false, error: `frame length ${buf.length} does not match shape [${rows}, ${dim}] ${dtypeCode ? 'f16' : 'f32'} (${expected} bytes): truncated or padded` };
  if (buf.readUInt32LE(32) !== frameCrc(buf)) return { ok: false, error: 'frame checksum mismatch: corrupted in transit' };
  const n = rows * dim;
  const data = new Float32Array(n);
  if (dtypeCode === 0 && HOST_LITTLE_ENDIAN) {
    new Uint8Array(data.buffer).set(buf.subarray(FRAME_HEADER_BYTES));
  } else if (dtypeCode === 0) {
    for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(FRAME_HEADER_BYTES + 4 * i);
  } else {
    for (let i = 0; i < n; i++) data[i] = fromHalf(buf.readUInt16LE(FRAME_HEADER_BYTES + 2 * i));
  }
  return {
    ok: true,
    frame: {
      jobId: buf.readUInt32LE(8), sessionId: buf.readUInt32LE(12), step: buf.readUInt32LE(16), position: buf.readUInt32LE(20),
      rows, dim, dtype: dtypeCode === 0 ? 'f32' : 'f16', replay: (flags & FLAG_REPLAY) !== 0, close: (flags & FLAG_CLOSE) !== 0, data,
    },
  };
}
