// GGUF files of architectures `llama` and `qwen2` as our LlamaConfig / ModelWeights (the
// other way, our weights as GGUF files, is gguf-llama-write.ts).
//
// Keys and tensor names are llama.cpp's (ggml/docs/gguf.md, "LLaMA" and "Standardized tensor
// names"; llama.cpp's convert_hf_to_gguf.py writes them): `{arch}.embedding_length`,
// `.feed_forward_length`, `.block_count`, `.context_length`, `.attention.head_count`,
// `.attention.head_count_kv`, `.attention.layer_norm_rms_epsilon`, `.rope.freq_base`,
// `.rope.dimension_count`, `.vocab_size`; tensors token_embd, output_norm, output (absent
// when the classifier is tied to the embedding), rope_freqs, and blk.N.{attn_norm, attn_q,
// attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up}.weight, plus qwen2's
// blk.N.attn_{q,k,v}.bias. GGUF lists dims innermost first, so our [rows][cols] matrix has
// dims [cols, rows] and its bytes are the same row-major bytes.
//
// RoPE. Our forward pass rotates interleaved pairs (x[2i], x[2i+1]) of each head (types.ts).
// - llama: llama.cpp's llama_model_rope_type (src/llama-model.cpp) gives LLM_ARCH_LLAMA
//   LLAMA_ROPE_TYPE_NORM, "a normal RoPE, operating on pairs of consecutive head values",
//   and convert_hf_to_gguf.py's LlamaModel.modify_tensors applies LlamaModel.permute to
//   q_proj/k_proj (reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)), turning Hugging
//   Face's half-split rows back into Meta's interleaved layout. So a llama GGUF holds our
//   layout: loaded and written as is.
// - qwen2: llama_model_rope_type gives LLM_ARCH_QWEN2 LLAMA_ROPE_TYPE_NEOX, "the pairs of
//   head values are offset by n_rot/2", and Qwen2Model.modify_tensors does not permute. So
//   the file's q/k rows (and biases) are half-split: rows i and i + headSize/2 of a head
//   rotate together. On load we move row a·headSize/2 + i of each head to row 2i + a (a = 0,
//   1), which is LlamaModel.permute; interleaved rotation of the moved rows equals half-split
//   rotation of the stored ones (same pairs, same angle pos·θ^(-2i/headSize)). On writing a
//   qwen2 file the rows go back. Whole rows move, so this works on quantized rows alike.
// - rope_freqs.weight (f32 [headSize/2]) is how llama.cpp stores Llama 3.1/3.2's "llama3"
//   rope scaling: convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors computes one
//   factor per frequency from rope_scaling (factor, low/high_freq_factor,
//   original_max_position_embeddings) and yields MODEL_TENSOR.ROPE_FREQS; ggml's rope
//   divides the angle of pair i by freq_factors[i] (ggml-cpu ops.cpp rope_cache_init:
//   `theta/ff` with ff = freq_factors[i0/2]). It becomes config.ropeFreqFactors.
//
// Tensor types: F32, F16, BF16, Q8_0 and Q4_0 matrices are kept exactly as stored; Q4_K and
// Q6_K (the bulk of a Q4_K_M file) are converted to Q8_0 on load, a few rows at a time
// (kquant.ts gives the memory and accuracy cost). 1-D tensors (norms, biases) become
// Float32Array whatever their stored type.
import { decodeFloats } from './f16.js';
import { GgufFile, type GgmlTypeName, type GgufTensorInfo, GgufValueType } from './gguf.js';
import { dequantizeKQuant, kquantRowsToQ8_0 } from './kquant.js';
import { halfSplitRowOrder, permuteRows, permuteVector } from './rotary.js';
import { matrixShape, type Architecture, type BlockRange, type HeadWeights, type LayerWeights, type LlamaConfig, type MatrixKind, type ModelWeights } from './types.js';
import { dequantizeRows, matrixBytes, rowBytes, type MatrixAllocator, type WeightMatrix, type WeightType } from './weights.js';

export const GGUF_ARCHITECTURES: readonly Architecture[] = ['llama', 'qwen2'];

