// GGUF ↔ ModelWeights: every stored type through our writer, checked by an independent
// reader (@huggingface/gguf) and by our own; block ranges and shard files; qwen2's RoPE
// permutation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { GgufFile, GgufValueType } from '../../models/gguf.js';
import { readGgufConfig, readGgufLlama } from '../../models/gguf-llama.js';
import { writeGgufLlama, writeGgufPart } from '../../models/gguf-llama-write.js';
import { halfSplitRowOrder } from '../../models/rotary.js';
import type { GgufMetadataEntry } from '../../models/gguf-write.js';
import type { Architecture, LayerWeights, LlamaConfig, ModelWeights } from '../../models/types.js';
import { WEIGHT_TYPES, dequantize, quantize, type WeightMatrix, type WeightType } from '../../models/weights.js';
import { seededValues } from '../support/random.js';

function withTmp(fn: (dir: string) => Promise<void> | void): Promise<void> | void {
  const dir = mkdtempSync(join(tmpdir(), 'gguf-'));
  const done = () => rmSync(dir, { recursive: true, force: true });
  try {
    const r = fn(dir);
    if (r instanceof Promise) return r.finally(done);
    done();
  } catch (err) {
    done();
    throw err;
  }
}


interface ModelOptions {
  type: WeightType;
  arch?: Architecture;
  shared?: boolean;
  factors?: boolean;
  hiddenDim?: number;
  seed?: number;
}

/** A small model of seeded random weights, matrices quantized to `type` with weights.ts. */
function randomModel(o: ModelOptions): ModelWeights {
  const { gauss } = seededValues(o.seed ?? 1);
  const arch = o.arch ?? 'llama';
  const config: LlamaConfig = {
    dim: 64, hiddenDim: o.hiddenDim ?? 96, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: 40, seqLen: 128,
    sharedClassifier: o.shared ?? true, normEps: 1e-5, ropeTheta: arch === 'qwen2' ? 1000000 : 10000, architecture: arch,
  };
  if (o.factors) config.ropeFreqFactors = [1, 1, 1.5, 2, 4, 8, 8, 8];
  const hs = config.dim / config.nHeads;
  const floats = (n: number, scale = 0.1, offset = 0) => Float32Array.from({ length: n }, () => offset + scale * gauss());
  const mat = (rows: number, cols: number) => quantize(floats(rows * cols), rows, cols, o.type);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const layer: LayerWeights = {
      attnNorm: floats(config.dim, 0.1, 1),
      wq: mat(config.nHeads * hs, config.dim),
      wk: mat(config.nKvHeads * hs, config.dim),
      wv: mat(config.nKvHeads * hs, config.dim),
      wo: mat(config.dim, config.nHeads * hs),
      ffnNorm: floats(config.dim, 0.1, 1),
      w1: mat(config.hiddenDim, config.dim),
      w2: mat(config.dim, config.hiddenDim),
      w3: mat(config.hiddenDim, config.dim),
    };
    if (arch === 'qwen2') {
      layer.bq = floats(config.nHeads * hs);
      layer.bk = floats(config.nKvHeads * hs);
      layer.bv = floats(config.nKvHeads * hs);
    }
    layers.push(layer);
  }
  const tokenEmbedding = mat(config.vocabSize, config.dim);
  const head = {
    tokenEmbedding,
    finalNorm: floats(config.dim, 0.1, 1),
    classifier: config.sharedClassifier ? tokenEmbedding : mat(config.vocabSize, config.dim),
  };
  return { config, head, range: { from: 0, to: config.nLayers }, layers };
}

