// The Llama transformer blocks: one forward function over a contiguous layer range
// [from, to), hidden states [T, dim] in and out, with a per-session KV cache. T is the prompt
// length for prefill and 1 for decode. Read top to bottom it is llama2.c's run.c `forward`:
// rmsnorm, q/k/v, RoPE, causal grouped-query attention, output projection and residual,
// rmsnorm, SwiGLU feed-forward and residual.
//
// The weight matmuls run in our own WebAssembly kernel (kernels/), which holds each matrix
// once in its stored encoding (f32, f16, bf16, Q8_0, Q4_0) and splits rows across all cores;
// TF.js runs the attention over the KV cache; the norms, RoPE, SwiGLU and residuals are
// plain loops over host arrays, which cost less than TF.js's per-op dispatch and copies at
// these sizes. Layout choices (measurements in models/README.md):
// - Q, K and V are one kernel call on the same input, gate and up another.
// - RoPE is applied while copying the fresh q/k rows out of the kernel's output: the k rows
//   have to be written into the cache by us anyway, since TF.js has no in-place update.
// - The cache is preallocated for the session's capacity and written in place; attention
//   runs over the whole capacity with a mask, because slicing a prefix copies it (and, on
//   wasm, the whole source tensor) on every token.
import * as tf from '@tensorflow/tfjs';
import { readValues, storageView } from './backend.js';
import { MatmulRuntime } from './kernels/index.js';
import { geometryOf, prepareLayer, type Geometry, type PreparedLayer } from './layout.js';
import { BlockSession, type DecodeScratch, type LayerCache, type SessionOptions } from './session.js';
import type { BlockRange, ModelWeights, LlamaConfig } from './types.js';
import type { MatrixAllocator } from './weights.js';

export { BlockSession, type CacheUpdate, type SessionOptions } from './session.js';
export { geometryOf, type Geometry } from './layout.js';

/** RMSNorm of each row of x [T][dim]: g ⊙ x / sqrt(mean(x²) + eps) (Zhang & Sennrich 2019, eq. 4). */
export function rmsNorm(x: Float32Array, gain: Float32Array, eps: number): Float32Array {
  const dim = gain.length;
  const out = new Float32Array(x.length);
  for (let row = 0; row < x.length; row += dim) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[row + i]! * x[row + i]!;
    const scale = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[row + i] = gain[i]! * (scale * x[row + i]!);
  }
  return out;
}

/** x += y, elementwise (a residual connection). */
function addInto(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!;
}

