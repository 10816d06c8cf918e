// Reader of GGUF, llama.cpp's model container. The format is that of the GGUF specification,
// ggml/docs/gguf.md ("File Structure"; cited below as [gguf]), little-endian:
//
//   header        magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count
//   metadata      metadata_kv_count × { string key, u32 value_type, value }
//   tensor infos  tensor_count × { string name, u32 n_dimensions, u64 dims[n] (dims[0] innermost),
//                                  u32 ggml_type, u64 offset (relative to the data section) }
//   padding       to the next multiple of general.alignment (default 32)
//   tensor data   each tensor at its offset, every offset a multiple of the alignment
//
// A string is { u64 length, UTF-8 bytes } with no terminator [gguf, gguf_string_t].
//
// Our loaders read with synchronous positional reads, an agent pulling only its own block
// range out of a file of several GB. So this parser is our own: it reads the header in
// chunks with fs.readSync (growing the chunk as it goes: a tokenizer array can hold 150k
// strings), never the whole file, and a tensor's bytes only when asked. @huggingface/gguf
// is async and fetch/range based; we use it only in the tests, as the independent reader
// that checks our writer.
//
// Every count read from the file is checked against the bytes that remain before anything
// is allocated from it, so a corrupt or hostile file fails with a message, not with an
// out-of-memory.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

export * from './gguf-format.js';
import { GGML_TYPE_BY_ID, GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_DIMS, GGUF_MAX_NAME_BYTES, GgufValueType, alignOffset, ggmlTensorBytes,
  ggmlTypeName, type GgufTensorInfo, type GgufValue, type GgufValueTypeOf } from './gguf-format.js';

const MAX_ARRAY_DEPTH = 16;