/** Tokenizer-like metadata: string, float and int arrays, as llama.cpp writes them. */
function tokenizerMetadata(vocab: number): GgufMetadataEntry[] {
  const special = ['<unk>', '<s>', '</s>', '', '▁the', 'é', '🙂', '\n', 'a"b\\c'];
  const tokens = Array.from({ length: vocab }, (_, i) => special[i] ?? `tok${i}`);
  return [
    ['tokenizer.ggml.model', 'llama'],
    ['tokenizer.ggml.tokens', tokens],
    ['tokenizer.ggml.scores', tokens.map((_, i) => -i * 0.25), 'f32'],
    ['tokenizer.ggml.token_type', tokens.map((_, i) => (i < 3 ? 3 : 1)), 'i32'],
    ['tokenizer.ggml.merges', ['▁ t', 'h e', 't he']],
    ['tokenizer.ggml.bos_token_id', 1, 'u32'],
    ['tokenizer.ggml.eos_token_id', 2, 'u32'],
    ['tokenizer.ggml.add_bos_token', true],
    ['tokenizer.chat_template', "{% for m in messages %}{{ m['content'] }}{% endfor %}"],
  ];
}

/** Parses `path` with @huggingface/gguf and checks it sees what our reader sees. */
async function assertIndependentReaderAgrees(path: string): Promise<void> {
  const theirs = await gguf(path, { allowLocalFile: true, typedMetadata: true });
  const ours = GgufFile.open(path);
  try {
    assert.equal(theirs.metadata.version, ours.version);
    assert.equal(theirs.metadata.tensor_count, BigInt(ours.tensors.size));
    assert.equal(theirs.metadata.kv_count, BigInt(ours.metadata.size));
    assert.equal(Number(theirs.tensorDataOffset), ours.dataOffset);
    assert.deepEqual(theirs.tensorInfos.map((t) => t.name), [...ours.tensors.keys()]);
    for (const t of theirs.tensorInfos) {
      const mine = ours.tensors.get(t.name)!;
      assert.deepEqual(t.shape.map(Number), mine.dims, t.name);
      assert.equal(Number(t.dtype), mine.typeId, t.name);
      assert.equal(Number(t.offset), mine.relativeOffset, t.name);
    }
    const meta = theirs.metadata as unknown as Record<string, unknown>;
    for (const [key, value] of ours.metadata) {
      assert.deepEqual(meta[key], value, key);
      const typed = theirs.typedMetadata[key]!;
      const mine = ours.metadataType(key)!;
      assert.equal(typed.type, mine.type, `type of ${key}`);
      if (mine.type === GgufValueType.ARRAY && mine.elementType !== GgufValueType.ARRAY) assert.equal(typed.subType, mine.elementType, `element type of ${key}`);
    }
  } finally {
    ours.close();
  }
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

for (const type of WEIGHT_TYPES) {
  test(`a ${type} model written as GGUF reads back identically, by our reader and by @huggingface/gguf`, () => withTmp(async (dir) => {
    const model = randomModel({ type, shared: type !== 'f16', factors: type === 'bf16', seed: 7 });
    const path = join(dir, `model-${type}.gguf`);
    const written = writeGgufLlama(path, model, { type, name: 'random', tokenizerMetadata: tokenizerMetadata(model.config.vocabSize) });
    assert.equal(written.sha256, sha256(path));
    assert.equal(written.bytes, readFileSync(path).byteLength);
    assert.deepEqual(written.f16Fallbacks, []);
    await assertIndependentReaderAgrees(path);

    const file = GgufFile.open(path);
    try {
      assert.equal(file.version, 3);
      assert.equal(file.alignment, 32);
      for (const t of file.tensors.values()) assert.equal(t.offset % 32, 0, t.name);
      // The standard keys in llama.cpp's types (gguf-py: u32 counts, f32 eps and base).
      assert.equal(file.metadataType('llama.context_length')!.type, GgufValueType.UINT32);
      assert.equal(file.metadataType('llama.rope.freq_base')!.type, GgufValueType.FLOAT32);
      assert.equal(file.metadataType('llama.attention.layer_norm_rms_epsilon')!.type, GgufValueType.FLOAT32);
      assert.deepEqual(file.metadataType('tokenizer.ggml.token_type'), { type: GgufValueType.ARRAY, elementType: GgufValueType.INT32 });
      assert.deepEqual(file.metadataType('tokenizer.ggml.scores'), { type: GgufValueType.ARRAY, elementType: GgufValueType.FLOAT32 });
      assert.deepEqual(file.metadataType('tokenizer.ggml.tokens'), { type: GgufValueType.ARRAY, elementType: GgufValueType.STRING });
      assert.deepEqual(file.metadata.get('tokenizer.ggml.tokens'), tokenizerMetadata(40)[1]![1]);
      assert.equal(file.metadata.get('general.name'), 'random');
      assert.equal(file.tensors.has('output.weight'), !model.config.sharedClassifier);
      assert.equal(file.tensors.has('rope_freqs.weight'), type === 'bf16');
      // Matrices are stored as given: same ggml type, dims [cols, rows], same bytes.
      const wq = file.tensor('blk.1.attn_q.weight');
      assert.deepEqual(wq.dims, [64, 64]);
      assert.deepEqual(file.readTensor('blk.1.attn_q.weight'), model.layers[1]!.wq.data);
      assert.deepEqual(file.tensor('blk.2.ffn_down.weight').dims, [96, 64]);
      assert.deepEqual(file.tensor('token_embd.weight').dims, [64, 40]);

      assert.deepEqual(readGgufConfig(file), model.config);
      const back = readGgufLlama(file);
      assert.deepEqual(back, model);
      if (model.config.sharedClassifier) assert.equal(back.head!.classifier, back.head!.tokenEmbedding, 'tied classifier is the same object');
    } finally {
      file.close();
    }
  }));
}

test('a block range is read alone: only its tensors are read, and they equal the whole read', () => withTmp((dir) => {
  const model = randomModel({ type: 'q8_0', factors: true });
  const path = join(dir, 'm.gguf');
  writeGgufLlama(path, model, { type: 'q8_0' });
  const whole = readGgufLlama(path);
  const file = GgufFile.open(path);
  try {
    const part = readGgufLlama(file, { range: { from: 1, to: 2 }, head: false });
    const expected = [...file.tensors.values()]
      .filter((t) => t.name.startsWith('blk.1.') || t.name === 'rope_freqs.weight')
      .reduce((s, t) => s + t.bytes, 0);
    assert.equal(file.bytesRead, expected, 'bytes read = the range\'s tensors and rope_freqs, nothing else');
    assert.equal(part.head, undefined);
    assert.deepEqual(part.range, { from: 1, to: 2 });
    assert.deepEqual(part.layers, [whole.layers[1]]);

    file.bytesRead = 0;
    const headOnly = readGgufLlama(file, { range: { from: 3, to: 3 } });
    assert.equal(headOnly.layers.length, 0);
    assert.deepEqual(headOnly.head, whole.head);
    const headBytes = ['token_embd.weight', 'output_norm.weight', 'rope_freqs.weight'].reduce((s, n) => s + file.tensor(n).bytes, 0);
    assert.equal(file.bytesRead, headBytes);
    assert.throws(() => readGgufLlama(file, { range: { from: 2, to: 4 } }), /outside the model's 3 layers/);
  } finally {
    file.close();
  }
}));

test('shard files hold only their range and/or head, with the model\'s metadata and heliomesh.block_range', () => withTmp(async (dir) => {
  const model = randomModel({ type: 'q4_0', shared: false });
  const tokenizer = tokenizerMetadata(model.config.vocabSize);
  const p0 = join(dir, 'blocks-0-2.gguf');
  const p1 = join(dir, 'blocks-2-3-head.gguf');
  const r0 = writeGgufPart(p0, model, { type: 'q4_0', range: { from: 0, to: 2 }, head: false });
  writeGgufPart(p1, model, { type: 'q4_0', range: { from: 2, to: 3 }, head: true, tokenizerMetadata: tokenizer });
  assert.equal(r0.sha256, sha256(p0));
  await assertIndependentReaderAgrees(p0);
  await assertIndependentReaderAgrees(p1);

  const f0 = GgufFile.open(p0);
  try {
    const names = [...f0.tensors.keys()];
    assert.ok(names.every((n) => n.startsWith('blk.0.') || n.startsWith('blk.1.')), names.join(' '));
    assert.deepEqual(f0.metadata.get('heliomesh.block_range'), [0, 2]);
    assert.equal(f0.metadata.get('heliomesh.head'), false);
    assert.equal(f0.metadata.get('llama.block_count'), 3);
    assert.deepEqual(readGgufConfig(f0), model.config, 'a shard without the head still knows the model (untied classifier)');
    const w0 = readGgufLlama(f0);
    assert.deepEqual(w0.range, { from: 0, to: 2 });
    assert.equal(w0.head, undefined);
    assert.deepEqual(w0.layers, model.layers.slice(0, 2));
    assert.throws(() => readGgufLlama(f0, { range: { from: 1, to: 3 } }), /holds blocks \[0, 2\) of the model's 3; block range \[1, 3\) is outside them/);
    assert.throws(() => readGgufLlama(f0, { head: true }), /does not hold the head part/);
  } finally {
    f0.close();
  }
  const w1 = readGgufLlama(p1);
  assert.deepEqual(w1.range, { from: 2, to: 3 });
  assert.deepEqual(w1.layers, model.layers.slice(2));
  assert.deepEqual(w1.head, model.head);
  assert.notEqual(w1.head!.classifier, w1.head!.tokenEmbedding);
  const f1 = GgufFile.open(p1);
  assert.deepEqual(f1.metadata.get('tokenizer.ggml.tokens'), tokenizer[1]![1]);
  f1.close();
}));

test('matrices are converted to the requested type on writing, rows of odd length fall back to f16', () => withTmp((dir) => {
  const model = randomModel({ type: 'f32', hiddenDim: 48, shared: false, seed: 3 });
  const path = join(dir, 'm.gguf');
  const result = writeGgufLlama(path, model, { type: 'q4_0' });
  assert.deepEqual(result.f16Fallbacks, ['blk.0.ffn_down.weight', 'blk.1.ffn_down.weight', 'blk.2.ffn_down.weight']);
  const back = readGgufLlama(path);
  const want = (m: WeightMatrix, t: WeightType) => quantize(dequantize(m), m.rows, m.cols, t);
  const l = back.layers[1]!;
  assert.deepEqual(l.wq, want(model.layers[1]!.wq, 'q4_0'));
  assert.deepEqual(l.w1, want(model.layers[1]!.w1, 'q4_0'));
  assert.deepEqual(l.w2, want(model.layers[1]!.w2, 'f16'));
  assert.deepEqual(back.head!.classifier, want(model.head!.classifier, 'q4_0'));
  assert.deepEqual(l.attnNorm, model.layers[1]!.attnNorm, 'norms stay f32');
}));

/** Rotates each head of `v` at position `pos`: interleaved pairs (2i, 2i+1) or half-split pairs (i, i + hs/2). */
function rope(v: Float64Array, nHeads: number, hs: number, pos: number, theta: number, halfSplit: boolean): Float64Array {
  const out = Float64Array.from(v);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hs / 2; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / hs);
      const [a, b] = halfSplit ? [h * hs + i, h * hs + i + hs / 2] : [h * hs + 2 * i, h * hs + 2 * i + 1];
      const x = v[a]!;
      const y = v[b]!;
      out[a] = x * Math.cos(angle) - y * Math.sin(angle);
      out[b] = x * Math.sin(angle) + y * Math.cos(angle);
    }
  }
  return out;
}

