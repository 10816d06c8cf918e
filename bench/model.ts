// `heliomesh bench model`: prefill and decode speed of the TF.js forward pass, time per block
// range, peak RSS and backend, for the bundled model (if present), a model given with
// --model, and a stories15M-shaped model with seeded random weights. The bar for decode is
// bench/model-c/forward.c, the same forward pass in plain single-threaded C (cc -O2), run on
// the same weights and prompt.
import * as tf from '@tensorflow/tfjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKEND_ENV, parseBackendName, selectBackend } from '../models/backend.js';
import { bundledManifestPath } from '../models/bundled.js';
import { openCheckpoint } from '../models/checkpoint.js';
import { emptyStats, Pipeline, type GenerationStats } from '../models/generate.js';
import { writeLlama2c } from '../models/llama2c.js';
import { llamaConfig, randomWeights } from '../models/random.js';
import type { ModelWeights } from '../models/types.js';
import type { Bench, BenchOptions, BenchResult } from './types.js';

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
  /** Bytes TF.js accounts for (weights and caches); XNNPACK's packed weight copies come on top. */
  tensorMiB: number;
  /** The process's peak RSS after the whole-model runs (includes the weights' host copies). */
  peakRssMiB: number;
  ids: number[];
}

interface CRun {
  prefillTokensPerS: number;
  decodeTokensPerS: number;
  decodeTokensPerSMedian?: number;
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
function measureTfjs(pipeline: Pipeline, prompt: number[]): TfjsMeasure {
  const stats = emptyStats(pipeline.stages.length);
  const ids = [...pipeline.generate({ promptIds: prompt, maxTokens: DECODE_TOKENS + 1, sampler: GREEDY }, stats)];
  return { stats, ids };
}

const tokensPerS = (tokens: number, ms: number) => (tokens / ms) * 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The machine may be shared, so every measurement is repeated ROUNDS times (the whole model
 * and C interleaved, since their ratio is the point) and the fastest round is reported (the
 * one least disturbed), with the median. The staged runs come after the whole model's
 * pipeline is freed, so that the RSS and tensor bytes reported are those of one model copy.
 */
function runTfjsAndC(weights: ModelWeights, prompt: number[], c?: { exe: string; checkpoint: string }): TfjsRun & { c?: CRun } {
  const decodeRate = (m: TfjsMeasure) => tokensPerS(m.stats.decodeTokens, m.stats.decodeMs);
  const fastest = (runs: TfjsMeasure[]) => runs.reduce((a, b) => (decodeRate(b) > decodeRate(a) ? b : a));
  const warmUp = (p: Pipeline) => {
    // the first call of each kernel pays for setup (XNNPACK packs the weights)
    for (const _ of p.generate({ promptIds: prompt, maxTokens: 4, sampler: GREEDY }));
  };

  const wholeRuns: TfjsMeasure[] = [];
  const cRuns: CRun[] = [];
  const whole = Pipeline.split(weights, 1);
  let tensorMiB: number;
  let peakRssMiB: number;
  try {
    warmUp(whole);
    for (let round = 0; round < ROUNDS; round++) {
      wholeRuns.push(measureTfjs(whole, prompt));
      if (c) cRuns.push(runC(c.exe, c.checkpoint, weights, prompt));
    }
    tensorMiB = tf.memory().numBytes / 2 ** 20;
    peakRssMiB = process.resourceUsage().maxRSS / 1024;
  } finally {
    whole.dispose();
  }

  const stagedRuns: TfjsMeasure[] = [];
  const staged = Pipeline.split(weights, Math.min(STAGES, weights.config.nLayers));
  try {
    warmUp(staged);
    for (let round = 0; round < ROUNDS; round++) stagedRuns.push(measureTfjs(staged, prompt));
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

/** Compiles the C forward pass; undefined (with the reason) when there is no C compiler. */
function compileC(dir: string): { exe?: string; reason?: string } {
  const source = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'model-c', 'forward.c');
  if (!existsSync(source)) return { reason: `${source} not found` };
  const exe = join(dir, 'forward');
  const cc = spawnSync('cc', ['-O2', '-o', exe, source, '-lm'], { encoding: 'utf8' });
  if (cc.error) return { reason: `no C compiler ('cc' failed to start: ${cc.error.message})` };
  if (cc.status !== 0) return { reason: `cc -O2 failed: ${cc.stderr.trim()}` };
  return { exe };
}

function runC(exe: string, checkpoint: string, weights: ModelWeights, prompt: number[]): CRun {
  const { ropeTheta, normEps } = weights.config;
  const steps = prompt.length + DECODE_TOKENS + 1;
  const out = execFileSync(exe, [checkpoint, String(steps), String(ropeTheta), String(normEps), ...prompt.map(String)], { encoding: 'utf8' });
  const r = JSON.parse(out) as { promptTokens: number; promptMs: number; ids: number[]; decodeForwards: number; decodeMs: number };
  return {
    prefillTokensPerS: (r.promptTokens / r.promptMs) * 1000,
    decodeTokensPerS: (r.decodeForwards / r.decodeMs) * 1000,
    ids: r.ids,
  };
}

function commonPrefix(a: number[], b: number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  const backendWanted = parseBackendName(opts.args.backend ?? process.env[BACKEND_ENV] ?? 'auto');
  const backend = await selectBackend({ backend: backendWanted });
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
      const { ids, c: cRun, ...tfjs } = runTfjsAndC(weights, prompt, cInput);
      results.push({
        model: m.name,
        config: weights.config,
        promptTokens: prompt.length,
        decodeTokens: DECODE_TOKENS,
        rounds: ROUNDS,
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
      summary: `model [${backend.detail}] ${line}`,
      metrics: { backend: backend.name, backendDetail: backend.detail, cCompiler: c.exe ? 'cc -O2' : c.reason, results },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export const modelBench: Bench = {
  description: 'TF.js prefill/decode tokens/s, time per block range and peak RSS, against a plain C forward pass',
  run,
};
