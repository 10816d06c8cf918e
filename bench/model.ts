// `heliomesh bench model`: decode and prefill speed of Heliomesh's forward pass (TF.js blocks
// with the weight matmuls in our WebAssembly kernel), against the bar of
// bench/model-c/forward.c, the same forward pass in plain single-threaded f32 C
// (cc -O3 -march=native -ffast-math), run on the same weights and prompt.
//
// - `--shape tinyllama|smollm2-360m|llama3.2-1b|qwen2.5-0.5b --quant f32|q8_0|q4_0` (comma
//   lists run in one sitting): random-weight models of the real configurations, one stage
//   per process with the head here, with per-stage peak RSS, bandwidth fraction and joules
//   per token on the virtual node (bench/model/shape-run.ts).
// - Otherwise: the bundled model (if present), a model given with --model, and a
//   stories15M-shaped model with seeded random weights, in this process.
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKEND_ENV, parseBackendName, selectBackend } from '../models/backend.js';
import { bundledManifestPath } from '../models/bundled.js';
import { openCheckpoint } from '../models/checkpoint.js';
import { allTokens, emptyStats, Pipeline, type GenerationStats } from '../models/generate.js';
import { writeLlama2c } from '../models/llama2c.js';
import { llamaConfig, randomWeights } from '../models/random.js';
import type { ModelWeights } from '../models/types.js';
import { compileC, runC as runCBar, type CRun } from './model/c-bar.js';
import { runShape } from './model/shape-run.js';
import { BENCH_QUANTS, BENCH_SEQ_LEN, parseList, SHAPE_SEED, SHAPES } from './model/shapes.js';
import type { Bench, BenchOptions, BenchResult } from './types.js';
import { median } from './median.js';

/** stories15M's shape (llama2.c's smallest TinyStories model). */
const STORIES15M_SHAPE = llamaConfig({ dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 });
const PROMPT_TOKENS = 32;
const DECODE_TOKENS = 128;
const STAGES = 3;
const ROUNDS = 3;
const GREEDY = { temperature: 0, topP: 1, seed: 0 };

interface TfjsRun {
  prefillTokensPerS: number;
  /** Fastest of ROUNDS generations, and their median. */
  decodeTokensPerS: number;
  decodeTokensPerSMedian: number;
  /** In the fastest generation. */
  decodeMsPerToken: number;
  headMsPerToken: number;
  /** Decode time per token of each block range, when the model runs as STAGES stages. */
  blockRanges: { from: number; to: number; msPerToken: number }[];
  /** Decode tokens/s through STAGES stages (hidden states cross a Float32Array boundary). */
  stagedDecodeTokensPerS: number;
  /** Bytes TF.js accounts for (norm gains, caches); the weight matrices live in the kernel's memory. */
  tensorMiB: number;
  /** The process's peak RSS after the whole-model runs (includes the weights' host copies). */
  peakRssMiB: number;
  ids: number[];
}

/** Prompt ids spread over the vocabulary, starting with BOS. */
function promptFor(vocabSize: number): number[] {
  return [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, (_, i) => (i * 7919 + 3) % vocabSize)];
}

interface TfjsMeasure {
  stats: GenerationStats;
  ids: number[];
}

/** One greedy generation of DECODE_TOKENS after the prompt, timed by the pipeline. */
async function measureTfjs(pipeline: Pipeline, prompt: number[]): Promise<TfjsMeasure> {
  const stats = emptyStats(pipeline.stacks.length);
  const ids = await allTokens(pipeline.generate({ promptIds: prompt, maxTokens: DECODE_TOKENS + 1, sampler: GREEDY }, stats));
  return { stats, ids };
}

const tokensPerS = (tokens: number, ms: number) => (tokens / ms) * 1000;

/**
 * The machine may be shared, so every measurement is repeated ROUNDS times (the whole model
 * and C interleaved, since their ratio is the point) and the fastest round is reported (the
 * one least disturbed), with the median. The staged runs come after the whole model's
 * pipeline is freed, so that the RSS and tensor bytes reported are those of one model copy.
 */
