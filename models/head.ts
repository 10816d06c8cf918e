// The gateway's part of the model, as a Petals client holds it: the token embedding, the
// final RMSNorm, the classifier (LM head) and the sampler.
import { Random } from '../ground/random.js';
import { rmsNorm } from './forward.js';
import { MatmulRuntime, type KernelMatrix } from './kernels/index.js';
import type { MatrixAllocator } from './weights.js';
import type { HeadWeights, LlamaConfig } from './types.js';
import { dequantizeRows, type WeightMatrix } from './weights.js';

export interface HeadOptions {
  /** Threads of the head's matmul kernel (default: every core). */
  threads?: number;
}

export class ModelHead {
  readonly config: LlamaConfig;
  /** The classifier, once, in its stored encoding, in the head's own kernel. */
  private readonly classifier: KernelMatrix;
  /** A separate embedding stays a host matrix (one row is read per token); a tied one is the classifier. */
  private readonly tokenEmbedding: WeightMatrix | undefined;
  private readonly finalNorm: Float32Array;
  private readonly kernel: MatmulRuntime;
  private closed = false;

  /** With a loader, the matrices are read straight into the head's kernel memory (see BlockStack). */
  constructor(config: LlamaConfig, source: HeadWeights | ((allocate: MatrixAllocator) => HeadWeights), opts: HeadOptions = {}) {
    const { dim, vocabSize } = config;
    const kernel = MatmulRuntime.create({ threads: opts.threads });
    let head: HeadWeights;
    try {
      head = typeof source === 'function' ? source((type, rows, cols) => kernel.allocate(type, rows, cols)) : source;
      for (const [name, m] of [['token embedding', head.tokenEmbedding], ['classifier', head.classifier]] as const) {
        if (m.rows !== vocabSize || m.cols !== dim) {
          throw new Error(`head weights do not match the config: ${name} is [${m.rows}][${m.cols}], expected [${vocabSize}][${dim}]`);
        }
      }
      if (head.finalNorm.length !== dim) throw new Error(`head weights do not match the config: final norm has ${head.finalNorm.length} values, expected ${dim}`);
    } catch (err) {
      kernel.close();
      throw err;
    }
    this.config = config;
    this.kernel = kernel;
    this.classifier = this.kernel.upload(head.classifier);
    // a separate embedding read into the kernel's memory is adopted there (one copy); one
    // handed over as host arrays stays a host matrix (one row is read per token)
    this.tokenEmbedding = head.tokenEmbedding === head.classifier ? undefined : head.tokenEmbedding;
    this.finalNorm = head.finalNorm;
  }

  /** Hidden states [T][dim] of `tokens` (run.c: the content row of each token). */
  embed(tokens: readonly number[]): Float32Array {
    const { dim, vocabSize } = this.config;
    const out = new Float32Array(tokens.length * dim);
    tokens.forEach((token, t) => {
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
        throw new Error(`token id ${token} is outside the vocabulary [0, ${vocabSize})`);
      }
      out.set(this.tokenEmbedding ? dequantizeRows(this.tokenEmbedding, token, token + 1) : this.kernel.row(this.classifier, token), t * dim);
    });
    return out;
  }

  /**
   * Logits [vocabSize] of the last row of `hidden` [T][dim]: final RMSNorm, then classifier.
   * Into `out` when given, which a generation loop reuses from token to token.
   */
  logits(hidden: Float32Array, out?: Float32Array): Float32Array {
    const { dim, normEps } = this.config;
    if (this.closed) throw new Error('this model head has been disposed');
    if (hidden.length < dim || hidden.length % dim !== 0) {
      throw new Error(`hidden states have ${hidden.length} values, not whole rows of dim ${dim}`);
    }
    const last = hidden.subarray(hidden.length - dim);
    return this.kernel.matmul(rmsNorm(last, this.finalNorm, normEps), 1, [this.classifier], undefined, [out])[0]!;
  }

  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.kernel.close();
  }
}

export interface SamplerOptions {
  /** 0 picks the most likely token (greedy); otherwise logits are divided by it. */
  temperature: number;
  /** Nucleus sampling: sample among the most likely tokens whose probabilities sum to topP (Holtzman et al. 2020). */
  topP: number;
  seed: number;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

export class Sampler {
  private readonly random: Random;
  /**
   * The draw's working arrays, reused from token to token: fresh ones were 0.5 MB of garbage
   * per token at a 32,000-token vocabulary, and the gateway ran a full mark-compact about
   * every 0.45 s to collect them.
   */
  private probs: Float64Array | undefined;
  private candidates: Int32Array | undefined;
  constructor(readonly opts: SamplerOptions) {
    if (!(opts.temperature >= 0) || !Number.isFinite(opts.temperature)) {
      throw new Error(`temperature must be a finite number >= 0, got ${opts.temperature}`);
    }
    if (!(opts.topP > 0 && opts.topP <= 1)) throw new Error(`top-p must be in (0, 1], got ${opts.topP}`);
    this.random = new Random(opts.seed);
  }

