// `heliomesh model`: the command group for models. `generate` is registered here and runs
// from cli/model-generate.ts, imported when it runs; `info`, `split` and `quantize` are added
// by cli/model-files.ts.
import { Command } from 'commander';
import { BACKEND_ENV, BACKEND_NAMES } from '../models/backend-names.js';
import { registerModelFiles } from './model-files.js';

export function registerModel(program: Command): void {
  const model = program.command('model').description('run, inspect and split Llama-family models');
  model
    .command('generate')
    .description('generate text (or token ids) with a model, optionally through G in-process pipeline stages')
    .option('--model <path>', 'GGUF file, llama2.c checkpoint (.bin), Hugging Face folder, shard folder or its manifest.json (default: the bundled model)')
    .option('--prompt <text>', 'prompt text (needs a model with a tokenizer)')
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids, e.g. 1,415,29')
    .option('--max-tokens <n>', 'new tokens to generate at most', '256')
    .option('--temperature <t>', 'sampling temperature; 0 = always the most likely token', '1')
    .option('--top-p <p>', 'nucleus sampling: keep the most likely tokens up to this probability mass', '0.9')
    .option('--seed <s>', 'PRNG seed (default: from the clock, and logged)')
    .option('--groups <g>', 'pipeline stages, each holding a contiguous layer range', '1')
    .option('--ids', 'print generated token ids, comma-separated, instead of text')
    .option('--threads <n>', 'threads of each stage\'s matmul kernel (default: every core)')
    .option('--backend <name>', `TF.js backend: auto, ${BACKEND_NAMES.join(', ')} (env ${BACKEND_ENV})`)
    .action(async (raw: Record<string, unknown>) => {
      await (await import('./model-generate.js')).generateCommand(raw);
    });
  registerModelFiles(model);
}