function readFully(fd: number, into: Uint8Array, position: number, source: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const n = readSync(fd, into, done, into.byteLength - done, position + done);
    if (n === 0) throw new Error(`${source}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

const FIRST_CHUNK = 64 * 1024;
const MAX_CHUNK = 16 * 1024 * 1024;

/** Smallest encoding of a value of each type (strings: the u64 length; arrays: type + length). */
function minValueBytes(type: number): number | undefined {
  switch (type) {
    case GgufValueType.UINT8: case GgufValueType.INT8: case GgufValueType.BOOL: return 1;
    case GgufValueType.UINT16: case GgufValueType.INT16: return 2;
    case GgufValueType.UINT32: case GgufValueType.INT32: case GgufValueType.FLOAT32: return 4;
    case GgufValueType.UINT64: case GgufValueType.INT64: case GgufValueType.FLOAT64: case GgufValueType.STRING: return 8;
    case GgufValueType.ARRAY: return 12;
    default: return undefined;
  }
}

/** Sequential reads over the header through a window of the file, refilled with positional reads. */
class HeaderCursor {
  pos = 0;
  private buf = Buffer.alloc(0);
  private start = 0;
  private chunk = FIRST_CHUNK;
  /** Bytes read from the file so far (the windows, some bytes twice where windows overlap). */
  bytesRead = 0;
  /** Innermost element type of the last array read (arrays of arrays report their elements'). */
  lastElementType: GgufValueType | undefined;

  constructor(private readonly fd: number, readonly fileSize: number, private readonly source: string) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Makes bytes [pos, pos + n) available in the window; returns their index in it. */
  private need(n: number, what: string): number {
    if (n > this.fileSize - this.pos) {
      throw new Error(`${this.source}: truncated GGUF file: ${what} at byte ${this.pos} needs ${n} bytes, ` +
        `but the file ends at byte ${this.fileSize}`);
    }
    if (this.pos < this.start || this.pos + n > this.start + this.buf.length) {
      const size = Math.min(this.fileSize - this.pos, Math.max(n, this.chunk));
      this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
      this.buf = Buffer.allocUnsafe(size);
      readFully(this.fd, this.buf, this.pos, this.source);
      this.bytesRead += size;
      this.start = this.pos;
    }
    const at = this.pos - this.start;
    this.pos += n;
    return at;
  }

  u8(what: string): number { const at = this.need(1, what); return this.buf[at]!; }
  u32(what: string): number { const at = this.need(4, what); return this.buf.readUInt32LE(at); }
  u64(what: string): bigint { const at = this.need(8, what); return this.buf.readBigUInt64LE(at); }

  /** A u64 that must fit in a JavaScript number. */
  count(what: string): number {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${this.source}: corrupt GGUF file: ${what} is ${v}`);
    return Number(v);
  }

  /** [gguf, gguf_string_t]: u64 length, then that many UTF-8 bytes. */
  string(what: string, maxBytes = Infinity): string {
    const len = this.count(`length of ${what}`);
    if (len > maxBytes) throw new Error(`${this.source}: corrupt GGUF file: ${what} is ${len} bytes long (at most ${maxBytes})`);
    const at = this.need(len, what);
    return this.buf.toString('utf8', at, at + len);
  }

  value(type: number, what: string, depth = 0): GgufValue {
    switch (type) {
      case GgufValueType.UINT8: return this.u8(what);
      case GgufValueType.INT8: { const at = this.need(1, what); return this.buf.readInt8(at); }
      case GgufValueType.UINT16: { const at = this.need(2, what); return this.buf.readUInt16LE(at); }
      case GgufValueType.INT16: { const at = this.need(2, what); return this.buf.readInt16LE(at); }
      case GgufValueType.UINT32: return this.u32(what);
      case GgufValueType.INT32: { const at = this.need(4, what); return this.buf.readInt32LE(at); }
      case GgufValueType.FLOAT32: { const at = this.need(4, what); return this.buf.readFloatLE(at); }
      case GgufValueType.BOOL: {
        // [gguf] "1-byte value where 0 is false and 1 is true. Anything else is invalid"
        const b = this.u8(what);
        if (b > 1) throw new Error(`${this.source}: corrupt GGUF file: ${what} is a bool of value ${b}`);
        return b === 1;
      }
      case GgufValueType.STRING: return this.string(what);
      case GgufValueType.UINT64: return this.u64(what);
      case GgufValueType.INT64: { const at = this.need(8, what); return this.buf.readBigInt64LE(at); }
      case GgufValueType.FLOAT64: { const at = this.need(8, what); return this.buf.readDoubleLE(at); }
      case GgufValueType.ARRAY: return this.array(what, depth + 1);
      default:
        throw new Error(`${this.source}: corrupt GGUF file: ${what} has value type ${type} (valid: 0 to 12)`);
    }
  }

  /** [gguf] array: u32 element type, u64 element count, the elements. */
  private array(what: string, depth: number): GgufValue[] {
    if (depth > MAX_ARRAY_DEPTH) throw new Error(`${this.source}: corrupt GGUF file: ${what} nests arrays deeper than ${MAX_ARRAY_DEPTH}`);
    const type = this.u32(`element type of ${what}`);
    this.lastElementType = type;
    const count = this.count(`length of ${what}`);
    const min = minValueBytes(type);
    if (min === undefined) throw new Error(`${this.source}: corrupt GGUF file: ${what} is an array of value type ${type} (valid: 0 to 12)`);
    if (count * min > this.remaining) {
      throw new Error(`${this.source}: corrupt or truncated GGUF file: ${what} claims ${count} elements, ` +
        `more than the ${this.remaining} bytes left could hold`);
    }
    const out: GgufValue[] = new Array<GgufValue>(count);
    const fixed = type === GgufValueType.STRING || type === GgufValueType.ARRAY ? 0 : min;
    if (fixed > 0 && type !== GgufValueType.BOOL) {
      // Fixed-size numbers: one window refill for the whole array, then plain reads.
      const at = this.need(count * fixed, what);
      const b = this.buf;
      switch (type) {
        case GgufValueType.UINT8: for (let i = 0; i < count; i++) out[i] = b[at + i]!; break;
        case GgufValueType.INT8: for (let i = 0; i < count; i++) out[i] = b.readInt8(at + i); break;
        case GgufValueType.UINT16: for (let i = 0; i < count; i++) out[i] = b.readUInt16LE(at + 2 * i); break;
        case GgufValueType.INT16: for (let i = 0; i < count; i++) out[i] = b.readInt16LE(at + 2 * i); break;
        case GgufValueType.UINT32: for (let i = 0; i < count; i++) out[i] = b.readUInt32LE(at + 4 * i); break;
        case GgufValueType.INT32: for (let i = 0; i < count; i++) out[i] = b.readInt32LE(at + 4 * i); break;
        case GgufValueType.FLOAT32: for (let i = 0; i < count; i++) out[i] = b.readFloatLE(at + 4 * i); break;
        case GgufValueType.UINT64: for (let i = 0; i < count; i++) out[i] = b.readBigUInt64LE(at + 8 * i); break;
        case GgufValueType.INT64: for (let i = 0; i < count; i++) out[i] = b.readBigInt64LE(at + 8 * i); break;
        case GgufValueType.FLOAT64: for (let i = 0; i < count; i++) out[i] = b.readDoubleLE(at + 8 * i); break;
      }
      return out;
    }
    for (let i = 0; i < count; i++) out[i] = this.value(type, `${what}[${i}]`, depth);
    return out;
  }
}

