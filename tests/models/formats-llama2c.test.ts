import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { llama2cFileBytes, readLlama2c, readLlama2cConfig, writeLlama2c } from '../../models/llama2c.js';
import type { ModelWeights } from '../../models/types.js';
import { f32Matrix, type WeightMatrix } from '../../models/weights.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');

test('stories260K.bin is the expected file', () => {
  const sha = createHash('sha256').update(readFileSync(stories)).digest('hex');
  assert.equal(sha, '9414d5a285453a7eab631713d171753232c978f6f97654211469aff8be93c8d6');
});

test('llama2.c header of stories260K', () => {
  const config = readLlama2cConfig(stories);
  assert.deepEqual(config, {
    dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512,
    sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000,
  });
});

test('every byte of stories260K is accounted for by the layout', () => {
  const w = readLlama2c(stories);
  const { dim, hiddenDim, nLayers, vocabSize, seqLen } = w.config;
  const headSize = dim / w.config.nHeads;
  const kvDim = w.config.nKvHeads * headSize;
  assert.equal(w.layers.length, nLayers);
  assert.deepEqual(w.range, { from: 0, to: 5 });
  const layer = w.layers[0]!;
  assert.equal(layer.attnNorm.length, dim);
  const shape = (m: WeightMatrix) => [m.type, m.rows, m.cols];
  assert.deepEqual(shape(layer.wq), ['f32', dim, dim]);
  assert.deepEqual(shape(layer.wk), ['f32', kvDim, dim]);
  assert.deepEqual(shape(layer.wv), ['f32', kvDim, dim]);
  assert.deepEqual(shape(layer.wo), ['f32', dim, dim]);
  assert.equal(layer.ffnNorm.length, dim);
  assert.deepEqual(shape(layer.w1), ['f32', hiddenDim, dim]);
  assert.deepEqual(shape(layer.w2), ['f32', dim, hiddenDim]);
  assert.deepEqual(shape(layer.w3), ['f32', hiddenDim, dim]);
  assert.deepEqual(shape(w.head!.tokenEmbedding), ['f32', vocabSize, dim]);
  assert.equal(w.head!.finalNorm.length, dim);
  assert.equal(w.head!.classifier, w.head!.tokenEmbedding, 'shared classifier is the same array');
  const layerFloats = Object.values(layer).reduce((s, a: Float32Array | WeightMatrix) => s + (a instanceof Float32Array ? a.length : a.rows * a.cols), 0);
  const floats = vocabSize * dim + nLayers * layerFloats + dim + seqLen * headSize;
  assert.equal(28 + 4 * floats, statSync(stories).size);
  assert.equal(llama2cFileBytes(w.config), statSync(stories).size);
  // RMSNorm gains are trained around 1, a quick check that the arrays are not shifted.
  const meanGain = layer.attnNorm.reduce((s, v) => s + v, 0) / dim;
  assert.ok(meanGain > 0.2 && meanGain < 5, `mean rms_att gain ${meanGain}`);
});

test('a block range and the head part are read alone, equal to the whole read', () => {
  const whole = readLlama2c(stories);
  const part = readLlama2c(stories, { range: { from: 2, to: 4 }, head: false });
  assert.equal(part.head, undefined);
  assert.deepEqual(part.range, { from: 2, to: 4 });
  assert.equal(part.layers.length, 2);
  assert.deepEqual(part.layers[0], whole.layers[2]);
  assert.deepEqual(part.layers[1], whole.layers[3]);
  const headOnly = readLlama2c(stories, { range: { from: 5, to: 5 } });
  assert.equal(headOnly.layers.length, 0);
  assert.deepEqual(headOnly.head!.finalNorm, whole.head!.finalNorm);
  assert.throws(() => readLlama2c(stories, { range: { from: 3, to: 6 } }), /outside the model's 5 layers/);
});

test('stories260K loads in well under a second', () => {
  const t0 = performance.now();
  readLlama2c(stories);
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `load took ${ms.toFixed(1)} ms`);
});

function syntheticModel(sharedClassifier: boolean): ModelWeights {
  const config = { dim: 8, hiddenDim: 12, nLayers: 3, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 6, sharedClassifier, normEps: 1e-5, ropeTheta: 10000 };
  let seed = 1;
  const rand = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) - 0.5);
  const kv = config.nKvHeads * (config.dim / config.nHeads);
  const layers = Array.from({ length: config.nLayers }, () => ({
    attnNorm: rand(8), wq: f32Matrix(rand(64), 8, 8), wk: f32Matrix(rand(kv * 8), kv, 8), wv: f32Matrix(rand(kv * 8), kv, 8),
    wo: f32Matrix(rand(64), 8, 8), ffnNorm: rand(8), w1: f32Matrix(rand(96), 12, 8), w2: f32Matrix(rand(96), 8, 12),
    w3: f32Matrix(rand(96), 12, 8),
  }));
  const tokenEmbedding = f32Matrix(rand(80), 10, 8);
  return { config, range: { from: 0, to: 3 }, layers, head: { tokenEmbedding, finalNorm: rand(8), classifier: sharedClassifier ? tokenEmbedding : f32Matrix(rand(80), 10, 8) } };
}

test('a separate classifier (negative vocab size) round trips through the writer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama2c-'));
  try {
    for (const shared of [false, true]) {
      const model = syntheticModel(shared);
      const file = join(dir, `m${shared}.bin`);
      writeLlama2c(file, model);
      assert.equal(readFileSync(file).readInt32LE(20), shared ? 10 : -10);
      assert.equal(statSync(file).size, llama2cFileBytes(model.config));
      const back = readLlama2c(file);
      assert.deepEqual(back.config, model.config);
      assert.deepEqual(back.layers, model.layers);
      assert.deepEqual(back.head!.classifier, model.head!.classifier);
      assert.equal(back.head!.classifier === back.head!.tokenEmbedding, shared);
      assert.deepEqual(readLlama2c(file, { range: { from: 1, to: 2 }, head: false }).layers[0], model.layers[1]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a truncated checkpoint is refused with its expected size', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llama2c-'));
  try {
    const file = join(dir, 'cut.bin');
    writeFileSync(file, readFileSync(stories).subarray(0, 100_000));
    assert.throws(() => readLlama2c(file), /file is 100000 bytes but its header .* implies 1056540/);
    writeFileSync(file, Buffer.alloc(10));
    assert.throws(() => readLlama2c(file), /not a llama2.c|too short/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
