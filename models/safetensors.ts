// The safetensors container: an 8-byte little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then the
// raw tensor bytes, offsets counted from the end of the header. Our reader opens the
// header and reads tensors by positional reads, so a caller loading a few layers never
// pulls the whole file into memory. Used for Hugging Face checkpoints (hf-llama.ts) and as
// the container of our own shards (shards.ts).
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { z } from 'zod';
import { BYTES_PER_ELEMENT, decodeFloats, encodeFloats, type FloatDtype } from './f16.js';
import { checkMatrix, type WeightMatrix } from './weights.js';

const ST_DTYPES: Record<string, FloatDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
const ST_NAMES: Record<FloatDtype, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

export interface TensorInfo {
  dtype: FloatDtype;
  shape: number[];
  /** absolute byte offsets in the file */
  begin: number;
  end: number;
}

const tensorEntry = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

/**
 * A safetensors file opened for positional reads (call close() when done), or parsed from
 * bytes already in memory when `bytes` is given (`path` then only names it in errors).
 */
export class SafetensorsFile {
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  private fd: number | undefined;

  constructor(readonly path: string, private readonly bytes?: Uint8Array) {
    if (endianness() !== 'LE') throw new Error('safetensors data is little-endian; this host is big-endian');
    if (!bytes) this.fd = openSync(path, 'r');
    try {
      const size = bytes ? bytes.byteLength : fstatSync(this.fd!).size;
      const lenBuf = this.readBytes(0, 8);
      const headerLen = Number(Buffer.from(lenBuf).readBigUInt64LE(0));
      if (size < 8 || headerLen > size - 8 || headerLen > 100_000_000) {
        throw new Error(`${path}: not a safetensors file (header length ${headerLen} in a ${size}-byte file)`);
      }
      let header: unknown;
      try {
        header = JSON.parse(Buffer.from(this.readBytes(8, headerLen)).toString('utf8'));
      } catch (err) {
        throw new Error(`${path}: safetensors header is not valid JSON (${(err as Error).message})`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new Error(`${path}: safetensors header is not a JSON object`);
      }
      const dataStart = 8 + headerLen;
      this.tensors = new Map();
      this.metadata = {};
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') {
          this.metadata = z.record(z.string(), z.string()).parse(raw);
          continue;
        }
        const parsed = tensorEntry.safeParse(raw);
        if (!parsed.success) throw new Error(`${path}: tensor '${name}' has a malformed header entry`);
        const { dtype, shape, data_offsets: [b, e] } = parsed.data;
        const ours = ST_DTYPES[dtype];
        if (!ours) throw new Error(`${path}: tensor '${name}' has dtype ${dtype}; only F32, F16 and BF16 are supported`);
        const count = shape.reduce((a, v) => a * v, 1);
        if (e - b !== count * BYTES_PER_ELEMENT[ours] || dataStart + e > size) {
          throw new Error(`${path}: tensor '${name}' (${dtype} ${JSON.stringify(shape)}) has offsets [${b}, ${e}] that do not fit its shape or the file`);
        }
        this.tensors.set(name, { dtype: ours, shape, begin: dataStart + b, end: dataStart + e });
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private readBytes(offset: number, length: number): Uint8Array {
    if (this.bytes) {
      if (offset + length > this.bytes.byteLength) throw new Error(`${this.path}: unexpected end of data at byte ${this.bytes.byteLength}`);
      return this.bytes.subarray(offset, offset + length);
    }
    if (this.fd === undefined) throw new Error(`${this.path}: already closed`);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new Error(`${this.path}: unexpected end of file at byte ${offset + done}`);
      done += n;
    }
    return out;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** Reads one tensor as float32, checking its shape when `shape` is given. */
  read(name: string, shape?: number[]): Float32Array {
    const info = this.info(name, shape);
    const count = info.shape.reduce((a, v) => a * v, 1);
    return decodeFloats(this.readBytes(info.begin, info.end - info.begin), info.dtype, count);
  }

  /** Reads a matrix [rows][cols] in its stored encoding (f32, f16 or bf16), as a copy of its own. */
  readMatrix(name: string, rows: number, cols: number): WeightMatrix {
    const info = this.info(name, [rows, cols]);
    const bytes = this.readBytes(info.begin, info.end - info.begin);
    // a plain Uint8Array of its own (a Buffer's slice would be a Buffer sharing the pool)
    return checkMatrix({ type: info.dtype, rows, cols, data: this.bytes ? new Uint8Array(bytes) : bytes }, `${this.path}: ${name}`);
  }

  private info(name: string, shape?: number[]): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new Error(`${this.path}: has no tensor '${name}'`);
    if (shape && (shape.length !== info.shape.length || shape.some((v, i) => v !== info.shape[i]))) {
      throw new Error(`${this.path}: tensor '${name}' has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(shape)}`);
    }
    return info;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Encodes tensors as one safetensors file in memory (header padded so data is 8-byte aligned). */
export function encodeSafetensors(tensors: TensorToWrite[], dtype: 'f32' | 'f16', metadata: Record<string, string> = {}): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, v) => a * v, 1);
    if (count !== t.data.length) throw new Error(`tensor '${t.name}': shape ${JSON.stringify(t.shape)} does not match ${t.data.length} values`);
    const bytes = encodeFloats(t.data, dtype);
    header[t.name] = { dtype: ST_NAMES[dtype], shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  // The format recommends aligning the data section; spaces are valid JSON padding.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  return [len, headerBytes, ...chunks];
}

/** Writes tensors to `path` as safetensors; returns the chunks written (for hashing). */
export function writeSafetensors(path: string, tensors: TensorToWrite[], dtype: 'f32' | 'f16', metadata: Record<string, string> = {}): Uint8Array[] {
  const chunks = encodeSafetensors(tensors, dtype, metadata);
  const fd = openSync(path, 'w');
  try {
    for (const c of chunks) writeSync(fd, c);
  } finally {
    closeSync(fd);
  }
  return chunks;
}
