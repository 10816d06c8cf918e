// The in-memory contract between the weight readers (llama2.c, safetensors, our shards)
// and the forward passes (TF.js and the float64 reference). Every reader produces this
// shape; every forward pass consumes it.
//
// Conventions, fixed so that one forward pass serves every checkpoint format:
// - Matrices are row-major [out][in] (PyTorch's Linear layout, llama2.c's `w` in matmul).
// - Rotary embeddings rotate interleaved pairs (x[2i], x[2i+1]) of each head, with
//   frequency ropeTheta^(-2i/headSize), as llama2.c's run.c does. Readers of Hugging Face
//   checkpoints, whose q/k projections are permuted for the half-split rotation, undo that
//   permutation on load.

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
}

export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Float32Array; // [nHeads*headSize][dim]
  wk: Float32Array; // [nKvHeads*headSize][dim]
  wv: Float32Array; // [nKvHeads*headSize][dim]
  wo: Float32Array; // [dim][nHeads*headSize]
  ffnNorm: Float32Array; // [dim]
  w1: Float32Array; // gate [hiddenDim][dim]
  w2: Float32Array; // down [dim][hiddenDim]
  w3: Float32Array; // up   [hiddenDim][dim]
}

/** The gateway's part: what a Petals-style client holds. */
export interface HeadWeights {
  tokenEmbedding: Float32Array; // [vocabSize][dim]
  finalNorm: Float32Array; // [dim]
  /** [vocabSize][dim]; the same array as tokenEmbedding when sharedClassifier. */
  classifier: Float32Array;
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
