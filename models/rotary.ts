// Row orders of the q and k projections. Our forward passes rotate interleaved pairs
// (x[2i], x[2i+1]) of each head (types.ts); checkpoints that rotate half-split pairs
// (x[i], x[i + headSize/2]) -- Hugging Face Llama folders, whose converter permutes Meta's
// rows (convert_llama_weights_to_hf.py permute), and GGUF qwen2, which llama.cpp runs with
// NEOX rope on unpermuted rows -- have their q/k rows (and biases) reordered on load and
// back on export. Rows move whole, so this works on any stored encoding.
import { rowBytes, type WeightMatrix } from './weights.js';

/**
 * For each row r of our interleaved layout, the half-split row (qwen2's stored layout) it
 * comes from: row 2i + a of a head is row a·headSize/2 + i (LlamaModel.permute).
 */
export function halfSplitRowOrder(nHeads: number, headSize: number): Int32Array {
  const half = headSize / 2;
  const order = new Int32Array(nHeads * headSize);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let a = 0; a < 2; a++) order[h * headSize + 2 * i + a] = h * headSize + a * half + i;
    }
  }
  return order;
}

export function invertOrder(order: Int32Array): Int32Array {
  const inv = new Int32Array(order.length);
  for (let r = 0; r < order.length; r++) inv[order[r]!] = r;
  return inv;
}

/** Row r of the result is row order[r] of `m` (bytes moved row by row, any encoding). */
export function permuteRows(m: WeightMatrix, order: Int32Array): WeightMatrix {
  if (order.length !== m.rows) throw new Error(`row order of ${order.length} rows for a matrix of ${m.rows}`);
  const rb = rowBytes(m.type, m.cols);
  const data = new Uint8Array(m.data.byteLength);
  for (let r = 0; r < m.rows; r++) data.set(m.data.subarray(order[r]! * rb, order[r]! * rb + rb), r * rb);
  return { ...m, data };
}

export function permuteVector(v: Float32Array, order: Int32Array): Float32Array {
  if (order.length !== v.length) throw new Error(`row order of ${order.length} for a vector of ${v.length}`);
  const out = new Float32Array(v.length);
  for (let r = 0; r < v.length; r++) out[r] = v[order[r]!]!;
  return out;
}

/** Half-split rows of a q/k matrix to our interleaved rows (undo=true), or back (undo=false). */
export function permuteRotary(w: WeightMatrix, nHeads: number, headSize: number, undo: boolean): WeightMatrix {
  const order = halfSplitRowOrder(nHeads, headSize);
  return permuteRows(w, undo ? order : invertOrder(order));
}

/** permuteRotary on a vector (a q or k bias, or one column of values). */
export function permuteRotaryVector(v: Float32Array, nHeads: number, headSize: number, undo: boolean): Float32Array {
  const order = halfSplitRowOrder(nHeads, headSize);
  return permuteVector(v, undo ? order : invertOrder(order));
}
