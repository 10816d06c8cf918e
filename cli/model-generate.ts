// `heliomesh model generate`: text (or token ids) from a model, through G in-process
// pipeline stages. Registered by cli/model.ts.
import { existsSync } from 'node:fs';
import pino from 'pino';
import pretty from 'pino-pretty';
import { z } from 'zod';
import { BACKEND_ENV, parseBackendName, selectBackend, type BackendName } from '../models/backend.js';
import { bundledManifestPath } from '../models/bundled.js';
import { openCheckpoint, type Checkpoint } from '../models/checkpoint.js';
import { Pipeline, promptProblem } from '../models/generate.js';
import type { MatrixAllocator } from '../models/weights.js';
import { splitRanges } from '../models/shards.js';
import { GgufTokenizer, loadTokenizer, readGgufTokenizer, TokenStream, type Tokenizer } from '../models/tokenizers/index.js';

const integer = (what: string, min: number) => z.coerce.number({ error: `${what} must be a number` })
  .int(`${what} must be a whole number`).min(min, `${what} must be at least ${min}`);

const optionsSchema = z.object({
  model: z.string().optional(),
  prompt: z.string().optional(),
  promptIds: z.string().optional()
    .transform((s, ctx) => {
      if (s === undefined) return undefined;
      const ids = s.split(',').map((t) => t.trim()).filter((t) => t !== '').map(Number);
      if (ids.length === 0 || ids.some((n) => !Number.isInteger(n) || n < 0)) {
        ctx.addIssue({ code: 'custom', message: `--prompt-ids must be comma-separated token ids, got '${s}'` });
        return z.NEVER;
      }
      return ids;
    }),
  maxTokens: integer('--max-tokens', 0),
  temperature: z.coerce.number({ error: '--temperature must be a number' }).min(0, '--temperature must be >= 0'),
  topP: z.coerce.number({ error: '--top-p must be a number' }).gt(0, '--top-p must be in (0, 1]').max(1, '--top-p must be in (0, 1]'),
  seed: integer('--seed', 0).optional(),
  groups: integer('--groups', 1),
  threads: integer('--threads', 1).optional(),
  ids: z.boolean().optional(),
  backend: z.string().optional(),
});
type GenerateOptions = z.infer<typeof optionsSchema>;

function parseOptions(raw: Record<string, unknown>): GenerateOptions {
  const parsed = optionsSchema.safeParse(raw);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
  if (parsed.data.prompt !== undefined && parsed.data.promptIds !== undefined) {
    throw new Error('give either --prompt or --prompt-ids, not both');
  }
  return parsed.data;
}

/** Structured logs on stderr (stdout carries the generated text): pretty on a terminal. */
function stderrLogger(): pino.Logger {
  return process.stderr.isTTY
    ? pino({ base: undefined }, pretty({ destination: 2, sync: true, ignore: 'pid,hostname' }))
    : pino({ base: undefined }, pino.destination({ fd: 2, sync: true }));
}

function resolveModelPath(given: string | undefined): string {
  if (given !== undefined) return given;
  const bundled = bundledManifestPath();
  if (!existsSync(bundled)) {
    throw new Error(`the bundled model is not there yet (${bundled} is missing): it is produced by the ` +
      'training script in models/training/; until then pass --model <checkpoint.bin | shard folder>');
  }
  return bundled;
}

function tokenizerOf(checkpoint: Checkpoint): Tokenizer | undefined {
  if (checkpoint.kind === 'gguf') {
    return checkpoint.tokenizerMetadata?.some(([k]) => k === 'tokenizer.ggml.model') ? readGgufTokenizer(checkpoint.path) : undefined;
  }
  const spec = checkpoint.manifest?.tokenizer;
  return spec ? loadTokenizer(checkpoint.path, spec) : undefined;
}

/** The command's action: validates the options commander collected and generates. */
export async function generateCommand(raw: Record<string, unknown>): Promise<void> {
  const opts = parseOptions(raw);
  const log = stderrLogger();
  const wanted: BackendName | 'auto' = parseBackendName(opts.backend ?? process.env[BACKEND_ENV] ?? 'auto');
  const checkpoint = openCheckpoint(resolveModelPath(opts.model));
  const { config } = checkpoint;
  const tokenizer = tokenizerOf(checkpoint);
  if (opts.prompt !== undefined && !tokenizer) {
    throw new Error(`${checkpoint.path} has no tokenizer, so it cannot encode --prompt text; use --prompt-ids (BOS is 1)`);
  }
  const backend = await selectBackend({ backend: wanted });
  log.info({ backend: backend.name, detail: backend.detail, skipped: backend.skipped }, `TF.js backend: ${backend.detail}`);
  const bos = tokenizer?.bos ?? 1;
  // a GGUF tokenizer adds BOS only when its file says the model wants one
  const withBos = tokenizer instanceof GgufTokenizer ? tokenizer.addBos : true;
  const promptIds = opts.promptIds ?? (opts.prompt !== undefined ? tokenizer!.encode(opts.prompt, { bos: withBos }) : [bos]);
  // Checked before any weights are read: the loop would say the same, only later.
  const problem = promptProblem(config, promptIds);
  if (problem) throw new Error(problem);
  // Each stage reads only its own layers, as an agent would; the head part is read once.
  const ranges = splitRanges(config.nLayers, opts.groups);
  const pipeline = new Pipeline(config, (allocate) => checkpoint.read({ range: { from: 0, to: 0 }, head: true }, allocate).head!,
    ranges.map((range) => (allocate: MatrixAllocator) => checkpoint.read({ range, head: false }, allocate)), { threads: opts.threads });
  const seed = opts.seed ?? (Date.now() % 2 ** 31);
  log.info({ model: checkpoint.path, kind: checkpoint.kind, stages: ranges, promptTokens: promptIds.length, seed },
    `generating with ${ranges.length} stage(s)`);

  // Without a tokenizer there is no text to print: ids it is. llama2.c models end a story
  // with BOS (run.c stops there); a tokenizer names its own BOS and EOS.
  const printIds = opts.ids === true || !tokenizer;
  const stopIds = tokenizer instanceof GgufTokenizer ? [...tokenizer.stopIds]
    : tokenizer ? [tokenizer.bos, tokenizer.eos] : checkpoint.kind === 'llama2c' ? [1] : [];
  const stream = tokenizer ? new TokenStream(tokenizer) : undefined;
  let count = 0;
  try {
    const tokens = pipeline.generate({
      promptIds,
      maxTokens: opts.maxTokens,
      sampler: { temperature: opts.temperature, topP: opts.topP, seed },
      stopIds,
    });
    for await (const id of tokens) {
      process.stdout.write(printIds ? `${count > 0 ? ',' : ''}${id}` : stream!.push(id));
      count++;
    }
    process.stdout.write(`${printIds ? '' : stream!.end()}\n`);
  } finally {
    pipeline.dispose();
  }
  log.info({ tokens: count }, 'done');
}
