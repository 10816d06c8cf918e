// Writer of GGUF files (the layout of ggml/docs/gguf.md, "File Structure"; see gguf.ts).
// The header (metadata and tensor infos) is built in memory; tensor data is streamed to the
// file tensor by tensor, each given either as bytes or as a producer of byte chunks, so a
// converted model never has to exist in memory as a whole. Every tensor starts at a multiple
// of the alignment and is followed by zero padding to the next one [gguf, gguf_file_t:
// "the space between tensors should be padded to ALIGNMENT bytes"]; the file is written to
// `path + '.tmp'` and renamed when complete, and its sha256 is computed on the way.
import { createHash } from 'node:crypto';
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import {
  GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_NAME_BYTES, GgufValueType, alignOffset, ggmlTensorBytes,
  type GgmlTypeName, type GgufValue,
} from './gguf.js';

/** Names for the metadata value types, for forcing a type (for an array: its element type). */
export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';

const SCALAR: Record<GgufScalarType, GgufValueType> = {
  u8: GgufValueType.UINT8, i8: GgufValueType.INT8, u16: GgufValueType.UINT16, i16: GgufValueType.INT16,
  u32: GgufValueType.UINT32, i32: GgufValueType.INT32, f32: GgufValueType.FLOAT32, bool: GgufValueType.BOOL,
  string: GgufValueType.STRING, u64: GgufValueType.UINT64, i64: GgufValueType.INT64, f64: GgufValueType.FLOAT64,
};

/**
 * [key, value, type?]. Without a type: strings → string, booleans → bool, bigints → u64 (i64
 * when negative), integers → u32 (i32 when negative, u64/i64 beyond 32 bits), other numbers →
 * f32; arrays take the type that fits all their elements (integers: i32 when they fit, else
 * u32, else i64). With a type, an array's elements (innermost, for nested arrays) take it.
 */
export type GgufMetadataEntry = [key: string, value: GgufValue, type?: GgufScalarType];

export interface GgufTensorSpec {
  name: string;
  type: GgmlTypeName;
  /** dims[0] innermost: a [rows][cols] matrix has dims [cols, rows]. */
  dims: number[];
  /** The stored bytes, or a producer of them in chunks (called once, while writing). */
  data: Uint8Array | (() => Iterable<Uint8Array>);
}

export interface GgufWriteOptions {
  metadata: GgufMetadataEntry[];
  tensors: GgufTensorSpec[];
  /** Default: general.alignment from the metadata, else 32. */
  alignment?: number;
  /** GGUF version to write (default 3; 2 has the same layout in little-endian). */
  version?: 2 | 3;
}

export interface GgufWriteResult {
  bytes: number;
  sha256: string;
}

/** A growable little-endian byte buffer for the header. */
class ByteBuilder {
  private buf = Buffer.allocUnsafe(64 * 1024);
  length = 0;

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  // room() may replace this.buf, so it is called before this.buf is read.
  bytes(b: Uint8Array): void { const at = this.room(b.byteLength); this.buf.set(b, at); }
  u8(v: number): void { const at = this.room(1); this.buf.writeUInt8(v, at); }
  i8(v: number): void { const at = this.room(1); this.buf.writeInt8(v, at); }
  u16(v: number): void { const at = this.room(2); this.buf.writeUInt16LE(v, at); }
  i16(v: number): void { const at = this.room(2); this.buf.writeInt16LE(v, at); }
  u32(v: number): void { const at = this.room(4); this.buf.writeUInt32LE(v, at); }
  i32(v: number): void { const at = this.room(4); this.buf.writeInt32LE(v, at); }
  f32(v: number): void { const at = this.room(4); this.buf.writeFloatLE(v, at); }
  f64(v: number): void { const at = this.room(8); this.buf.writeDoubleLE(v, at); }
  u64(v: bigint): void { const at = this.room(8); this.buf.writeBigUInt64LE(v, at); }
  i64(v: bigint): void { const at = this.room(8); this.buf.writeBigInt64LE(v, at); }
  string(s: string): void {
    // [gguf, gguf_string_t]: u64 byte length, then UTF-8 without terminator
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(BigInt(n));
    const at = this.room(n);
    this.buf.write(s, at, n, 'utf8');
  }
  view(): Buffer { return this.buf.subarray(0, this.length); }
}

