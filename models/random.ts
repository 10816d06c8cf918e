// Seeded random weights of any Llama shape, for tests and for benchmarking shapes we have no
// checkpoint of. The scale keeps activations of a deep stack in a sane range, as a trained
// model's would be: matrices ~ N(0, 1/in) (LeCun initialization), norm gains near 1.
//
// A model can be generated in parts: each layer draws from its own stream, seeded from the
// model's seed and the layer's index, and the head part from another, so a pipeline stage
// builds exactly its own layers without generating the others, and a layer's weights are the
// same whichever part asks for it.
//
// Generation has to keep up with billion-parameter shapes (TinyLlama's 1.1 B values in a few
// seconds), so values are not drawn by Box–Muller (a log and a cos per pair): each 32-bit
// draw of a small PRNG gives two 16-bit indices into a table of the standard normal's
// quantiles at (i + ½)/65536. That is a normal distribution truncated at ±4.3σ and
// discretized to 65536 levels, rescaled to unit variance: plenty for weights whose only job
// is to have the right scale.
import type { BlockRange, HeadWeights, LayerWeights, LlamaConfig, ModelWeights } from './types.js';
import { f32Matrix, matrixBytes, quantize, quantizeBlocks, rowBytes, type WeightMatrix, type WeightType } from './weights.js';

/** Values generated at a time for a quantized matrix. */
const CHUNK_VALUES = 1 << 20;

export function llamaConfig(shape: Pick<LlamaConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'vocabSize' | 'seqLen'>
  & Partial<LlamaConfig>): LlamaConfig {
  return { sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000, ...shape };
}

/**
 * Room for a matrix of stored bytes (a kernel's allocate(), the allocator BlockStack and
 * ModelHead hand their loaders): matrices are then generated straight into it.
 */
export type RandomAllocator = (type: WeightType, rows: number, cols: number) => Uint8Array;

/** Which part of a model to generate; see randomWeights. */
export interface RandomPart {
  /** Layers [from, to) (default: none). */
  range?: BlockRange;
  /** The head part: token embedding, final norm, classifier (default: false). */
  head?: boolean;
}

/**
 * Seeded random weights of `config`, matrices encoded as `type` (default f32). qwen2 configs
 * get q/k/v biases. Without `part` the whole model (every layer and the head); with it, only
 * the layers of `part.range` and, if `part.head`, the head. The same seed gives the same
 * values for a layer or the head whichever part they are generated in. With `allocate`,
 * every matrix is written into the room it hands out (no host copy).
 */
export function randomWeights(config: LlamaConfig, seed: number, type: WeightType = 'f32', part?: RandomPart,
  allocate?: RandomAllocator): ModelWeights {
  const range = part ? (part.range ?? { from: 0, to: 0 }) : { from: 0, to: config.nLayers };
  if (!Number.isInteger(range.from) || !Number.isInteger(range.to) || range.from < 0 || range.to > config.nLayers || range.from > range.to) {
    throw new Error(`layer range [${range.from}, ${range.to}) is not inside the model's [0, ${config.nLayers})`);
  }
  const layers: LayerWeights[] = [];
  for (let l = range.from; l < range.to; l++) layers.push(randomLayer(config, seed, l, type, allocate));
  const withHead = part ? part.head === true : true;
  return { config, range: { ...range }, layers, ...(withHead ? { head: randomHead(config, seed, type, allocate) } : {}) };
}

/** Layer `index` of the seeded model (what randomWeights puts at that index). */
export function randomLayer(config: LlamaConfig, seed: number, index: number, type: WeightType = 'f32', allocate?: RandomAllocator): LayerWeights {
  const { dim, hiddenDim, nHeads, nKvHeads } = config;
  const headSize = dim / nHeads;
  const qDim = nHeads * headSize;
  const kvDim = nKvHeads * headSize;
  const g = new NormalStream(mix(seed, index + 1));
  const matrix = (rows: number, cols: number) => g.matrix(rows, cols, type, 1 / Math.sqrt(cols), allocate);
  const gain = () => g.fill(new Float32Array(dim), 0.1, 1);
  const bias = (n: number) => g.fill(new Float32Array(n), 0.1);
  return {
    ...(config.architecture === 'qwen2' ? { bq: bias(qDim), bk: bias(kvDim), bv: bias(kvDim) } : {}),
    attnNorm: gain(),
    wq: matrix(qDim, dim),
    wk: matrix(kvDim, dim),
    wv: matrix(kvDim, dim),
    wo: matrix(dim, qDim),
    ffnNorm: gain(),
    w1: matrix(hiddenDim, dim),
    w2: matrix(dim, hiddenDim),
    w3: matrix(hiddenDim, dim),
  };
}

