// The real configurations users bring (TinyLlama, SmolLM2-360M, Llama-3.2-1B with llama3
// rope scaling, Qwen2.5-0.5B with q/k/v biases), with seeded random Q4_0 weights: each loads
// through a GGUF file written and read by our code, decodes, and gives the same greedy ids
// as one stage and as three, each stage read on its own from its own shard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHAPES } from '../../bench/model/shapes.js';
import { selectBackend } from '../../models/backend.js';
import { allTokens, Pipeline } from '../../models/generate.js';
import { readGgufLlama } from '../../models/gguf-llama.js';
import { writeGgufPart } from '../../models/gguf-llama-write.js';
import { randomWeights } from '../../models/random.js';
import { splitRanges } from '../../models/shards.js';

const greedy = { temperature: 0, topP: 1, seed: 0 };
let dir: string;

before(async () => {
  await selectBackend({ backend: 'wasm' });
  dir = mkdtempSync(join(tmpdir(), 'real-shapes-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

for (const name of ['tinyllama', 'smollm2-360m', 'llama3.2-1b', 'qwen2.5-0.5b']) {
  test(`${name} (random Q4_0 weights): decodes, and 1 and 3 groups give the same ids`, { timeout: 600_000 }, async () => {
    const { config } = SHAPES[name]!;
    const ranges = splitRanges(config.nLayers, 3);
    // one GGUF shard per range and one for the head, as `model split` lays them out
    const files = ranges.map((range, i) => {
      const file = join(dir, `${name}-${i}.gguf`);
      writeGgufPart(file, randomWeights(config, 7, 'q4_0', { range }), { type: 'keep', range, head: false });
      return file;
    });
    const headFile = join(dir, `${name}-head.gguf`);
    writeGgufPart(headFile, randomWeights(config, 7, 'q4_0', { head: true }), { type: 'keep', range: { from: 0, to: 0 }, head: true });
    const head = readGgufLlama(headFile, { head: true }).head!;
    const prompt = [1, 100, 2000, 30];
    const idsWith = async (groups: number): Promise<number[]> => {
      const parts = groups === 3
        ? files.map((f) => readGgufLlama(f, { head: false }))
        : [{ config, range: { from: 0, to: config.nLayers }, layers: files.flatMap((f) => readGgufLlama(f, { head: false }).layers) }];
      const pipeline = new Pipeline(config, head, parts);
      try {
        return await allTokens(pipeline.generate({ promptIds: prompt, maxTokens: 8, sampler: greedy }));
      } finally {
        pipeline.dispose();
      }
    };
    const one = await idsWith(1);
    assert.equal(one.length, 8);
    assert.ok(one.every((id) => Number.isInteger(id) && id >= 0 && id < config.vocabSize));
    assert.deepEqual(await idsWith(3), one);
    for (const f of [...files, headFile]) rmSync(f);
  });
}
