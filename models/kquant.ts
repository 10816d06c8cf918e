// Q4_K and Q6_K, the "k-quant" types of llama.cpp's Q4_K_M files, and their conversion to
// Q8_0 on load (our kernels read f32, f16, bf16, Q8_0 and Q4_0; see weights.ts).
//
// Block layouts from ggml/src/ggml-common.h (QK_K = 256 values per super-block), little-endian:
//
//   block_q4_K (144 bytes, 4.5 bits per weight): { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }
//     8 sub-blocks of 32 values; sub-block j has a 6-bit scale sc_j and a 6-bit min m_j packed
//     in `scales` (get_scale_min_k4 below); value x = d·sc_j·q − dmin·m_j with q a 4-bit quant.
//     The 256 values run in 4 chunks of 64: chunk c holds sub-blocks 2c (low nibbles of
//     qs[32c .. 32c+31]) and 2c+1 (their high nibbles).
//   block_q6_K (210 bytes, 6.5625 bits per weight): { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }
//     16 sub-blocks of 16 values with signed 8-bit scales; x = d·scale·(q − 32) with q a 6-bit
//     quant: low 4 bits in ql, high 2 bits in qh. The 256 values run in 2 halves of 128; in
//     half n, value 32k + l (k = 0..3, l = 0..31) takes the low (k = 0, 1) or high (k = 2, 3)
//     nibble of ql[64n + l + 32·(k & 1)], bits 2k..2k+1 of qh[32n + l], and scale
//     scales[8n + l/16 + 2k].
//
// The dequantizers follow ggml-quants.c's dequantize_row_q4_K and dequantize_row_q6_K
// operation by operation in float32 (Math.fround after each product and difference), so they
// give llama.cpp's values bit for bit (without FMA contraction).
//
// Conversion to Q8_0 (kquantToQ8_0) dequantizes one row at a time and requantizes each 32
// values as ggml's quantize_row_q8_0_ref does; no whole matrix is ever held as f32. The
// requantizer is weights.ts's quantizer (ggml's quantize_row_q8_0_ref)
// (tested), but rounds the f16 scale with bit operations: weights.ts goes through a
// Float16Array per block, which measured 1.4 µs per value here (28 minutes for the 1.2 G
// values of a 1B model) against about 60 ns per value (16 M values/s) for the whole
// conversion below.
// What it costs, measured by tests/models/gguf-kquant.test.ts:
// - memory: Q8_0 is 34 bytes per 32 values = 8.5 bits per weight, against 4.5 for Q4_K
//   (1.89× the bytes) and 6.5625 for Q6_K (1.30×). A Q4_K_M file, mostly Q4_K with some
//   Q6_K tensors, takes between those, near 1.8× its size on disk.
// - accuracy: relative RMS error of the Q8_0 values against the Q4_K / Q6_K dequantized
//   values, on Gaussian random weights (64 × 1024) quantized to Q4_K / Q6_K first by a
//   plain min/max encoder: 0.53 % for Q4_K and 0.53 % for Q6_K (Q8_0 rounds each value to
//   1/254 of its block's range, whatever came before). Against the original Gaussian values
//   the file's own error is 7.85 % (Q4_K) and 1.93 % (Q6_K), and after conversion 7.87 % and
//   2.00 %: the errors add about in quadrature, so the conversion adds 0.3 % (Q4_K) and 4 %
//   (Q6_K) to the error the file already carries.
import { matrixBytes, quantizeBlocks, rowBytes, type WeightMatrix } from './weights.js';

export type KQuantType = 'q4_k' | 'q6_k';

export const QK_K = 256;

/** Values and bytes per super-block (ggml-common.h: static_assert(sizeof(block_q4_K) == ...)). */
export const KQUANT_BLOCK: Readonly<Record<KQuantType, { values: number; bytes: number }>> = {
  q4_k: { values: QK_K, bytes: 2 + 2 + 12 + QK_K / 2 },
  q6_k: { values: QK_K, bytes: QK_K / 2 + QK_K / 4 + QK_K / 16 + 2 },
};

/** IEEE binary16 bits to their value (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

const f = Math.fround;


/**
 * ggml-quants.c get_scale_min_k4: scale and min of sub-block j (0..7) from the 12 packed
 * bytes at `q[at..]`. Sub-blocks 0..3: low 6 bits of bytes j and j+4. Sub-blocks 4..7: low
 * nibble (scale) and high nibble (min) of byte j+4, with their top 2 bits in the top bits of
 * bytes j-4 (scale) and j (min).
 */
function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j]! & 63, q[at + j + 4]! & 63];
  const sc = (q[at + j + 4]! & 0x0f) | ((q[at + j - 4]! >> 6) << 4);
  const m = (q[at + j + 4]! >> 4) | ((q[at + j]! >> 6) << 4);
  return [sc, m];
}