function isInt(v: GgufValue): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/** The type a value takes when none is given (see GgufMetadataEntry). */
function inferType(key: string, value: GgufValue): GgufValueType {
  if (typeof value === 'string') return GgufValueType.STRING;
  if (typeof value === 'boolean') return GgufValueType.BOOL;
  if (typeof value === 'bigint') return value < 0n ? GgufValueType.INT64 : GgufValueType.UINT64;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return GgufValueType.FLOAT32;
    if (value >= 0 && value <= 0xffffffff) return GgufValueType.UINT32;
    if (value < 0 && value >= -0x80000000) return GgufValueType.INT32;
    return value < 0 ? GgufValueType.INT64 : GgufValueType.UINT64;
  }
  throw new Error(`metadata '${key}': cannot infer the type of an array element here`);
}

/** The element type of an array given no type: the narrowest that fits every element. */
function inferElementType(key: string, values: GgufValue[]): GgufValueType {
  if (values.length === 0) throw new Error(`metadata '${key}': an empty array needs an explicit element type`);
  if (values.every((v) => Array.isArray(v))) return GgufValueType.ARRAY;
  if (values.every((v) => typeof v === 'string')) return GgufValueType.STRING;
  if (values.every((v) => typeof v === 'boolean')) return GgufValueType.BOOL;
  if (values.every((v) => typeof v === 'bigint')) {
    return values.some((v) => (v as bigint) < 0n) ? GgufValueType.INT64 : GgufValueType.UINT64;
  }
  if (values.every((v) => typeof v === 'number')) {
    if (!values.every(isInt)) return GgufValueType.FLOAT32;
    const nums = values as number[];
    if (nums.every((v) => v >= -0x80000000 && v <= 0x7fffffff)) return GgufValueType.INT32;
    if (nums.every((v) => v >= 0 && v <= 0xffffffff)) return GgufValueType.UINT32;
    return GgufValueType.INT64;
  }
  throw new Error(`metadata '${key}': array elements of mixed kinds need an explicit element type`);
}

const INT_RANGE: Partial<Record<GgufValueType, [number, number]>> = {
  [GgufValueType.UINT8]: [0, 0xff], [GgufValueType.INT8]: [-0x80, 0x7f],
  [GgufValueType.UINT16]: [0, 0xffff], [GgufValueType.INT16]: [-0x8000, 0x7fff],
  [GgufValueType.UINT32]: [0, 0xffffffff], [GgufValueType.INT32]: [-0x80000000, 0x7fffffff],
};

function writeScalar(b: ByteBuilder, type: GgufValueType, v: GgufValue, what: string): void {
  const bad = (want: string) => new Error(`metadata ${what}: ${want} expected, got ${typeof v === 'bigint' ? `${v}n` : JSON.stringify(v)}`);
  const range = INT_RANGE[type];
  if (range) {
    if (!isInt(v) || v < range[0] || v > range[1]) throw bad(`an integer in [${range[0]}, ${range[1]}]`);
  }
  switch (type) {
    case GgufValueType.UINT8: b.u8(v as number); return;
    case GgufValueType.INT8: b.i8(v as number); return;
    case GgufValueType.UINT16: b.u16(v as number); return;
    case GgufValueType.INT16: b.i16(v as number); return;
    case GgufValueType.UINT32: b.u32(v as number); return;
    case GgufValueType.INT32: b.i32(v as number); return;
    case GgufValueType.FLOAT32:
    case GgufValueType.FLOAT64:
      if (typeof v !== 'number') throw bad('a number');
      if (type === GgufValueType.FLOAT32) b.f32(v);
      else b.f64(v);
      return;
    case GgufValueType.BOOL:
      if (typeof v !== 'boolean') throw bad('a boolean');
      b.u8(v ? 1 : 0);
      return;
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw bad('a string');
      b.string(v);
      return;
    case GgufValueType.UINT64:
    case GgufValueType.INT64: {
      const big = typeof v === 'bigint' ? v : isInt(v) && Number.isSafeInteger(v) ? BigInt(v) : undefined;
      if (big === undefined) throw bad('a bigint or a safe integer');
      const unsigned = type === GgufValueType.UINT64;
      if (unsigned ? big < 0n || big > 0xffffffffffffffffn : big < -(1n << 63n) || big >= 1n << 63n) {
        throw bad(unsigned ? 'an unsigned 64-bit integer' : 'a signed 64-bit integer');
      }
      if (unsigned) b.u64(big);
      else b.i64(big);
      return;
    }
    default:
      throw new Error(`metadata ${what}: value type ${type} is not a scalar`);
  }
}

