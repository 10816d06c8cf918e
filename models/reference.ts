// A plain-JavaScript float64 forward pass of the Llama architecture, following llama2.c's
// run.c step by step (rmsnorm, matmul, RoPE, multi-head attention with grouped KV heads,
// SwiGLU feed-forward, residuals). It is slow and simple on purpose: it is the yardstick the
// TF.js forward pass and the distributed pipeline are compared against, so it shares no code
// with them and keeps every intermediate in double precision.
import type { HeadWeights, LayerWeights, LlamaConfig, ModelWeights } from './types.js';
import { dequantize, dequantizeRows, type WeightMatrix } from './weights.js';

type Vec = Float64Array;

/** run.c rmsnorm: o = w * x / sqrt(mean(x^2) + eps) (Zhang & Sennrich 2019, eq. 4). */
export function rmsNorm(x: ArrayLike<number>, weight: ArrayLike<number>, eps: number): Vec {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = weight[i]! * (scale * x[i]!);
  return out;
}

/** Every matrix decoded once to f32 (the reference trades memory for simplicity). */
const decoded = new WeakMap<WeightMatrix, Float32Array>();

function values(m: WeightMatrix): Float32Array {
  let v = decoded.get(m);
  if (!v) decoded.set(m, (v = dequantize(m)));
  return v;
}

/** out = W x (+ bias) with W row-major [rows][x.length], stored in any encoding. */
function matrixVec(w: WeightMatrix, x: ArrayLike<number>, bias?: Float32Array): Vec {
  if (w.cols !== x.length) throw new Error(`matrix has ${w.cols} columns, vector ${x.length} values`);
  const out = matVec(values(w), x, w.rows);
  if (bias) for (let i = 0; i < out.length; i++) out[i] = out[i]! + bias[i]!;
  return out;
}

/** out = W x with W row-major [rows][x.length]. */
export function matVec(w: ArrayLike<number>, x: ArrayLike<number>, rows: number): Vec {
  const n = x.length;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const base = r * n;
    for (let c = 0; c < n; c++) s += w[base + c]! * x[c]!;
    out[r] = s;
  }
  return out;
}

/** Numerically stable softmax in place over x[0, len). */
export function softmaxInPlace(x: Vec, len = x.length): void {
  let max = -Infinity;
  for (let i = 0; i < len; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < len; i++) {
    x[i] = Math.exp(x[i]! - max);
    sum += x[i]!;
  }
  for (let i = 0; i < len; i++) x[i] = x[i]! / sum;
}

/**
 * Rotary position embedding on interleaved pairs (v[2i], v[2i+1]) of each head of `v`, as
 * run.c does: angle = pos * theta^(-2i/headSize) (RoFormer, Su et al. 2021, eq. 34).
 */
export function applyRope(v: Vec, pos: number, headSize: number, theta: number, freqFactors?: readonly number[]): void {
  for (let i = 0; i < v.length; i += 2) {
    const headDim = i % headSize;
    // llama3 rope scaling divides each frequency by its factor (types.ts ropeFreqFactors)
    const angle = pos / Math.pow(theta, headDim / headSize) / (freqFactors?.[headDim / 2] ?? 1);
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const a = v[i]!;
    const b = v[i + 1]!;
    v[i] = a * cos - b * sin;
    v[i + 1] = a * sin + b * cos;
  }
}

/** Keys and values of every position seen so far, per layer held. */
export class ReferenceKvCache {
  readonly keys: Vec[][];
  readonly values: Vec[][];
  constructor(nLayersHeld: number) {
    this.keys = Array.from({ length: nLayersHeld }, () => []);
    this.values = Array.from({ length: nLayersHeld }, () => []);
  }
  /** Number of positions cached (the same for every layer). */
  get length(): number {
    return this.keys[0]?.length ?? 0;
  }
}

/** The embedding row of `token` (run.c: content_row), in float64. */
export function embedToken(head: HeadWeights, config: LlamaConfig, token: number): Vec {
  if (!Number.isInteger(token) || token < 0 || token >= config.vocabSize) {
    throw new Error(`token id ${token} is outside the vocabulary [0, ${config.vocabSize})`);
  }
  return Float64Array.from(dequantizeRows(head.tokenEmbedding, token, token + 1));
}

