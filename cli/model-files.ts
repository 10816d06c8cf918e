// `heliomesh model info` and `heliomesh model split`: inspect a checkpoint or shard folder,
// and cut a checkpoint into the shard folder agents and the gateway load from.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { z } from 'zod';
import { openCheckpoint, parameterCount, type Checkpoint } from '../models/checkpoint.js';
import { splitRanges, writeShards, type Manifest } from '../models/shards.js';
import { detectTokenizerKind, loadTokenizer } from '../models/tokenizers/index.js';

const splitSchema = z.object({
  groups: z.coerce.number({ error: '--groups must be a number' }).int('--groups must be a whole number').min(1, '--groups must be at least 1'),
  out: z.string().min(1),
  dtype: z.enum(['f16', 'f32'], { error: "--dtype must be 'f16' or 'f32'" }),
  tokenizer: z.string().optional(),
});

export function registerModelFiles(model: Command): void {
  model
    .command('info')
    .description('print a checkpoint\'s or shard folder\'s architecture, parameter count, ranges, dtype and tokenizer')
    .argument('<path>', 'llama2.c .bin, Hugging Face folder (config.json + safetensors), shard folder or its manifest.json')
    .action((path: string) => {
      console.log(describe(openCheckpoint(path)).join('\n'));
    });

  model
    .command('split')
    .description('cut a checkpoint into G contiguous block ranges plus the head part, with a manifest')
    .argument('<checkpoint>', 'llama2.c .bin, Hugging Face folder (config.json + safetensors) or a shard folder to re-split')
    .requiredOption('--groups <g>', 'number of block ranges (pipeline groups)')
    .requiredOption('--out <dir>', 'folder for manifest.json and the shard files')
    .option('--dtype <dtype>', 'storage type of the shards: f16 or f32', 'f16')
    .option('--tokenizer <file>', 'tokenizer to ship with the shards: charvocab.json, tokenizer.bin or tokenizer.json')
    .action((path: string, raw: Record<string, unknown>) => {
      const parsed = splitSchema.safeParse(raw);
      if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
      split(path, parsed.data);
    });
}

function split(path: string, opts: z.infer<typeof splitSchema>): void {
  const checkpoint = openCheckpoint(path);
  if (existsSync(opts.out) && readdirSync(opts.out).length > 0) {
    throw new Error(`${opts.out} is not empty; choose a new folder for the shards (existing files would be mixed with the new split)`);
  }
  const tokenizer = opts.tokenizer ? { kind: detectTokenizerKind(opts.tokenizer), path: opts.tokenizer } : undefined;
  splitRanges(checkpoint.config.nLayers, opts.groups); // refuses a bad --groups before the progress bar starts
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: 'split [{bar}] {percentage}% | {value}/{total} parts | {duration_formatted}', hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
    : undefined;
  bar?.start(checkpoint.config.nLayers + 1, 0);
  let manifest: Manifest;
  try {
    manifest = writeShards(checkpoint.config, checkpoint.read, {
      groups: opts.groups, outDir: opts.out, dtype: opts.dtype, tokenizer,
      onProgress: (done) => bar?.update(done),
    });
  } finally {
    bar?.stop();
  }
  if (manifest.tokenizer) {
    // Prove the copied tokenizer loads, and that its ids fit the model.
    const tok = loadTokenizer(opts.out, manifest.tokenizer);
    if (tok.vocabSize > checkpoint.config.vocabSize) {
      console.warn(`warning: the tokenizer has ${tok.vocabSize} ids but the model only ${checkpoint.config.vocabSize}`);
    }
  }
  const total = [...manifest.blocks, manifest.head].reduce((s, e) => s + e.bytes, 0);
  console.log(`wrote ${manifest.blocks.length} block shard(s) + head to ${opts.out} (${formatBytes(total)}, ${opts.dtype})`);
  for (const b of manifest.blocks) console.log(`  layers [${b.from}, ${b.to})  ${b.file}  ${formatBytes(b.bytes)}`);
  console.log(`  head            ${manifest.head.file}  ${formatBytes(manifest.head.bytes)}`);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** The lines `model info` prints. */
export function describe(checkpoint: Checkpoint): string[] {
  const c = checkpoint.config;
  const params = parameterCount(c);
  const kindName = { llama2c: 'llama2.c checkpoint', hf: 'Hugging Face safetensors folder', shards: 'heliomesh shard folder' }[checkpoint.kind];
  const lines = [
    `${checkpoint.path}: ${kindName}`,
    `architecture: Llama, dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads, ${c.nKvHeads} KV heads ` +
      `(head size ${c.dim / c.nHeads}), vocab ${c.vocabSize}, seq_len ${c.seqLen}`,
    `  classifier ${c.sharedClassifier ? 'shared with the token embedding' : 'separate'}, RMSNorm eps ${c.normEps}, RoPE theta ${c.ropeTheta}`,
    `parameters: ${formatCount(params)} (${params})`,
    `dtype: ${checkpoint.dtypes.join(', ')}`,
  ];
  const m = checkpoint.manifest;
  if (m) {
    lines.push('ranges:');
    for (const b of m.blocks) lines.push(`  layers [${b.from}, ${b.to})  ${b.file}  ${formatBytes(b.bytes)}  ${b.dtype}  sha256 ${b.sha256.slice(0, 16)}…`);
    lines.push(`  head            ${m.head.file}  ${formatBytes(m.head.bytes)}  ${m.head.dtype}  sha256 ${m.head.sha256.slice(0, 16)}…`);
    if (m.tokenizer) {
      const tok = loadTokenizer(checkpoint.path, m.tokenizer);
      lines.push(`tokenizer: ${m.tokenizer.kind} (${m.tokenizer.file}), ${tok.vocabSize} ids, BOS ${tok.bos}, EOS ${tok.eos}`);
    } else {
      lines.push('tokenizer: none (drive the model by token ids)');
    }
  } else {
    lines.push(`ranges: one file, layers [0, ${c.nLayers}) and the head`);
    lines.push('tokenizer: not part of a checkpoint; pass one to `heliomesh model split --tokenizer`');
  }
  return lines;
}
