// The same forward pass on TF.js's pure-JavaScript `cpu` backend (the last resort of the
// backend order), whose tensor storage the in-place KV cache writes through differently.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { parseBackendName, selectBackend } from '../../models/backend.js';
import { allTokens, Pipeline } from '../../models/generate.js';
import { llamaConfig, randomWeights } from '../../models/random.js';
import { greedyDecode, referenceLogits } from '../../models/reference.js';

before(async () => {
  const chosen = await selectBackend({ backend: 'cpu' });
  assert.equal(chosen.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
});

test('the backend is chosen once per process; names are checked', async () => {
  assert.equal((await selectBackend({ backend: 'auto' })).name, 'cpu');
  await assert.rejects(selectBackend({ backend: 'wasm' }), /already 'cpu'/);
  assert.throws(() => parseBackendName('webgpu'), /unknown TF.js backend 'webgpu'/);
  assert.equal(parseBackendName('tensorflow'), 'tensorflow');
});

test('cpu backend: greedy generation through 2 stages equals the reference, in both cache modes', async () => {
  const config = llamaConfig({ dim: 48, hiddenDim: 96, nLayers: 3, nHeads: 6, nKvHeads: 2, vocabSize: 40, seqLen: 32, sharedClassifier: false });
  const weights = randomWeights(config, 21);
  const prompt = [1, 7, 3];
  const expected = greedyDecode(weights, prompt, 16);
  for (const cacheUpdate of ['in-place', 'upload'] as const) {
    const pipeline = Pipeline.split(weights, 2);
    const ids = await allTokens(pipeline.generate({ promptIds: prompt, maxTokens: 16, sampler: { temperature: 0, topP: 1, seed: 0 }, cacheUpdate }));
    pipeline.dispose();
    assert.deepEqual(ids, expected, cacheUpdate);
  }
  assert.equal(tf.memory().numTensors, 0);
});

test('cpu backend: prefill logits match the reference', () => {
  const config = llamaConfig({ dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 1, vocabSize: 24, seqLen: 16 });
  const weights = randomWeights(config, 8);
  const tokens = [1, 4, 9, 16, 2];
  const pipeline = Pipeline.split(weights, 1);
  const session = pipeline.stacks[0]!.openSession();
  const logits = pipeline.head.logits(pipeline.stacks[0]!.forward(session, pipeline.head.embed(tokens)));
  const expected = referenceLogits(weights, tokens).at(-1)!;
  const scale = Math.max(...expected.map(Math.abs));
  logits.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-4 * scale, `logit ${i}: ${v} vs ${expected[i]}`));
  pipeline.dispose();
});
