// The C bar: bench/model-c/forward.c, the same Llama forward pass in plain single-threaded
// float32 C, compiled here with -O3 -march=native -ffast-math (so that gcc vectorizes the
// dot products: a fair contender), and run on the same weights and prompt as Heliomesh.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, statfsSync, writeSync } from 'node:fs';
import { freemem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomHead, randomLayer } from '../../models/random.js';
import { MATRIX_KINDS, matrixShape, type LayerWeights, type LlamaConfig } from '../../models/types.js';
import type { WeightMatrix } from '../../models/weights.js';

export const C_FLAGS = ['-O3', '-march=native', '-ffast-math'];

export interface CRun {
  prefillTokensPerS: number;
  decodeTokensPerS: number;
  ids: number[];
}

/** Compiles the C forward pass; undefined (with the reason) when there is no C compiler. */
export function compileC(dir: string): { exe?: string; compiler: string; reason?: string } {
  const compiler = `cc ${C_FLAGS.join(' ')}`;
  const source = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'model-c', 'forward.c');
  if (!existsSync(source)) return { compiler, reason: `${source} not found` };
  const exe = join(dir, 'forward');
  const cc = spawnSync('cc', [...C_FLAGS, '-o', exe, source, '-lm'], { encoding: 'utf8' });
  if (cc.error) return { compiler, reason: `no C compiler ('cc' failed to start: ${cc.error.message})` };
  if (cc.status !== 0) return { compiler, reason: `${compiler} failed: ${cc.stderr.trim()}` };
  return { exe, compiler };
}

/** Runs the C forward pass: the prompt one token at a time, then greedy decode of `decodeTokens` forwards. */
export function runC(exe: string, checkpoint: string, config: LlamaConfig, prompt: readonly number[], decodeTokens: number): CRun {
  const steps = prompt.length + decodeTokens + 1;
  const out = execFileSync(exe, [checkpoint, String(steps), String(config.ropeTheta), String(config.normEps), ...prompt.map(String)],
    { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
  const r = JSON.parse(out) as { promptTokens: number; promptMs: number; ids: number[]; decodeForwards: number; decodeMs: number };
  return {
    prefillTokensPerS: (r.promptTokens / r.promptMs) * 1000,
    decodeTokensPerS: (r.decodeForwards / r.decodeMs) * 1000,
    ids: r.ids,
  };
}

/** Bytes of a llama2.c version-0 file of `config` (header, arrays in run.c's order, freq_cis, classifier if separate). */
export function llama2cBytes(config: LlamaConfig): number {
  return layout(config).total;
}

function layout(config: LlamaConfig) {
  const { dim, nLayers, vocabSize, seqLen } = config;
  const headSize = dim / config.nHeads;
  const perLayer: Record<string, number> = { attnNorm: dim, ffnNorm: dim };
  for (const kind of MATRIX_KINDS) {
    const [rows, cols] = matrixShape(config, kind);
    perLayer[kind] = rows * cols;
  }
  // run.c's memory_map_weights order
  const order = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'];
  const offsets: Record<string, number> = {};
  let at = 28 + vocabSize * dim * 4;
  for (const kind of order) {
    offsets[kind] = at;
    at += nLayers * perLayer[kind]! * 4;
  }
  const finalNorm = at;
  at += dim * 4;
  at += seqLen * headSize * 4; // freq_cis_real and freq_cis_imag, seqLen × headSize/2 each; run.c skips them
  const classifier = at;
  if (!config.sharedClassifier) at += vocabSize * dim * 4;
  return { perLayer, offsets, finalNorm, classifier, total: at };
}

/** Why the C bar's file of `bytes` cannot be written and run here, if it cannot. */
export function cannotHold(dir: string, bytes: number): string | undefined {
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  const margin = 512 * 2 ** 20;
  if (free < bytes + margin) {
    return `the f32 llama2.c file needs ${(bytes / 2 ** 30).toFixed(1)} GiB but ${dir} has ${(free / 2 ** 30).toFixed(1)} GiB free`;
  }
  // forward.c reads the whole file into memory
  if (freemem() < bytes + margin) {
    return `forward.c holds the whole ${(bytes / 2 ** 30).toFixed(1)} GiB in memory but only ${(freemem() / 2 ** 30).toFixed(1)} GiB is free`;
  }
  return undefined;
}

/**
 * Writes the seeded random model of `config` (models/random.ts, the values Heliomesh's
 * stages quantize) in f32 as a llama2.c version-0 file, one layer at a time with positional
 * writes into the per-kind arrays, so that no more than a layer is in memory. `llama` is
 * the config written into the header (the llama-equivalent shape when C cannot run
 * `config`'s architecture); its matrices are `config`'s.
 */
export function writeRandomLlama2c(path: string, config: LlamaConfig, llama: LlamaConfig, seed: number,
  progress: (done: number, total: number) => void): void {
  const L = layout(llama);
  const fd = openSync(path, 'w');
  try {
    const put = (a: Uint8Array | Float32Array | WeightMatrix, position: number) => {
      if (!(a instanceof Uint8Array || a instanceof Float32Array) && a.type !== 'f32') throw new Error('the C bar file is f32');
      const bytes = a instanceof Uint8Array ? a : a instanceof Float32Array ? new Uint8Array(a.buffer, a.byteOffset, a.byteLength) : a.data;
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
    };
    const header = Buffer.alloc(28);
    [llama.dim, llama.hiddenDim, llama.nLayers, llama.nHeads, llama.nKvHeads,
      llama.sharedClassifier ? llama.vocabSize : -llama.vocabSize, llama.seqLen].forEach((v, i) => header.writeInt32LE(v, i * 4));
    put(header, 0);
    const head = randomHead(config, seed, 'f32');
    put(head.tokenEmbedding, 28);
    put(head.finalNorm, L.finalNorm);
    if (!llama.sharedClassifier) put(head.classifier, L.classifier);
    progress(0, llama.nLayers);
    for (let l = 0; l < llama.nLayers; l++) {
      const layer: LayerWeights = randomLayer(config, seed, l, 'f32');
      for (const kind of ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'] as const) {
        put(layer[kind], L.offsets[kind]! + l * L.perLayer[kind]! * 4);
      }
      progress(l + 1, llama.nLayers);
    }
    // the freq_cis tables stay a hole of zeros (run.c skips them); with a shared classifier
    // they end the file, which must still have its full length
    if (llama.sharedClassifier) put(new Float32Array(1), L.total - 4);
  } finally {
    closeSync(fd);
  }
}
