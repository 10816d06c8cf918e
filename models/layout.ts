// The weights as the forward pass holds them, and the sizes it works with. Every matrix
// lives once, in its stored encoding, in the stage's matmul kernel (kernels/): TF.js holds
// no weight matrix, so XNNPACK never keeps a packed copy of one. The RMSNorm gains and the
// qwen2 biases stay small host vectors; the gains cannot be folded into quantized rows.
import type { KernelMatrix, MatmulRuntime } from './kernels/index.js';
import type { LayerWeights, LlamaConfig, MatrixKind } from './types.js';

/** A layer's weights as the forward pass uses them. */
export interface PreparedLayer {
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  /** q, k, v projections, run as one kernel call on the same input. */
  qkv: [KernelMatrix, KernelMatrix, KernelMatrix];
  /** qwen2's q, k, v biases (undefined entries for llama). */
  qkvBias: [Float32Array | undefined, Float32Array | undefined, Float32Array | undefined];
  wo: KernelMatrix;
  /** gate (w1) and up (w3), one kernel call. */
  gateUp: [KernelMatrix, KernelMatrix];
  /** down (w2) */
  down: KernelMatrix;
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

/** Uploads one layer's matrices into `kernel`; the caller can drop `layer` afterwards. */
export function prepareLayer(g: Geometry, layer: LayerWeights, kernel: MatmulRuntime): PreparedLayer {
  const expect = (name: MatrixKind, rows: number, cols: number) => {
    const m = layer[name];
    if (m.rows !== rows || m.cols !== cols) throw new Error(`${name} is [${m.rows}][${m.cols}], expected [${rows}][${cols}]`);
    return kernel.upload(m);
  };
  const { dim, hiddenDim, qDim, kvDim } = g;
  for (const [name, v, n] of [['bq', layer.bq, qDim], ['bk', layer.bk, kvDim], ['bv', layer.bv, kvDim]] as const) {
    if (v && v.length !== n) throw new Error(`${name} has ${v.length} values, expected ${n}`);
  }
  return {
    attnNorm: layer.attnNorm,
    ffnNorm: layer.ffnNorm,
    qkv: [expect('wq', qDim, dim), expect('wk', kvDim, dim), expect('wv', kvDim, dim)],
    qkvBias: [layer.bq, layer.bk, layer.bv],
    wo: expect('wo', dim, qDim),
    gateUp: [expect('w1', hiddenDim, dim), expect('w3', hiddenDim, dim)],
    down: expect('w2', dim, hiddenDim),
  };
}
