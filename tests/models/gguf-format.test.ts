// The GGUF container: our writer checked by an independent reader (@huggingface/gguf), our
// reader on every value type, and the files it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { GgufFile, GgufValueType, type GgufValue } from '../../models/gguf.js';
import { readGgufConfig, readGgufLlama } from '../../models/gguf-llama.js';
import { ggufLlamaMetadata, writeGgufLlama } from '../../models/gguf-llama-write.js';
import { writeGguf, type GgufMetadataEntry, type GgufTensorSpec } from '../../models/gguf-write.js';
import type { LlamaConfig, ModelWeights } from '../../models/types.js';
import { dequantize, quantize } from '../../models/weights.js';

function withTmp<T>(fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'gguf-format-'));
  return Promise.resolve().then(() => fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

/** One entry of every value type, arrays of each, nested and empty arrays. */
const everyType: GgufMetadataEntry[] = [
  ['general.architecture', 'llama'],
  ['test.u8', 255, 'u8'],
  ['test.i8', -128, 'i8'],
  ['test.u16', 65535, 'u16'],
  ['test.i16', -32768, 'i16'],
  ['test.u32', 4294967295],
  ['test.i32', -2147483648],
  ['test.f32', 0.1],
  ['test.bool', false],
  ['test.string', 'grüße, 世界 🙂'],
  ['test.u64', 18446744073709551615n],
  ['test.i64', -9223372036854775808n],
  ['test.f64', 0.1, 'f64'],
  ['test.u64_from_number', 7, 'u64'],
  ['test.empty_string', ''],
  ['test.strings', ['a', '', 'ü', 'x'.repeat(300)]],
  ['test.ints', [1, -2, 3]],
  ['test.uints', [1, 4294967295]],
  ['test.floats', [0.5, -1.25, 1e-5]],
  ['test.bools', [true, false, true]],
  ['test.u8s', [0, 1, 255], 'u8'],
  ['test.i16s', [-1, 2], 'i16'],
  ['test.u64s', [1n, 2n]],
  ['test.f64s', [Math.PI, Math.E], 'f64'],
  ['test.empty_ints', [], 'i32'],
  ['test.nested', [[1, 2], [3], []], 'i32'],
  ['test.nested_strings', [['a', 'b'], ['c']]],
];

test('every metadata value type: the independent reader and ours agree with what was written', () => withTmp(async (dir) => {
  const path = join(dir, 'types.gguf');
  const tensors: GgufTensorSpec[] = [
    { name: 'a', type: 'F32', dims: [3], data: f32([1, 2, 3]) },
    { name: 'b', type: 'F16', dims: [2, 2], data: new Uint8Array(8).fill(0x3c) },
  ];
  writeGguf(path, { metadata: everyType, tensors });
  const ours = GgufFile.open(path);
  const theirs = await gguf(path, { allowLocalFile: true, typedMetadata: true });
  const meta = theirs.metadata as unknown as Record<string, unknown>;
  try {
    const expected = (v: GgufValue, type?: string): GgufValue => {
      if (Array.isArray(v)) return v.map((x) => expected(x, type));
      if (typeof v === 'number' && !Number.isInteger(v) && type !== 'f64') return Math.fround(v);
      if (type === 'u64' && typeof v === 'number') return BigInt(v);
      return v;
    };
    for (const [key, value, type] of everyType) {
      assert.deepEqual(ours.metadata.get(key), expected(value, type), key);
      assert.deepEqual(meta[key], ours.metadata.get(key), `@huggingface/gguf on ${key}`);
      assert.equal(theirs.typedMetadata[key]!.type, ours.metadataType(key)!.type, `type of ${key}`);
    }
    const typeOf = (k: string) => ours.metadataType(k);
    assert.deepEqual(typeOf('test.u32'), { type: GgufValueType.UINT32 });
    assert.deepEqual(typeOf('test.i32'), { type: GgufValueType.INT32 });
    assert.deepEqual(typeOf('test.f32'), { type: GgufValueType.FLOAT32 });
    assert.deepEqual(typeOf('test.u64'), { type: GgufValueType.UINT64 });
    assert.deepEqual(typeOf('test.ints'), { type: GgufValueType.ARRAY, elementType: GgufValueType.INT32 });
    assert.deepEqual(typeOf('test.uints'), { type: GgufValueType.ARRAY, elementType: GgufValueType.UINT32 });
    assert.deepEqual(typeOf('test.floats'), { type: GgufValueType.ARRAY, elementType: GgufValueType.FLOAT32 });
    assert.deepEqual(typeOf('test.empty_ints'), { type: GgufValueType.ARRAY, elementType: GgufValueType.INT32 });
    assert.deepEqual(typeOf('test.nested'), { type: GgufValueType.ARRAY, elementType: GgufValueType.INT32 });
    assert.equal(theirs.typedMetadata['test.nested']!.subType, GgufValueType.ARRAY);
    assert.deepEqual(ours.readTensor('a'), f32([1, 2, 3]));
    assert.equal(ours.tensor('b').offset, ours.dataOffset + 32, 'the second tensor starts at the next multiple of 32');
    assert.equal(Number(theirs.tensorDataOffset), ours.dataOffset);
    assert.equal(readFileSync(path).byteLength, ours.dataOffset + 32 + 32, 'the last tensor is padded too');
  } finally {
    ours.close();
  }
}));

test('alignment, streamed tensor data and version 2', () => withTmp(async (dir) => {
  const path = join(dir, 'aligned.gguf');
  const chunks = [new Uint8Array(34).fill(1), new Uint8Array(34).fill(2)];
  const result = writeGguf(path, {
    metadata: [['general.architecture', 'llama']],
    alignment: 64,
    version: 2,
    tensors: [
      { name: 'x', type: 'F32', dims: [1], data: f32([5]) },
      { name: 'q', type: 'Q8_0', dims: [32, 2], data: () => chunks },
    ],
  });
  const file = GgufFile.open(path);
  const theirs = await gguf(path, { allowLocalFile: true });
  try {
    assert.equal(Number(theirs.tensorDataOffset), file.dataOffset);
    assert.deepEqual(theirs.tensorInfos.map((t) => Number(t.offset)), [0, 64]);
    assert.equal(file.version, 2);
    assert.equal(file.alignment, 64);
    assert.equal(file.metadata.get('general.alignment'), 64);
    assert.equal(file.dataOffset % 64, 0);
    assert.equal(file.tensor('q').offset, file.dataOffset + 64);
    assert.deepEqual(file.readTensor('q'), new Uint8Array([...chunks[0]!, ...chunks[1]!]));
    assert.deepEqual(file.readTensorRows('q', 1, 2), chunks[1]);
    assert.equal(result.bytes, readFileSync(path).byteLength);
  } finally {
    file.close();
  }
}));

test('opening reads the header only; a tensor is one read of its own bytes', () => withTmp((dir) => {
  const path = join(dir, 'big.gguf');
  const big = new Uint8Array(8 << 20).map((_, i) => i & 0xff);
  writeGguf(path, {
    metadata: [['general.architecture', 'llama']],
    tensors: [{ name: 'small', type: 'F32', dims: [2], data: f32([1, 2]) }, { name: 'big', type: 'F16', dims: [4096, 1024], data: big }],
  });
  const file = GgufFile.open(path);
  try {
    assert.ok(file.headerBytesRead <= 64 * 1024, `header read ${file.headerBytesRead} bytes`);
    assert.equal(file.bytesRead, 0);
    assert.deepEqual(file.readTensor('small'), f32([1, 2]));
    assert.equal(file.bytesRead, 8);
    assert.deepEqual(file.readTensorRows('big', 1000, 1001), big.subarray(1000 * 8192, 1001 * 8192));
    assert.equal(file.bytesRead, 8 + 8192);
  } finally {
    file.close();
  }
  assert.throws(() => file.readTensor('small'), /GGUF file is closed/);
}));

test('the writer refuses inconsistent input and leaves no file behind', () => withTmp((dir) => {
  const path = join(dir, 'bad.gguf');
  const base = { metadata: [['general.architecture', 'llama']] as GgufMetadataEntry[], tensors: [] as GgufTensorSpec[] };
  assert.throws(() => writeGguf(path, { ...base, metadata: [['k', 1], ['k', 2]] }), /metadata key 'k' is given twice/);
  assert.throws(() => writeGguf(path, { ...base, metadata: [['k', 256, 'u8']] }), /metadata 'k': an integer in \[0, 255\] expected, got 256/);
  assert.throws(() => writeGguf(path, { ...base, metadata: [['k', []]] }), /empty array needs an explicit element type/);
  assert.throws(() => writeGguf(path, { ...base, tensors: [{ name: 't', type: 'Q8_0', dims: [31, 1], data: new Uint8Array(34) }] }),
    /Q8_0 rows are blocks of 32 values, but the row length \(dims\[0\]\) is 31/);
  assert.throws(() => writeGguf(path, { ...base, tensors: [{ name: 't', type: 'F32', dims: [2], data: new Uint8Array(4) }] }), /needs 8 bytes, got 4/);
  assert.throws(() => writeGguf(path, { ...base, tensors: [{ name: 't', type: 'F32', dims: [2], data: () => [new Uint8Array(12)] }] }),
    /its producer gave 12 bytes, F32 \[2\] needs 8/);
  assert.throws(() => writeGguf(path, { ...base, tensors: [{ name: 'x'.repeat(65), type: 'F32', dims: [1], data: f32([1]) }] }), /1 to 64 bytes/);
  assert.equal(existsSync(path), false);
  assert.equal(existsSync(`${path}.tmp`), false);
}));

test('a tokenizer of 150k strings parses quickly', () => withTmp((dir) => {
  const path = join(dir, 'vocab.gguf');
  const tokens = Array.from({ length: 150_000 }, (_, i) => `▁token${i}`);
  writeGguf(path, {
    metadata: [
      ['general.architecture', 'llama'],
      ['tokenizer.ggml.tokens', tokens],
      ['tokenizer.ggml.scores', tokens.map((_, i) => -i), 'f32'],
      ['tokenizer.ggml.token_type', tokens.map(() => 1), 'i32'],
    ],
    tensors: [{ name: 'x', type: 'F32', dims: [1], data: f32([1]) }],
  });
  const t0 = performance.now();
  const file = GgufFile.open(path);
  const ms = performance.now() - t0;
  try {
    assert.deepEqual(file.metadata.get('tokenizer.ggml.tokens'), tokens);
    assert.equal((file.metadata.get('tokenizer.ggml.scores') as number[])[149_999], -149_999);
    assert.deepEqual(file.readTensor('x'), f32([1]));
    assert.ok(ms < 2000, `header parse took ${ms.toFixed(0)} ms`);
  } finally {
    file.close();
  }
}));

// ---------------------------------------------------------------------------------------
// Refusals

const config: LlamaConfig = {
  dim: 64, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 4, vocabSize: 8, seqLen: 16,
  sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000, architecture: 'llama',
};

function tinyModel(): ModelWeights {
  const m = (rows: number, cols: number) => quantize(new Float32Array(rows * cols).fill(0.5), rows, cols, 'q8_0');
  const v = (n: number) => new Float32Array(n).fill(1);
  const emb = m(8, 64);
  return {
    config, range: { from: 0, to: 1 },
    layers: [{ attnNorm: v(64), wq: m(64, 64), wk: m(64, 64), wv: m(64, 64), wo: m(64, 64), ffnNorm: v(64), w1: m(64, 64), w2: m(64, 64), w3: m(64, 64) }],
    head: { tokenEmbedding: emb, finalNorm: v(64), classifier: emb },
  };
}

/** Byte offset of the tensor info of `name` in the header (just after its name). */
function infoAfterName(bytes: Buffer, name: string): number {
  const needle = Buffer.concat([Buffer.alloc(8), Buffer.from(name)]);
  needle.writeBigUInt64LE(BigInt(name.length));
  const at = bytes.indexOf(needle);
  assert.ok(at > 0, `tensor info of ${name} not found`);
  return at + needle.length;
}

test('1-D tensors stored as f16 or bf16 load as Float32Array', () => withTmp((dir) => {
  const path = join(dir, 'norms.gguf');
  const model = tinyModel();
  const layer = model.layers[0]!;
  const norm = Float32Array.from({ length: 64 }, (_, i) => 1 + i / 64);
  const matrix = (name: string, m: { rows: number; cols: number; data: Uint8Array }): GgufTensorSpec =>
    ({ name, type: 'Q8_0', dims: [m.cols, m.rows], data: m.data });
  const f16 = quantize(norm, 1, 64, 'f16').data;
  const bf16 = quantize(norm, 1, 64, 'bf16').data;
  writeGguf(path, {
    metadata: ggufLlamaMetadata(config),
    tensors: [
      matrix('token_embd.weight', model.head!.tokenEmbedding),
      { name: 'output_norm.weight', type: 'BF16', dims: [64], data: bf16 },
      { name: 'blk.0.attn_norm.weight', type: 'F16', dims: [64], data: f16 },
      { name: 'blk.0.ffn_norm.weight', type: 'BF16', dims: [64], data: bf16 },
      ...(['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const).map((k, i) =>
        matrix(`blk.0.${['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_down', 'ffn_up'][i]}.weight`, layer[k])),
    ],
  });
  const w = readGgufLlama(path);
  assert.ok(w.layers[0]!.attnNorm instanceof Float32Array);
  assert.deepEqual(w.layers[0]!.attnNorm, dequantize(quantize(norm, 1, 64, 'f16')));
  assert.deepEqual(w.layers[0]!.ffnNorm, dequantize(quantize(norm, 1, 64, 'bf16')));
  assert.deepEqual(w.head!.finalNorm, w.layers[0]!.ffnNorm);
  assert.deepEqual(w.layers[0]!.wq, layer.wq);
}));

test('refused: an architecture other than llama and qwen2', () => withTmp((dir) => {
  const path = join(dir, 'gemma.gguf');
  const metadata = ggufLlamaMetadata({ ...config, architecture: 'llama' }).map(([k, v, t]): GgufMetadataEntry =>
    [k === 'general.architecture' ? k : k.replace(/^llama\./, 'gemma2.'), k === 'general.architecture' ? 'gemma2' : v, t]);
  writeGguf(path, { metadata, tensors: [] });
  const file = GgufFile.open(path);
  assert.throws(() => readGgufConfig(file), /architecture 'gemma2' is not supported; Heliomesh serves llama and qwen2/);
  file.close();
}));

test('refused: tensor types we do not read, naming the tensor and the type', () => withTmp((dir) => {
  const path = join(dir, 'q5k.gguf');
  writeGgufLlama(path, tinyModel(), { type: 'q8_0' });
  const bytes = readFileSync(path);
  const at = infoAfterName(bytes, 'blk.0.ffn_down.weight');
  const typeAt = at + 4 + 2 * 8; // n_dimensions, two dims
  assert.equal(bytes.readUInt32LE(typeAt), 8, 'Q8_0 before patching');
  for (const [id, name] of [[13, 'Q5_K'], [10, 'Q2_K'], [16, 'IQ2_XXS'], [99, 'unknown type 99']] as const) {
    bytes.writeUInt32LE(id, typeAt);
    writeFileSync(path, bytes);
    assert.throws(() => GgufFile.open(path), new RegExp(`tensor 'blk.0.ffn_down.weight' has ggml type ${name} \\(${id}\\), which Heliomesh does not read`));
  }
}));

test('refused: truncated files, bad magic, other versions, absurd counts, corrupt values', () => withTmp((dir) => {
  const path = join(dir, 'm.gguf');
  writeGgufLlama(path, tinyModel(), { type: 'q8_0', tokenizerMetadata: [['tokenizer.ggml.tokens', ['a', 'b', 'c']]] });
  const good = readFileSync(path);
  const variant = (edit: (b: Buffer) => Buffer | void): string => {
    const b = Buffer.from(good);
    const out = edit(b) ?? b;
    writeFileSync(path, out);
    return path;
  };

  truncateSync(variant(() => {}), good.byteLength - 100);
  assert.throws(() => GgufFile.open(path), /truncated GGUF file: tensor '.*' .* occupies bytes \d+ to \d+, but the file has \d+/);
  const good0 = GgufFile.open(variant(() => {}));
  const headerEnd = good0.dataOffset;
  good0.close();
  truncateSync(path, headerEnd - 40);
  assert.throws(() => GgufFile.open(path), new RegExp(`truncated GGUF file: .* at byte \\d+ needs \\d+ bytes, but the file ends at byte ${headerEnd - 40}`));
  truncateSync(path, 200);
  assert.throws(() => GgufFile.open(path), /corrupt or truncated GGUF file: header claims 11 tensors and 14 metadata pairs, more than the 176 bytes left could hold/);
  writeFileSync(path, good.subarray(0, 2));
  assert.throws(() => GgufFile.open(path), /not a GGUF file \(2 bytes\)/);

  variant((b) => { b.write('GGML', 0, 'latin1'); });
  assert.throws(() => GgufFile.open(path), /not a GGUF file \(starts with "GGML", expected "GGUF"\)/);
  variant((b) => { b.writeUInt32LE(1, 4); });
  assert.throws(() => GgufFile.open(path), /GGUF version 1 \(32-bit counts\) is not supported/);
  variant((b) => { b.writeUInt32BE(3, 4); });
  assert.throws(() => GgufFile.open(path), /big-endian GGUF files are not supported/);
  variant((b) => { b.writeUInt32LE(4, 4); });
  assert.throws(() => GgufFile.open(path), /unsupported GGUF version 4/);

  variant((b) => { b.writeBigUInt64LE(1n << 40n, 8); });
  assert.throws(() => GgufFile.open(path), /header claims 1099511627776 tensors/);
  variant((b) => { b.writeBigUInt64LE(1n << 45n, 16); });
  assert.throws(() => GgufFile.open(path), /corrupt or truncated GGUF file: header claims/);
  variant((b) => {
    // the length of the tokens array
    const key = b.indexOf('tokenizer.ggml.tokens');
    b.writeBigUInt64LE(1n << 50n, key + 'tokenizer.ggml.tokens'.length + 4 + 4);
  });
  assert.throws(() => GgufFile.open(path), /'tokenizer.ggml.tokens' claims 1125899906842624 elements, more than the \d+ bytes left could hold/);
  variant((b) => {
    const key = b.indexOf('general.architecture');
    b.writeUInt32LE(42, key + 'general.architecture'.length);
  });
  assert.throws(() => GgufFile.open(path), /'general.architecture' has value type 42 \(valid: 0 to 12\)/);
  variant((b) => {
    const at = infoAfterName(b, 'blk.0.attn_q.weight');
    b.writeUInt32LE(7, at);
  });
  assert.throws(() => GgufFile.open(path), /tensor 'blk.0.attn_q.weight' has 7 dimensions \(1 to 4 allowed\)/);
  variant((b) => {
    const at = infoAfterName(b, 'blk.0.attn_q.weight');
    b.writeBigUInt64LE(b.readBigUInt64LE(at + 4 + 16 + 4) + 1n, at + 4 + 16 + 4);
  });
  assert.throws(() => GgufFile.open(path), /tensor 'blk.0.attn_q.weight' is at data offset \d+, not a multiple of the alignment 32/);
}));

test('refused: head size other than dim / n_heads, partial rotary, rope scalings we do not apply, unknown tensors', () => withTmp((dir) => {
  const path = join(dir, 'm.gguf');
  const cases: [GgufMetadataEntry[], RegExp][] = [
    [[['llama.rope.dimension_count', 8, 'u32']], /llama.rope.dimension_count is 8, but Heliomesh rotates whole heads \(head size 16\); partial rotary embeddings are not supported/],
    [[['llama.attention.key_length', 32, 'u32']], /llama.attention.key_length is 32, but Heliomesh needs the head size to be embedding_length \/ head_count = 16/],
    [[['llama.attention.head_count', 5, 'u32']], /embedding_length 64 is not an even head size times head_count 5/],
    [[['llama.rope.scaling.type', 'yarn'], ['llama.rope.scaling.factor', 4, 'f32']], /rope scaling 'yarn' is not supported/],
    [[['llama.expert_count', 8, 'u32']], /mixture-of-experts models \(8 experts\) are not supported/],
  ];
  for (const [extraMetadata, message] of cases) {
    writeGgufLlama(path, tinyModel(), { type: 'q8_0', extraMetadata });
    const file = GgufFile.open(path);
    assert.throws(() => readGgufConfig(file), message);
    file.close();
  }
  // linear scaling is applied, as frequency factors
  writeGgufLlama(path, tinyModel(), { type: 'q8_0', extraMetadata: [['llama.rope.scaling.type', 'linear'], ['llama.rope.scaling.factor', 4, 'f32']] });
  const linear = GgufFile.open(path);
  assert.deepEqual(readGgufConfig(linear).ropeFreqFactors, new Array(8).fill(4));
  linear.close();

  writeGguf(path, {
    metadata: ggufLlamaMetadata(config),
    tensors: [{ name: 'blk.0.attn_q_norm.weight', type: 'F32', dims: [16], data: new Uint8Array(64) }],
  });
  const file = GgufFile.open(path);
  assert.throws(() => readGgufConfig(file), /tensor 'blk.0.attn_q_norm.weight' is not part of the llama layout Heliomesh serves/);
  file.close();
}));
