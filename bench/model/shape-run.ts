// `heliomesh bench model --shape S --quant Q`: a random-weight model of a real configuration,
// served as G stages in G processes (stage.ts) with the head in this one, against the C f32
// bar on the same weights, with per-stage peak RSS, the fraction of the machine's read
// bandwidth reached, and joules per token on the virtual node. Heliomesh and C rounds are
// interleaved in one sitting, since their ratio is the point.
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { BackendName } from '../../models/backend.js';
import { ModelHead } from '../../models/head.js';
import { MatmulRuntime } from '../../models/kernels/index.js';
import { randomWeights } from '../../models/random.js';
import { splitRanges } from '../../models/shards.js';
import { cannotHold, compileC, llama2cBytes, runC, writeRandomLlama2c, type CRun } from './c-bar.js';
import { defaultNodeLoad, stageEnergy } from './energy.js';
import { generateThrough, StageProcess, type FleetRound } from './fleet.js';
import { headBytesPerToken, layerBytes, type StageMemory, type StageSpec } from './protocol.js';
import { BENCH_SEQ_LEN, type BenchQuant, type BenchShape } from './shapes.js';
import { median } from '../median.js';

export interface ShapeRunOptions {
  stages: number;
  threads: number;
  seed: number;
  promptTokens: number;
  decodeTokens: number;
  rounds: number;
  backend: BackendName | 'auto';
  /** Folder for the C bar's file (deleted afterwards). */
  workDir: string;
  cBar: boolean;
}

/** The memory goal of issue 12: a stage's peak RSS ≤ 1.2 × its weight bytes + 250 MB. */
const GOAL_RSS = (weightBytes: number) => 1.2 * weightBytes + 250e6;
const GOAL_RATIO: Partial<Record<BenchQuant, number>> = { q4_0: 3, q8_0: 2 };
const GOAL_BANDWIDTH = 0.7;

const log = (msg: string) => process.stderr.write(`[bench model] ${msg}\n`);
const rate = (tokens: number, ms: number) => (tokens / ms) * 1000;
const GB = (b: number) => `${(b / 1e9).toFixed(2)} GB`;