async function runTfjsAndC(weights: ModelWeights, prompt: number[], threads: number, c?: { exe: string; checkpoint: string }): Promise<TfjsRun & { c?: CRun & { decodeTokensPerSMedian: number } }> {
  const decodeRate = (m: TfjsMeasure) => tokensPerS(m.stats.decodeTokens, m.stats.decodeMs);
  const fastest = (runs: TfjsMeasure[]) => runs.reduce((a, b) => (decodeRate(b) > decodeRate(a) ? b : a));
  // the first call of each kernel pays for setup (worker threads start, pages are touched)
  const warmUp = (p: Pipeline) => allTokens(p.generate({ promptIds: prompt, maxTokens: 4, sampler: GREEDY }));

  const wholeRuns: TfjsMeasure[] = [];
  const cRuns: CRun[] = [];
  const whole = Pipeline.split(weights, 1, { threads });
  let tensorMiB: number;
  let peakRssMiB: number;
  try {
    await warmUp(whole);
    for (let round = 0; round < ROUNDS; round++) {
      wholeRuns.push(await measureTfjs(whole, prompt));
      if (c) cRuns.push(runC(c.exe, c.checkpoint, weights, prompt));
    }
    tensorMiB = tf.memory().numBytes / 2 ** 20;
    peakRssMiB = process.resourceUsage().maxRSS / 1024;
  } finally {
    whole.dispose();
  }

  const stagedRuns: TfjsMeasure[] = [];
  const staged = Pipeline.split(weights, Math.min(STAGES, weights.config.nLayers), { threads });
  try {
    await warmUp(staged);
    for (let round = 0; round < ROUNDS; round++) stagedRuns.push(await measureTfjs(staged, prompt));
  } finally {
    staged.dispose();
  }

  const best = fastest(wholeRuns);
  const bestStaged = fastest(stagedRuns);
  const s = best.stats;
  return {
    prefillTokensPerS: Math.max(...wholeRuns.map((m) => tokensPerS(m.stats.promptTokens, m.stats.prefillMs))),
    decodeTokensPerS: decodeRate(best),
    decodeTokensPerSMedian: median(wholeRuns.map(decodeRate)),
    decodeMsPerToken: s.decodeMs / s.decodeTokens,
    headMsPerToken: s.headDecodeMs / s.decodeTokens,
    blockRanges: staged.ranges.map((r, i) => ({ ...r, msPerToken: bestStaged.stats.stageDecodeMs[i]! / bestStaged.stats.decodeTokens })),
    stagedDecodeTokensPerS: decodeRate(bestStaged),
    tensorMiB,
    peakRssMiB,
    ids: best.ids,
    c: cRuns.length === 0 ? undefined : {
      prefillTokensPerS: Math.max(...cRuns.map((r) => r.prefillTokensPerS)),
      decodeTokensPerS: Math.max(...cRuns.map((r) => r.decodeTokensPerS)),
      decodeTokensPerSMedian: median(cRuns.map((r) => r.decodeTokensPerS)),
      ids: cRuns[0]!.ids,
    },
  };
}

function runC(exe: string, checkpoint: string, weights: ModelWeights, prompt: number[]): CRun {
  return runCBar(exe, checkpoint, weights.config, prompt, DECODE_TOKENS);
}

