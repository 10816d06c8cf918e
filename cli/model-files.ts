// `heliomesh model info`, `heliomesh model split` and `heliomesh model quantize`: inspect a
// checkpoint or shard folder, cut a checkpoint into the shard folder agents and the gateway
// load from, and write a checkpoint as one GGUF file in the encoding asked for.
// Their work lives in cli/model-files-run.ts, imported when one of them runs.
import type { Command } from 'commander';
import { WEIGHT_TYPES } from '../models/weights.js';

export function registerModelFiles(model: Command): void {
  model
    .command('info')
    .description('print a checkpoint\'s or shard folder\'s architecture, parameter count, ranges, dtype and tokenizer')
    .argument('<path>', 'llama2.c .bin, Hugging Face folder (config.json + safetensors), shard folder or its manifest.json')
    .action(async (path: string) => {
      await (await import('./model-files-run.js')).infoCommand(path);
    });

  model
    .command('split')
    .description('cut a checkpoint into G contiguous block ranges plus the head part, with a manifest')
    .argument('<checkpoint>', 'llama2.c .bin, Hugging Face folder (config.json + safetensors) or a shard folder to re-split')
    .requiredOption('--groups <g>', 'number of block ranges (pipeline groups)')
    .requiredOption('--out <dir>', 'folder for manifest.json and the shard files')
    .option('--dtype <dtype>', `encoding of the shards' matrices: keep (as the source stores them), ${WEIGHT_TYPES.join(', ')}`, 'keep')
    .option('--tokenizer <file>', 'tokenizer to ship with the shards: charvocab.json, tokenizer.bin or tokenizer.json')
    .action(async (path: string, raw: Record<string, unknown>) => {
      await (await import('./model-files-run.js')).splitCommand(path, raw);
    });

  model
    .command('quantize')
    .description('write a checkpoint as one GGUF file with its matrices in f32, f16, bf16, q8_0 or q4_0')
    .argument('<checkpoint>', 'GGUF file, llama2.c .bin, Hugging Face folder or shard folder')
    .requiredOption('--type <type>', `encoding of the matrices: ${WEIGHT_TYPES.join(', ')}`)
    .requiredOption('--out <file.gguf>', 'the GGUF file to write')
    .option('--tokenizer <file>', 'a llama2.c tokenizer.bin or charvocab.json to embed as GGUF tokenizer metadata (a GGUF source keeps its own)')
    .option('--chat-template <file>', 'a Jinja chat template to embed as tokenizer.chat_template')
    .option('--name <name>', 'general.name of the model')
    .action(async (path: string, raw: Record<string, unknown>) => {
      await (await import('./model-files-run.js')).quantizeCommand(path, raw);
    });
}
