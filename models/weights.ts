// Weight matrices as the file stores them. A matrix is row-major [rows][cols] (PyTorch's
// Linear layout: rows = out features, cols = in features) in one of the element types below,
// kept in its stored encoding from the file to the kernel: nothing here expands a whole
// matrix to f32 unless a caller asks for it (the reference pass, tests, conversion).
//
// Block layouts are ggml's (ggml/src/ggml-common.h; the GGUF specification,
// ggml/docs/gguf.md, "GGML type"), little-endian:
// - Q8_0: blocks of 32 values, { f16 d; int8 qs[32] } = 34 bytes; x = d * qs[i].
// - Q4_0: blocks of 32 values, { f16 d; uint8 qs[16] } = 18 bytes; value i < 16 is the low
//   nibble of qs[i], value i + 16 its high nibble; x = d * (nibble - 8).
// ggml's reference quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref) are followed,
// so a matrix we quantize holds the bytes llama.cpp would write for the same floats.
import { decodeFloats, encodeFloats } from './f16.js';

export type WeightType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';
export const WEIGHT_TYPES: readonly WeightType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

export interface WeightMatrix {
  type: WeightType;
  rows: number;
  cols: number;
  /** rows × rowBytes(type, cols) bytes, row after row. */
  data: Uint8Array;
}

/** Hands out the memory a matrix is read into (a kernel's own, so a stage never holds its weights twice). */
export type MatrixAllocator = (type: WeightType, rows: number, cols: number) => Uint8Array;

/** Values per block and bytes per block of each type (a plain float is a block of one). */
export const BLOCK: Record<WeightType, { values: number; bytes: number }> = {
  f32: { values: 1, bytes: 4 },
  f16: { values: 1, bytes: 2 },
  bf16: { values: 1, bytes: 2 },
  q8_0: { values: 32, bytes: 34 },
  q4_0: { values: 32, bytes: 18 },
};

export function rowBytes(type: WeightType, cols: number): number {
  const b = BLOCK[type];
  if (cols % b.values !== 0) throw new Error(`${type} rows need a multiple of ${b.values} columns, got ${cols}`);
  return (cols / b.values) * b.bytes;
}

export function matrixBytes(type: WeightType, rows: number, cols: number): number {
  return rows * rowBytes(type, cols);
}

/** Checks that `m.data` has exactly the bytes its type and shape call for. */
export function checkMatrix(m: WeightMatrix, what = 'weight matrix'): WeightMatrix {
  const want = matrixBytes(m.type, m.rows, m.cols);
  if (m.data.byteLength !== want) {
    throw new Error(`${what}: ${m.type} [${m.rows}][${m.cols}] needs ${want} bytes, got ${m.data.byteLength}`);
  }
  return m;
}