/** One transformer block at position `pos`, updating `x` in place and the layer's cache. */
function blockForward(config: LlamaConfig, layer: LayerWeights, keys: Vec[], values: Vec[], x: Vec, pos: number): void {
  const { dim, nHeads, nKvHeads, normEps, ropeTheta, ropeFreqFactors } = config;
  const headSize = dim / nHeads;
  const kvDim = nKvHeads * headSize;
  const kvMul = nHeads / nKvHeads; // grouped-query attention: heads sharing one KV head

  // attention rmsnorm, then q, k, v projections
  const xb = rmsNorm(x, layer.attnNorm, normEps);
  const q = matrixVec(layer.wq, xb, layer.bq);
  const k = matrixVec(layer.wk, xb, layer.bk);
  const v = matrixVec(layer.wv, xb, layer.bv);
  if (k.length !== kvDim) throw new Error(`wk has ${k.length} rows, expected kvDim ${kvDim}`);
  applyRope(q, pos, headSize, ropeTheta, ropeFreqFactors);
  applyRope(k, pos, headSize, ropeTheta, ropeFreqFactors);
  keys[pos] = k;
  values[pos] = v;

  // causal multi-head attention over positions 0..pos (Vaswani et al. 2017, eq. 1)
  const attnOut = new Float64Array(dim);
  const scores = new Float64Array(pos + 1);
  const scale = 1 / Math.sqrt(headSize);
  for (let h = 0; h < nHeads; h++) {
    const qOff = h * headSize;
    const kvOff = Math.floor(h / kvMul) * headSize;
    for (let t = 0; t <= pos; t++) {
      const kt = keys[t]!;
      let s = 0;
      for (let i = 0; i < headSize; i++) s += q[qOff + i]! * kt[kvOff + i]!;
      scores[t] = s * scale;
    }
    softmaxInPlace(scores, pos + 1);
    for (let t = 0; t <= pos; t++) {
      const vt = values[t]!;
      const a = scores[t]!;
      for (let i = 0; i < headSize; i++) attnOut[qOff + i] = attnOut[qOff + i]! + a * vt[kvOff + i]!;
    }
  }
  const attnProj = matrixVec(layer.wo, attnOut);
  for (let i = 0; i < dim; i++) x[i] = x[i]! + attnProj[i]!;

  // feed-forward: w2(silu(w1 x) * w3 x) (SwiGLU, Shazeer 2020, eq. 6)
  const xf = rmsNorm(x, layer.ffnNorm, normEps);
  const gate = matrixVec(layer.w1, xf);
  const up = matrixVec(layer.w3, xf);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
  const down = matrixVec(layer.w2, gate);
  for (let i = 0; i < dim; i++) x[i] = x[i]! + down[i]!;
}

/**
 * Runs the layers `weights` holds over hidden states of consecutive positions starting at
 * `cache.length`, returning the new hidden states (inputs are not modified). This is one
 * pipeline stage: feed it the previous stage's output.
 */
export function forwardLayers(weights: ModelWeights, cache: ReferenceKvCache, hidden: readonly Vec[]): Vec[] {
  const { config, layers } = weights;
  if (cache.keys.length !== layers.length) {
    throw new Error(`KV cache holds ${cache.keys.length} layers but the weights hold ${layers.length}`);
  }
  const start = cache.length;
  if (start + hidden.length > config.seqLen) {
    throw new Error(`positions up to ${start + hidden.length} exceed the model's sequence length ${config.seqLen}`);
  }
  return hidden.map((h, i) => {
    if (h.length !== config.dim) throw new Error(`hidden state has ${h.length} values, expected dim ${config.dim}`);
    const x = Float64Array.from(h);
    layers.forEach((layer, l) => blockForward(config, layer, cache.keys[l]!, cache.values[l]!, x, start + i));
    return x;
  });
}

/** Final rmsnorm and classifier: the logits of one hidden state. */
export function headLogits(head: HeadWeights, config: LlamaConfig, hidden: Vec): Vec {
  const x = rmsNorm(hidden, head.finalNorm, config.normEps);
  return matrixVec(head.classifier, x);
}

function requireWhole(weights: ModelWeights): HeadWeights {
  const { config, range, layers, head } = weights;
  if (!head || range.from !== 0 || range.to !== config.nLayers || layers.length !== config.nLayers) {
    throw new Error('the reference model needs a whole model (every layer and the head part)');
  }
  return head;
}

/** A whole-model session with its own KV cache: feed tokens, get logits per position. */
export class ReferenceSession {
  readonly cache: ReferenceKvCache;
  private readonly head: HeadWeights;
  constructor(private readonly weights: ModelWeights) {
    this.head = requireWhole(weights);
    this.cache = new ReferenceKvCache(weights.layers.length);
  }
  get position(): number {
    return this.cache.length;
  }
  /** Logits after each of `tokens`, continuing from the cached positions. */
  feed(tokens: readonly number[]): Vec[] {
    const { config } = this.weights;
    const hidden = forwardLayers(this.weights, this.cache, tokens.map((t) => embedToken(this.head, config, t)));
    return hidden.map((h) => headLogits(this.head, config, h));
  }
}

/** Logits (float64) at every position of `tokens`, from an empty cache. */
export function referenceLogits(weights: ModelWeights, tokens: readonly number[]): Vec[] {
  return new ReferenceSession(weights).feed(tokens);
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** Greedy (temperature 0) continuation of `prompt` by `steps` tokens; returns the new ids. */
export function greedyDecode(weights: ModelWeights, prompt: readonly number[], steps: number): number[] {
  if (prompt.length === 0) throw new Error('greedy decoding needs at least one prompt token (e.g. BOS = 1)');
  const session = new ReferenceSession(weights);
  let logits = session.feed(prompt).at(-1)!;
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const next = argmax(logits);
    out.push(next);
    if (s + 1 < steps) logits = session.feed([next])[0]!;
  }
  return out;
}