/** W·x + b in float64. */
function project(m: WeightMatrix, x: Float64Array, b: Float32Array): Float64Array {
  const w = dequantize(m);
  const out = new Float64Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    let s = b[r]!;
    for (let c = 0; c < m.cols; c++) s += w[r * m.cols + c]! * x[c]!;
    out[r] = s;
  }
  return out;
}

test('qwen2: q/k rows are stored half-split and loaded interleaved; the two rotations agree', () => withTmp((dir) => {
  const model = randomModel({ type: 'f32', arch: 'qwen2', seed: 11 });
  const { config } = model;
  const hs = config.dim / config.nHeads;
  const path = join(dir, 'qwen2.gguf');
  writeGgufLlama(path, model, { type: 'f32' });
  const file = GgufFile.open(path);
  try {
    assert.equal(file.metadata.get('general.architecture'), 'qwen2');
    assert.deepEqual(readGgufLlama(file), model, 'round trip gives our interleaved weights back');

    // The file's rows: row order[r] of the file is our row r.
    const order = halfSplitRowOrder(config.nHeads, hs);
    const fileWq: WeightMatrix = { type: 'f32', rows: config.nHeads * hs, cols: config.dim, data: file.readTensor('blk.0.attn_q.weight') };
    const fileBq = new Float32Array(file.readTensor('blk.0.attn_q.bias').buffer);
    const ours = model.layers[0]!;
    const ourRows = dequantize(ours.wq);
    const fileRows = dequantize(fileWq);
    for (let r = 0; r < ours.wq.rows; r++) {
      assert.deepEqual(fileRows.subarray(order[r]! * config.dim, (order[r]! + 1) * config.dim), ourRows.subarray(r * config.dim, (r + 1) * config.dim));
      assert.equal(fileBq[order[r]!], ours.bq![r]);
    }

    // One random q vector: half-split rotation of the file's layout = interleaved rotation of ours.
    const { gauss } = seededValues(5);
    const x = Float64Array.from({ length: config.dim }, gauss);
    const qFile = project(fileWq, x, fileBq);
    const qOurs = project(ours.wq, x, ours.bq!);
    const pos = 13;
    const rotFile = rope(qFile, config.nHeads, hs, pos, config.ropeTheta, true);
    const rotOurs = rope(qOurs, config.nHeads, hs, pos, config.ropeTheta, false);
    for (let r = 0; r < rotOurs.length; r++) assert.ok(Math.abs(rotOurs[r]! - rotFile[order[r]!]!) < 1e-9, `row ${r}`);
    // and so the attention scores agree: q·k of a head is the same in both layouts
    const kOrder = halfSplitRowOrder(config.nKvHeads, hs);
    const fileWk: WeightMatrix = { type: 'f32', rows: config.nKvHeads * hs, cols: config.dim, data: file.readTensor('blk.0.attn_k.weight') };
    const fileBk = new Float32Array(file.readTensor('blk.0.attn_k.bias').buffer);
    const kFile = rope(project(fileWk, x, fileBk), config.nKvHeads, hs, 4, config.ropeTheta, true);
    const kOurs = rope(project(ours.wk, x, ours.bk!), config.nKvHeads, hs, 4, config.ropeTheta, false);
    let dotFile = 0;
    let dotOurs = 0;
    for (let i = 0; i < hs; i++) {
      dotFile += rotFile[i]! * kFile[i]!;
      dotOurs += rotOurs[i]! * kOurs[i]!;
    }
    assert.ok(Math.abs(dotFile - dotOurs) < 1e-9, `${dotFile} vs ${dotOurs}`);
    assert.equal(kOrder.length, kOurs.length);
  } finally {
    file.close();
  }
}));

test('qwen2: the row permutation moves whole quantized rows (q4_0 round trip)', () => withTmp(async (dir) => {
  const model = randomModel({ type: 'q4_0', arch: 'qwen2', shared: false, seed: 12 });
  const path = join(dir, 'qwen2-q4.gguf');
  writeGgufLlama(path, model, { type: 'q4_0' });
  await assertIndependentReaderAgrees(path);
  assert.deepEqual(readGgufLlama(path), model);
  const part = join(dir, 'qwen2-part.gguf');
  writeGgufPart(part, model, { type: 'q4_0', range: { from: 1, to: 3 }, head: false });
  assert.deepEqual(readGgufLlama(part).layers, model.layers.slice(1));
}));
