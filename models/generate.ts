// The generation loop, once: prompt checks, the positions a generation can reach, the
// prompt's forward and then one decode step per token through the stages in order, sampling
// and stop ids. The stages are whatever holds the blocks: LocalStage (a BlockStack in this
// process) for `heliomesh model generate` and the bench's baseline, the gateway's remote
// stage for a job on the fleet; stages hand each other plain Float32Array hidden states
// [T][dim] -- the payload the gateway carries over MQTT between agents. `Pipeline` is the
// head part and G block stacks of one model in this process.
import { BlockStack, type CacheUpdate } from './forward.js';
import { ModelHead, Sampler, type SamplerOptions } from './head.js';
import { splitRanges } from './shards.js';
import { LocalStage, type Stage } from './stage.js';
import type { MatrixAllocator } from './weights.js';
import type { BlockRange, HeadWeights, LlamaConfig, ModelWeights } from './types.js';

export interface GenerateOptions {
  promptIds: readonly number[];
  /** New tokens to produce at most (fewer if a stop id comes or the context fills). */
  maxTokens: number;
  sampler: SamplerOptions;
  /** Sampling one of these ends the generation; it is not yielded. */
  stopIds?: readonly number[];
  /** How in-process stages write their caches (Pipeline only). */
  cacheUpdate?: CacheUpdate;
}

/** Why a generation ended: a stop id (or the caller's stop sequence), or its length. */
export type FinishReason = 'stop' | 'length';

/** What the loop needs of the head part: embedding and the classifier's logits. */
export interface TokenHead {
  readonly config: Pick<LlamaConfig, 'seqLen' | 'vocabSize'>;
  embed(tokens: readonly number[]): Float32Array;
  /** May write into `out` (of vocabSize values) and return it, rather than allocate. */
  logits(hidden: Float32Array, out?: Float32Array): Float32Array;
}

/** Opens the stages of one generation, each sized to hold `positions` context positions. */
export type OpenStages = (positions: number) => readonly Stage[] | Promise<readonly Stage[]>;

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

/** What is wrong with the length and sampling of a request, if anything (the message a user acts on). */
export function samplingProblem(maxTokens: number, sampler: SamplerOptions): string | undefined {
  if (!Number.isInteger(maxTokens) || maxTokens < 0) return `maxTokens must be a whole number >= 0, got ${maxTokens}`;
  if (!Number.isFinite(sampler.temperature) || sampler.temperature < 0) return `temperature must be a finite number >= 0, got ${sampler.temperature}`;
  if (!(sampler.topP > 0 && sampler.topP <= 1)) return `topP must be in (0, 1], got ${sampler.topP}`;
  if (!Number.isInteger(sampler.seed)) return `seed must be an integer, got ${sampler.seed}`;
  return undefined;
}

/** What is wrong with a prompt for this model, if anything. */
export function promptProblem(config: Pick<LlamaConfig, 'seqLen' | 'vocabSize'>, promptIds: readonly number[]): string | undefined {
  if (promptIds.length === 0) return 'the prompt is empty; start it with BOS at least';
  const wrong = promptIds.find((id) => !Number.isInteger(id) || id < 0 || id >= config.vocabSize);
  if (wrong !== undefined) return `prompt token id ${wrong} is outside the vocabulary [0, ${config.vocabSize})`;
  if (promptIds.length > config.seqLen) return `the prompt has ${promptIds.length} tokens; the model's context is ${config.seqLen}: shorten it`;
  return undefined;
}

/**
 * Yields generated token ids as they are sampled and returns why it ended. The stages are
 * opened once the request is checked and closed when the generation ends: with the error
 * when it failed, without when it finished or the caller stopped early (a stop sequence).
 */
export async function* generateTokens(head: TokenHead, open: OpenStages, opts: GenerateOptions,
  stats: GenerationStats = emptyStats(0)): AsyncGenerator<number, FinishReason> {
  const { promptIds, maxTokens } = opts;
  const problem = samplingProblem(maxTokens, opts.sampler) ?? promptProblem(head.config, promptIds);
  if (problem) throw new Error(problem);
  const sampler = new Sampler(opts.sampler);
  // One logits array for the whole generation: each token's is drawn from before the next is computed.
  const logits = new Float32Array(head.config.vocabSize);
  const stop = new Set(opts.stopIds ?? []);
  stats.promptTokens = promptIds.length;
  if (maxTokens === 0) return 'length';
  // The last sampled token is never fed back, so prompt + maxTokens - 1 positions suffice.
  const positions = Math.min(head.config.seqLen, promptIds.length + maxTokens - 1);
  const stages = await open(positions);
  let failure: Error | undefined;
  try {
    let t0 = performance.now();
    let hidden = head.embed(promptIds);
    for (const stage of stages) hidden = await stage.forward(hidden, 0);
    let token = sampler.sample(head.logits(hidden, logits));
    stats.prefillMs += performance.now() - t0;
    let position = promptIds.length;
    for (let produced = 1; ; produced++) {
      if (stop.has(token)) return 'stop';
      yield token;
      if (produced >= maxTokens || position >= positions) return 'length';
      t0 = performance.now();
      let inStages = 0;
      hidden = head.embed([token]);
      for (const [i, stage] of stages.entries()) {
        const began = performance.now();
        hidden = await stage.forward(hidden, position);
        const took = performance.now() - began;
        stats.stageDecodeMs[i] = (stats.stageDecodeMs[i] ?? 0) + took;
        inStages += took;
      }
      position++;
      token = sampler.sample(head.logits(hidden, logits));
      const took = performance.now() - t0;
      stats.decodeMs += took;
      stats.headDecodeMs += took - inStages;
      stats.decodeTokens++;
    }
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    await Promise.all(stages.map((s) => s.close(failure)));
  }
}

/** Every token of a generation, once it has ended. */
export async function allTokens(tokens: AsyncIterable<number>): Promise<number[]> {
  const ids: number[] = [];
  for await (const id of tokens) ids.push(id);
  return ids;
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
  readonly stacks: BlockStack[];

  /**
   * `parts` hold the stages' layers, in order, covering [0, nLayers) without gaps; each may
   * come from its own shard. A whole model split by `ranges` is `Pipeline.split`.
   */
  constructor(config: LlamaConfig, head: HeadWeights | HeadLoader, parts: readonly (ModelWeights | StageLoader)[], opts: PipelineOptions = {}) {
    this.config = config;
    this.stacks = [];
    this.head = new ModelHead(config, head, opts);
    try {
      for (const p of parts) this.stacks.push(new BlockStack(p, undefined, opts));
      let next = 0;
      for (const { range } of this.stacks) {
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
    return this.stacks.map((s) => s.range);
  }

  /** The generation loop over this process's stacks, one LocalStage each. */
  generate(opts: GenerateOptions, stats: GenerationStats = emptyStats(this.stacks.length)): AsyncGenerator<number, FinishReason> {
    return generateTokens(this.head, (positions) => this.open(positions, opts.cacheUpdate), opts, stats);
  }

  private open(positions: number, cacheUpdate: CacheUpdate | undefined): LocalStage[] {
    const opened: LocalStage[] = [];
    try {
      for (const stack of this.stacks) opened.push(new LocalStage(stack, positions, cacheUpdate));
    } catch (err) {
      for (const stage of opened) void stage.close();
      throw err;
    }
    return opened;
  }

  dispose(): void {
    for (const s of this.stacks) s.dispose();
    this.head.dispose();
  }
}