/** What to materialize (the convention of llama2c.ts's ReadPart). */
export interface GgufReadPart {
  /** Where matrices are read into (default: fresh host arrays). */
  allocate?: MatrixAllocator;
  /** Default: the blocks the file holds (all of them, or heliomesh.block_range of a shard). */
  range?: BlockRange;
  /** Read the token embedding, final norm and classifier (default: when the file has them). */
  head?: boolean;
}

/** Our shard metadata: [from, to) of the blocks a file holds, whether it holds the head, the tie. */
export const BLOCK_RANGE_KEY = 'heliomesh.block_range';
export const HEAD_KEY = 'heliomesh.head';
export const SHARED_CLASSIFIER_KEY = 'heliomesh.shared_classifier';

const STORED: Partial<Record<GgmlTypeName, WeightType>> = { F32: 'f32', F16: 'f16', BF16: 'bf16', Q8_0: 'q8_0', Q4_0: 'q4_0' };
/** Values converted per step when a matrix changes encoding (bounds the f32 scratch). */
export const CHUNK_VALUES = 1 << 20;

export const LAYER_MATRICES: Record<MatrixKind, string> = {
  wq: 'attn_q', wk: 'attn_k', wv: 'attn_v', wo: 'attn_output', w1: 'ffn_gate', w2: 'ffn_down', w3: 'ffn_up',
};
const LAYER_NORMS = { attnNorm: 'attn_norm', ffnNorm: 'ffn_norm' } as const;
const LAYER_BIASES = { bq: 'attn_q', bk: 'attn_k', bv: 'attn_v' } as const;
const LAYER_TENSORS = new Set([
  ...Object.values(LAYER_MATRICES).map((n) => `${n}.weight`),
  ...Object.values(LAYER_NORMS).map((n) => `${n}.weight`),
  ...Object.values(LAYER_BIASES).map((n) => `${n}.bias`),
]);
const TOP_TENSORS = new Set(['token_embd.weight', 'output_norm.weight', 'output.weight', 'rope_freqs.weight']);

// ---------------------------------------------------------------------------------------
// Reading

/** The shortest decimal that is the same float32 (1e-5 for 9.99999974738e-6), else x. */
function shortestF32(x: number): number {
  if (Math.fround(x) !== x || !Number.isFinite(x)) return x;
  for (let p = 1; p <= 9; p++) {
    const c = Number(x.toPrecision(p));
    if (Math.fround(c) === x) return c;
  }
  return x;
}

function intKey(file: GgufFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new Error(`${file.path}: '${key}' is an array (per-layer values); Heliomesh needs one value for all layers`);
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Error(`${file.path}: '${key}' must be a non-negative integer, got ${String(v)}`);
  return n;
}

function requiredInt(file: GgufFile, key: string): number {
  const n = intKey(file, key);
  if (n === undefined) throw new Error(`${file.path}: GGUF metadata '${key}' is missing`);
  return n;
}

function floatKey(file: GgufFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`${file.path}: '${key}' must be a number, got ${String(v)}`);
  return file.metadataType(key)?.type === GgufValueType.FLOAT32 ? shortestF32(n) : n;
}

function architectureOf(file: GgufFile): Architecture {
  const arch = file.metadata.get('general.architecture');
  if (typeof arch !== 'string') throw new Error(`${file.path}: no general.architecture in the GGUF metadata; is this a model file?`);
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new Error(`${file.path}: architecture '${arch}' is not supported; Heliomesh serves llama and qwen2`);
  }
  return arch as Architecture;
}

/** Reads one 1-D tensor of `n` values as f32, whatever its stored type. */
function readVector(file: GgufFile, name: string, n: number): Float32Array {
  const t = requireTensor(file, name);
  if (t.dims[0] !== n || t.dims.slice(1).some((d) => d !== 1)) {
    throw new Error(`${file.path}: tensor '${name}' has dims [${t.dims.join(', ')}], expected [${n}]`);
  }
  const bytes = file.readTensor(name);
  switch (t.type) {
    case 'F32': case 'F16': case 'BF16':
      return decodeFloats(bytes, STORED[t.type] as 'f32' | 'f16' | 'bf16', n);
    case 'Q8_0': case 'Q4_0':
      return dequantizeRows({ type: STORED[t.type]!, rows: 1, cols: n, data: bytes });
    case 'Q4_K': case 'Q6_K':
      return dequantizeKQuant(t.type === 'Q4_K' ? 'q4_k' : 'q6_k', bytes, n);
  }
}

