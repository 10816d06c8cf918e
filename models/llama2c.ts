// Reader (and writer, for tests and exports) of llama2.c's version-0 checkpoint: a header of
// 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) followed by
// float32 arrays in run.c's `memory_map_weights` order. A negative vocab_size means the
// classifier `wcls` is stored separately at the end of the file; a positive one means it is
// shared with the token embedding.
//
// The arrays are stored per kind across all layers (every layer's rms_att, then every
// layer's wq, ...), so a block range is read as one slice of each kind with positional
// reads: an agent loading layers [2, 4) of a large model never pulls the rest into memory.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { MATRIX_KINDS, matrixShape, type BlockRange, type HeadWeights, type LayerWeights, type LlamaConfig, type MatrixKind, type ModelWeights } from './types.js';
import { dequantize, f32Matrix, type WeightMatrix } from './weights.js';

export const LLAMA2C_HEADER_BYTES = 7 * 4;

/** What to materialize: a block range (default: all layers) and/or the gateway's head part. */
export interface ReadPart {
  range?: BlockRange;
  /** Read the token embedding, final norm and classifier (default true). */
  head?: boolean;
}

/** Byte offset and element count of every array in the file, derived from the header. */
interface Layout {
  config: LlamaConfig;
  /** offsets (bytes) of the per-kind arrays; layer arrays hold nLayers consecutive matrices. */
  offsets: Record<ArrayKind, number>;
  /** floats per layer for each per-layer kind. */
  perLayer: Record<LayerKind, number>;
  classifierOffset: number;
  expectedBytes: number;
}

type LayerKind = 'attnNorm' | 'ffnNorm' | MatrixKind;
type ArrayKind = LayerKind | 'tokenEmbedding' | 'finalNorm' | 'freqCis';

/** run.c's order of the arrays after the header (memory_map_weights). */
const FILE_ORDER: ArrayKind[] = [
  'tokenEmbedding', 'attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3', 'finalNorm', 'freqCis',
];

function assertLittleEndianHost(): void {
  // The file is little-endian; Float32Array views use the host order.
  if (endianness() !== 'LE') throw new Error('llama2.c checkpoints are little-endian; this host is big-endian');
}

export function parseLlama2cHeader(header: Buffer, source = 'checkpoint'): LlamaConfig {
  if (header.length < LLAMA2C_HEADER_BYTES) {
    throw new Error(`${source}: too short for a llama2.c header (${header.length} bytes, need ${LLAMA2C_HEADER_BYTES})`);
  }
  const h = Array.from({ length: 7 }, (_, i) => header.readInt32LE(i * 4));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h as [number, number, number, number, number, number, number];
  const vocabSize = Math.abs(rawVocab);
  const bad = [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen].some((v) => !(v > 0));
  if (bad || dim % nHeads !== 0 || nHeads % nKvHeads !== 0 || (dim / nHeads) % 2 !== 0) {
    throw new Error(`${source}: not a llama2.c version-0 checkpoint (header ${h.join(', ')}); ` +
      'expected positive sizes with dim divisible by n_heads, n_heads by n_kv_heads, and an even head size');
  }
  return {
    dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen,
    sharedClassifier: rawVocab > 0,
    // run.c hard-codes both: rmsnorm's 1e-5f and RoPE's 10000.0f.
    normEps: 1e-5,
    ropeTheta: 10000,
  };
}

function layoutOf(config: LlamaConfig): Layout {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen } = config;
  const headSize = dim / nHeads;
  const kvDim = nKvHeads * headSize;
  const perLayer: Record<LayerKind, number> = {
    attnNorm: dim, wq: dim * nHeads * headSize, wk: dim * kvDim, wv: dim * kvDim, wo: nHeads * headSize * dim,
    ffnNorm: dim, w1: dim * hiddenDim, w2: hiddenDim * dim, w3: dim * hiddenDim,
  };
  const sizes: Record<ArrayKind, number> = {
    ...Object.fromEntries(Object.entries(perLayer).map(([k, v]) => [k, v * nLayers])) as Record<LayerKind, number>,
    tokenEmbedding: vocabSize * dim,
    finalNorm: dim,
    // freq_cis_real and freq_cis_imag, seq_len * head_size / 2 each; unused since run.c
    // computes RoPE on the fly, but still present in version-0 files.
    freqCis: seqLen * headSize,
  };
  const offsets = {} as Record<ArrayKind, number>;
  let at = LLAMA2C_HEADER_BYTES;
  for (const kind of FILE_ORDER) {
    offsets[kind] = at;
    at += sizes[kind] * 4;
  }
  const classifierOffset = at;
  const expectedBytes = at + (config.sharedClassifier ? 0 : vocabSize * dim * 4);
  return { config, offsets, perLayer, classifierOffset, expectedBytes };
}

