// Generation through in-process pipeline stages: greedy ids independent of the number of
// stages and equal to the float64 reference's, no tensor leaks per token, and the sampler.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../models/backend.js';
import { allTokens, emptyStats, Pipeline } from '../../models/generate.js';
import { Random } from '../../ground/random.js';
import { Sampler, sampleTopP, softmax } from '../../models/head.js';
import { readLlama2c } from '../../models/llama2c.js';
import { llamaConfig, randomWeights } from '../../models/random.js';
import { greedyDecode } from '../../models/reference.js';

const STORIES260K = '../shared/models/stories260K.bin';
const greedy = { temperature: 0, topP: 1, seed: 0 };

before(async () => {
  await selectBackend({ backend: 'wasm' });
});

function generateIds(pipeline: Pipeline, promptIds: number[], maxTokens: number, sampler = greedy): Promise<number[]> {
  return allTokens(pipeline.generate({ promptIds, maxTokens, sampler }));
}

test('stories260K: greedy ids are the same with 1, 2 and 3 stages, and equal the reference', async () => {
  const weights = readLlama2c(STORIES260K);
  const runs: number[][] = [];
  for (const groups of [1, 2, 3]) {
    const pipeline = Pipeline.split(weights, groups);
    assert.equal(pipeline.stacks.length, groups);
    runs.push(await generateIds(pipeline, [1], 48));
    pipeline.dispose();
  }
  assert.equal(runs[0]!.length, 48);
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(runs[2], runs[0]);
  assert.deepEqual(runs[0]!.slice(0, 24), greedyDecode(weights, [1], 24));
});

test('random GQA model with a separate classifier: stages agree on a multi-token prompt', async () => {
  const config = llamaConfig({ dim: 64, hiddenDim: 128, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 64, seqLen: 40, sharedClassifier: false });
  const weights = randomWeights(config, 11);
  const prompt = [1, 5, 9, 33, 2];
  const runs: number[][] = [];
  for (const groups of [1, 2, 4]) {
    const pipeline = Pipeline.split(weights, groups);
    runs.push(await generateIds(pipeline, prompt, 20));
    pipeline.dispose();
  }
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(runs[2], runs[0]);
  assert.deepEqual(runs[0], greedyDecode(weights, prompt, 20));
});

test('no tensor leaks per token over a long generation; sessions are freed at the end', async () => {
  const weights = readLlama2c(STORIES260K);
  const pipeline = Pipeline.split(weights, 2);
  const idle = tf.memory().numTensors;
  const counts: number[] = [];
  let n = 0;
  const tokens = pipeline.generate({ promptIds: [1], maxTokens: 300, sampler: { temperature: 1, topP: 0.9, seed: 5 } });
  for await (const _ of tokens) {
    if (++n > 5) counts.push(tf.memory().numTensors);
  }
  assert.ok(n > 100, `generated only ${n} tokens`);
  // the two stages' sessions (keys and values per layer, a decode query and mask each) are
  // all that exists besides the weights
  assert.deepEqual(new Set(counts), new Set([idle + 2 * weights.config.nLayers + 2 * 2]));
  assert.equal(tf.memory().numTensors, idle);

  // stopping early (the consumer breaks out) closes the sessions too
  for await (const _ of pipeline.generate({ promptIds: [1], maxTokens: 50, sampler: greedy })) break;
  assert.equal(tf.memory().numTensors, idle);
  pipeline.dispose();
  assert.equal(tf.memory().numTensors, 0);
});

test('generation stops at a stop id, at max tokens, and when the context is full', async () => {
  const config = llamaConfig({ dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 4, vocabSize: 16, seqLen: 12 });
  const pipeline = Pipeline.split(randomWeights(config, 2), 2);
  const free = await generateIds(pipeline, [1, 2], 5);
  assert.equal(free.length, 5);
  const stopped = await allTokens(pipeline.generate({ promptIds: [1, 2], maxTokens: 5, sampler: greedy, stopIds: [free[2]!] }));
  assert.deepEqual(stopped, free.slice(0, free.indexOf(free[2]!)));
  // 2 prompt positions + 10 fed back = 12 = seqLen; the 11th token is sampled from the last
  const stats = emptyStats(2);
  const full = await allTokens(pipeline.generate({ promptIds: [1, 2], maxTokens: 100, sampler: greedy }, stats));
  assert.equal(full.length, 11);
  assert.equal(stats.decodeTokens, 10);
  assert.ok(stats.stageDecodeMs.every((ms) => ms > 0));
  await assert.rejects(generateIds(pipeline, Array<number>(13).fill(1), 1), /context is 12/);
  pipeline.dispose();
});

