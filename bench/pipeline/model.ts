// The model `heliomesh bench pipeline` runs: a shard folder with 3 block ranges (the bundled
// model's own, a stories15M-shaped model with seeded random weights split in f32, or with
// `--shape` a real configuration such as TinyLlama's with seeded random weights in the
// `--quant` type, written into a temporary folder), and the same folder loaded as one
// in-process Pipeline of 3 stages, which is what `heliomesh model generate --groups 3` runs.
import { join } from 'node:path';
import { bundledModelDir } from '../../models/bundled.js';
import { Pipeline } from '../../models/generate.js';
import type { ReadPart } from '../../models/llama2c.js';
import { llamaConfig, randomWeights } from '../../models/random.js';
import { readManifest, readShards, writeShards } from '../../models/shards.js';
import type { ModelWeights } from '../../models/types.js';
import { BENCH_QUANTS, SHAPE_SEED, SHAPES, type BenchQuant } from '../model/shapes.js';

export const GROUPS = 3;

/** stories15M's shape (llama2.c's smallest TinyStories model), as `heliomesh bench model` uses it. */
const STORIES15M_SHAPE = llamaConfig({ dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 });
/** The seed `heliomesh bench model` draws the stories15M-shaped weights with. */
const STORIES15M_SEED = 15;

export type BenchModel = 'stories15M' | 'bundled' | { shape: string; quant: BenchQuant };

export function parseBenchModel(raw: string | undefined, shape?: string, quant?: string): BenchModel {
  if (shape !== undefined) {
    if (raw !== undefined) throw new Error('bench pipeline takes --model or --shape, not both');
    if (!SHAPES[shape]) throw new Error(`unknown --shape '${shape}'; choose one of: ${Object.keys(SHAPES).join(', ')}`);
    const q = quant ?? 'q4_0';
    if (!(BENCH_QUANTS as readonly string[]).includes(q)) throw new Error(`unknown --quant '${q}'; choose one of: ${BENCH_QUANTS.join(', ')}`);
    return { shape, quant: q as BenchQuant };
  }
  if (quant !== undefined) throw new Error('bench pipeline --quant goes with --shape');
  if (raw === undefined || raw === 'stories15M') return 'stories15M';
  if (raw === 'bundled') return 'bundled';
  throw new Error(`bench pipeline --model must be 'stories15M' (random weights of its shape) or 'bundled', got '${raw}'`);
}

export function benchModelName(which: BenchModel): string {
  return typeof which === 'string' ? which : `${which.shape} ${which.quant}`;
}

export interface PreparedModel {
  /** Shard folder; its name is the model's name at the gateway and in the agents' births. */
  dir: string;
  description: string;
  dtype: string;
}

/** The whole model's weights as `writeShards` reads them, part by part. */
function reader(weights: ModelWeights): (part: ReadPart) => ModelWeights {
  return (part) => {
    const range = part.range ?? weights.range;
    return { config: weights.config, range, layers: weights.layers.slice(range.from, range.to), head: part.head === false ? undefined : weights.head };
  };
}

export function prepareModel(which: BenchModel, work: string): PreparedModel {
  if (typeof which === 'object') {
    const shape = SHAPES[which.shape]!;
    process.stderr.write(`bench pipeline: drawing ${which.shape}'s weights in ${which.quant} (seed ${SHAPE_SEED}) and writing 3 shards\n`);
    const weights = randomWeights(shape.config, SHAPE_SEED, which.quant);
    const dir = join(work, `${which.shape}-shaped`);
    writeShards(weights.config, reader(weights), { groups: GROUPS, outDir: dir, dtype: 'keep' });
    return { dir, description: `${which.shape}-shaped (${shape.source}; random weights, seed ${SHAPE_SEED}, ${which.quant} shards)`, dtype: which.quant };
  }
  if (which === 'bundled') {
    const dir = bundledModelDir();
    const manifest = readManifest(dir);
    if (manifest.blocks.length !== GROUPS) throw new Error(`the bundled model has ${manifest.blocks.length} block ranges; the bench needs ${GROUPS}`);
    return { dir, description: 'bundled (trained, f16 shards)', dtype: manifest.blocks[0]!.dtype };
  }
  const weights = randomWeights(STORIES15M_SHAPE, STORIES15M_SEED);
  const dir = join(work, 'stories15M-shaped');
  writeShards(weights.config, reader(weights), { groups: GROUPS, outDir: dir, dtype: 'f32' });
  return { dir, description: `stories15M-shaped (random weights, seed ${STORIES15M_SEED}, f32 shards)`, dtype: 'f32' };
}

/** The folder's head and its block ranges as the stages of one in-process Pipeline. */
export function inProcessPipeline(dir: string): Pipeline {
  const manifest = readManifest(dir);
  const head = readShards(dir, { range: { from: 0, to: 0 }, head: true }, manifest).head!;
  const parts = manifest.blocks.map((b) => readShards(dir, { range: { from: b.from, to: b.to }, head: false }, manifest));
  return new Pipeline({ ...manifest.architecture }, head, parts);
}
