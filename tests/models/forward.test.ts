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