/** Prompt ids spread over the vocabulary, starting with BOS. */
export function promptFor(vocabSize: number, tokens: number): number[] {
  return [1, ...Array.from({ length: tokens - 1 }, (_, i) => (i * 7919 + 3) % vocabSize)];
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

interface CBar {
  exe: string;
  file: string;
  runs: CRun[];
}

/** Prepares the C bar for `shape` (compiled, file written), or says why there is none. */
function prepareC(shape: BenchShape, o: ShapeRunOptions): { c?: CBar; compiler: string; reason?: string } {
  const compiled = compileC(o.workDir);
  if (!compiled.exe) return { compiler: compiled.compiler, reason: compiled.reason };
  const bytes = llama2cBytes(shape.cBar.config);
  const full = cannotHold(o.workDir, bytes);
  if (full) return { compiler: compiled.compiler, reason: full };
  const file = join(o.workDir, `${shape.name}-f32.bin`);
  log(`${shape.name}: writing the C bar's f32 llama2.c file (${GB(bytes)}) to ${file}`);
  const t0 = performance.now();
  let shown = -1;
  writeRandomLlama2c(file, shape.config, shape.cBar.config, o.seed, (done, total) => {
    const pct = Math.floor((done / total) * 10);
    if (pct !== shown) {
      shown = pct;
      log(`${shape.name}: C file ${done}/${total} layers (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  });
  return { c: { exe: compiled.exe, file, runs: [] }, compiler: compiled.compiler };
}

/** Runs every quantization of `shape`; returns one result per quantization, and the C bar's. */
export async function runShape(shape: BenchShape, quants: readonly BenchQuant[], o: ShapeRunOptions) {
  const prompt = promptFor(shape.config.vocabSize, o.promptTokens);
  const prep = o.cBar ? prepareC(shape, o) : { compiler: '', reason: 'skipped (--c-bar off)' };
  const results = [];
  try {
    for (const quant of quants) results.push(await runQuant(shape, quant, prompt, o, prep.c));
  } finally {
    if (prep.c) rmSync(prep.c.file, { force: true });
  }
  const cRuns = prep.c?.runs ?? [];
  const c = cRuns.length === 0 ? undefined : {
    compiler: prep.compiler,
    config: shape.cBar.config,
    note: shape.cBar.note,
    rounds: cRuns.length,
    decodeTokensPerS: Math.max(...cRuns.map((r) => r.decodeTokensPerS)),
    decodeTokensPerSMedian: median(cRuns.map((r) => r.decodeTokensPerS)),
    prefillTokensPerS: Math.max(...cRuns.map((r) => r.prefillTokensPerS)),
    ids: cRuns[0]!.ids,
  };
  const withRatios = results.map((r) => {
    const ratio = c ? r.heliomesh.decodeTokensPerS / c.decodeTokensPerS : undefined;
    const goal = GOAL_RATIO[r.quant];
    return {
      ...r,
      vsC: c ? {
        decodeRatio: ratio,
        decodeRatioMedians: r.heliomesh.decodeTokensPerSMedian / c.decodeTokensPerSMedian,
        goal: goal === undefined ? undefined : { atLeast: goal, met: ratio! >= goal },
        // f32 on the very config only: both are float32, in different summation orders
        greedyIdsAgreeingWithC: r.quant === 'f32' && !shape.cBar.note ? commonPrefix(r.ids, c.ids) : undefined,
      } : undefined,
    };
  });
  return { c, cReason: c ? undefined : prep.reason, results: withRatios };
}

async function runQuant(shape: BenchShape, quant: BenchQuant, prompt: number[], o: ShapeRunOptions, c: CBar | undefined) {
  const { config } = shape;
  const ranges = splitRanges(config.nLayers, Math.min(o.stages, config.nLayers));
  log(`${shape.name} ${quant}: starting ${ranges.length} stage processes (${ranges.map((r) => `[${r.from}, ${r.to})`).join(' ')}), ` +
    `${o.threads} kernel threads each`);
  const stages: StageProcess[] = [];
  let head: ModelHead | undefined;
  try {
    const started = await Promise.all(ranges.map((range) => {
      const spec: StageSpec = { config, seed: o.seed, type: quant, range, threads: o.threads, backend: o.backend };
      return StageProcess.start(range, spec);
    }));
    for (const s of started) stages.push(s.stage);
    const ready = started.map((s) => s.ready);
    log(`${shape.name} ${quant}: stages loaded in ${ready.map((r) => (r.loadMs / 1000).toFixed(1)).join(', ')} s; building the head`);
    head = new ModelHead(config, (allocate) => randomWeights(config, o.seed, quant, { head: true }, allocate).head!, { threads: o.threads });

    // The limit every fraction is held against, measured on the same cores before and after
    // decoding (a shared machine varies); the higher of the two is used.
    const before = [readBandwidth(o.threads), readBandwidth(o.threads)];
    log(`${shape.name} ${quant}: read bandwidth ${before.map((b) => (b / 1e9).toFixed(1)).join(', ')} GB/s on ${o.threads} threads; warming up`);
    await generateThrough(head, stages, prompt.slice(0, 4), 4);

    const rounds: FleetRound[] = [];
    for (let round = 0; round < o.rounds; round++) {
      const r = await generateThrough(head, stages, prompt, o.decodeTokens);
      rounds.push(r);
      log(`${shape.name} ${quant}: round ${round + 1}/${o.rounds}: decode ${rate(r.decodeTokens, r.decodeMs).toFixed(2)} tok/s`);
      if (c) {
        const cr = runC(c.exe, c.file, shape.cBar.config, prompt, o.decodeTokens);
        c.runs.push(cr);
        log(`${shape.name}: C f32 round: decode ${cr.decodeTokensPerS.toFixed(2)} tok/s`);
      }
    }
    const after = [readBandwidth(o.threads), readBandwidth(o.threads)];
    log(`${shape.name} ${quant}: read bandwidth after decoding ${after.map((b) => (b / 1e9).toFixed(1)).join(', ')} GB/s`);
    return summarize(shape, quant, ranges, ready, rounds, [...before, ...after], o);
  } finally {
    head?.dispose();
    await Promise.all(stages.map((s) => s.exit()));
  }
}

/** MatmulRuntime.readBandwidth() on a runtime of its own (bytes/s). */
function readBandwidth(threads: number): number {
  const probe = MatmulRuntime.create({ threads });
  try {
    return probe.readBandwidth();
  } finally {
    probe.close();
  }
}

function summarize(shape: BenchShape, quant: BenchQuant, ranges: { from: number; to: number }[],
  ready: { loadMs: number; backend: string; memory: StageMemory }[], rounds: FleetRound[], measured: number[],
  o: ShapeRunOptions) {
  const { config } = shape;
  // a shared machine's bandwidth wanders (20–55 GB/s seen on the same 2 cores): the median
  // of two readings before and two after the rounds, all of them reported
  const bandwidth = [...measured].sort((a, b) => a - b)[Math.floor((measured.length - 1) / 2)]!;
  const decodeRate = (r: FleetRound) => rate(r.decodeTokens, r.decodeMs);
  const best = rounds.reduce((a, b) => (decodeRate(b) > decodeRate(a) ? b : a));
  const n = best.decodeTokens;
  const perLayer = layerBytes(config, quant);
  const headBytes = headBytesPerToken(config, quant);
  const load = defaultNodeLoad();
  const cores = availableParallelism();
  const stages = ranges.map((range, i) => {
    const weightBytes = perLayer * (range.to - range.from);
    const peak = Math.max(...rounds.map((r) => r.stageMemory[i]!.peakRssBytes), ready[i]!.memory.peakRssBytes);
    const forwardMsPerToken = best.stageForwardMs[i]! / n;
    const kernelMsPerToken = best.stageKernelMs[i]! / n;
    return {
      ...range,
      weightBytes,
      kernelWeightBytes: ready[i]!.memory.kernelWeightBytes,
      kernelHeapBytes: ready[i]!.memory.kernelHeapBytes,
      loadMs: ready[i]!.loadMs,
      peakRssBytes: peak,
      peakRssAfterLoadBytes: ready[i]!.memory.peakRssBytes,
      rssAfterLoadBytes: ready[i]!.memory.rssBytes,
      rssGoalBytes: GOAL_RSS(weightBytes),
      peakRssOfGoal: peak / GOAL_RSS(weightBytes),
      peakRssOverWeights: peak / weightBytes,
      forwardMsPerToken,
      kernelMsPerToken,
      transportMsPerToken: best.stageTransportMs[i]! / n,
      bandwidthFraction: weightBytes / (forwardMsPerToken / 1000) / bandwidth,
      /** The same bytes over the time inside the kernel only: how close the kernel itself comes. */
      kernelBandwidthFraction: weightBytes / (kernelMsPerToken / 1000) / bandwidth,
      cpuSPerToken: best.stageCpuS[i]! / n,
      energy: stageEnergy(load, best.stageCpuS[i]!, best.stageWallS[i]!, n, cores),
    };
  });
  const decodeMsPerToken = best.decodeMs / n;
  const bytesPerToken = stages.reduce((s, x) => s + x.weightBytes, 0) + headBytes;
  const transportMsPerToken = stages.reduce((s, x) => s + x.transportMsPerToken, 0);
  const headMsPerToken = best.headMs / n;
  const heliomesh = {
    decodeTokensPerS: decodeRate(best),
    decodeTokensPerSMedian: median(rounds.map(decodeRate)),
    prefillTokensPerS: Math.max(...rounds.map((r) => rate(r.promptTokens, r.prefillMs))),
    decodeMsPerToken,
    headMsPerToken,
    transportMsPerToken,
    transportShare: transportMsPerToken / decodeMsPerToken,
  };
  const bw = {
    readBytesPerS: bandwidth,
    measuredBytesPerS: measured,
    measuredOn: `MatmulRuntime.readBandwidth() (best of 5 runs over 256 MiB), ${o.threads} threads, in the parent, twice before and twice after the rounds; the lower median is used`,
    weightBytesPerToken: bytesPerToken,
    fraction: bytesPerToken / (decodeMsPerToken / 1000) / bandwidth,
    headFraction: headBytes / (headMsPerToken / 1000) / bandwidth,
    goal: quant === 'q4_0' ? undefined : { atLeast: GOAL_BANDWIDTH },
  };
  const fleetJ = stages.reduce((s, x) => s + x.energy.jPerToken, 0);
  const energy = {
    load,
    formula: 'per stage: (idleW × decode wall + computeW × stage process CPU s / host cores) / tokens, at the top power mode; ' +
      'the head runs on the mains-powered gateway and is not counted',
    hostCores: cores,
    jPerToken: fleetJ,
    computeJPerToken: stages.reduce((s, x) => s + x.energy.computeJPerToken, 0),
    wallTimeModelJPerToken: stages.reduce((s, x) => s + x.energy.wallTimeModelJPerToken, 0),
  };
  const memoryMet = stages.every((s) => s.peakRssBytes <= s.rssGoalBytes);
  const summary = `${shape.name} ${quant}, ${stages.length} stage processes × ${o.threads} threads: ` +
    `decode ${heliomesh.decodeTokensPerS.toFixed(2)} tok/s (median ${heliomesh.decodeTokensPerSMedian.toFixed(2)}), ` +
    `prefill ${heliomesh.prefillTokensPerS.toFixed(1)} tok/s; ms/token: stages ${stages.map((s) => s.forwardMsPerToken.toFixed(1)).join(' + ')} ` +
    `(kernel ${stages.map((s) => s.kernelMsPerToken.toFixed(1)).join(' + ')}), ` +
    `head ${headMsPerToken.toFixed(1)}, transport ${transportMsPerToken.toFixed(2)} (${(heliomesh.transportShare * 100).toFixed(1)} %); ` +
    `stage peak RSS ${stages.map((s) => GB(s.peakRssBytes)).join(' / ')} = ${stages.map((s) => s.peakRssOfGoal.toFixed(2)).join(' / ')} of the goal ` +
    `(${memoryMet ? 'met' : 'MISSED'}); bandwidth ${bw.fraction.toFixed(2)} of ${(bandwidth / 1e9).toFixed(1)} GB/s ` +
    `(stages ${stages.map((s) => s.bandwidthFraction.toFixed(2)).join(' / ')}); ${fleetJ.toFixed(2)} J/token on the virtual nodes ` +
    `(${energy.computeJPerToken.toFixed(2)} J of it compute)`;
  return {
    shape: shape.name,
    quant,
    source: shape.source,
    config,
    context: `seqLen ${BENCH_SEQ_LEN} (sizes only the RoPE tables and the largest session); sessions hold prompt + decode = ` +
      `${best.promptTokens + o.decodeTokens} positions`,
    promptTokens: best.promptTokens,
    decodeTokens: n,
    rounds: rounds.length,
    threads: o.threads,
    backend: ready[0]!.backend,
    heliomesh,
    stages,
    memory: { goal: '≤ 1.2 × stage weight bytes + 250 MB (10^6 bytes)', met: memoryMet },
    bandwidth: bw,
    energy,
    ids: best.ids,
    summary,
  };
}