test('sampling is reproducible from the seed and follows temperature', async () => {
  const config = llamaConfig({ dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 48, seqLen: 40, sharedClassifier: false });
  const pipeline = Pipeline.split(randomWeights(config, 4), 1);
  const hot = { temperature: 1, topP: 1, seed: 99 };
  const a = await generateIds(pipeline, [1], 30, hot);
  assert.deepEqual(await generateIds(pipeline, [1], 30, hot), a);
  assert.notDeepEqual(await generateIds(pipeline, [1], 30, { ...hot, seed: 100 }), a);
  pipeline.dispose();
});

test('sampler: temperature 0 is argmax; top-p keeps the smallest nucleus; draws follow the probabilities', () => {
  const logits = Float32Array.from([0.1, 3, -1, 2.5, 0]);
  assert.equal(new Sampler({ temperature: 0, topP: 0.5, seed: 1 }).sample(logits), 1);
  const probs = softmax(logits);
  // p = [.04, .55, .01, .34, .04]: top-p 0.5 keeps only token 1; 0.8 keeps tokens 1 and 3
  for (const r of [0, 0.3, 0.99]) assert.equal(sampleTopP(probs, 0.5, r), 1);
  assert.equal(sampleTopP(probs, 0.8, 0.1), 1);
  assert.equal(sampleTopP(probs, 0.8, 0.95), 3);
  // Into reused room, the same values and the same draws.
  const room = new Float64Array(logits.length).fill(Number.NaN);
  assert.equal(softmax(logits, 1, room), room);
  assert.deepEqual(room, probs);
  const candidates = new Int32Array(logits.length).fill(-1);
  for (const [topP, r] of [[0.5, 0.3], [0.8, 0.1], [0.8, 0.95], [0.99, 0.999]] as const) assert.equal(sampleTopP(probs, topP, r, candidates), sampleTopP(probs, topP, r));
  assert.throws(() => softmax(logits, 1, new Float64Array(3)), /5 logits into room for 3/);
  const counts = new Map<number, number>();
  const sampler = new Sampler({ temperature: 1, topP: 1, seed: 7 });
  const draws = 20000;
  for (let i = 0; i < draws; i++) {
    const id = sampler.sample(logits);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  probs.forEach((p, id) => {
    const seen = (counts.get(id) ?? 0) / draws;
    // 4 standard deviations of a binomial proportion
    assert.ok(Math.abs(seen - p) < 4 * Math.sqrt((p * (1 - p)) / draws) + 1e-3, `token ${id}: ${seen} vs ${p}`);
  });
  assert.throws(() => new Sampler({ temperature: -1, topP: 1, seed: 0 }), /temperature/);
  assert.throws(() => new Sampler({ temperature: 1, topP: 0, seed: 0 }), /top-p/);
});

/** Nucleus sampling as its definition reads: sort every token, most likely first, ties to the lower id. */
function topPBySort(probs: Float64Array, topP: number, r: number): number {
  const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
  let mass = 0;
  let last = order.length - 1;
  for (let k = 0; k < order.length; k++) {
    mass += probs[order[k]!]!;
    if (mass >= topP) {
      last = k;
      break;
    }
  }
  let cdf = 0;
  for (let k = 0; k <= last; k++) {
    cdf += probs[order[k]!]!;
    if (r * mass < cdf) return order[k]!;
  }
  return order[last]!;
}

test('top-p draws the token a full sort would, over peaked, flat and tied distributions', () => {
  const random = new Random(5);
  const room = new Int32Array(2000);
  let draws = 0;
  for (const [n, spread] of [[7, 0.2], [300, 1], [2000, 0.05], [2000, 8], [513, 3]] as const) {
    for (let trial = 0; trial < 6; trial++) {
      // Logits on a coarse grid, so many tokens tie exactly.
      const logits = Float32Array.from({ length: n }, () => Math.round((random.next() - 0.5) * spread * 8) / 4);
      const probs = softmax(logits, 0.8);
      for (const topP of [0.05, 0.5, 0.9, 0.95, 0.999, 1 - 1e-12]) {
        for (const r of [0, random.next(), random.next(), 0.999999]) {
          assert.equal(sampleTopP(probs, topP, r, room), topPBySort(probs, topP, r), `n ${n}, spread ${spread}, top-p ${topP}, r ${r}`);
          draws++;
        }
      }
    }
  }
  assert.equal(draws, 5 * 6 * 6 * 4);
  // A top-p below 1/n over nearly flat probabilities: every token is under the cutoff, and the most likely one alone is the nucleus.
  const nearlyFlat = softmax(Float32Array.from([0, -0.25, 0, 0.01, 0, 0, 0]));
  assert.equal(sampleTopP(nearlyFlat, 0.05, 0.7, room.fill(1)), 3);
  assert.equal(sampleTopP(nearlyFlat, 0.05, 0.7), 3);
});

test('the PRNG is deterministic and uniform enough', () => {
  const a = new Random(123);
  const b = new Random(123);
  const xs = Array.from({ length: 10000 }, () => a.next());
  assert.deepEqual(Array.from({ length: 10000 }, () => b.next()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
});
