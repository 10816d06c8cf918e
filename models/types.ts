// The in-memory contract between the weight readers (llama2.c, safetensors, our shards)
// and the forward passes (TF.js and the float64 reference). Every reader produces this
// shape; every forward pass consumes it.
//
// Conventions, fixed so that one forward pass serves every checkpoint format:
// - Matrices are row-major [out][in] (PyTorch's Linear layout, llama2.c's `w` in matmul).
// - Rotary embeddings rotate interleaved pairs (x[2i], x[2i+1]) of each head, with
//   frequency ropeTheta^(-2i/headSize), as llama2.c's run.c does. Readers of Hugging Face
//   checkpoints, whose q/k projections are permuted for the half-split rotation, undo that
//   permutation on load, and so do readers of GGUF architectures that rotate half-split
//   pairs (qwen2).
// - Matrices stay in their stored encoding (weights.ts): f32, f16, bf16, Q8_0 or Q4_0.
import type { WeightMatrix } from './weights.js';

export type { WeightMatrix, WeightType } from './weights.js';

/** The architectures we serve; GGUF's general.architecture names them the same way. */
export type Architecture = 'llama' | 'qwen2';

export interface LlamaConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** true when the LM head reuses the token embedding (llama2.c: positive vocab size). */
  sharedClassifier: boolean;
  /** RMSNorm epsilon (llama2.c: 1e-5). */
  normEps: number;
  /** RoPE base (llama2.c and Llama 2: 10000). */
  ropeTheta: number;
  /** Default 'llama'. qwen2 adds q/k/v biases. */
  architecture?: Architecture;
  /**
   * Per-frequency divisors of the rotation angle, [headSize/2] (Llama 3.1's "llama3" rope
   * scaling, GGUF tensor rope_freqs.weight): angle_i = pos·θ^(-2i/headSize) / factor_i.
   */
  ropeFreqFactors?: number[];
}

export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: WeightMatrix; // [nHeads*headSize][dim]
  wk: WeightMatrix; // [nKvHeads*headSize][dim]
  wv: WeightMatrix; // [nKvHeads*headSize][dim]
  wo: WeightMatrix; // [dim][nHeads*headSize]
  ffnNorm: Float32Array; // [dim]
  w1: WeightMatrix; // gate [hiddenDim][dim]
  w2: WeightMatrix; // down [dim][hiddenDim]
  w3: WeightMatrix; // up   [hiddenDim][dim]
  /** qwen2 only: biases of the q, k and v projections. */
  bq?: Float32Array; // [nHeads*headSize]
  bk?: Float32Array; // [nKvHeads*headSize]
  bv?: Float32Array; // [nKvHeads*headSize]
}

/** The gateway's part: what a Petals-style client holds. */
export interface HeadWeights {
  tokenEmbedding: WeightMatrix; // [vocabSize][dim]
  finalNorm: Float32Array; // [dim]
  /** [vocabSize][dim]; the same object as tokenEmbedding when sharedClassifier. */
  classifier: WeightMatrix;
}

/** A contiguous block range [from, to) of one model's layers. */
export interface BlockRange {
  from: number;
  to: number;
}

export interface ModelWeights {
  config: LlamaConfig;
  /** Present when the source holds the gateway's part. */
  head?: HeadWeights;
  /** The layers held, with their range; a whole checkpoint holds [0, nLayers). */
  range: BlockRange;
  layers: LayerWeights[];
}

/** The matrices of a layer, and their shapes [rows][cols] (rows = out features). */
export const MATRIX_KINDS = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const;
export type MatrixKind = (typeof MATRIX_KINDS)[number];

export function matrixShape(c: LlamaConfig, kind: MatrixKind): [rows: number, cols: number] {
  const qDim = c.dim; // nHeads · headSize, headSize = dim / nHeads
  const kvDim = (c.nKvHeads * c.dim) / c.nHeads;
  switch (kind) {
    case 'wq': return [qDim, c.dim];
    case 'wk': return [kvDim, c.dim];
    case 'wv': return [kvDim, c.dim];
    case 'wo': return [c.dim, qDim];
    case 'w1': return [c.hiddenDim, c.dim];
    case 'w2': return [c.dim, c.hiddenDim];
    case 'w3': return [c.hiddenDim, c.dim];
  }
}