/** dequantize_row_q4_K: `count` values (a multiple of 256) from `bytes`, into `out` at `outAt`. */
export function dequantizeQ4K(bytes: Uint8Array, count: number, out = new Float32Array(count), outAt = 0): Float32Array {
  const nb = blocksOf('q4_k', bytes, count);
  for (let i = 0; i < nb; i++) {
    const b = i * 144;
    const d = halfToFloat(bytes[b]! | (bytes[b + 1]! << 8));
    const min = halfToFloat(bytes[b + 2]! | (bytes[b + 3]! << 8));
    const scales = b + 4;
    let q = b + 16;
    let y = outAt + i * QK_K;
    for (let j = 0, is = 0; j < QK_K; j += 64, is += 2) {
      const [sc1, m1q] = scaleMinK4(is, bytes, scales);
      const [sc2, m2q] = scaleMinK4(is + 1, bytes, scales);
      const d1 = f(d * sc1);
      const m1 = f(min * m1q);
      const d2 = f(d * sc2);
      const m2 = f(min * m2q);
      for (let l = 0; l < 32; l++) out[y + l] = f(f(d1 * (bytes[q + l]! & 0x0f)) - m1);
      for (let l = 0; l < 32; l++) out[y + 32 + l] = f(f(d2 * (bytes[q + l]! >> 4)) - m2);
      q += 32;
      y += 64;
    }
  }
  return out;
}

/** dequantize_row_q6_K: `count` values (a multiple of 256) from `bytes`, into `out` at `outAt`. */
export function dequantizeQ6K(bytes: Uint8Array, count: number, out = new Float32Array(count), outAt = 0): Float32Array {
  const nb = blocksOf('q6_k', bytes, count);
  for (let i = 0; i < nb; i++) {
    const b = i * 210;
    const d = halfToFloat(bytes[b + 208]! | (bytes[b + 209]! << 8));
    let ql = b;
    let qh = b + 128;
    let sc = b + 192;
    let y = outAt + i * QK_K;
    for (let n = 0; n < QK_K; n += 128) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = bytes[qh + l]!;
        const q1 = ((bytes[ql + l]! & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32]! & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = f(f(d * int8(bytes[sc + is]!)) * q1);
        out[y + l + 32] = f(f(d * int8(bytes[sc + is + 2]!)) * q2);
        out[y + l + 64] = f(f(d * int8(bytes[sc + is + 4]!)) * q3);
        out[y + l + 96] = f(f(d * int8(bytes[sc + is + 6]!)) * q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
  return out;
}

function int8(b: number): number {
  return (b << 24) >> 24;
}

function blocksOf(type: KQuantType, bytes: Uint8Array, count: number): number {
  const { values, bytes: bb } = KQUANT_BLOCK[type];
  if (!Number.isInteger(count) || count < 0 || count % values !== 0) {
    throw new Error(`${type} holds blocks of ${values} values; ${count} values is not a whole number of blocks`);
  }
  const nb = count / values;
  if (bytes.byteLength < nb * bb) throw new Error(`${type}: ${count} values need ${nb * bb} bytes, got ${bytes.byteLength}`);
  return nb;
}

/** f32 values of `count` k-quant values. */
export function dequantizeKQuant(type: KQuantType, bytes: Uint8Array, count: number): Float32Array {
  return type === 'q4_k' ? dequantizeQ4K(bytes, count) : dequantizeQ6K(bytes, count);
}

export function kquantRowBytes(type: KQuantType, cols: number): number {
  const { values, bytes } = KQUANT_BLOCK[type];
  if (cols % values !== 0) throw new Error(`${type} rows need a multiple of ${values} columns, got ${cols}`);
  return (cols / values) * bytes;
}

/**
 * Converts rows of a k-quant matrix to Q8_0, one row at a time: `src` holds `rows` rows of
 * `cols` values; their Q8_0 bytes are written into `out` from byte `outAt` (allocated when
 * not given). Returns `out`.
 */
export function kquantRowsToQ8_0(type: KQuantType, src: Uint8Array, rows: number, cols: number,
  out: Uint8Array = new Uint8Array(matrixBytes('q8_0', rows, cols)), outAt = 0): Uint8Array {
  const srcRow = kquantRowBytes(type, cols);
  const dstRow = rowBytes('q8_0', cols);
  if (src.byteLength < rows * srcRow) throw new Error(`${type}: ${rows} rows of ${cols} need ${rows * srcRow} bytes, got ${src.byteLength}`);
  if (out.byteLength < outAt + rows * dstRow) throw new Error(`q8_0 output too small for ${rows} rows of ${cols}`);
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    const bytes = src.subarray(r * srcRow, (r + 1) * srcRow);
    if (type === 'q4_k') dequantizeQ4K(bytes, cols, row);
    else dequantizeQ6K(bytes, cols, row);
    quantizeBlocks(row, 'q8_0', out.subarray(outAt + r * dstRow, outAt + (r + 1) * dstRow));
  }
  return out;
}

/** A whole k-quant matrix [rows][cols] as a Q8_0 WeightMatrix. */
export function kquantToQ8_0(type: KQuantType, data: Uint8Array, rows: number, cols: number): WeightMatrix {
  return { type: 'q8_0', rows, cols, data: kquantRowsToQ8_0(type, data, rows, cols) };
}
