// The Llama transformer blocks in TF.js: one forward function over a contiguous layer range
// [from, to), hidden states [T, dim] in and out, with a per-session KV cache. T is the prompt
// length for prefill and 1 for decode. Read top to bottom it is llama2.c's run.c `forward`:
// rmsnorm, q/k/v, RoPE, causal grouped-query attention, output projection and residual,
// rmsnorm, SwiGLU feed-forward and residual.
//
// Decode is bound by per-operation overhead, not arithmetic, at the sizes a Pi runs; the
// layout below is chosen to issue few operations per token (measurements in models/README.md):
// - Q, K and V are one matmul, gate and up another, with weights transposed and norm gains
//   folded in at load (layout.ts).
// - RoPE is applied while copying the fresh q/k rows out of the q/k/v output: the k rows have
//   to be written into the cache by us anyway, since TF.js has no in-place update.
// - The cache is preallocated for the session's capacity and written in place; attention
//   runs over the whole capacity with a mask, because slicing a prefix copies it (and, on
//   wasm, the whole source tensor) on every token.
import * as tf from '@tensorflow/tfjs';
import { readValues, storageView } from './backend.js';
import { geometryOf, prepareLayer, type Geometry, type PreparedLayer } from './layout.js';
import { BlockSession, type DecodeScratch, type LayerCache, type SessionOptions } from './session.js';
import type { BlockRange, ModelWeights, LlamaConfig } from './types.js';

export { BlockSession, type CacheUpdate, type SessionOptions } from './session.js';
export { geometryOf, type Geometry } from './layout.js';

/** RMSNorm without its gain (folded into the next matmul): x / sqrt(mean(x²) + eps). */
function rmsNormalize(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)));
}

/** The TF.js blocks of one layer range, ready to serve sessions. */
export class BlockStack {
  readonly config: LlamaConfig;
  readonly range: BlockRange;
  readonly geometry: Geometry;
  private layers: PreparedLayer[];
  /** cos and sin of pos·theta^(-2i/headSize), [seqLen][headSize/2] (RoFormer, Su et al. 2021, eq. 34). */
  private readonly ropeCos: Float64Array;
  private readonly ropeSin: Float64Array;
  private readonly sessions = new Set<BlockSession>();

  /** Loads the layers of `range` (default: all layers `weights` holds). */
  constructor(weights: ModelWeights, range: BlockRange = weights.range) {
    const { config } = weights;
    if (range.from < weights.range.from || range.to > weights.range.to || range.from >= range.to) {
      throw new Error(`block range [${range.from}, ${range.to}) is not inside the weights' range ` +
        `[${weights.range.from}, ${weights.range.to})`);
    }
    this.config = config;
    this.range = { from: range.from, to: range.to };
    this.geometry = geometryOf(config);
    const g = this.geometry;
    this.layers = weights.layers
      .slice(range.from - weights.range.from, range.to - weights.range.from)
      .map((layer) => prepareLayer(g, layer));
    const half = g.headSize / 2;
    this.ropeCos = new Float64Array(config.seqLen * half);
    this.ropeSin = new Float64Array(config.seqLen * half);
    for (let pos = 0; pos < config.seqLen; pos++) {
      for (let i = 0; i < half; i++) {
        const angle = pos * Math.pow(config.ropeTheta, (-2 * i) / g.headSize);
        this.ropeCos[pos * half + i] = Math.cos(angle);
        this.ropeSin[pos * half + i] = Math.sin(angle);
      }
    }
  }

  get layerCount(): number {
    return this.layers.length;
  }

  openSession(opts: SessionOptions = {}): BlockSession {
    if (this.layers.length === 0 && this.config.nLayers > 0) throw new Error('this block stack has been disposed');
    const session = new BlockSession(this.geometry, this.config.seqLen, this.layers.length, opts,
      () => this.sessions.delete(session));
    this.sessions.add(session);
    return session;
  }

  /** Frees the weights and every open session's cache. */
  dispose(): void {
    for (const s of [...this.sessions]) s.close();
    for (const l of this.layers) tf.dispose([l.wqkv, l.wo, l.w13, l.w2]);
    this.layers = [];
  }

  /**
   * Runs the held layers over `hidden` [T, dim] at the session's next T positions and returns
   * the new hidden states (a tensor the caller disposes). The session's cache is extended.
   */
  forwardTensor(session: BlockSession, hidden: tf.Tensor2D): tf.Tensor2D {
    const g = this.geometry;
    const [T, width] = hidden.shape;
    if (width !== g.dim) throw new Error(`hidden states have width ${width}, expected dim ${g.dim}`);
    const start = session.length;
    session.reserve(T);
    const C = session.capacity;
    const out = tf.tidy(() => {
      const scratch = T === 1 ? session.decodeScratch : undefined;
      const mask = scratch ? scratch.maskUpTo(start) : this.causalMask(start, T, C);
      let x: tf.Tensor2D = hidden;
      this.layers.forEach((layer, l) => {
        x = this.block(layer, session.cache(l), x, start, T, C, mask, scratch);
      });
      return x;
    });
    session.commit(T);
    return out;
  }

