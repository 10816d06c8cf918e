// Our weights as GGUF files of architecture `llama` or `qwen2` (whole models, and the shard
// files of a block range and/or the head part), with llama.cpp's keys and tensor names (see
// gguf-llama.ts, which reads them back; qwen2's q/k rows go back to half-split here).
import type { GgmlTypeName } from './gguf.js';
import { writeGguf, type GgufMetadataEntry, type GgufTensorSpec, type GgufWriteResult } from './gguf-write.js';
import { BLOCK_RANGE_KEY, CHUNK_VALUES, GGUF_ARCHITECTURES, HEAD_KEY, LAYER_MATRICES, SHARED_CLASSIFIER_KEY } from './gguf-llama.js';
import { halfSplitRowOrder, invertOrder, permuteVector } from './rotary.js';
import { matrixShape, type BlockRange, type LlamaConfig, type MatrixKind, type ModelWeights } from './types.js';
import { BLOCK, checkMatrix, dequantizeRows, quantize, rowBytes, type WeightMatrix, type WeightType } from './weights.js';

const GGML_OF: Record<WeightType, GgmlTypeName> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', q4_0: 'Q4_0' };
/** general.file_type (llama.h llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_BF16 32). */
const FILE_TYPE: Record<WeightType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32 };

export interface GgufLlamaWriteOptions {
  /** Encoding of the 2-D matrices (1-D tensors are always f32); 'keep' writes each as it is stored. */
  type: WeightType | 'keep';
  /** general.name */
  name?: string;
  /** tokenizer.* entries (tokens as strings, scores as f32, token types as i32, ...). */
  tokenizerMetadata?: GgufMetadataEntry[];
  /** Anything else; a key given here replaces a standard one. */
  extraMetadata?: GgufMetadataEntry[];
}

export interface GgufPartWriteOptions extends GgufLlamaWriteOptions {
  /** Blocks to write (default: all the weights hold). */
  range?: BlockRange;
  /** Write the head part (default: when the weights hold it). */
  head?: boolean;
}

export interface GgufLlamaWriteResult extends GgufWriteResult {
  /**
   * Matrices written as f16 instead of a quantized `type`, because their row length is not
   * a multiple of the 32-value blocks (llama.cpp's quantizer also falls back for those).
   */
  f16Fallbacks: string[];
}

/** The standard metadata of a llama / qwen2 model (what llama.cpp reads, in its types). */
export function ggufLlamaMetadata(config: LlamaConfig, opts: { type?: WeightType; name?: string } = {}): GgufMetadataEntry[] {
  const arch = config.architecture ?? 'llama';
  if (!GGUF_ARCHITECTURES.includes(arch)) throw new Error(`architecture '${String(arch)}' cannot be written as GGUF`);
  const headSize = config.dim / config.nHeads;
  const entries: GgufMetadataEntry[] = [['general.architecture', arch, 'string']];
  if (opts.name !== undefined) entries.push(['general.name', opts.name, 'string']);
  if (opts.type !== undefined) {
    entries.push(['general.file_type', FILE_TYPE[opts.type], 'u32']);
    // [gguf] general.quantization_version: required when any tensor is quantized (GGML_QNT_VERSION 2)
    if (BLOCK[opts.type].values > 1) entries.push(['general.quantization_version', 2, 'u32']);
  }
  const k = (s: string) => `${arch}.${s}`;
  entries.push(
    [k('context_length'), config.seqLen, 'u32'],
    [k('embedding_length'), config.dim, 'u32'],
    [k('block_count'), config.nLayers, 'u32'],
    [k('feed_forward_length'), config.hiddenDim, 'u32'],
    [k('attention.head_count'), config.nHeads, 'u32'],
    [k('attention.head_count_kv'), config.nKvHeads, 'u32'],
    [k('attention.layer_norm_rms_epsilon'), config.normEps, 'f32'],
    [k('rope.freq_base'), config.ropeTheta, 'f32'],
    [k('rope.dimension_count'), headSize, 'u32'],
    [k('vocab_size'), config.vocabSize, 'u32'],
  );
  return entries;
}

/** Later entries replace earlier ones with the same key, keeping the first one's place. */
function mergeMetadata(...lists: (GgufMetadataEntry[] | undefined)[]): GgufMetadataEntry[] {
  const map = new Map<string, GgufMetadataEntry>();
  for (const list of lists) for (const e of list ?? []) map.set(e[0], e);
  return [...map.values()];
}

/** Row chunks of `m` (rows in `order` when given) in encoding `target`, a bounded number of values at a time. */
function* rowChunks(m: WeightMatrix, target: WeightType, order?: Int32Array): Iterable<Uint8Array> {
  const rb = rowBytes(m.type, m.cols);
  const step = Math.max(1, Math.floor(CHUNK_VALUES / Math.max(1, m.cols)));
  for (let r0 = 0; r0 < m.rows; r0 += step) {
    const r1 = Math.min(m.rows, r0 + step);
    let src: Uint8Array;
    if (order) {
      src = new Uint8Array((r1 - r0) * rb);
      for (let r = r0; r < r1; r++) src.set(m.data.subarray(order[r]! * rb, order[r]! * rb + rb), (r - r0) * rb);
    } else {
      src = m.data.subarray(r0 * rb, r1 * rb);
    }
    if (m.type === target) yield src;
    else yield quantize(dequantizeRows({ type: m.type, rows: r1 - r0, cols: m.cols, data: src }), r1 - r0, m.cols, target).data;
  }
}

class TensorList {
  readonly specs: GgufTensorSpec[] = [];
  readonly fallbacks: string[] = [];
  constructor(private readonly type: WeightType | 'keep') {}

