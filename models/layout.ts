// The weights as the TF.js forward pass lays them out, and the sizes it works with. Matrices
// are stored transposed, [in][out], because the wasm backend's fast (XNNPACK) matmul path
// takes an untransposed right operand; with transposeB it falls back to a naive loop (4x
// slower measured, see models/README.md). The RMSNorm gains are folded into the rows of the
// matrices that follow them, and 1/sqrt(headSize) into the q columns:
// W·(g⊙x) = (W·diag(g))·x, exact up to rounding.
import * as tf from '@tensorflow/tfjs';
import type { LayerWeights, LlamaConfig } from './types.js';

/** A layer's weights as the forward pass uses them. */
export interface PreparedLayer {
  /** [dim][qDim + 2·kvDim]: q (scaled by 1/sqrt(headSize)), k, v columns; attnNorm folded in. */
  wqkv: tf.Tensor2D;
  /** [qDim][dim] */
  wo: tf.Tensor2D;
  /** [dim][2·hiddenDim]: gate (w1) then up (w3) columns; ffnNorm folded in. */
  w13: tf.Tensor2D;
  /** [hiddenDim][dim] */
  w2: tf.Tensor2D;
}

/** Sizes derived from the config, named as in run.c. */
export interface Geometry {
  dim: number;
  hiddenDim: number;
  headSize: number;
  nHeads: number;
  nKvHeads: number;
  /** query heads per KV head (run.c: kv_mul) */
  kvMul: number;
  qDim: number;
  kvDim: number;
}

export function geometryOf(config: LlamaConfig): Geometry {
  const headSize = config.dim / config.nHeads;
  return {
    dim: config.dim,
    hiddenDim: config.hiddenDim,
    headSize,
    nHeads: config.nHeads,
    nKvHeads: config.nKvHeads,
    kvMul: config.nHeads / config.nKvHeads,
    qDim: config.nHeads * headSize,
    kvDim: config.nKvHeads * headSize,
  };
}

/**
 * Writes `w` ([rows][cols], row-major) transposed into `dst` ([cols][dstWidth]) starting at
 * column `colOffset`, multiplying source column c by `inScale[c]` and everything by `scale`.
 */
function transposeInto(dst: Float32Array, dstWidth: number, colOffset: number, w: Float32Array, rows: number,
  cols: number, inScale?: Float32Array, scale = 1): void {
  if (w.length !== rows * cols) throw new Error(`weight matrix has ${w.length} values, expected ${rows}x${cols}`);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    for (let c = 0; c < cols; c++) {
      dst[c * dstWidth + colOffset + r] = w[src + c]! * (inScale ? inScale[c]! : 1) * scale;
    }
  }
}

export function prepareLayer(g: Geometry, layer: LayerWeights): PreparedLayer {
  const { dim, hiddenDim, qDim, kvDim, headSize } = g;
  const qkvWidth = qDim + 2 * kvDim;
  const qkv = new Float32Array(dim * qkvWidth);
  transposeInto(qkv, qkvWidth, 0, layer.wq, qDim, dim, layer.attnNorm, 1 / Math.sqrt(headSize));
  transposeInto(qkv, qkvWidth, qDim, layer.wk, kvDim, dim, layer.attnNorm);
  transposeInto(qkv, qkvWidth, qDim + kvDim, layer.wv, kvDim, dim, layer.attnNorm);
  const wo = new Float32Array(qDim * dim);
  transposeInto(wo, dim, 0, layer.wo, dim, qDim);
  const w13 = new Float32Array(dim * 2 * hiddenDim);
  transposeInto(w13, 2 * hiddenDim, 0, layer.w1, hiddenDim, dim, layer.ffnNorm);
  transposeInto(w13, 2 * hiddenDim, hiddenDim, layer.w3, hiddenDim, dim, layer.ffnNorm);
  const w2 = new Float32Array(hiddenDim * dim);
  transposeInto(w2, dim, 0, layer.w2, dim, hiddenDim);
  return {
    wqkv: tf.tensor2d(qkv, [dim, qkvWidth]),
    wo: tf.tensor2d(wo, [qDim, dim]),
    w13: tf.tensor2d(w13, [dim, 2 * hiddenDim]),
    w2: tf.tensor2d(w2, [hiddenDim, dim]),
  };
}