function readFloats(fd: number, offset: number, count: number): Float32Array {
  const out = new Float32Array(count);
  const bytes = new Uint8Array(out.buffer);
  let done = 0;
  while (done < bytes.length) {
    const n = readSync(fd, bytes, done, bytes.length - done, offset + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${offset + done}`);
    done += n;
  }
  return out;
}

/** Reads only the header of a llama2.c checkpoint. */
export function readLlama2cConfig(path: string): LlamaConfig {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(LLAMA2C_HEADER_BYTES);
    readSync(fd, header, 0, LLAMA2C_HEADER_BYTES, 0);
    return parseLlama2cHeader(header, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a llama2.c checkpoint, materializing only the requested block range and/or head.
 * Refuses a file whose size differs from what its header implies, since a truncated or
 * mislabelled file would otherwise load as garbage weights.
 */
export function readLlama2c(path: string, part: ReadPart = {}): ModelWeights {
  assertLittleEndianHost();
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(LLAMA2C_HEADER_BYTES);
    readSync(fd, header, 0, LLAMA2C_HEADER_BYTES, 0);
    const config = parseLlama2cHeader(header, path);
    const layout = layoutOf(config);
    const size = fstatSync(fd).size;
    if (size !== layout.expectedBytes) {
      throw new Error(`${path}: file is ${size} bytes but its header (dim ${config.dim}, ${config.nLayers} layers, ` +
        `vocab ${config.sharedClassifier ? '' : '-'}${config.vocabSize}) implies ${layout.expectedBytes}; ` +
        'the file is truncated or not a llama2.c version-0 checkpoint');
    }
    const range = part.range ?? { from: 0, to: config.nLayers };
    if (!(Number.isInteger(range.from) && Number.isInteger(range.to) && range.from >= 0 && range.from <= range.to && range.to <= config.nLayers)) {
      throw new Error(`block range [${range.from}, ${range.to}) is outside the model's ${config.nLayers} layers`);
    }
    const layers: LayerWeights[] = [];
    for (let l = range.from; l < range.to; l++) {
      const read = (kind: LayerKind) => readFloats(fd, layout.offsets[kind] + l * layout.perLayer[kind] * 4, layout.perLayer[kind]);
      const matrix = (kind: MatrixKind) => f32Matrix(read(kind), ...matrixShape(config, kind));
      layers.push({
        attnNorm: read('attnNorm'), ffnNorm: read('ffnNorm'),
        ...Object.fromEntries(MATRIX_KINDS.map((k) => [k, matrix(k)])) as Record<MatrixKind, WeightMatrix>,
      });
    }
    let head: HeadWeights | undefined;
    if (part.head ?? true) {
      const { vocabSize, dim } = config;
      const tokenEmbedding = f32Matrix(readFloats(fd, layout.offsets.tokenEmbedding, vocabSize * dim), vocabSize, dim);
      const finalNorm = readFloats(fd, layout.offsets.finalNorm, dim);
      const classifier = config.sharedClassifier
        ? tokenEmbedding
        : f32Matrix(readFloats(fd, layout.classifierOffset, vocabSize * dim), vocabSize, dim);
      head = { tokenEmbedding, finalNorm, classifier };
    }
    return { config, head, range, layers };
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a whole model as a llama2.c version-0 checkpoint (the format run.c reads). The
 * freq_cis tables are written as run.c's export did (cos/sin of pos * theta^(-2i/headSize)),
 * although readers skip them.
 */
export function writeLlama2c(path: string, weights: ModelWeights): void {
  assertLittleEndianHost();
  const { config, head, layers, range } = weights;
  if (!head || range.from !== 0 || range.to !== config.nLayers || layers.length !== config.nLayers) {
    throw new Error('writeLlama2c needs a whole model: every layer and the head part');
  }
  const header = Buffer.alloc(LLAMA2C_HEADER_BYTES);
  const rawVocab = config.sharedClassifier ? config.vocabSize : -config.vocabSize;
  [config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads, rawVocab, config.seqLen]
    .forEach((v, i) => header.writeInt32LE(v, i * 4));
  const headSize = config.dim / config.nHeads;
  const half = headSize / 2;
  const freqReal = new Float32Array(config.seqLen * half);
  const freqImag = new Float32Array(config.seqLen * half);
  for (let pos = 0; pos < config.seqLen; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(config.ropeTheta, (-2 * i) / headSize);
      freqReal[pos * half + i] = Math.cos(angle);
      freqImag[pos * half + i] = Math.sin(angle);
    }
  }
  const fd = openSync(path, 'w');
  try {
    const put = (a: Float32Array | WeightMatrix) => {
      const f = a instanceof Float32Array ? a : dequantize(a);
      writeSync(fd, new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
    };
    writeSync(fd, header);
    put(head.tokenEmbedding);
    for (const kind of ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'] as LayerKind[]) {
      for (const layer of layers) put(layer[kind]);
    }
    put(head.finalNorm);
    put(freqReal);
    put(freqImag);
    if (!config.sharedClassifier) put(head.classifier);
  } finally {
    closeSync(fd);
  }
}

/** Number of bytes a checkpoint with this config occupies (exposed for tests and `model info`). */
export function llama2cFileBytes(config: LlamaConfig): number {
  return layoutOf(config).expectedBytes;
}