/**
 * An open GGUF file: its metadata and tensor directory, parsed at open; tensor bytes read on
 * demand with positional reads. Refuses files it cannot read faithfully: bad magic, versions
 * other than 2 and 3, big-endian files, truncated or corrupt headers, tensors past the end of
 * the file, and tensor types outside GGML_TYPES (naming the tensor and its type).
 */
export class GgufFile {
  readonly version: number;
  readonly metadata: Map<string, GgufValue>;
  readonly tensors: Map<string, GgufTensorInfo>;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
  /** Tensor bytes read so far through readTensor / readTensorRows. */
  bytesRead = 0;
  /** Bytes read to parse the header (in windows of 64 KiB, doubling up to 16 MiB). */
  readonly headerBytesRead: number;
  private readonly types: Map<string, GgufValueTypeOf>;
  private fd: number | undefined;

  private constructor(readonly path: string, fd: number) {
    this.fd = fd;
    const fileSize = fstatSync(fd).size;
    this.fileSize = fileSize;
    const c = new HeaderCursor(fd, fileSize, path);
    if (fileSize < 4) throw new Error(`${path}: not a GGUF file (${fileSize} bytes)`);
    const magic = Buffer.from([c.u8('magic'), c.u8('magic'), c.u8('magic'), c.u8('magic')]);
    if (!magic.equals(GGUF_MAGIC)) {
      throw new Error(`${path}: not a GGUF file (starts with ${JSON.stringify(magic.toString('latin1'))}, expected "GGUF")`);
    }
    const version = c.u32('version');
    if (version !== 2 && version !== 3) {
      const swapped = Buffer.alloc(4);
      swapped.writeUInt32BE(version);
      const be = swapped.readUInt32LE(0);
      if (be === 2 || be === 3) throw new Error(`${path}: big-endian GGUF files are not supported (version ${be} written big-endian)`);
      if (version === 1) throw new Error(`${path}: GGUF version 1 (32-bit counts) is not supported; convert the model again with a current llama.cpp`);
      throw new Error(`${path}: unsupported GGUF version ${version} (this reader knows versions 2 and 3)`);
    }
    this.version = version;
    // [gguf, "v2"]: counts are u64 from version 2 on.
    const tensorCount = c.count('tensor_count');
    const kvCount = c.count('metadata_kv_count');
    // A key-value pair takes at least 13 bytes (empty key, type, a one-byte value) and a
    // tensor info at least 32 (empty name, one dim, type, offset).
    if (kvCount * 13 + tensorCount * 32 > c.remaining) {
      throw new Error(`${path}: corrupt or truncated GGUF file: header claims ${tensorCount} tensors and ` +
        `${kvCount} metadata pairs, more than the ${c.remaining} bytes left could hold`);
    }

    this.metadata = new Map();
    this.types = new Map();
    for (let i = 0; i < kvCount; i++) {
      // [gguf, gguf_metadata_kv_t.key]: "at most 2^16-1/65535 bytes long"
      const key = c.string(`key of metadata pair ${i}`, 65535);
      const type = c.u32(`value type of '${key}'`);
      const value = c.value(type, `'${key}'`);
      if (this.metadata.has(key)) throw new Error(`${path}: corrupt GGUF file: metadata key '${key}' appears twice`);
      this.metadata.set(key, value);
      this.types.set(key, type === GgufValueType.ARRAY ? { type, elementType: c.lastElementType } : { type });
    }

    const alignment = this.metadata.get('general.alignment') ?? GGUF_DEFAULT_ALIGNMENT;
    const align = typeof alignment === 'bigint' ? Number(alignment) : alignment;
    if (typeof align !== 'number' || !Number.isSafeInteger(align) || align < 1 || align > 1 << 30) {
      throw new Error(`${path}: general.alignment must be a positive integer, got ${String(alignment)}`);
    }
    this.alignment = align;

    const infos: Omit<GgufTensorInfo, 'offset'>[] = [];
    const seen = new Set<string>();
    this.tensors = new Map();
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string(`name of tensor ${i}`, GGUF_MAX_NAME_BYTES);
      const nDims = c.u32(`n_dimensions of '${name}'`);
      if (nDims < 1 || nDims > GGUF_MAX_DIMS) {
        throw new Error(`${path}: corrupt GGUF file: tensor '${name}' has ${nDims} dimensions (1 to ${GGUF_MAX_DIMS} allowed)`);
      }
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.count(`dims[${d}] of '${name}'`));
      const typeId = c.u32(`type of '${name}'`);
      const relativeOffset = c.count(`offset of '${name}'`);
      const type = GGML_TYPE_BY_ID.get(typeId);
      if (type === undefined) {
        throw new Error(`${path}: tensor '${name}' has ggml type ${ggmlTypeName(typeId)} (${typeId}), which Heliomesh ` +
          `does not read; supported types: ${Object.keys(GGML_TYPES).join(', ')}`);
      }
      const bytes = ggmlTensorBytes(type, dims, `${path}: tensor '${name}'`);
      // [gguf, gguf_tensor_info_t.offset]: "Must be a multiple of ALIGNMENT."
      if (relativeOffset % align !== 0) {
        throw new Error(`${path}: corrupt GGUF file: tensor '${name}' is at data offset ${relativeOffset}, not a multiple of the alignment ${align}`);
      }
      if (seen.has(name)) throw new Error(`${path}: corrupt GGUF file: tensor '${name}' appears twice`);
      seen.add(name);
      infos.push({ name, type, typeId, dims, relativeOffset, bytes });
    }
    // [gguf, gguf_file_t._padding]: the data section starts at the aligned end of the tensor infos.
    this.dataOffset = alignOffset(c.pos, align);
    this.headerBytesRead = c.bytesRead;
    for (const t of infos) {
      const offset = this.dataOffset + t.relativeOffset;
      if (offset + t.bytes > fileSize) {
        throw new Error(`${path}: truncated GGUF file: tensor '${t.name}' (${t.type} [${t.dims.join(', ')}]) occupies bytes ` +
          `${offset} to ${offset + t.bytes}, but the file has ${fileSize}`);
      }
      this.tensors.set(t.name, { ...t, offset });
    }
  }

  static open(path: string): GgufFile {
    if (endianness() !== 'LE') throw new Error('GGUF tensors are read as little-endian; this host is big-endian');
    const fd = openSync(path, 'r');
    try {
      return new GgufFile(path, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** The stored value type of a metadata key. */
  metadataType(key: string): GgufValueTypeOf | undefined {
    return this.types.get(key);
  }

  tensor(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: no tensor named '${name}'`);
    return t;
  }

  /** The stored bytes of one tensor (a positional read of just those bytes). */
  readTensor(name: string): Uint8Array {
    const t = this.tensor(name);
    return this.readAt(t.offset, t.bytes);
  }

  /** Rows [from, to) of a tensor seen as [rows][dims[0]] (rows = dims[1] × dims[2] × ...). */
  readTensorRows(name: string, from: number, to: number): Uint8Array {
    const t = this.tensor(name);
    const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
    if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from <= to && to <= rows)) {
      throw new Error(`${this.path}: rows [${from}, ${to}) are outside tensor '${name}' of ${rows} rows`);
    }
    const rowBytes = rows === 0 ? 0 : t.bytes / rows;
    return this.readAt(t.offset + from * rowBytes, (to - from) * rowBytes);
  }

  /** Rows [from, to) of a tensor read into `dst` (their exact size), e.g. memory a kernel handed out. */
  readTensorRowsInto(name: string, from: number, to: number, dst: Uint8Array): void {
    const t = this.tensor(name);
    const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
    const rowBytes = rows === 0 ? 0 : t.bytes / rows;
    if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from <= to && to <= rows) || dst.byteLength !== (to - from) * rowBytes) {
      throw new Error(`${this.path}: rows [${from}, ${to}) of tensor '${name}' (${rows} rows) do not fit ${dst.byteLength} bytes`);
    }
    this.readAt(t.offset + from * rowBytes, dst.byteLength, dst);
  }

  private readAt(offset: number, length: number, into?: Uint8Array): Uint8Array {
    if (this.fd === undefined) throw new Error(`${this.path}: GGUF file is closed`);
    const out = into ?? new Uint8Array(length);
    readFully(this.fd, out, offset, this.path);
    this.bytesRead += length;
    return out;
  }

  close(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