/** Writes value type + value of one metadata entry [gguf, gguf_metadata_kv_t]. */
function writeValue(b: ByteBuilder, key: string, value: GgufValue, forced: GgufValueType | undefined, what: string, depth = 0): GgufValueType {
  if (depth > 16) throw new Error(`metadata '${key}': arrays nested too deep`);
  if (Array.isArray(value)) {
    // [gguf] array: u32 element type, u64 count, the elements
    const element = value.length > 0 && value.every((v) => Array.isArray(v))
      ? GgufValueType.ARRAY
      : forced ?? inferElementType(key, value);
    b.u32(element);
    b.u64(BigInt(value.length));
    if (element === GgufValueType.ARRAY) {
      // Every inner array carries its own element type; they share the forced or inferred one.
      const inner = forced ?? inferElementType(key, leaves(value));
      for (let i = 0; i < value.length; i++) writeArrayBody(b, key, value[i]!, inner, `${what}[${i}]`, depth + 1);
    } else {
      for (let i = 0; i < value.length; i++) writeScalar(b, element, value[i]!, `${what}[${i}]`);
    }
    return GgufValueType.ARRAY;
  }
  const type = forced ?? inferType(key, value);
  writeScalar(b, type, value, what);
  return type;
}

/** The non-array values inside nested arrays. */
function leaves(values: GgufValue[], out: GgufValue[] = []): GgufValue[] {
  for (const v of values) {
    if (Array.isArray(v)) leaves(v, out);
    else out.push(v);
  }
  return out;
}

function writeArrayBody(b: ByteBuilder, key: string, value: GgufValue, inner: GgufValueType, what: string, depth: number): void {
  if (!Array.isArray(value)) throw new Error(`metadata ${what}: an array expected (the array mixes arrays and scalars)`);
  writeValue(b, key, value, inner, what, depth);
}

/** Encodes the header: magic, version, counts, metadata, tensor infos (no padding). */
function encodeHeader(opts: GgufWriteOptions, entries: GgufMetadataEntry[], offsets: number[]): Buffer {
  const b = new ByteBuilder();
  b.bytes(GGUF_MAGIC);
  b.u32(opts.version ?? 3);
  b.u64(BigInt(opts.tensors.length));
  b.u64(BigInt(entries.length));
  const seen = new Set<string>();
  for (const [key, value, type] of entries) {
    // [gguf, gguf_metadata_kv_t.key]: ASCII, at most 65535 bytes; duplicates make the file invalid
    if (!/^[\x20-\x7e]{1,65535}$/.test(key)) throw new Error(`metadata key ${JSON.stringify(key)} is not 1 to 65535 printable ASCII characters`);
    if (seen.has(key)) throw new Error(`metadata key '${key}' is given twice`);
    seen.add(key);
    const forced = type === undefined ? undefined : SCALAR[type];
    if (type !== undefined && forced === undefined) throw new Error(`metadata '${key}': unknown type '${type}'`);
    b.string(key);
    const typeAt = b.length;
    b.u32(0); // value type, patched below once known
    const written = writeValue(b, key, value, forced, `'${key}'`);
    b.view().writeUInt32LE(written, typeAt);
  }
  opts.tensors.forEach((t, i) => {
    // [gguf, gguf_tensor_info_t]
    b.string(t.name);
    b.u32(t.dims.length);
    for (const d of t.dims) b.u64(BigInt(d));
    b.u32(GGML_TYPES[t.type].id);
    b.u64(BigInt(offsets[i]!));
  });
  return b.view();
}