function requireTensor(file: GgufFile, name: string): GgufTensorInfo {
  const t = file.tensors.get(name);
  if (!t) throw new Error(`${file.path}: tensor '${name}' is missing`);
  return t;
}

/** Reads a [rows][cols] matrix in its stored encoding (Q4_K / Q6_K converted to Q8_0 a few rows at a time). */
/**
 * One matrix, read into memory from `allocate` (default: a fresh array); with `order`, our
 * row r is the file's row order[r] (qwen2's q/k, see halfSplitRowOrder), read row by row.
 */
function readMatrix(file: GgufFile, name: string, rows: number, cols: number, allocate?: MatrixAllocator, order?: Int32Array): WeightMatrix {
  const t = requireTensor(file, name);
  if (t.dims[0] !== cols || (t.dims[1] ?? 1) !== rows || t.dims.slice(2).some((d) => d !== 1)) {
    throw new Error(`${file.path}: tensor '${name}' has dims [${t.dims.join(', ')}], expected [${cols}, ${rows}] ` +
      `(a [${rows}][${cols}] matrix)`);
  }
  const stored = STORED[t.type];
  if (stored) {
    if (!allocate && !order) return { type: stored, rows, cols, data: file.readTensor(name) };
    const data = allocate ? allocate(stored, rows, cols) : new Uint8Array(matrixBytes(stored, rows, cols));
    if (!order) {
      file.readTensorRowsInto(name, 0, rows, data);
    } else {
      const rb = rowBytes(stored, cols);
      for (let r = 0; r < rows; r++) file.readTensorRowsInto(name, order[r]!, order[r]! + 1, data.subarray(r * rb, (r + 1) * rb));
    }
    return { type: stored, rows, cols, data };
  }
  const kind = t.type === 'Q4_K' ? 'q4_k' : 'q6_k';
  if (order) {
    const m = readMatrix(file, name, rows, cols);
    const permuted = permuteRows(m, order);
    if (!allocate) return permuted;
    const data = allocate('q8_0', rows, cols);
    data.set(permuted.data);
    return { ...permuted, data };
  }
  const out = allocate ? allocate('q8_0', rows, cols) : new Uint8Array(matrixBytes('q8_0', rows, cols));
  const dstRow = rowBytes('q8_0', cols);
  const step = Math.max(1, Math.floor(CHUNK_VALUES / cols));
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    kquantRowsToQ8_0(kind, file.readTensorRows(name, r0, r1), r1 - r0, cols, out, r0 * dstRow);
  }
  return { type: 'q8_0', rows, cols, data: out };
}

/** Refuses tensors outside the layout we serve: the forward pass would silently ignore them. */
function checkLayout(file: GgufFile, config: LlamaConfig): void {
  const unknown: string[] = [];
  for (const name of file.tensors.keys()) {
    const m = /^blk\.(\d+)\.(.+)$/.exec(name);
    if (m ? !(Number(m[1]) < config.nLayers && LAYER_TENSORS.has(m[2]!)) : !TOP_TENSORS.has(name)) unknown.push(name);
  }
  if (unknown.length > 0) {
    throw new Error(`${file.path}: tensor${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 5).map((n) => `'${n}'`).join(', ')}` +
      `${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''} ${unknown.length > 1 ? 'are' : 'is'} not part of the ` +
      `${config.architecture} layout Heliomesh serves (a variant of the architecture it does not implement?)`);
  }
}

