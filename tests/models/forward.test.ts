// The TF.js forward pass against the float64 reference, on the real stories260K checkpoint
// and on random configurations (GQA, multi-query, separate classifier), for prefill, decode
// and both ways of updating the KV cache.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backend.js';
import { BlockStack, type CacheUpdate } from '../../models/forward.js';
import { ModelHead } from '../../models/head.js';
import { readLlama2c } from '../../models/llama2c.js';
import { llamaConfig, randomWeights } from '../../models/random.js';
import { ReferenceSession } from '../../models/reference.js';
import type { LlamaConfig, ModelWeights } from '../../models/types.js';

const STORIES260K = '../shared/models/stories260K.bin';

before(async () => {
  await selectBackend({ backend: 'wasm' });
});

/** Largest |a - b| relative to the largest |b|. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/**
 * Feeds `tokens` in the given chunks (a prefill then decode steps, say) through the TF.js
 * blocks and head, and through the reference, and returns the worst relative logit error.
 */
function compare(weights: ModelWeights, tokens: number[], chunks: number[], cacheUpdate?: CacheUpdate): number {
  const stack = new BlockStack(weights);
  const head = new ModelHead(weights.config, weights.head!);
  const session = stack.openSession({ capacity: tokens.length, cacheUpdate });
  const reference = new ReferenceSession(weights);
  let worst = 0;
  let at = 0;
  try {
    for (const n of chunks) {
      const chunk = tokens.slice(at, at + n);
      at += n;
      const hidden = stack.forward(session, head.embed(chunk));
      const expected = reference.feed(chunk).at(-1)!;
      worst = Math.max(worst, relativeError(head.logits(hidden), expected));
    }
  } finally {
    session.close();
    stack.dispose();
    head.dispose();
  }
  assert.equal(at, tokens.length);
  return worst;
}

function tokensFor(config: LlamaConfig, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + 1) % config.vocabSize);
}

test('stories260K: TF.js logits match the float64 reference (prefill, then decode)', () => {
  const weights = readLlama2c(STORIES260K);
  const tokens = [1, ...tokensFor(weights.config, 23)];
  const error = compare(weights, tokens, [8, ...Array<number>(16).fill(1)]);
  assert.ok(error < 1e-4, `relative logit error ${error}`);
});

const shapes: [string, LlamaConfig][] = [
  ['GQA (8 heads, 2 KV heads), separate classifier', llamaConfig({ dim: 64, hiddenDim: 96, nLayers: 3, nHeads: 8, nKvHeads: 2, vocabSize: 50, seqLen: 32, sharedClassifier: false })],
  ['multi-query (1 KV head)', llamaConfig({ dim: 48, hiddenDim: 80, nLayers: 2, nHeads: 4, nKvHeads: 1, vocabSize: 40, seqLen: 24 })],
  ['multi-head (KV heads = heads), odd hidden size', llamaConfig({ dim: 32, hiddenDim: 75, nLayers: 2, nHeads: 2, nKvHeads: 2, vocabSize: 30, seqLen: 16, ropeTheta: 500000 })],
];

for (const [name, config] of shapes) {
  test(`random ${name}: logits match the reference`, () => {
    const weights = randomWeights(config, 42);
    const tokens = tokensFor(config, 12);
    for (const cacheUpdate of ['in-place', 'upload'] as const) {
      const error = compare(weights, tokens, [5, 1, 1, 3, 1, 1], cacheUpdate);
      assert.ok(error < 1e-4, `${cacheUpdate}: relative logit error ${error}`);
    }
  });
}

test('prefill in one call equals token-by-token decode', () => {
  const config = shapes[0]![1];
  const weights = randomWeights(config, 7);
  const tokens = tokensFor(config, 10);
  const stack = new BlockStack(weights);
  const head = new ModelHead(config, weights.head!);
  const whole = stack.openSession();
  const stepwise = stack.openSession();
  const all = stack.forward(whole, head.embed(tokens));
  let last: Float32Array = new Float32Array();
  for (const t of tokens) last = stack.forward(stepwise, head.embed([t]));
  assert.ok(relativeError(last, all.subarray(all.length - config.dim)) < 1e-5);
  assert.equal(whole.length, tokens.length);
  assert.equal(stepwise.length, tokens.length);
  stack.dispose();
  head.dispose();
});

test('a session refuses positions beyond its capacity, and closing frees its cache', () => {
  const config = shapes[1]![1];
  const weights = randomWeights(config, 3);
  const stack = new BlockStack(weights);
  const head = new ModelHead(config, weights.head!);
  const before = tf.memory().numTensors;
  const session = stack.openSession({ capacity: 4 });
  // keys and values per layer, plus the decode step's query and mask
  assert.equal(tf.memory().numTensors, before + 2 * config.nLayers + 2);
  stack.forward(session, head.embed([1, 2, 3]));
  assert.throws(() => stack.forward(session, head.embed([4, 5])), /context is full/);
  session.close();
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => stack.forward(session, head.embed([4])), /closed/);
  stack.dispose();
  head.dispose();
  assert.equal(tf.memory().numTensors, 0);
});

/** Bytes of the TF.js wasm backend's heap (where XNNPACK would keep packed weight copies). */
function tfHeapBytes(): number {
  return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
}

for (const type of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
  test(`${type} weights are held once, in the stage's kernel: no packed copy, in TF.js or anywhere else`, () => {
    // 4 layers of dim 256, hidden 768: 3.1 M weights, 12.6 MB in f32
    const config = llamaConfig({ dim: 256, hiddenDim: 768, nLayers: 4, nHeads: 8, nKvHeads: 4, vocabSize: 64, seqLen: 64 });
    const weights = randomWeights(config, 3, type);
    const matrixBytes = weights.layers.reduce((s, l) => s + [l.wq, l.wk, l.wv, l.wo, l.w1, l.w2, l.w3].reduce((a, m) => a + m.data.byteLength, 0), 0);
    const tfBytesBefore = tf.memory().numBytes;
    const tfHeapBefore = tfHeapBytes();
    const stack = new BlockStack(weights, weights.range, { threads: 2 });
    const session = stack.openSession({ capacity: 16 });
    try {
      for (let pos = 0; pos < 8; pos++) stack.forward(session, new Float32Array(config.dim).fill(0.01 * (pos + 1)));
      // the kernel's memory: the matrices as stored, plus a fixed runtime cost (its f16 table,
      // control area and scratch): 2 MiB at most at this size
      assert.equal(stack.kernel.weightBytes(), matrixBytes);
      assert.ok(stack.kernel.heapBytes() <= matrixBytes + 2 * 2 ** 20, `kernel heap ${stack.kernel.heapBytes()} B for ${matrixBytes} B of weights`);
      // TF.js holds the norm gains, the session's cache and its decode scratch, never a matrix
      const headSize = config.dim / config.nHeads;
      const cacheBytes = config.nLayers * 2 * config.nKvHeads * 16 * headSize * 4;
      const normBytes = config.nLayers * 2 * config.dim * 4;
      const tfBytes = tf.memory().numBytes - tfBytesBefore;
      assert.ok(tfBytes <= cacheBytes + normBytes + 4096, `TF.js tensors grew by ${tfBytes} B (cache ${cacheBytes}, norms ${normBytes})`);
      // and its heap (where XNNPACK keeps packed copies of what it multiplies) did not grow by a matrix
      const heapGrowth = tfHeapBytes() - tfHeapBefore;
      assert.ok(heapGrowth < matrixBytes / 10, `TF.js wasm heap grew by ${heapGrowth} B`);
    } finally {
      session.close();
      stack.dispose();
    }
  });
}