/** Writes a GGUF file; returns its size and sha256 (hex). */
export function writeGguf(path: string, opts: GgufWriteOptions): GgufWriteResult {
  const entries = [...opts.metadata];
  const given = entries.find(([k]) => k === 'general.alignment');
  let alignment = opts.alignment ?? (given ? Number(given[1]) : GGUF_DEFAULT_ALIGNMENT);
  if (given && opts.alignment !== undefined && Number(given[1]) !== opts.alignment) {
    throw new Error(`alignment ${opts.alignment} differs from the metadata's general.alignment ${String(given[1])}`);
  }
  if (!Number.isInteger(alignment) || alignment < 8 || alignment % 8 !== 0 || alignment > 1 << 30) {
    // [gguf, general.alignment]: "it must be a multiple of 8"
    throw new Error(`alignment must be a positive multiple of 8, got ${alignment}`);
  }
  if (!given && alignment !== GGUF_DEFAULT_ALIGNMENT) entries.push(['general.alignment', alignment, 'u32']);
  alignment = Math.trunc(alignment);

  const names = new Set<string>();
  const sizes = opts.tensors.map((t) => {
    if (!GGML_TYPES[t.type]) throw new Error(`tensor '${t.name}': unknown ggml type ${String(t.type)}`);
    const nameBytes = Buffer.byteLength(t.name, 'utf8');
    if (nameBytes === 0 || nameBytes > GGUF_MAX_NAME_BYTES) throw new Error(`tensor name '${t.name}' must be 1 to ${GGUF_MAX_NAME_BYTES} bytes`);
    if (names.has(t.name)) throw new Error(`tensor '${t.name}' is given twice`);
    names.add(t.name);
    const bytes = ggmlTensorBytes(t.type, t.dims, `tensor '${t.name}'`);
    if (t.data instanceof Uint8Array && t.data.byteLength !== bytes) {
      throw new Error(`tensor '${t.name}': ${t.type} [${t.dims.join(', ')}] needs ${bytes} bytes, got ${t.data.byteLength}`);
    }
    return bytes;
  });
  const offsets: number[] = [];
  let rel = 0;
  for (const size of sizes) {
    offsets.push(rel);
    rel = alignOffset(rel + size, alignment);
  }
  const header = encodeHeader(opts, entries, offsets);

  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  const hash = createHash('sha256');
  let written = 0;
  const zeros = new Uint8Array(alignment);
  const put = (chunk: Uint8Array) => {
    let done = 0;
    while (done < chunk.byteLength) done += writeSync(fd, chunk, done, chunk.byteLength - done);
    hash.update(chunk);
    written += chunk.byteLength;
  };
  const pad = () => {
    const n = alignOffset(written, alignment) - written;
    if (n > 0) put(zeros.subarray(0, n));
  };
  try {
    put(header);
    pad();
    opts.tensors.forEach((t, i) => {
      const start = written;
      if (t.data instanceof Uint8Array) put(t.data);
      else for (const chunk of t.data()) put(chunk);
      if (written - start !== sizes[i]) {
        throw new Error(`tensor '${t.name}': its producer gave ${written - start} bytes, ${t.type} [${t.dims.join(', ')}] needs ${sizes[i]}`);
      }
      pad();
    });
    closeSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  renameSync(tmp, path);
  return { bytes: written, sha256: hash.digest('hex') };
}