/** gate = silu(gate) ⊙ up, in place (SwiGLU, Shazeer 2020, eq. 6; silu(g) = g·σ(g)). */
function swiGluInto(gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

export interface StackOptions {
  /** Threads of this stage's matmul kernel (default: every core). */
  threads?: number;
}


/** The TF.js blocks of one layer range, ready to serve sessions. */
export class BlockStack {
  readonly config: LlamaConfig;
  readonly range: BlockRange;
  readonly geometry: Geometry;
  private layers: PreparedLayer[];
  /** This stage's own kernel and memory: a stage is never capped by another's 4 GiB heap. */
  readonly kernel: MatmulRuntime;
  /** cos and sin of pos·theta^(-2i/headSize), [seqLen][headSize/2] (RoFormer, Su et al. 2021, eq. 34). */
  private readonly ropeCos: Float64Array;
  private readonly ropeSin: Float64Array;
  private readonly sessions = new Set<BlockSession>();
  private disposed = false;

  /**
   * Loads the layers of `range` (default: all layers `weights` holds) into this stage's
   * kernel; `weights` can be dropped afterwards, nothing here keeps its matrices. Given a
   * loader instead, the loader reads the matrices straight into the kernel's memory
   * (`allocate`), so the stage never holds its weights twice, not even while it loads.
   */
  constructor(source: ModelWeights | ((allocate: MatrixAllocator) => ModelWeights), range?: BlockRange, opts: StackOptions = {}) {
    this.kernel = MatmulRuntime.create({ threads: opts.threads });
    let weights: ModelWeights;
    try {
      weights = typeof source === 'function' ? source((type, rows, cols) => this.kernel.allocate(type, rows, cols)) : source;
    } catch (err) {
      this.kernel.close();
      throw err;
    }
    range ??= weights.range;
    const { config } = weights;
    if (range.from < weights.range.from || range.to > weights.range.to || range.from >= range.to) {
      this.kernel.close();
      throw new Error(`block range [${range.from}, ${range.to}) is not inside the weights' range ` +
        `[${weights.range.from}, ${weights.range.to})`);
    }
    this.config = config;
    this.range = { from: range.from, to: range.to };
    this.geometry = geometryOf(config);
    const g = this.geometry;
    try {
      this.layers = weights.layers
        .slice(range.from - weights.range.from, range.to - weights.range.from)
        .map((layer) => prepareLayer(g, layer, this.kernel));
    } catch (err) {
      this.kernel.close();
      throw err;
    }
    const half = g.headSize / 2;
    const factors = config.ropeFreqFactors;
    if (factors && factors.length !== half) throw new Error(`ropeFreqFactors has ${factors.length} values, expected headSize/2 = ${half}`);
    this.ropeCos = new Float64Array(config.seqLen * half);
    this.ropeSin = new Float64Array(config.seqLen * half);
    for (let pos = 0; pos < config.seqLen; pos++) {
      for (let i = 0; i < half; i++) {
        // llama3 rope scaling divides each frequency by its factor (types.ts)
        const angle = (pos * Math.pow(config.ropeTheta, (-2 * i) / g.headSize)) / (factors?.[i] ?? 1);
        this.ropeCos[pos * half + i] = Math.cos(angle);
        this.ropeSin[pos * half + i] = Math.sin(angle);
      }
    }
  }

  get layerCount(): number {
    return this.layers.length;
  }

  openSession(opts: SessionOptions = {}): BlockSession {
    if (this.disposed) throw new Error('this block stack has been disposed');
    const session = new BlockSession(this.geometry, this.config.seqLen, this.layers.length, opts,
      () => this.sessions.delete(session));
    this.sessions.add(session);
    return session;
  }

  /** Frees the weights (the kernel and its threads) and every open session's cache. */
  dispose(): void {
    for (const s of [...this.sessions]) s.close();
    if (!this.disposed) this.kernel.close();
    this.disposed = true;
    this.layers = [];
  }

  /**
   * Runs the held layers over hidden states [T][dim] (the payload stages exchange) at the
   * session's next T positions and returns the new hidden states; the session's cache is
   * extended. The residual stream stays a host array: the matmuls read it in the kernel,
   * the norms, residuals and SwiGLU are plain loops over it, and TF.js runs the attention
   * over the cache.
   */
  forward(session: BlockSession, hidden: Float32Array, T = hidden.length / this.geometry.dim): Float32Array {
    const g = this.geometry;
    if (!Number.isInteger(T) || T < 1 || hidden.length !== T * g.dim) {
      throw new Error(`hidden states have ${hidden.length} values, not a whole number of rows of dim ${g.dim}`);
    }
    const start = session.length;
    session.reserve(T);
    const C = session.capacity;
    const x = Float32Array.from(hidden);
    tf.tidy(() => {
      const scratch = T === 1 ? session.decodeScratch : undefined;
      const mask = scratch ? scratch.maskUpTo(start) : this.causalMask(start, T, C);
      this.layers.forEach((layer, l) => this.block(layer, session.cache(l), x, start, T, C, mask, scratch));
    });
    session.commit(T);
    return x;
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

  /** One transformer block (run.c `forward`, loop body) on x [T][dim], in place. */
  private block(w: PreparedLayer, cache: LayerCache, x: Float32Array, start: number, T: number, C: number,
    mask: tf.Tensor2D, scratch: DecodeScratch | undefined): void {
    const { nKvHeads, kvMul, headSize, qDim } = this.geometry;
    const eps = this.config.normEps;

    // attention rmsnorm and the q, k, v projections in one kernel call
    const [q0, k0, v0] = this.kernel.matmul(rmsNorm(x, w.attnNorm, eps), T, w.qkv, w.qkvBias) as [Float32Array, Float32Array, Float32Array];
    // RoPE on q and k; q goes out as [nKvHeads][kvMul·T][headSize], k and v into the cache
    const q = this.ropeAndCache(q0, k0, v0, cache, start, T, C, scratch);
    // grouped-query attention: each KV head serves kvMul query heads (Vaswani et al. 2017,
    // eq. 1, with the 1/sqrt(d_k) already applied to q)
    const scores = tf.add(tf.matMul(q, cache.keys, false, true), mask);
    const att = tf.matMul(tf.softmax(scores), cache.valuesT, false, true); // [nKv][kvMul·T][headSize]
    const heads = T === 1
      ? tf.reshape(att, [1, qDim])
      : tf.reshape(tf.transpose(tf.reshape(att, [nKvHeads, kvMul, T, headSize]), [2, 0, 1, 3]), [T, qDim]);
    // the kernel copies the heads in while the tensor is alive (inside forward's tidy)
    addInto(x, this.kernel.matmul(readValues(heads), T, [w.wo])[0]!);

    // feed-forward: w2(silu(w1 x) * w3 x) (SwiGLU, Shazeer 2020, eq. 6)
    const [gate, up] = this.kernel.matmul(rmsNorm(x, w.ffnNorm, eps), T, w.gateUp) as [Float32Array, Float32Array];
    swiGluInto(gate, up);
    addInto(x, this.kernel.matmul(gate, T, [w.down])[0]!);
  }

  /**
   * Rotates q [T][qDim] and k [T][kvDim] (interleaved pairs, run.c's convention), scales q
   * by 1/sqrt(headSize), writes k and v [T][kvDim] of positions start..start+T-1 into the
   * cache and returns q (in the session's decode scratch tensor when there is one).
   */
  private ropeAndCache(qIn: Float32Array, kIn: Float32Array, vIn: Float32Array, cache: LayerCache, start: number,
    T: number, C: number, scratch: DecodeScratch | undefined): tf.Tensor3D {
    const { nHeads, nKvHeads, kvMul, headSize, qDim, kvDim } = this.geometry;
    const half = headSize / 2;
    const qScale = 1 / Math.sqrt(headSize);
    const q = scratch ? storageView(scratch.q)! : new Float32Array(T * qDim);
    for (let t = 0; t < T; t++) {
      const trig = (start + t) * half;
      for (let h = 0; h < nHeads; h++) {
        // query head h = kvHead·kvMul + r lands in row r·T + t of its KV head's batch
        const dst = (h * T + t) * headSize;
        rotate(qIn, t * qDim + h * headSize, q, dst, half, this.ropeCos, this.ropeSin, trig, qScale);
      }
    }
    const keys = cache.keysView();
    const valuesT = cache.valuesTView();
    for (let t = 0; t < T; t++) {
      const pos = start + t;
      for (let h = 0; h < nKvHeads; h++) {
        const src = t * kvDim + h * headSize;
        rotate(kIn, src, keys, (h * C + pos) * headSize, half, this.ropeCos, this.ropeSin, pos * half, 1);
        const base = h * headSize * C + pos;
        for (let d = 0; d < headSize; d++) valuesT[base + d * C] = vIn[src + d]!;
      }
    }
    cache.written();
    return scratch ? scratch.q : tf.tensor3d(q, [nKvHeads, kvMul * T, headSize]);
  }
}

/** dst[i] = scale · RoPE(src[i]) for one head of `half` interleaved pairs. */
function rotate(src: Float32Array, s: number, dst: Float32Array, d: number, half: number, cos: Float64Array,
  sin: Float64Array, trig: number, scale: number): void {
  for (let i = 0; i < half; i++) {
    const a = src[s + 2 * i]!;
    const b = src[s + 2 * i + 1]!;
    const c = cos[trig + i]! * scale;
    const n = sin[trig + i]! * scale;
    dst[d + 2 * i] = a * c - b * n;
    dst[d + 2 * i + 1] = a * n + b * c;
  }
}