/** The model's configuration from a GGUF file's metadata (and its rope_freqs tensor). */
export function readGgufConfig(file: GgufFile): LlamaConfig {
  const arch = architectureOf(file);
  const key = (k: string) => `${arch}.${k}`;
  const dim = requiredInt(file, key('embedding_length'));
  const hiddenDim = requiredInt(file, key('feed_forward_length'));
  const nLayers = requiredInt(file, key('block_count'));
  const nHeads = requiredInt(file, key('attention.head_count'));
  const nKvHeads = intKey(file, key('attention.head_count_kv')) ?? nHeads;
  const seqLen = requiredInt(file, key('context_length'));
  const normEps = floatKey(file, key('attention.layer_norm_rms_epsilon'));
  if (normEps === undefined) throw new Error(`${file.path}: GGUF metadata '${key('attention.layer_norm_rms_epsilon')}' is missing`);
  const ropeTheta = floatKey(file, key('rope.freq_base')) ?? 10000;
  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  const vocabSize = intKey(file, key('vocab_size')) ?? (Array.isArray(tokens) ? tokens.length : undefined) ??
    file.tensors.get('token_embd.weight')?.dims[1];
  if (vocabSize === undefined) {
    throw new Error(`${file.path}: no vocabulary size (${key('vocab_size')}, tokenizer.ggml.tokens or token_embd.weight)`);
  }
  if ([dim, hiddenDim, nHeads, nKvHeads, vocabSize, seqLen].some((v) => !(v > 0))) {
    throw new Error(`${file.path}: sizes must be positive (dim ${dim}, feed_forward ${hiddenDim}, heads ${nHeads}/${nKvHeads}, ` +
      `vocab ${vocabSize}, context ${seqLen})`);
  }
  const headSize = dim / nHeads;
  if (!Number.isInteger(headSize) || headSize % 2 !== 0) {
    throw new Error(`${file.path}: embedding_length ${dim} is not an even head size times head_count ${nHeads}; ` +
      'Heliomesh needs head size = dim / n_heads, and even');
  }
  if (nHeads % nKvHeads !== 0) throw new Error(`${file.path}: head_count ${nHeads} is not a multiple of head_count_kv ${nKvHeads}`);
  for (const k of ['attention.key_length', 'attention.value_length']) {
    const v = intKey(file, key(k));
    if (v !== undefined && v !== headSize) {
      throw new Error(`${file.path}: ${key(k)} is ${v}, but Heliomesh needs the head size to be embedding_length / head_count = ${headSize}`);
    }
  }
  const ropeDims = intKey(file, key('rope.dimension_count'));
  if (ropeDims !== undefined && ropeDims !== headSize) {
    throw new Error(`${file.path}: ${key('rope.dimension_count')} is ${ropeDims}, but Heliomesh rotates whole heads ` +
      `(head size ${headSize}); partial rotary embeddings are not supported`);
  }
  const experts = intKey(file, key('expert_count'));
  if (experts !== undefined && experts > 0) throw new Error(`${file.path}: mixture-of-experts models (${experts} experts) are not supported`);

  let factors: number[] | undefined;
  if (file.tensors.has('rope_freqs.weight')) factors = Array.from(readVector(file, 'rope_freqs.weight', headSize / 2));
  const scaling = file.metadata.get(key('rope.scaling.type'));
  const linear = scaling === 'linear' ? floatKey(file, key('rope.scaling.factor')) : floatKey(file, key('rope.scale_linear'));
  if (scaling !== undefined && scaling !== 'none' && scaling !== 'linear') {
    throw new Error(`${file.path}: rope scaling '${String(scaling)}' is not supported (Heliomesh applies plain RoPE, ` +
      'per-frequency factors (rope_freqs) and linear scaling)');
  }
  if (linear !== undefined && linear !== 1) {
    // Linear scaling divides the position, hence every angle, by the factor.
    if (!(linear > 0)) throw new Error(`${file.path}: rope scaling factor ${linear} must be positive`);
    factors = (factors ?? new Array<number>(headSize / 2).fill(1)).map((v) => v * linear);
  }

  const tie = file.metadata.get(SHARED_CLASSIFIER_KEY);
  const config: LlamaConfig = {
    dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen,
    sharedClassifier: typeof tie === 'boolean' ? tie : !file.tensors.has('output.weight'),
    normEps, ropeTheta, architecture: arch,
  };
  if (factors) config.ropeFreqFactors = factors;
  checkLayout(file, config);
  return config;
}

/** The blocks a file holds: heliomesh.block_range of a shard, else all. */
export function ggufBlockRange(file: GgufFile, config: LlamaConfig): BlockRange {
  const v = file.metadata.get(BLOCK_RANGE_KEY);
  if (v === undefined) return { from: 0, to: config.nLayers };
  const [from, to] = Array.isArray(v) ? v.map((x) => Number(x)) : [];
  if (!Array.isArray(v) || v.length !== 2 || !Number.isInteger(from) || !Number.isInteger(to) ||
    from! < 0 || from! > to! || to! > config.nLayers) {
    throw new Error(`${file.path}: ${BLOCK_RANGE_KEY} must be [from, to] within the model's ${config.nLayers} blocks, got ${JSON.stringify(v, (_, x) => typeof x === 'bigint' ? Number(x) : x)}`);
  }
  return { from: from!, to: to! };
}

