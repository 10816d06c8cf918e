// Generation through G pipeline stages in one process, the way the fleet runs it: the head
// part embeds tokens and samples, each stage holds a contiguous layer range with its own
// session cache, and stages hand each other plain Float32Array hidden states [T][dim] -- the
// payload the gateway will carry over MQTT between agents.
import { BlockStack, type BlockSession, type CacheUpdate } from './forward.js';
import { ModelHead, Sampler, type SamplerOptions } from './head.js';
import { splitRanges } from './shards.js';
import type { MatrixAllocator } from './weights.js';
import type { BlockRange, HeadWeights, LlamaConfig, ModelWeights } from './types.js';

export interface GenerateOptions {
  promptIds: readonly number[];
  /** New tokens to produce at most (fewer if a stop id comes or the context fills). */
  maxTokens: number;
  sampler: SamplerOptions;
  /** Sampling one of these ends the generation; it is not yielded. */
  stopIds?: readonly number[];
  cacheUpdate?: CacheUpdate;
}

/** Wall time spent where, filled in while a generation runs. */
export interface GenerationStats {
  promptTokens: number;
  prefillMs: number;
  /** Tokens produced after the first, each of which took one decode forward. */
  decodeTokens: number;
  decodeMs: number;
  /** Per stage, decode forward time (the stage's block range is `Pipeline.ranges[i]`). */
  stageDecodeMs: number[];
  /** Embedding, final norm, classifier and sampling during decode. */
  headDecodeMs: number;
}

export function emptyStats(stages: number): GenerationStats {
  return { promptTokens: 0, prefillMs: 0, decodeTokens: 0, decodeMs: 0, stageDecodeMs: Array<number>(stages).fill(0), headDecodeMs: 0 };
}

/** Reads a stage's weights (or the head) into the memory `allocate` hands out: its kernel's. */
export type StageLoader = (allocate: MatrixAllocator) => ModelWeights;
export type HeadLoader = (allocate: MatrixAllocator) => HeadWeights;

export interface PipelineOptions {
  /** Threads of each stage's (and the head's) matmul kernel (default: every core). */
  threads?: number;
}

/** The head part and G block stacks of one model. */
export class Pipeline {
  readonly config: LlamaConfig;
  readonly head: ModelHead;
  readonly stages: BlockStack[];

  /**
   * `parts` hold the stages' layers, in order, covering [0, nLayers) without gaps; each may
   * come from its own shard. A whole model split by `ranges` is `Pipeline.split`.
   */
  constructor(config: LlamaConfig, head: HeadWeights | HeadLoader, parts: readonly (ModelWeights | StageLoader)[], opts: PipelineOptions = {}) {
    this.config = config;
    this.stages = [];
    this.head = new ModelHead(config, head, opts);
    try {
      for (const p of parts) this.stages.push(new BlockStack(p, undefined, opts));
      let next = 0;
      for (const { range } of this.stages) {
        if (range.from !== next || range.to <= range.from) {
          throw new Error(`stage ranges must be contiguous from layer 0: expected a range starting at ${next}, ` +
            `got [${range.from}, ${range.to})`);
        }
        next = range.to;
      }
      if (next !== config.nLayers) throw new Error(`the stages end at layer ${next}, but the model has ${config.nLayers}`);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** A whole model cut into `groups` stages. */
  static split(weights: ModelWeights, groups: number, opts: PipelineOptions = {}): Pipeline {
    if (!weights.head) throw new Error('generation needs the head part (embedding, final norm, classifier)');
    const parts = splitRanges(weights.config.nLayers, groups).map((range): ModelWeights => ({
      config: weights.config,
      range,
      layers: weights.layers.slice(range.from - weights.range.from, range.to - weights.range.from),
    }));
    return new Pipeline(weights.config, weights.head, parts, opts);
  }

  get ranges(): BlockRange[] {
    return this.stages.map((s) => s.range);
  }

  /**
   * Yields generated token ids as they are sampled. Sessions are opened for the positions
   * this generation can use and closed when it ends (including when the caller stops early).
   */
  *generate(opts: GenerateOptions, stats: GenerationStats = emptyStats(this.stages.length)): Generator<number> {
    const { promptIds, maxTokens } = opts;
    const { seqLen } = this.config;
    if (promptIds.length === 0) throw new Error('the prompt is empty; start it with BOS (id 1) at least');
    if (promptIds.length > seqLen) throw new Error(`the prompt has ${promptIds.length} tokens; the model's context is ${seqLen}`);
    if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new Error(`max tokens must be a whole number >= 0, got ${maxTokens}`);
    const sampler = new Sampler(opts.sampler);
    const stop = new Set(opts.stopIds ?? []);
    // The last sampled token is never fed back, so prompt + maxTokens - 1 positions suffice.
    const capacity = Math.min(seqLen, promptIds.length + Math.max(0, maxTokens - 1));
    const sessions: BlockSession[] = [];
    try {
      for (const s of this.stages) sessions.push(s.openSession({ capacity, cacheUpdate: opts.cacheUpdate }));
      stats.promptTokens = promptIds.length;
      if (maxTokens === 0) return;
      let t0 = performance.now();
      let hidden = this.head.embed(promptIds);
      this.stages.forEach((stage, i) => {
        hidden = stage.forward(sessions[i]!, hidden);
      });
      let token = sampler.sample(this.head.logits(hidden));
      stats.prefillMs += performance.now() - t0;
      for (let produced = 1; ; produced++) {
        if (stop.has(token)) return;
        yield token;
        if (produced >= maxTokens || sessions[0]!.length >= capacity) return;
        t0 = performance.now();
        let inStages = 0;
        hidden = this.head.embed([token]);
        this.stages.forEach((stage, i) => {
          const began = performance.now();
          hidden = stage.forward(sessions[i]!, hidden);
          const took = performance.now() - began;
          stats.stageDecodeMs[i] = stats.stageDecodeMs[i]! + took;
          inStages += took;
        });
        token = sampler.sample(this.head.logits(hidden));
        const took = performance.now() - t0;
        stats.decodeMs += took;
        stats.headDecodeMs += took - inStages;
        stats.decodeTokens++;
      }
    } finally {
      for (const s of sessions) s.close();
    }
  }

  dispose(): void {
    for (const s of this.stages) s.dispose();
    this.head.dispose();
  }
}