  matrix(name: string, m: WeightMatrix, rows: number, cols: number, order?: Int32Array): void {
    if (m.rows !== rows || m.cols !== cols) throw new Error(`${name}: matrix is [${m.rows}][${m.cols}], expected [${rows}][${cols}]`);
    checkMatrix(m, name);
    let target = this.type === 'keep' ? m.type : this.type;
    if (cols % BLOCK[target].values !== 0) {
      target = 'f16';
      this.fallbacks.push(name);
    }
    const data = m.type === target && !order ? m.data : () => rowChunks(m, target, order);
    this.specs.push({ name, type: GGML_OF[target], dims: [cols, rows], data });
  }

  vector(name: string, v: Float32Array, n: number, order?: Int32Array): void {
    if (v.length !== n) throw new Error(`${name}: ${v.length} values, expected ${n}`);
    const values = order ? permuteVector(v, order) : v;
    this.specs.push({ name, type: 'F32', dims: [n], data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
  }
}

function writeModelFile(path: string, weights: ModelWeights, opts: GgufLlamaWriteOptions, range: BlockRange, withHead: boolean,
  partMetadata: GgufMetadataEntry[]): GgufLlamaWriteResult {
  const { config } = weights;
  const arch = config.architecture ?? 'llama';
  const hs = config.dim / config.nHeads;
  if (!Number.isInteger(hs) || hs % 2 !== 0) throw new Error(`dim ${config.dim} / nHeads ${config.nHeads} is not an even head size`);
  if (!(range.from >= weights.range.from && range.to <= weights.range.to && range.from <= range.to)) {
    throw new Error(`block range [${range.from}, ${range.to}) is outside the weights' [${weights.range.from}, ${weights.range.to})`);
  }
  if (withHead && !weights.head) throw new Error('the weights do not hold the head part');
  const qwen2 = arch === 'qwen2';
  // Our interleaved rows back to qwen2's half-split layout (the inverse of the load permutation).
  const qOrder = qwen2 ? invertOrder(halfSplitRowOrder(config.nHeads, hs)) : undefined;
  const kOrder = qwen2 ? invertOrder(halfSplitRowOrder(config.nKvHeads, hs)) : undefined;
  const t = new TensorList(opts.type);
  if (withHead) t.matrix('token_embd.weight', weights.head!.tokenEmbedding, config.vocabSize, config.dim);
  if (config.ropeFreqFactors) t.vector('rope_freqs.weight', Float32Array.from(config.ropeFreqFactors), hs / 2);
  for (let l = range.from; l < range.to; l++) {
    const layer = weights.layers[l - weights.range.from];
    if (!layer) throw new Error(`layer ${l} is missing from the weights`);
    const name = (n: string) => `blk.${l}.${n}`;
    t.vector(name('attn_norm.weight'), layer.attnNorm, config.dim);
    for (const kind of Object.keys(LAYER_MATRICES) as MatrixKind[]) {
      const [rows, cols] = matrixShape(config, kind);
      const order = kind === 'wq' ? qOrder : kind === 'wk' ? kOrder : undefined;
      t.matrix(name(`${LAYER_MATRICES[kind]}.weight`), layer[kind], rows, cols, order);
      const bias = kind === 'wq' ? layer.bq : kind === 'wk' ? layer.bk : kind === 'wv' ? layer.bv : undefined;
      if (bias) t.vector(name(`${LAYER_MATRICES[kind]}.bias`), bias, rows, order);
    }
    t.vector(name('ffn_norm.weight'), layer.ffnNorm, config.dim);
  }
  if (withHead) {
    t.vector('output_norm.weight', weights.head!.finalNorm, config.dim);
    if (!config.sharedClassifier) t.matrix('output.weight', weights.head!.classifier, config.vocabSize, config.dim);
  }
  const metadata = mergeMetadata(ggufLlamaMetadata(config, { name: opts.name, type: opts.type === 'keep' ? undefined : opts.type }), partMetadata, opts.tokenizerMetadata, opts.extraMetadata);
  const result = writeGguf(path, { metadata, tensors: t.specs });
  return { ...result, f16Fallbacks: t.fallbacks };
}

/**
 * Writes a whole model (every layer and the head) as a GGUF file of its architecture (llama,
 * or qwen2 when config.architecture says so), matrices in `opts.type`, 1-D tensors in f32,
 * no output.weight when the classifier is tied.
 */
export function writeGgufLlama(path: string, weights: ModelWeights, opts: GgufLlamaWriteOptions): GgufLlamaWriteResult {
  const { config } = weights;
  if (!weights.head || weights.range.from !== 0 || weights.range.to !== config.nLayers || weights.layers.length !== config.nLayers) {
    throw new Error('writeGgufLlama needs a whole model: every layer and the head part (writeGgufPart writes shards)');
  }
  return writeModelFile(path, weights, opts, weights.range, true, []);
}

/**
 * Writes a shard: the tensors of one block range and/or the head part, with the whole
 * model's metadata plus heliomesh.block_range [from, to], heliomesh.head and
 * heliomesh.shared_classifier (so a shard without the head still knows the tie). Layer
 * tensors keep their model-wide names (blk.N with N the model's block index).
 */
export function writeGgufPart(path: string, weights: ModelWeights, opts: GgufPartWriteOptions): GgufLlamaWriteResult {
  const range = opts.range ?? weights.range;
  const withHead = opts.head ?? weights.head !== undefined;
  return writeModelFile(path, weights, opts, range, withHead, [
    [BLOCK_RANGE_KEY, [range.from, range.to], 'u32'],
    [HEAD_KEY, withHead, 'bool'],
    [SHARED_CLASSIFIER_KEY, weights.config.sharedClassifier, 'bool'],
  ]);
}
