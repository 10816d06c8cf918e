// Our shard format: a folder with manifest.json, one safetensors file per block range and
// one for the head part (token embedding, final norm, classifier). An agent reads only the
// file of its own range; the gateway reads only the head file. Every file's sha256 is in
// the manifest and is checked on load, so a corrupt copy is refused instead of producing
// fluent garbage.
//
// Tensor names inside a shard are our own and carry absolute layer indices
// ("layers.3.wq"); values follow types.ts (interleaved RoPE, row-major [out][in]).
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import type { ReadPart } from './llama2c.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from './safetensors.js';
import type { BlockRange, HeadWeights, LayerWeights, LlamaConfig, ModelWeights } from './types.js';

export const MANIFEST_FILE = 'manifest.json';
export const SHARD_FORMAT = 'heliomesh-shards';

const tokenizerKind = z.enum(['heliomesh-char', 'llama2c', 'hf']);
export type TokenizerKind = z.infer<typeof tokenizerKind>;
const tokenizerSpec = z.object({ kind: tokenizerKind, file: z.string().min(1) });
export type TokenizerSpec = z.infer<typeof tokenizerSpec>;

const fileEntry = z.object({
  file: z.string().min(1).refine((f) => basename(f) === f, 'shard files live next to the manifest'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
  dtype: z.enum(['f32', 'f16']),
});
const blockEntry = fileEntry.extend({ from: z.number().int().nonnegative(), to: z.number().int().positive() });
export type ShardEntry = z.infer<typeof blockEntry>;
export type HeadEntry = z.infer<typeof fileEntry>;

const posInt = z.number().int().positive();
const manifestSchema = z.object({
  format: z.literal(SHARD_FORMAT),
  version: z.literal(1),
  architecture: z.object({
    dim: posInt, hiddenDim: posInt, nLayers: posInt, nHeads: posInt, nKvHeads: posInt, vocabSize: posInt,
    seqLen: posInt, sharedClassifier: z.boolean(), normEps: z.number().positive(), ropeTheta: z.number().positive(),
  }),
  tokenizer: tokenizerSpec.nullable(),
  blocks: z.array(blockEntry).min(1),
  head: fileEntry,
});
export type Manifest = z.infer<typeof manifestSchema>;

/** Cuts nLayers into `groups` contiguous ranges whose sizes differ by at most one. */
export function splitRanges(nLayers: number, groups: number): BlockRange[] {
  if (!Number.isInteger(groups) || groups < 1 || groups > nLayers) {
    throw new Error(`cannot cut ${nLayers} layers into ${groups} groups; choose between 1 and ${nLayers}`);
  }
  const base = Math.floor(nLayers / groups);
  const extra = nLayers % groups;
  const ranges: BlockRange[] = [];
  let from = 0;
  for (let g = 0; g < groups; g++) {
    const to = from + base + (g < extra ? 1 : 0);
    ranges.push({ from, to });
    from = to;
  }
  return ranges;
}

const LAYER_KINDS: (keyof LayerWeights)[] = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'];

function layerShapes(c: LlamaConfig): Record<keyof LayerWeights, number[]> {
  const kvDim = (c.nKvHeads * c.dim) / c.nHeads;
  return {
    attnNorm: [c.dim], wq: [c.dim, c.dim], wk: [kvDim, c.dim], wv: [kvDim, c.dim], wo: [c.dim, c.dim],
    ffnNorm: [c.dim], w1: [c.hiddenDim, c.dim], w2: [c.dim, c.hiddenDim], w3: [c.hiddenDim, c.dim],
  };
}

function writeHashed(path: string, tensors: TensorToWrite[], dtype: 'f32' | 'f16', meta: Record<string, string>): { sha256: string; bytes: number } {
  const chunks = writeSafetensors(path, tensors, dtype, meta);
  const hash = createHash('sha256');
  let bytes = 0;
  for (const c of chunks) {
    hash.update(c);
    bytes += c.byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export interface SplitOptions {
  groups: number;
  outDir: string;
  dtype: 'f32' | 'f16';
  /** A tokenizer file to copy next to the manifest, with its kind. */
  tokenizer?: { kind: TokenizerKind; path: string };
  /** Called after each layer and after the head part: done and total units of work. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes the shards of a model read part by part through `read` (so a large checkpoint is
 * never wholly in memory), then the manifest. Returns the manifest written.
 */
export function writeShards(config: LlamaConfig, read: (part: ReadPart) => ModelWeights, opts: SplitOptions): Manifest {
  const ranges = splitRanges(config.nLayers, opts.groups);
  mkdirSync(opts.outDir, { recursive: true });
  const total = config.nLayers + 1;
  let done = 0;
  const shapes = layerShapes(config);
  const width = String(config.nLayers).length;
  const pad = (n: number) => String(n).padStart(width, '0');
  const blocks: ShardEntry[] = ranges.map(({ from, to }) => {
    const tensors: TensorToWrite[] = [];
    for (let l = from; l < to; l++) {
      const layer = read({ range: { from: l, to: l + 1 }, head: false }).layers[0]!;
      for (const kind of LAYER_KINDS) tensors.push({ name: `layers.${l}.${kind}`, shape: shapes[kind], data: layer[kind] });
      opts.onProgress?.(++done, total);
    }
    const file = `blocks-${pad(from)}-${pad(to)}.safetensors`;
    const written = writeHashed(join(opts.outDir, file), tensors, opts.dtype, { format: SHARD_FORMAT, from: String(from), to: String(to) });
    return { from, to, file, dtype: opts.dtype, ...written };
  });
  const head = read({ range: { from: 0, to: 0 }, head: true }).head!;
  const headTensors: TensorToWrite[] = [
    { name: 'tokenEmbedding', shape: [config.vocabSize, config.dim], data: head.tokenEmbedding },
    { name: 'finalNorm', shape: [config.dim], data: head.finalNorm },
  ];
  if (!config.sharedClassifier) headTensors.push({ name: 'classifier', shape: [config.vocabSize, config.dim], data: head.classifier });
  const headFile = 'head.safetensors';
  const headEntry: HeadEntry = { file: headFile, dtype: opts.dtype, ...writeHashed(join(opts.outDir, headFile), headTensors, opts.dtype, { format: SHARD_FORMAT }) };
  opts.onProgress?.(++done, total);
  let tokenizer: TokenizerSpec | null = null;
  if (opts.tokenizer) {
    const file = basename(opts.tokenizer.path);
    if (file === MANIFEST_FILE || /\.safetensors$/.test(file)) throw new Error(`tokenizer file name '${file}' clashes with the shard files; rename it`);
    copyFileSync(opts.tokenizer.path, join(opts.outDir, file));
    tokenizer = { kind: opts.tokenizer.kind, file };
  }
  const manifest: Manifest = { format: SHARD_FORMAT, version: 1, architecture: { ...config }, tokenizer, blocks, head: headEntry };
  writeFileSync(join(opts.outDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** Reads and validates `dir/manifest.json`. */
export function readManifest(dir: string): Manifest {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) throw new Error(`${dir}: no ${MANIFEST_FILE}; point at a folder written by 'heliomesh model split'`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`${path}: not a shard manifest: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const m = parsed.data;
  let next = 0;
  for (const b of m.blocks) {
    if (b.from !== next || b.to <= b.from) throw new Error(`${path}: block ranges must be contiguous from 0; found [${b.from}, ${b.to}) after layer ${next}`);
    next = b.to;
  }
  if (next !== m.architecture.nLayers) throw new Error(`${path}: block ranges end at ${next} but the model has ${m.architecture.nLayers} layers`);
  return m;
}

/** Reads one shard file, refusing it unless its size and sha256 match the manifest. */
export function readVerified(dir: string, entry: HeadEntry): SafetensorsFile {
  const path = join(dir, entry.file);
  if (!existsSync(path)) throw new Error(`${path}: shard file listed in ${MANIFEST_FILE} is missing; copy the whole shard folder`);
  const bytes = readFileSync(path);
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== entry.sha256 || bytes.byteLength !== entry.bytes) {
    throw new Error(`${path}: sha256 mismatch: ${MANIFEST_FILE} says ${entry.sha256} (${entry.bytes} bytes), ` +
      `the file hashes to ${actual} (${bytes.byteLength} bytes); the shard is corrupt or from another split — ` +
      "copy it again or re-run 'heliomesh model split'");
  }
  return new SafetensorsFile(path, bytes);
}

/**
 * Loads the requested part (default: everything) of a shard folder. Only the shard files
 * overlapping `part.range` are read, and the head file only when `part.head` is not false.
 */
export function readShards(dir: string, part: ReadPart = {}, manifest: Manifest = readManifest(dir)): ModelWeights {
  const config: LlamaConfig = { ...manifest.architecture };
  const range = part.range ?? { from: 0, to: config.nLayers };
  if (range.from < 0 || range.from > range.to || range.to > config.nLayers) {
    throw new Error(`block range [${range.from}, ${range.to}) is outside the model's ${config.nLayers} layers`);
  }
  const shapes = layerShapes(config);
  const layers: LayerWeights[] = [];
  for (const entry of manifest.blocks) {
    if (entry.to <= range.from || entry.from >= range.to) continue;
    const shard = readVerified(dir, entry);
    for (let l = Math.max(entry.from, range.from); l < Math.min(entry.to, range.to); l++) {
      const layer = {} as LayerWeights;
      for (const kind of LAYER_KINDS) layer[kind] = shard.read(`layers.${l}.${kind}`, shapes[kind]);
      layers.push(layer);
    }
  }
  let head: HeadWeights | undefined;
  if (part.head ?? true) {
    const shard = readVerified(dir, manifest.head);
    const tokenEmbedding = shard.read('tokenEmbedding', [config.vocabSize, config.dim]);
    head = {
      tokenEmbedding,
      finalNorm: shard.read('finalNorm', [config.dim]),
      classifier: config.sharedClassifier ? tokenEmbedding : shard.read('classifier', [config.vocabSize, config.dim]),
    };
  }
  return { config, head, range, layers };
}