function readLayer(file: GgufFile, config: LlamaConfig, l: number, allocate?: MatrixAllocator): LayerWeights {
  const hs = config.dim / config.nHeads;
  const qwen2 = config.architecture === 'qwen2';
  const qOrder = qwen2 ? halfSplitRowOrder(config.nHeads, hs) : undefined;
  const kOrder = qwen2 ? halfSplitRowOrder(config.nKvHeads, hs) : undefined;
  const name = (n: string) => `blk.${l}.${n}`;
  const layer = {} as LayerWeights;
  layer.attnNorm = readVector(file, name('attn_norm.weight'), config.dim);
  layer.ffnNorm = readVector(file, name('ffn_norm.weight'), config.dim);
  for (const kind of Object.keys(LAYER_MATRICES) as MatrixKind[]) {
    const [rows, cols] = matrixShape(config, kind);
    const order = kind === 'wq' ? qOrder : kind === 'wk' ? kOrder : undefined;
    layer[kind] = readMatrix(file, name(`${LAYER_MATRICES[kind]}.weight`), rows, cols, allocate, order);
  }
  for (const kind of ['bq', 'bk', 'bv'] as const) {
    const tensor = name(`${LAYER_BIASES[kind]}.bias`);
    if (!file.tensors.has(tensor)) continue;
    const n = (kind === 'bq' ? config.nHeads : config.nKvHeads) * hs;
    let b = readVector(file, tensor, n);
    if (kind === 'bq' && qOrder) b = permuteVector(b, qOrder);
    if (kind === 'bk' && kOrder) b = permuteVector(b, kOrder);
    layer[kind] = b;
  }
  return layer;
}

function readHead(file: GgufFile, config: LlamaConfig, allocate?: MatrixAllocator): HeadWeights {
  const tokenEmbedding = readMatrix(file, 'token_embd.weight', config.vocabSize, config.dim, allocate);
  const finalNorm = readVector(file, 'output_norm.weight', config.dim);
  let classifier = tokenEmbedding;
  if (!config.sharedClassifier) {
    if (!file.tensors.has('output.weight')) {
      throw new Error(`${file.path}: the classifier is not tied (${SHARED_CLASSIFIER_KEY} false) but output.weight is missing`);
    }
    classifier = readMatrix(file, 'output.weight', config.vocabSize, config.dim, allocate);
  }
  return { tokenEmbedding, finalNorm, classifier };
}

/**
 * Reads a GGUF model (or shard), materializing only the requested block range and/or head
 * part: each tensor is one positional read of its own bytes, so an agent loading blocks
 * [2, 4) reads nothing of the others.
 */
export function readGgufLlama(source: string | GgufFile, part: GgufReadPart = {}): ModelWeights {
  const file = typeof source === 'string' ? GgufFile.open(source) : source;
  try {
    const config = readGgufConfig(file);
    const held = ggufBlockRange(file, config);
    const range = part.range ?? held;
    if (!(Number.isInteger(range.from) && Number.isInteger(range.to) && range.from >= 0 && range.from <= range.to && range.to <= config.nLayers)) {
      throw new Error(`block range [${range.from}, ${range.to}) is outside the model's ${config.nLayers} layers`);
    }
    if (range.from < range.to && (range.from < held.from || range.to > held.to)) {
      throw new Error(`${file.path} holds blocks [${held.from}, ${held.to}) of the model's ${config.nLayers}; ` +
        `block range [${range.from}, ${range.to}) is outside them`);
    }
    const hasHead = file.tensors.has('token_embd.weight');
    const wantHead = part.head ?? hasHead;
    if (wantHead && !hasHead) throw new Error(`${file.path} does not hold the head part (no token_embd.weight)`);
    const layers: LayerWeights[] = [];
    for (let l = range.from; l < range.to; l++) layers.push(readLayer(file, config, l, part.allocate));
    const head = wantHead ? readHead(file, config, part.allocate) : undefined;
    return { config, head, range: { from: range.from, to: range.to }, layers };
  } finally {
    if (typeof source === 'string') file.close();
  }
}
