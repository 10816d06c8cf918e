// The shape bench's parts (bench/model/): the C bar's f32 file written one layer at a time
// holds exactly the seeded random model, the stage processes compute what the same layers
// compute in process, and the virtual node's joules follow the CPU time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llama2cBytes, writeRandomLlama2c } from '../../bench/model/c-bar.js';
import { stageEnergy } from '../../bench/model/energy.js';
import { generateThrough, StageProcess } from '../../bench/model/fleet.js';
import { layerBytes } from '../../bench/model/protocol.js';
import { SHAPES } from '../../bench/model/shapes.js';
import { selectBackend } from '../../models/backend.js';
import { BlockStack } from '../../models/forward.js';
import { ModelHead } from '../../models/head.js';
import { llama2cFileBytes, readLlama2c } from '../../models/llama2c.js';
import { llamaConfig, randomWeights } from '../../models/random.js';
import { MATRIX_KINDS } from '../../models/types.js';

const config = llamaConfig({ dim: 64, hiddenDim: 96, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 50, seqLen: 24, sharedClassifier: false });

test('the C bar file, written layer by layer, reads back as the seeded random model', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-cbar-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const c of [config, { ...config, sharedClassifier: true }]) {
    const file = join(dir, 'model.bin');
    let calls = 0;
    writeRandomLlama2c(file, c, c, 5, () => calls++);
    assert.equal(calls, c.nLayers + 1);
    assert.equal(statSync(file).size, llama2cBytes(c));
    assert.equal(llama2cBytes(c), llama2cFileBytes(c));
    const back = readLlama2c(file);
    const want = randomWeights(c, 5, 'f32');
    assert.deepEqual(back.config, c);
    back.layers.forEach((l, i) => {
      for (const k of [...MATRIX_KINDS, 'attnNorm', 'ffnNorm'] as const) assert.deepEqual(l[k], want.layers[i]![k], `layer ${i} ${k}`);
    });
    assert.deepEqual(back.head!.tokenEmbedding, want.head!.tokenEmbedding);
    assert.deepEqual(back.head!.finalNorm, want.head!.finalNorm);
    assert.deepEqual(back.head!.classifier, want.head!.classifier);
  }
  // qwen2 in C: the llama-equivalent header, the same matrices without the biases
  const qwen = { ...config, architecture: 'qwen2' as const };
  const { architecture: _a, ...llama } = qwen;
  const file = join(dir, 'qwen.bin');
  writeRandomLlama2c(file, qwen, llama, 5, () => {});
  assert.deepEqual(readLlama2c(file).layers[2]!.w2, randomWeights(qwen, 5, 'f32').layers[2]!.w2);
});

test('the bench shapes are the public configurations, and C runs the llama-equivalent where it must', () => {
  const tiny = SHAPES.tinyllama!;
  assert.equal(tiny.config.nLayers, 22);
  assert.equal(tiny.cBar.config, tiny.config);
  // TinyLlama-1.1B: about 44.0 M weights per layer, 0.5625 bytes per weight in Q4_0
  assert.equal(layerBytes(tiny.config, 'q4_0'), 44_040_192 * 18 / 32 + 2 * 2048 * 4);
  const l3 = SHAPES['llama3.2-1b']!;
  assert.equal(l3.config.ropeFreqFactors?.length, 32);
  assert.equal(l3.cBar.config.ropeFreqFactors, undefined);
  assert.match(l3.cBar.note!, /llama-equivalent/);
  assert.equal(SHAPES['qwen2.5-0.5b']!.cBar.config.architecture, undefined);
});

test('stage processes compute what the same layers compute in this process', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const seed = 3;
  const weights = randomWeights(config, seed, 'q8_0');
  const head = new ModelHead(config, weights.head!, { threads: 1 });
  t.after(() => head.dispose());
  const ranges = [{ from: 0, to: 1 }, { from: 1, to: 4 }];
  const stages = await Promise.all(ranges.map((range) => StageProcess.start(range, { config, seed, type: 'q8_0', range, threads: 1, backend: 'cpu' })));
  t.after(() => Promise.all(stages.map((s) => s.stage.exit())));
  for (const s of stages) assert.equal(s.ready.memory.kernelWeightBytes + 2 * config.dim * 4 * (s.stage.range.to - s.stage.range.from),
    layerBytes(config, 'q8_0') * (s.stage.range.to - s.stage.range.from));
  const prompt = [1, 7, 9];
  const round = await generateThrough(head, stages.map((s) => s.stage), prompt, 6);
  assert.equal(round.ids.length, 7);
  assert.equal(round.decodeTokens, 6);
  assert.ok(round.stageCpuS.every((x) => x >= 0) && round.stageWallS.every((x) => x > 0));
  assert.ok(round.stageMemory.every((m) => m.peakRssBytes > 0));

  // the same greedy generation in process
  const stacks = ranges.map((r) => new BlockStack(weights, r, { threads: 1 }));
  t.after(() => stacks.forEach((s) => s.dispose()));
  const sessions = stacks.map((s) => s.openSession({ capacity: prompt.length + 6 }));
  const ids: number[] = [];
  let tokens = prompt;
  for (let k = 0; k < 7; k++) {
    let h = head.embed(tokens);
    stacks.forEach((s, i) => { h = s.forward(sessions[i]!, h); });
    const logits = head.logits(h);
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    ids.push(best);
    tokens = [best];
  }
  assert.deepEqual(round.ids, ids);
});

test('J per token: idle power for the wall time, compute power for the CPU time', () => {
  const load = { idleW: 2, computeW: 4, freqExponent: 2, sleepW: 0.05 };
  // 10 tokens in 5 s, 2.5 CPU-seconds on 2 cores: a quarter of the cores busy
  const e = stageEnergy(load, 2.5, 5, 10, 2);
  assert.equal(e.busyShare, 0.25);
  assert.equal(e.computeJPerToken, (4 * 2.5) / 2 / 10);
  assert.equal(e.jPerToken, (2 * 5 + 5) / 10);
  assert.equal(e.wallTimeModelJPerToken, (6 * 5) / 10);
});