/** Wraps f32 values (no copy). */
export function f32Matrix(values: Float32Array, rows: number, cols: number): WeightMatrix {
  if (values.length !== rows * cols) throw new Error(`weight matrix has ${values.length} values, expected ${rows}x${cols}`);
  return { type: 'f32', rows, cols, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** f32 values of rows [from, to) of `m`. */
export function dequantizeRows(m: WeightMatrix, from = 0, to = m.rows): Float32Array {
  if (from < 0 || to > m.rows || from > to) throw new Error(`rows [${from}, ${to}) are outside [0, ${m.rows})`);
  const rb = rowBytes(m.type, m.cols);
  const bytes = m.data.subarray(from * rb, to * rb);
  const count = (to - from) * m.cols;
  switch (m.type) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return decodeFloats(bytes, m.type, count);
    case 'q8_0':
    case 'q4_0':
      return dequantizeBlocks(bytes, m.type, count);
  }
}

/** The whole matrix as f32 (for the reference pass and conversions, never for serving). */
export function dequantize(m: WeightMatrix): Float32Array {
  return dequantizeRows(m, 0, m.rows);
}

function dequantizeBlocks(bytes: Uint8Array, type: 'q8_0' | 'q4_0', count: number): Float32Array {
  const { bytes: bb } = BLOCK[type];
  const nBlocks = count / 32;
  const scales = decodeFloats(gatherScales(bytes, nBlocks, bb), 'f16', nBlocks);
  const out = new Float32Array(count);
  for (let b = 0; b < nBlocks; b++) {
    const d = scales[b]!;
    const q = b * bb + 2;
    const o = b * 32;
    if (type === 'q8_0') {
      for (let i = 0; i < 32; i++) out[o + i] = d * ((bytes[q + i]! << 24) >> 24);
    } else {
      for (let i = 0; i < 16; i++) {
        const byte = bytes[q + i]!;
        out[o + i] = d * ((byte & 0x0f) - 8);
        out[o + i + 16] = d * ((byte >> 4) - 8);
      }
    }
  }
  return out;
}

/** The f16 scale of each block, packed together. */
function gatherScales(bytes: Uint8Array, nBlocks: number, blockBytes: number): Uint8Array {
  const s = new Uint8Array(nBlocks * 2);
  for (let b = 0; b < nBlocks; b++) {
    s[2 * b] = bytes[b * blockBytes]!;
    s[2 * b + 1] = bytes[b * blockBytes + 1]!;
  }
  return s;
}

/** Encodes f32 values [rows][cols] as `type`. */
export function quantize(values: Float32Array, rows: number, cols: number, type: WeightType): WeightMatrix {
  if (values.length !== rows * cols) throw new Error(`weight matrix has ${values.length} values, expected ${rows}x${cols}`);
  switch (type) {
    case 'f32':
      return { type, rows, cols, data: encodeFloats(values, 'f32') };
    case 'f16':
      return { type, rows, cols, data: encodeFloats(values, 'f16') };
    case 'bf16':
      return { type, rows, cols, data: encodeBf16(values) };
    case 'q8_0':
    case 'q4_0': {
      const data = new Uint8Array(matrixBytes(type, rows, cols));
      quantizeBlocks(values, type, data);
      return { type, rows, cols, data };
    }
  }
}

/** bf16 by round-to-nearest-even of the upper half of each float32 (NaN kept quiet). */
function encodeBf16(values: Float32Array): Uint8Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i]!;
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/** C's roundf: halves away from zero (Math.round takes them towards +∞). */
function roundAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

/** ggml's reference Q8_0 / Q4_0 quantizer on `values` (whole blocks of 32), written into `out`. */
export function quantizeBlocks(values: Float32Array, type: 'q8_0' | 'q4_0', out: Uint8Array): void {
  const { bytes: bb } = BLOCK[type];
  const nBlocks = values.length / 32;
  // the scales, as ggml's GGML_FP32_TO_FP16 rounds them (to nearest even), in one bulk conversion
  const scales = new Float32Array(nBlocks);
  for (let b = 0; b < nBlocks; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    const o = b * bb;
    if (type === 'q8_0') {
      // quantize_row_q8_0_ref: d = amax / 127, q = round(x / d)
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[i]!));
      const d = Math.fround(amax / 127);
      const id = d ? Math.fround(1 / d) : 0;
      scales[b] = d;
      for (let i = 0; i < 32; i++) out[o + 2 + i] = roundAway(Math.fround(x[i]! * id)) & 0xff;
    } else {
      // quantize_row_q4_0_ref: the value of largest magnitude (sign kept) maps to -8,
      // d = max / -8, q = min(15, trunc(x / d + 8.5))
      let amax = 0;
      let max = 0;
      for (let i = 0; i < 32; i++) {
        if (Math.abs(x[i]!) > amax) {
          amax = Math.abs(x[i]!);
          max = x[i]!;
        }
      }
      const d = Math.fround(max / -8);
      const id = d ? Math.fround(1 / d) : 0;
      scales[b] = d;
      for (let i = 0; i < 16; i++) {
        const lo = Math.min(15, Math.trunc(Math.fround(Math.fround(x[i]! * id) + 8.5)));
        const hi = Math.min(15, Math.trunc(Math.fround(Math.fround(x[i + 16]! * id) + 8.5)));
        out[o + 2 + i] = lo | (hi << 4);
      }
    }
  }
  const bits = encodeFloats(scales, 'f16');
  for (let b = 0; b < nBlocks; b++) {
    out[b * bb] = bits[2 * b]!;
    out[b * bb + 1] = bits[2 * b + 1]!;
  }
}