function commonPrefix(a: number[], b: number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** A positive integer option, or its default. */
function intOption(args: BenchOptions['args'], name: string, fallback: number, min = 1): number {
  const v = args[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be an integer >= ${min}, got '${v}'`);
  return n;
}

/** Shape runs: prompt and decode lengths kept short enough for C f32 on a 1B model (0.3–0.6 s per token). */
const SHAPE_PROMPT_TOKENS = 16;
const SHAPE_DECODE_TOKENS = 64;
const SHAPE_ROUNDS = 2;

async function runShapes(opts: BenchOptions, backendName: ReturnType<typeof parseBackendName>): Promise<BenchResult> {
  const a = opts.args;
  const shapes = parseList(a.shape!, Object.keys(SHAPES), 'shape');
  const quants = parseList(a.quant ?? 'q4_0', BENCH_QUANTS, 'quant');
  const cBar = a.cBar ?? 'on';
  if (cBar !== 'on' && cBar !== 'off') throw new Error(`--c-bar must be on or off, got '${cBar}'`);
  const o = {
    stages: intOption(a, 'stages', STAGES),
    threads: intOption(a, 'threads', availableParallelism()),
    seed: SHAPE_SEED,
    promptTokens: SHAPE_PROMPT_TOKENS,
    decodeTokens: intOption(a, 'tokens', SHAPE_DECODE_TOKENS),
    rounds: intOption(a, 'rounds', SHAPE_ROUNDS),
    backend: backendName,
    cBar: cBar === 'on',
  };
  const work = mkdtempSync(join(tmpdir(), 'heliomesh-bench-model-'));
  try {
    const runs = [];
    for (const name of shapes) runs.push({ shape: name, ...(await runShape(SHAPES[name]!, quants, { ...o, workDir: work })) });
    const lines = runs.flatMap((r) => r.results.map((q) => {
      const vsC = r.c && q.vsC
        ? `${q.vsC.decodeRatio!.toFixed(2)}× the C f32 bar's ${r.c.decodeTokensPerS.toFixed(2)} tok/s` +
          (q.vsC.goal ? ` (goal ≥ ${q.vsC.goal.atLeast}×: ${q.vsC.goal.met ? 'met' : `missed by ${((1 - q.vsC.decodeRatio! / q.vsC.goal.atLeast) * 100).toFixed(1)} %`})` : '') +
          (r.c.note ? ' [C on the llama-equivalent shape]' : '')
        : `no C bar: ${r.cReason}`;
      return `${q.summary}; ${vsC}`;
    }));
    return {
      summary: `model --shape (random weights, one stage process each, head here; seqLen ${BENCH_SEQ_LEN} only bounds the sessions, ` +
        `which hold ${o.promptTokens} prompt + ${o.decodeTokens} decode positions; best of ${o.rounds} rounds)\n${lines.join('\n')}`,
      metrics: {
        mode: 'shape',
        options: o,
        todaysF32: 'the TF.js f32 path this replaced is no longer in the tree; the f32 rows here are the new kernel, the historical comparison is measured on the old commit separately',
        runs: runs.map(({ results, ...rest }) => ({ ...rest, results: results.map(({ ids: _ids, ...q }) => q) })),
      },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  const backendWanted = parseBackendName(opts.args.backend ?? process.env[BACKEND_ENV] ?? 'auto');
  const backend = await selectBackend({ backend: backendWanted });
  if (opts.args.shape) return runShapes(opts, backendWanted);
  const threads = intOption(opts.args, 'threads', availableParallelism());
  const work = mkdtempSync(join(tmpdir(), 'heliomesh-bench-model-'));
  const models: { name: string; load: () => ModelWeights }[] = [];
  if (opts.args.model) models.push({ name: opts.args.model, load: () => openCheckpoint(opts.args.model!).read() });
  if (existsSync(bundledManifestPath())) models.push({ name: 'bundled', load: () => openCheckpoint(bundledManifestPath()).read() });
  models.push({ name: 'stories15M-shaped (random weights, seed 15)', load: () => randomWeights(STORIES15M_SHAPE, 15) });
  try {
    const c = compileC(work);
    const results = [];
    for (const m of models) {
      const weights = m.load();
      const prompt = promptFor(weights.config.vocabSize);
      let cInput: { exe: string; checkpoint: string } | undefined;
      if (c.exe) {
        cInput = { exe: c.exe, checkpoint: join(work, 'model.bin') };
        writeLlama2c(cInput.checkpoint, weights);
      }
      const { ids, c: cRun, ...tfjs } = await runTfjsAndC(weights, prompt, threads, cInput);
      results.push({
        model: m.name,
        config: weights.config,
        promptTokens: prompt.length,
        decodeTokens: DECODE_TOKENS,
        rounds: ROUNDS,
        threads,
        tfjs,
        c: cRun && { prefillTokensPerS: cRun.prefillTokensPerS, decodeTokensPerS: cRun.decodeTokensPerS, decodeTokensPerSMedian: cRun.decodeTokensPerSMedian },
        decodeRatioTfjsToC: cRun ? tfjs.decodeTokensPerS / cRun.decodeTokensPerS : undefined,
        // float32 in both, but different summation orders: greedy paths agree until a near-tie
        greedyIdsAgreeingWithC: cRun ? commonPrefix(ids, cRun.ids) : undefined,
      });
    }
    const line = results.map((r) => {
      const vsC = r.decodeRatioTfjsToC !== undefined
        ? `${(r.decodeRatioTfjsToC * 100).toFixed(0)}% of C's ${r.c!.decodeTokensPerS.toFixed(0)} tok/s`
        : `no C bar: ${c.reason}`;
      return `${r.model}: decode ${r.tfjs.decodeTokensPerS.toFixed(1)} tok/s (${vsC}), prefill ${r.tfjs.prefillTokensPerS.toFixed(0)} tok/s, ` +
        `peak RSS ${r.tfjs.peakRssMiB.toFixed(0)} MiB`;
    }).join('; ');
    return {
      summary: `model [${backend.detail}, kernel ${threads} threads] ${line}`,
      metrics: { backend: backend.name, backendDetail: backend.detail, threads, cCompiler: c.exe ? c.compiler : c.reason, results },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export const modelBench: Bench = {
  description: 'prefill/decode tokens/s, time per block range and peak RSS against a plain C forward pass; ' +
    'with --shape: real model shapes as stage processes, memory, bandwidth fraction and J/token',
  run,
};