/** The head part of the seeded model. The embedding is N(0, 1), as the stacks expect their input. */
export function randomHead(config: LlamaConfig, seed: number, type: WeightType = 'f32', allocate?: RandomAllocator): HeadWeights {
  const { dim, vocabSize } = config;
  const g = new NormalStream(mix(seed, 0));
  const tokenEmbedding = g.matrix(vocabSize, dim, type, 1, allocate);
  const finalNorm = g.fill(new Float32Array(dim), 0.1, 1);
  return { tokenEmbedding, finalNorm, classifier: config.sharedClassifier ? tokenEmbedding : g.matrix(vocabSize, dim, type, 1 / Math.sqrt(dim), allocate) };
}

/** A 32-bit hash of (seed, stream): the seed of one layer's (or the head's) stream. */
function mix(seed: number, stream: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream >>> 0, 0x85ebca77)) >>> 0;
  // MurmurHash3's fmix32 finalizer
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Standard normal quantiles at (i + ½)/65536, scaled to unit variance. */
let quantiles: Float32Array | undefined;

function normalTable(): Float32Array {
  if (!quantiles) {
    const q = new Float64Array(65536);
    let sumSq = 0;
    for (let i = 0; i < 65536; i++) {
      q[i] = inverseNormalCdf((i + 0.5) / 65536);
      sumSq += q[i]! * q[i]!;
    }
    const scale = 1 / Math.sqrt(sumSq / 65536);
    quantiles = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) quantiles[i] = q[i]! * scale;
  }
  return quantiles;
}

/**
 * The standard normal's quantile function by Acklam's rational approximation (relative error
 * below 1.15e-9; P. J. Acklam, "An algorithm for computing the inverse normal cumulative
 * distribution function", 2003).
 */
function inverseNormalCdf(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) => (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return (((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** Normal draws from one seeded stream: SplitMix32 words, two table lookups per word. */
class NormalStream {
  private state: number;
  private readonly table = normalTable();

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Fills `a` with N(mean, std²) draws. */
  fill(a: Float32Array, std: number, mean = 0): Float32Array {
    const t = this.table;
    let s = this.state;
    const n = a.length;
    for (let i = 0; i < n; i += 2) {
      // SplitMix32 (Steele, Lea & Flood 2014), as head.ts's Random, inlined
      s = (s + 0x9e3779b9) | 0;
      let z = Math.imul(s ^ (s >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      z ^= z >>> 16;
      a[i] = mean + std * t[z & 0xffff]!;
      if (i + 1 < n) a[i + 1] = mean + std * t[z >>> 16]!;
    }
    this.state = s;
    return a;
  }

  /** A [rows][cols] matrix of N(0, std²) values, encoded as `type`, in room from `allocate` if given. */
  matrix(rows: number, cols: number, type: WeightType, std: number, allocate?: RandomAllocator): WeightMatrix {
    const data = allocate ? allocate(type, rows, cols) : undefined;
    if (data && data.byteLength !== matrixBytes(type, rows, cols)) {
      throw new Error(`the allocator gave ${data.byteLength} bytes for a ${type} [${rows}][${cols}] matrix of ${matrixBytes(type, rows, cols)}`);
    }
    if (type === 'f32') {
      if (!data) return f32Matrix(this.fill(new Float32Array(rows * cols), std), rows, cols);
      if (data.byteOffset % 4 !== 0) throw new Error('the allocator gave room for an f32 matrix that is not 4-byte aligned');
      this.fill(new Float32Array(data.buffer, data.byteOffset, rows * cols), std);
      return { type, rows, cols, data };
    }
    return this.encoded(rows, cols, type, std, data ?? new Uint8Array(matrixBytes(type, rows, cols)));
  }

  /**
   * Encoded a band of rows at a time, so that no f32 copy of a whole matrix exists (the
   * largest, a 150k-token embedding, would need over half a gigabyte).
   */
  private encoded(rows: number, cols: number, type: Exclude<WeightType, 'f32'>, std: number, data: Uint8Array): WeightMatrix {
    const band = Math.max(1, Math.floor(CHUNK_VALUES / cols));
    const values = new Float32Array(Math.min(rows, band) * cols);
    const rb = rowBytes(type, cols);
    for (let r = 0; r < rows; r += band) {
      const n = Math.min(band, rows - r);
      const chunk = this.fill(values.subarray(0, n * cols), std);
      if (type === 'q8_0' || type === 'q4_0') quantizeBlocks(chunk, type, data.subarray(r * rb, (r + n) * rb));
      else data.set(quantize(chunk, n, cols, type).data, r * rb);
    }
    return { type, rows, cols, data };
  }
}