  /** Float32Array boundary, as pipeline stages exchange hidden states: [T][dim] in and out. */
  forward(session: BlockSession, hidden: Float32Array, T = hidden.length / this.geometry.dim): Float32Array {
    if (!Number.isInteger(T) || T < 1 || hidden.length !== T * this.geometry.dim) {
      throw new Error(`hidden states have ${hidden.length} values, not a whole number of rows of dim ${this.geometry.dim}`);
    }
    const input = tf.tensor2d(hidden, [T, this.geometry.dim]);
    try {
      const output = this.forwardTensor(session, input);
      // dataSync hands over a fresh array (a copy on wasm and native; on cpu the array of a
      // tensor disposed right after), so it can be returned as is.
      const values = output.dataSync() as Float32Array;
      output.dispose();
      return values;
    } finally {
      input.dispose();
    }
  }

  /** Additive mask [kvMul·T][C]: row r·T+t may attend to cache positions 0..start+t. */
  private causalMask(start: number, T: number, C: number): tf.Tensor2D {
    const rows = this.geometry.kvMul * T;
    const m = new Float32Array(rows * C);
    for (let row = 0; row < rows; row++) {
      const last = start + (row % T);
      // -1e9 rather than -Infinity: exp underflows to exactly 0 either way, and no row can
      // become all -Infinity (NaN after softmax's max subtraction).
      m.fill(-1e9, row * C + last + 1, (row + 1) * C);
    }
    return tf.tensor2d(m, [rows, C]);
  }

  /** One transformer block (run.c `forward`, loop body) on x [T, dim]. */
  private block(w: PreparedLayer, cache: LayerCache, x: tf.Tensor2D, start: number, T: number, C: number,
    mask: tf.Tensor2D, scratch: DecodeScratch | undefined): tf.Tensor2D {
    const g = this.geometry;
    const { nKvHeads, kvMul, headSize, qDim } = g;

    // attention rmsnorm and the q, k, v projections in one matmul
    const qkv = tf.matMul(rmsNormalize(x, this.config.normEps), w.wqkv) as tf.Tensor2D;
    // RoPE on q and k; q goes out as [nKvHeads][kvMul·T][headSize], k and v into the cache
    const q = this.ropeAndCache(qkv, cache, start, T, C, scratch);
    // grouped-query attention: each KV head serves kvMul query heads (Vaswani et al. 2017,
    // eq. 1, with the 1/sqrt(d_k) already in the q weights)
    const scores = tf.add(tf.matMul(q, cache.keys, false, true), mask);
    const att = tf.matMul(tf.softmax(scores), cache.valuesT, false, true); // [nKv][kvMul·T][headSize]
    const heads = T === 1
      ? tf.reshape(att, [1, qDim])
      : tf.reshape(tf.transpose(tf.reshape(att, [nKvHeads, kvMul, T, headSize]), [2, 0, 1, 3]), [T, qDim]);
    x = tf.add(x, tf.matMul(heads, w.wo));

    // feed-forward: w2(silu(w1 x) * w3 x) (SwiGLU, Shazeer 2020, eq. 6)
    const gateUp = tf.matMul(rmsNormalize(x, this.config.normEps), w.w13);
    const [gate, up] = tf.split(gateUp, 2, 1) as unknown as [tf.Tensor2D, tf.Tensor2D];
    const hidden = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
    return tf.add(x, tf.matMul(hidden, w.w2));
  }

  /**
   * Rotates the q and k parts of `qkv` [T][qDim + 2·kvDim] (interleaved pairs, run.c's
   * convention), writes k and v of positions start..start+T-1 into the cache and returns q
   * (in the session's decode scratch tensor when there is one).
   */
  private ropeAndCache(qkv: tf.Tensor2D, cache: LayerCache, start: number, T: number, C: number,
    scratch: DecodeScratch | undefined): tf.Tensor3D {
    const { nHeads, nKvHeads, kvMul, headSize, qDim, kvDim } = this.geometry;
    const width = qDim + 2 * kvDim;
    const half = headSize / 2;
    const src = readValues(qkv);
    const q = scratch ? storageView(scratch.q)! : new Float32Array(T * qDim);
    for (let t = 0; t < T; t++) {
      const pos = start + t;
      const row = t * width;
      const trig = pos * half;
      for (let h = 0; h < nHeads; h++) {
        // query head h = kvHead·kvMul + r lands in row r·T + t of its KV head's batch
        const dst = (h * T + t) * headSize;
        rotate(src, row + h * headSize, q, dst, half, this.ropeCos, this.ropeSin, trig);
      }
    }
    const keys = cache.keysView();
    const valuesT = cache.valuesTView();
    for (let t = 0; t < T; t++) {
      const pos = start + t;
      const row = t * width;
      for (let h = 0; h < nKvHeads; h++) {
        rotate(src, row + qDim + h * headSize, keys, (h * C + pos) * headSize, half, this.ropeCos, this.ropeSin, pos * half);
        const v = row + qDim + kvDim + h * headSize;
        const base = h * headSize * C + pos;
        for (let d = 0; d < headSize; d++) valuesT[base + d * C] = src[v + d]!;
      }
    }
    cache.written();
    return scratch ? scratch.q : tf.tensor3d(q, [nKvHeads, kvMul * T, headSize]);
  }
}

/** dst[i] = RoPE(src[i]) for one head of `half` interleaved pairs. */
function rotate(src: Float32Array, s: number, dst: Float32Array, d: number, half: number, cos: Float64Array,
  sin: Float64Array, trig: number): void {
  for (let i = 0; i < half; i++) {
    const a = src[s + 2 * i]!;
    const b = src[s + 2 * i + 1]!;
    const c = cos[trig + i]!;
    const n = sin[trig + i]!;
    dst[d + 2 * i] = a * c - b * n;
    dst[d + 2 * i + 1] = a * n + b * c;
  }
}
