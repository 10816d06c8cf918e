// The GGUF format's constants, value and tensor types, and tensor sizes, from the GGUF
// specification (ggml/docs/gguf.md, cited as [gguf]) and ggml's block layouts: what the
// reader (gguf.ts) and the writer (gguf-write.ts) both hold to.

/** "GGUF" at the byte level: 0x47 0x47 0x55 0x46 [gguf, gguf_header_t.magic]. */
export const GGUF_MAGIC = Buffer.from('GGUF', 'latin1');
/** [gguf, general.alignment]: "If the alignment is not specified, assume it is 32." */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** [gguf, gguf_tensor_info_t.name]: "at most 64 bytes long". */
export const GGUF_MAX_NAME_BYTES = 64;
/** [gguf, gguf_tensor_info_t.n_dimensions]: "Currently at most 4" (GGML_MAX_DIMS). */
export const GGUF_MAX_DIMS = 4;

/** gguf_metadata_value_type [gguf]. */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Metadata values: u64/i64 come back as bigint, every other number as number. */
export type GgufValue = string | number | bigint | boolean | GgufValue[];

/** The value type of a key; `elementType` is the innermost element type of an array. */
export interface GgufValueTypeOf {
  type: GgufValueType;
  elementType?: GgufValueType;
}

/** enum ggml_type as the specification lists it [gguf, enum ggml_type], for messages. */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1',
  10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16',
  31: 'Q4_0_4_4', 32: 'Q4_0_4_8', 33: 'Q4_0_8_8', 34: 'TQ1_0', 35: 'TQ2_0',
  36: 'IQ4_NL_4_4', 37: 'IQ4_NL_4_8', 38: 'IQ4_NL_8_8', 39: 'MXFP4',
};

/** The ggml types we read. */
export type GgmlTypeName = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q6_K';

/**
 * Id and block layout of each type we read (ggml/src/ggml-common.h): values per block and
 * bytes per block, a row being a whole number of blocks. Q8_0 { f16 d; int8 qs[32] },
 * Q4_0 { f16 d; u8 qs[16] }, Q4_K { f16 d, dmin; u8 scales[12]; u8 qs[128] } (4.5 bits per
 * weight), Q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d } (6.5625 bits per weight).
 */
export const GGML_TYPES: Readonly<Record<GgmlTypeName, { id: number; blockValues: number; blockBytes: number }>> = {
  F32: { id: 0, blockValues: 1, blockBytes: 4 },
  F16: { id: 1, blockValues: 1, blockBytes: 2 },
  Q4_0: { id: 2, blockValues: 32, blockBytes: 18 },
  Q8_0: { id: 8, blockValues: 32, blockBytes: 34 },
  Q4_K: { id: 12, blockValues: 256, blockBytes: 144 },
  Q6_K: { id: 14, blockValues: 256, blockBytes: 210 },
  BF16: { id: 30, blockValues: 1, blockBytes: 2 },
};

/** The supported types by their ggml_type number. */
export const GGML_TYPE_BY_ID: ReadonlyMap<number, GgmlTypeName> = new Map<number, GgmlTypeName>(
  (Object.entries(GGML_TYPES) as [GgmlTypeName, { id: number }][]).map(([name, t]) => [t.id, name]),
);

export function ggmlTypeName(id: number): string {
  return GGML_TYPE_NAMES[id] ?? `unknown type ${id}`;
}

/**
 * Bytes of a tensor: ne0 (dims[0], the row length) must be a whole number of blocks; the
 * rows are dims[1] × dims[2] × ... Throws a message naming `what` when the shape does not fit.
 */
export function ggmlTensorBytes(type: GgmlTypeName, dims: readonly number[], what = 'tensor'): number {
  const t = GGML_TYPES[type];
  if (dims.length < 1 || dims.length > GGUF_MAX_DIMS || dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new Error(`${what}: dims [${dims.join(', ')}] are not 1 to ${GGUF_MAX_DIMS} non-negative integers`);
  }
  const ne0 = dims[0]!;
  if (ne0 % t.blockValues !== 0) {
    throw new Error(`${what}: ${type} rows are blocks of ${t.blockValues} values, but the row length (dims[0]) is ${ne0}`);
  }
  let rows = 1;
  for (let i = 1; i < dims.length; i++) rows *= dims[i]!;
  const bytes = rows * (ne0 / t.blockValues) * t.blockBytes;
  if (!Number.isSafeInteger(bytes)) throw new Error(`${what}: dims [${dims.join(', ')}] are too large`);
  return bytes;
}

export interface GgufTensorInfo {
  name: string;
  type: GgmlTypeName;
  /** The ggml_type number as stored. */
  typeId: number;
  /** As stored: dims[0] is the innermost (row length); a [rows][cols] matrix has dims [cols, rows]. */
  dims: number[];
  /** Absolute offset of the tensor's first byte in the file. */
  offset: number;
  /** The offset as stored, relative to the data section. */
  relativeOffset: number;
  bytes: number;
}

export function alignOffset(offset: number, alignment: number): number {
  // [gguf] align_offset: offset + (ALIGNMENT - (offset % ALIGNMENT)) % ALIGNMENT
  return offset + ((alignment - (offset % alignment)) % alignment);
}
