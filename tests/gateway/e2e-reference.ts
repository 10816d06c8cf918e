// What the end-to-end job tests compare against: `heliomesh model generate --groups G` on
// the bundled model, i.e. the generation loop over in-process stages, read the way the CLI
// reads it.
import { bundledModelDir } from '../../models/bundled.js';
import { openCheckpoint } from '../../models/checkpoint.js';
import { allTokens, Pipeline } from '../../models/generate.js';
import { splitRanges } from '../../models/shards.js';
import { loadTokenizer, type Tokenizer } from '../../models/tokenizers/index.js';
import type { CompletionRequest, JobService, JobSummary, TokenEvent } from '../../gateway/jobs.js';

export class Reference {
  private constructor(readonly pipeline: Pipeline, readonly tokenizer: Tokenizer) {}

  static load(groups = 3): Reference {
    const checkpoint = openCheckpoint(bundledModelDir());
    const head = checkpoint.read({ range: { from: 0, to: 0 }, head: true }).head!;
    const ranges = splitRanges(checkpoint.config.nLayers, groups);
    const pipeline = new Pipeline(checkpoint.config, head, ranges.map((range) => checkpoint.read({ range, head: false })));
    return new Reference(pipeline, loadTokenizer(checkpoint.path, checkpoint.manifest!.tokenizer!));
  }

  /** The ids and text the CLI prints for this request. */
  async generate(req: CompletionRequest): Promise<{ ids: number[]; text: string }> {
    const promptIds = typeof req.prompt === 'string' ? this.tokenizer.encode(req.prompt, { bos: true }) : req.prompt.ids;
    const ids = await allTokens(this.pipeline.generate({
      promptIds,
      maxTokens: req.maxTokens,
      sampler: { temperature: req.temperature, topP: req.topP, seed: req.seed },
      stopIds: [this.tokenizer.bos, this.tokenizer.eos],
    }));
    return { ids, text: this.tokenizer.decode(ids) };
  }

  dispose(): void {
    this.pipeline.dispose();
  }
}

export function request(over: Partial<CompletionRequest> = {}): CompletionRequest {
  return { prompt: 'The little robot', maxTokens: 40, temperature: 0, topP: 1, seed: 1, stop: [], ...over };
}

/** Runs `req` as a job: its summary, and every token it streamed, in order. */
export async function runJob(jobs: JobService, req: CompletionRequest): Promise<{ s: JobSummary; tokens: TokenEvent[] }> {
  const job = jobs.submit(req);
  const tokens: TokenEvent[] = [];
  job.onToken((t) => tokens.push(t));
  return { s: await job.done, tokens };
}
