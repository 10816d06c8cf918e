// What `heliomesh model info|split|quantize` run; cli/model-files.ts registers them.
import cliProgress from 'cli-progress';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { openCheckpoint, parameterCount, type Checkpoint } from '../models/checkpoint.js';
import { writeGgufLlama } from '../models/gguf-llama-write.js';
import type { GgufMetadataEntry } from '../models/gguf-write.js';
import { splitRanges, writeShards, type Manifest } from '../models/shards.js';
import { detectTokenizerKind, loadTokenizer, Llama2cTokenizer, readTokenizer } from '../models/tokenizers/index.js';
import { matrixShape, MATRIX_KINDS, type LlamaConfig } from '../models/types.js';
import { matrixBytes, WEIGHT_TYPES, type WeightType } from '../models/weights.js';

const splitSchema = z.object({
  groups: z.coerce.number({ error: '--groups must be a number' }).int('--groups must be a whole number').min(1, '--groups must be at least 1'),
  out: z.string().min(1),
  dtype: z.enum(['keep', ...WEIGHT_TYPES] as ['keep', ...WeightType[]], { error: `--dtype must be keep or one of ${WEIGHT_TYPES.join(', ')}` }),
  tokenizer: z.string().optional(),
});

const quantizeSchema = z.object({
  type: z.enum(WEIGHT_TYPES as [WeightType, ...WeightType[]], { error: `--type must be one of ${WEIGHT_TYPES.join(', ')}` }),
  out: z.string().min(1).refine((f) => f.endsWith('.gguf'), '--out must name a .gguf file'),
  tokenizer: z.string().optional(),
  chatTemplate: z.string().optional(),
  name: z.string().optional(),
});

/** `model info`: a checkpoint's or shard folder's description. */
export function infoCommand(path: string): void {
  console.log(describe(openCheckpoint(path)).join('\n'));
}

/** `model split`: validates the options commander collected and cuts the checkpoint. */
export function splitCommand(path: string, raw: Record<string, unknown>): void {
  const parsed = splitSchema.safeParse(raw);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
  split(path, parsed.data);
}

/** `model quantize`: validates the options commander collected and writes the GGUF file. */
export function quantizeCommand(path: string, raw: Record<string, unknown>): void {
  const parsed = quantizeSchema.safeParse(raw);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
  quantize(path, parsed.data);
}

/**
 * GGUF tokenizer metadata (gguf.md "Tokenizer": a SentencePiece "llama" model) of a llama2.c
 * tokenizer.bin, or of our character vocabulary: one piece per character, ids as in
 * charvocab.json, no merges (every piece is one character) and no space prefix.
 */
function embeddedTokenizer(path: string): GgufMetadataEntry[] {
  const kind = detectTokenizerKind(path);
  if (kind === 'heliomesh-char') {
    const vocab = JSON.parse(readFileSync(path, 'utf8')) as { chars: string[] };
    const tokens = ['<unk>', '<s>', '</s>', ...vocab.chars.map((c) => (c === ' ' ? '\u2581' : c))];
    return [
      ['tokenizer.ggml.model', 'llama', 'string'],
      ['tokenizer.ggml.tokens', tokens, 'string'],
      ['tokenizer.ggml.scores', tokens.map(() => 0), 'f32'],
      // token types: 2 unknown, 3 control, 1 normal
      ['tokenizer.ggml.token_type', tokens.map((_, id) => (id === 0 ? 2 : id < 3 ? 3 : 1)), 'i32'],
      ['tokenizer.ggml.unknown_token_id', 0, 'u32'],
      ['tokenizer.ggml.bos_token_id', 1, 'u32'],
      ['tokenizer.ggml.eos_token_id', 2, 'u32'],
      ['tokenizer.ggml.add_space_prefix', false, 'bool'],
    ];
  }
  if (kind !== 'llama2c') throw new Error(`${path}: a ${kind} tokenizer cannot be embedded yet; give a llama2.c tokenizer.bin or charvocab.json`);
  const tok = readTokenizer(path, 'llama2c') as Llama2cTokenizer;
  // token types (gguf.md, tokenizer.ggml.token_type): 1 normal, 3 control, 6 byte
  const types = tok.pieces.map((p, id) => (id === tok.bos || id === tok.eos || p === '<unk>' ? 3 : /^<0x[0-9A-F]{2}>$/.test(p) ? 6 : 1));
  return [
    ['tokenizer.ggml.model', 'llama', 'string'],
    // llama2.c stores SentencePiece pieces with the space already turned back from U+2581
    ['tokenizer.ggml.tokens', tok.pieces.map((p) => p.replace(/ /g, '\u2581')), 'string'],
    ['tokenizer.ggml.scores', Array.from(tok.scores), 'f32'],
    ['tokenizer.ggml.token_type', types, 'i32'],
    ['tokenizer.ggml.bos_token_id', tok.bos, 'u32'],
    ['tokenizer.ggml.eos_token_id', tok.eos, 'u32'],
  ];
}