  /** Picks the next token from `logits`. */
  sample(logits: Float32Array): number {
    const { temperature, topP } = this.opts;
    if (temperature === 0) return argmax(logits);
    if (this.probs?.length !== logits.length) {
      this.probs = new Float64Array(logits.length);
      this.candidates = new Int32Array(logits.length);
    }
    const probs = softmax(logits, temperature, this.probs);
    const r = this.random.next();
    return topP < 1 ? sampleTopP(probs, topP, r, this.candidates) : sampleMultinomial(probs, r);
  }
}

/** softmax(logits / temperature) in float64, into `out` when it is given (of the logits' length). */
export function softmax(logits: Float32Array, temperature = 1, out?: Float64Array): Float64Array {
  if (out && out.length !== logits.length) throw new Error(`softmax: ${logits.length} logits into room for ${out.length}`);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  const p = out ?? new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp((logits[i]! - max) / temperature);
    sum += p[i]!;
  }
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / sum;
  return p;
}

/** Inverse-CDF draw: the first index whose cumulative probability exceeds r. */
export function sampleMultinomial(probs: Float64Array, r: number): number {
  let cdf = 0;
  for (let i = 0; i < probs.length; i++) {
    cdf += probs[i]!;
    if (r < cdf) return i;
  }
  return probs.length - 1; // rounding left the total just below r
}

/**
 * Nucleus sampling: the smallest set of most likely tokens whose probability reaches topP,
 * renormalized. Tokens below (1 - topP) / (n - 1) cannot be in that set (if one were, every
 * token outside it would be smaller still, and the excluded mass would fall below 1 - topP),
 * so they are dropped first. `room` (of at least the vocabulary's length) holds the
 * candidates when given.
 *
 * The candidates are not sorted: they go into a heap, which gives them up most likely
 * first, and only as many are taken as the nucleus needs. Over 32,000 flat logits a draw
 * took 6.99 ms with a sort of every candidate and 4.12 ms this way; a trained model's nucleus is a few dozen tokens
 * out of thousands of candidates. The order is the sort's, so the draw is the same.
 */
export function sampleTopP(probs: Float64Array, topP: number, r: number, room?: Int32Array): number {
  const cutoff = (1 - topP) / Math.max(1, probs.length - 1);
  const heap = room && room.length >= probs.length ? room : new Int32Array(probs.length);
  let size = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i]! >= cutoff) heap[size++] = i;
  const count = size;
  // With topP below 1/n, even the most likely token can fall under the cutoff (the argument
  // above needs a token before it); it alone then reaches topP.
  if (count === 0) return argmax(probs);
  for (let at = (size >> 1) - 1; at >= 0; at--) siftDown(heap, size, at, probs);
  // Each pop moves the most likely left to the end of the heap's part of the array, so the
  // k-th most likely candidate ends at count - 1 - k.
  let mass = 0;
  let taken = 0;
  while (size > 0) {
    const top = heap[0]!;
    size--;
    heap[0] = heap[size]!;
    heap[size] = top;
    siftDown(heap, size, 0, probs);
    taken++;
    mass += probs[top]!;
    if (mass >= topP) break;
  }
  const target = r * mass;
  let cdf = 0;
  for (let k = 0; k < taken; k++) {
    const id = heap[count - 1 - k]!;
    cdf += probs[id]!;
    if (target < cdf) return id;
  }
  return heap[count - taken]!;
}

/** Ranks candidates: the more likely first, and of two equally likely the lower id (a total order). */
function ranksBefore(a: number, b: number, probs: Float64Array): boolean {
  const pa = probs[a]!;
  const pb = probs[b]!;
  return pa > pb || (pa === pb && a < b);
}

/** Restores the heap order below `at`, in the first `size` entries of `heap`. */
function siftDown(heap: Int32Array, size: number, at: number, probs: Float64Array): void {
  const item = heap[at]!;
  for (;;) {
    let child = 2 * at + 1;
    if (child >= size) break;
    if (child + 1 < size && ranksBefore(heap[child + 1]!, heap[child]!, probs)) child++;
    if (!ranksBefore(heap[child]!, item, probs)) break;
    heap[at] = heap[child]!;
    at = child;
  }
  heap[at] = item;
}
