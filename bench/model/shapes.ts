// The real model configurations `heliomesh bench model --shape` builds with random weights,
// from each model's public config.json (Hugging Face). Only the shapes matter for speed and
// memory; the weights are seeded random values of the right scale (models/random.ts).
import { llama3FreqFactors } from '../../models/hf-llama.js';
import { llamaConfig } from '../../models/random.js';
import type { LlamaConfig } from '../../models/types.js';
import type { WeightType } from '../../models/weights.js';

/**
 * Context of the bench configs. It bounds and sizes nothing but the RoPE tables and the
 * largest possible session; the sessions the bench opens hold prompt + decode positions.
 */
export const BENCH_SEQ_LEN = 512;

export interface BenchShape {
  name: string;
  /** Where the numbers come from. */
  source: string;
  config: LlamaConfig;
  /**
   * What the C bar (bench/model-c/forward.c, llama2.c's architecture) runs: the same config,
   * or, when C cannot run a feature of it, the llama-equivalent shape with the same matrices
   * (same sizes, same arithmetic per token) and the reason.
   */
  cBar: { config: LlamaConfig; note?: string };
}

function shape(name: string, source: string, config: LlamaConfig, cNote?: string): BenchShape {
  const { architecture: _a, ropeFreqFactors: _r, ...llama } = config;
  return { name, source, config, cBar: cNote ? { config: llama, note: cNote } : { config } };
}

export const SHAPES: Record<string, BenchShape> = {
  tinyllama: shape('tinyllama', 'TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json', llamaConfig({
    dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4, vocabSize: 32000, seqLen: BENCH_SEQ_LEN,
    sharedClassifier: false, ropeTheta: 10000, normEps: 1e-5,
  })),
  'smollm2-360m': shape('smollm2-360m', 'HuggingFaceTB/SmolLM2-360M config.json', llamaConfig({
    dim: 960, hiddenDim: 2560, nLayers: 32, nHeads: 15, nKvHeads: 5, vocabSize: 49152, seqLen: BENCH_SEQ_LEN,
    sharedClassifier: true, ropeTheta: 100000, normEps: 1e-5,
  })),
  'llama3.2-1b': shape('llama3.2-1b', 'meta-llama/Llama-3.2-1B config.json', llamaConfig({
    dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, vocabSize: 128256, seqLen: BENCH_SEQ_LEN,
    sharedClassifier: true, ropeTheta: 500000, normEps: 1e-5,
    // rope_scaling: { rope_type: llama3, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }
    ropeFreqFactors: llama3FreqFactors(2048 / 32, 500000, { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 }),
  }), 'C bar on the llama-equivalent shape: forward.c has no llama3 rope scaling (the frequencies differ, the work per token does not); speed only, ids not compared'),
  'qwen2.5-0.5b': shape('qwen2.5-0.5b', 'Qwen/Qwen2.5-0.5B config.json', llamaConfig({
    dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, vocabSize: 151936, seqLen: BENCH_SEQ_LEN,
    sharedClassifier: true, ropeTheta: 1000000, normEps: 1e-6, architecture: 'qwen2',
  }), 'C bar on the llama-equivalent shape: forward.c has no q/k/v biases (3 vector additions per layer less); speed only, ids not compared'),
};

/** The seed the shapes' random weights are drawn with, by `bench model --shape` and `bench pipeline --shape` alike. */
export const SHAPE_SEED = 12;

/** The quantizations the shape bench runs. */
export const BENCH_QUANTS = ['f32', 'q8_0', 'q4_0'] as const satisfies readonly WeightType[];
export type BenchQuant = (typeof BENCH_QUANTS)[number];

/** Parses a comma-separated list of names against `known`, with a message naming the choices. */
export function parseList<T extends string>(value: string, known: readonly T[], what: string): T[] {
  const names = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) throw new Error(`--${what} needs at least one of: ${known.join(', ')}`);
  for (const n of names) {
    if (!(known as readonly string[]).includes(n)) throw new Error(`unknown --${what} '${n}'; choose from: ${known.join(', ')}`);
  }
  return names as T[];
}