function quantize(path: string, opts: z.infer<typeof quantizeSchema>): void {
  const checkpoint = openCheckpoint(path);
  if (resolve(opts.out) === resolve(path)) throw new Error('--out must be a new file, not the checkpoint itself');
  if (!existsSync(dirname(resolve(opts.out)))) throw new Error(`${dirname(opts.out)}: no such folder for --out`);
  let tokenizerMetadata = opts.tokenizer ? embeddedTokenizer(opts.tokenizer) : checkpoint.tokenizerMetadata;
  if (opts.chatTemplate) {
    if (!tokenizerMetadata) throw new Error('--chat-template needs a tokenizer: give --tokenizer, or a GGUF source that has one');
    const template = readFileSync(opts.chatTemplate, 'utf8');
    tokenizerMetadata = [...tokenizerMetadata.filter(([k]) => k !== 'tokenizer.chat_template'), ['tokenizer.chat_template', template, 'string']];
  }
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar({ format: 'quantize [{bar}] {value}/{total} layers | {duration_formatted}', hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
    : undefined;
  const c = checkpoint.config;
  bar?.start(c.nLayers, 0);
  let result: ReturnType<typeof writeGgufLlama>;
  try {
    const head = checkpoint.read({ range: { from: 0, to: 0 }, head: true }).head!;
    const layers = [];
    for (let l = 0; l < c.nLayers; l++) {
      layers.push(checkpoint.read({ range: { from: l, to: l + 1 }, head: false }).layers[0]!);
      bar?.update(l + 1);
    }
    const tmp = `${opts.out}.partial`;
    result = writeGgufLlama(tmp, { config: c, head, range: { from: 0, to: c.nLayers }, layers }, { type: opts.type, name: opts.name, tokenizerMetadata });
    renameSync(tmp, opts.out);
  } finally {
    bar?.stop();
  }
  console.log(`wrote ${opts.out} (${formatBytes(result.bytes)}, ${opts.type}, sha256 ${result.sha256.slice(0, 16)}…)` +
    (tokenizerMetadata ? ', with its tokenizer' : ', no tokenizer (drive it by token ids)'));
  if (result.f16Fallbacks.length > 0) {
    console.log(`  ${result.f16Fallbacks.length} matrices kept as f16: their rows are not whole ${opts.type} blocks of 32 (${result.f16Fallbacks.slice(0, 3).join(', ')}${result.f16Fallbacks.length > 3 ? ', …' : ''})`);
  }
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
      groups: opts.groups, outDir: opts.out, dtype: opts.dtype, tokenizer, tokenizerMetadata: checkpoint.tokenizerMetadata,
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

/** Bytes of one layer's matrices in `type` (rows that are not whole blocks count as f16, as the writer stores them). */
function layerBytes(c: LlamaConfig, type: WeightType): number {
  return MATRIX_KINDS.reduce((sum, k) => {
    const [rows, cols] = matrixShape(c, k);
    return sum + matrixBytes(cols % 32 === 0 || type === 'f32' ? type : 'f16', rows, cols);
  }, 0) + 2 * c.dim * 4;
}

/** The lines `model info` prints. */
export function describe(checkpoint: Checkpoint): string[] {
  const c = checkpoint.config;
  const params = parameterCount(c);
  const kindName = { gguf: 'GGUF file', llama2c: 'llama2.c checkpoint', hf: 'Hugging Face safetensors folder', shards: 'heliomesh shard folder' }[checkpoint.kind];
  const lines = [
    `${checkpoint.path}: ${kindName}`,
    `architecture: ${c.architecture ?? 'llama'}, dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads, ${c.nKvHeads} KV heads ` +
      `(head size ${c.dim / c.nHeads}), vocab ${c.vocabSize}, seq_len ${c.seqLen}`,
    `  classifier ${c.sharedClassifier ? 'shared with the token embedding' : 'separate'}, RMSNorm eps ${c.normEps}, RoPE theta ${c.ropeTheta}` +
      `${c.ropeFreqFactors ? ', llama3 rope scaling' : ''}`,
    `parameters: ${formatCount(params)} (${params})`,
    `tensor types: ${checkpoint.dtypes.join(', ')}`,
  ];
  if (checkpoint.storedBytes) {
    lines.push('bytes per stage, as stored (matrices of a K-quant type load as Q8_0):');
    for (const groups of [1, 3].filter((g) => g <= c.nLayers)) {
      const per = splitRanges(c.nLayers, groups).map((r) => checkpoint.storedBytes!.layers.slice(r.from, r.to).reduce((a, b) => a + b, 0));
      lines.push(`  ${groups} group(s): ${per.map(formatBytes).join(' + ')}, head ${formatBytes(checkpoint.storedBytes.head)}`);
    }
  } else {
    lines.push(`bytes per layer in f32: ${formatBytes(layerBytes(c, 'f32'))}, f16 ${formatBytes(layerBytes(c, 'f16'))}, ` +
      `q8_0 ${formatBytes(layerBytes(c, 'q8_0'))}, q4_0 ${formatBytes(layerBytes(c, 'q4_0'))}`);
  }
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
    if (checkpoint.tokenizerMetadata?.length) {
      const model = checkpoint.tokenizerMetadata.find(([k]) => k === 'tokenizer.ggml.model')?.[1];
      const template = checkpoint.tokenizerMetadata.some(([k]) => k === 'tokenizer.chat_template');
      lines.push(`tokenizer: in the file (tokenizer.ggml.model ${String(model)}), ${template ? 'with' : 'without'} a chat template`);
    } else {
      lines.push('tokenizer: not part of this checkpoint; pass one to `heliomesh model split --tokenizer`');
    }
  }
  return lines;
}
