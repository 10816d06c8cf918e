// Our shard format: a folder with manifest.json, one file per block range and one for the
// head part (token embedding, final norm, classifier). An agent reads only the file of its
// own range; the gateway reads only the head file. Every file's sha256 is in the manifest
// and is checked on load, so a corrupt copy is refused instead of producing fluent garbage.
//
// Shard files are GGUF (gguf-llama.ts writeGgufPart): llama.cpp's tensor names with the
// model's own block indices, the whole model's metadata plus heliomesh.block_range, and the
// matrices in the encoding the source had (a Q4_0 GGUF gives Q4_0 shards) or the one asked
// for. The head file also carries the source's tokenizer.* metadata and chat template.
// Folders written before GGUF shards hold safetensors files with our own tensor names
// ("layers.3.wq", f32 or f16); they still load.
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import type { ReadPart } from './llama2c.js';
import { readGgufLlama } from './gguf-llama.js';
import { writeGgufPart } from './gguf-llama-write.js';
import type { GgufMetadataEntry } from './gguf-write.js';
import { SafetensorsFile } from './safetensors.js';
import { MATRIX_KINDS, matrixShape, type BlockRange, type HeadWeights, type LayerWeights, type LlamaConfig, type MatrixKind, type ModelWeights } from './types.js';
import type { MatrixAllocator, WeightMatrix, WeightType } from './weights.js';

export const MANIFEST_FILE = 'manifest.json';
export const SHARD_FORMAT = 'heliomesh-shards';

/** 'gguf': the tokenizer.* metadata of a GGUF shard file (the head file). */
const tokenizerKind = z.enum(['heliomesh-char', 'llama2c', 'hf', 'gguf']);
export type TokenizerKind = z.infer<typeof tokenizerKind>;
const tokenizerSpec = z.object({ kind: tokenizerKind, file: z.string().min(1) });
export type TokenizerSpec = z.infer<typeof tokenizerSpec>;

const fileEntry = z.object({
  file: z.string().min(1).refine((f) => basename(f) === f, 'shard files live next to the manifest'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
  /** The encoding of the file's matrices; 'mixed' when they differ (a Q4_0 file's Q8_0 classifier, say). */
  dtype: z.enum(['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'mixed']),
});
const blockEntry = fileEntry.extend({ from: z.number().int().nonnegative(), to: z.number().int().positive() });
export type ShardEntry = z.infer<typeof blockEntry>;
export type HeadEntry = z.infer<typeof fileEntry>;

const posInt = z.number().int().positive();
const manifestSchema = z.object({
  format: z.literal(SHARD_FORMAT),
  /** 1: safetensors shards; 2: GGUF shards. */
  version: z.union([z.literal(1), z.literal(2)]),
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

export interface SplitOptions {
  groups: number;
  outDir: string;
  /** Encoding of the shards' matrices; 'keep' (default) keeps each as the source stores it. */
  dtype?: WeightType | 'keep';
  /** A tokenizer file to copy next to the manifest, with its kind. */
  tokenizer?: { kind: TokenizerKind; path: string };
  /** tokenizer.* metadata (and the chat template) to put in the head file: a GGUF source's own. */
  tokenizerMetadata?: GgufMetadataEntry[];
  /** Called after each layer and after the head part: done and total units of work. */
  onProgress?: (done: number, total: number) => void;
}

/** The single encoding of a part's matrices, or 'mixed'. */
function dtypeOf(matrices: WeightMatrix[]): WeightType | 'mixed' {
  const types = new Set(matrices.map((m) => m.type));
  return types.size === 1 ? [...types][0]! : 'mixed';
}

/**
 * Writes the shards of a model read part by part through `read` (one block range at a
 * time, so a large checkpoint is never wholly in memory), then the manifest. Returns the
 * manifest written.
 */
export function writeShards(config: LlamaConfig, read: (part: ReadPart) => ModelWeights, opts: SplitOptions): Manifest {
  const ranges = splitRanges(config.nLayers, opts.groups);
  mkdirSync(opts.outDir, { recursive: true });
  const total = config.nLayers + 1;
  let done = 0;
  const width = String(config.nLayers).length;
  const pad = (n: number) => String(n).padStart(width, '0');
  const wanted = opts.dtype ?? 'keep';
  const blocks: ShardEntry[] = ranges.map(({ from, to }) => {
    const layers: LayerWeights[] = [];
    for (let l = from; l < to; l++) {
      layers.push(read({ range: { from: l, to: l + 1 }, head: false }).layers[0]!);
      opts.onProgress?.(++done, total);
    }
    const part: ModelWeights = { config, range: { from, to }, layers };
    const file = `blocks-${pad(from)}-${pad(to)}.gguf`;
    const written = writeGgufPart(join(opts.outDir, file), part, { type: wanted, range: { from, to }, head: false });
    const dtype = wanted === 'keep' ? dtypeOf(part.layers.flatMap((l) => MATRIX_KINDS.map((k) => l[k]))) : wanted;
    return { from, to, file, dtype, sha256: written.sha256, bytes: written.bytes };
  });
  const headPart = read({ range: { from: 0, to: 0 }, head: true });
  const head = headPart.head!;
  const headFile = 'head.gguf';
  const writtenHead = writeGgufPart(join(opts.outDir, headFile), headPart, {
    type: wanted, range: { from: 0, to: 0 }, head: true, tokenizerMetadata: opts.tokenizerMetadata,
  });
  const headEntry: HeadEntry = {
    file: headFile, sha256: writtenHead.sha256, bytes: writtenHead.bytes,
    dtype: wanted === 'keep' ? dtypeOf([head.tokenEmbedding, head.classifier]) : wanted,
  };
  opts.onProgress?.(++done, total);
  let tokenizer: TokenizerSpec | null = null;
  if (opts.tokenizer) {
    const file = basename(opts.tokenizer.path);
    if (file === MANIFEST_FILE || /\.(gguf|safetensors)$/.test(file)) throw new Error(`tokenizer file name '${file}' clashes with the shard files; rename it`);
    copyFileSync(opts.tokenizer.path, join(opts.outDir, file));
    tokenizer = { kind: opts.tokenizer.kind, file };
  } else if (opts.tokenizerMetadata?.some(([key]) => key === 'tokenizer.ggml.model')) {
    tokenizer = { kind: 'gguf', file: headFile };
  }
  const manifest: Manifest = { format: SHARD_FORMAT, version: 2, architecture: { ...config }, tokenizer, blocks, head: headEntry };
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

/** sha256 and size of a file, read in chunks (a shard can be a large part of a Pi's memory). */
function hashFile(path: string): { sha256: string; bytes: number } {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  const chunk = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  try {
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, bytes)) > 0; bytes += n) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Checks one shard file's size and sha256 against the manifest; returns its path. */
export function verifyShard(dir: string, entry: HeadEntry): string {
  const path = join(dir, entry.file);
  if (!existsSync(path)) throw new Error(`${path}: shard file listed in ${MANIFEST_FILE} is missing; copy the whole shard folder`);
  const actual = hashFile(path);
  if (actual.sha256 !== entry.sha256 || actual.bytes !== entry.bytes) {
    throw new Error(`${path}: sha256 mismatch: ${MANIFEST_FILE} says ${entry.sha256} (${entry.bytes} bytes), ` +
      `the file hashes to ${actual.sha256} (${actual.bytes} bytes); the shard is corrupt or from another split — ` +
      "copy it again or re-run 'heliomesh model split'");
  }
  return path;
}

/** Reads one safetensors shard file (version 1 folders), refusing it unless its size and sha256 match. */
export function readVerified(dir: string, entry: HeadEntry): SafetensorsFile {
  const path = verifyShard(dir, entry);
  return new SafetensorsFile(path, readFileSync(path));
}

const isGguf = (entry: HeadEntry) => entry.file.endsWith('.gguf');

/**
 * Loads the requested part (default: everything) of a shard folder. Only the shard files
 * overlapping `part.range` are read, and the head file only when `part.head` is not false.
 */
export function readShards(dir: string, part: ReadPart = {}, manifest: Manifest = readManifest(dir), allocate?: MatrixAllocator): ModelWeights {
  const config: LlamaConfig = { ...manifest.architecture };
  const range = part.range ?? { from: 0, to: config.nLayers };
  if (range.from < 0 || range.from > range.to || range.to > config.nLayers) {
    throw new Error(`block range [${range.from}, ${range.to}) is outside the model's ${config.nLayers} layers`);
  }
  const layers: LayerWeights[] = [];
  for (const entry of manifest.blocks) {
    if (entry.to <= range.from || entry.from >= range.to) continue;
    if (isGguf(entry)) {
      const part = { from: Math.max(entry.from, range.from), to: Math.min(entry.to, range.to) };
      layers.push(...readGgufLlama(verifyShard(dir, entry), { range: part, head: false, allocate }).layers);
      continue;
    }
    const shard = readVerified(dir, entry);
    for (let l = Math.max(entry.from, range.from); l < Math.min(entry.to, range.to); l++) {
      const norm = (kind: 'attnNorm' | 'ffnNorm') => shard.read(`layers.${l}.${kind}`, [config.dim]);
      const matrix = (kind: MatrixKind) => shard.readMatrix(`layers.${l}.${kind}`, ...matrixShape(config, kind));
      layers.push({
        attnNorm: norm('attnNorm'), ffnNorm: norm('ffnNorm'),
        ...Object.fromEntries(MATRIX_KINDS.map((k) => [k, matrix(k)])) as Record<MatrixKind, WeightMatrix>,
      });
    }
  }
  let head: HeadWeights | undefined;
  if ((part.head ?? true) && isGguf(manifest.head)) {
    head = readGgufLlama(verifyShard(dir, manifest.head), { range: { from: 0, to: 0 }, head: true, allocate }).head;
  } else if (part.head ?? true) {
    const shard = readVerified(dir, manifest.head);
    const tokenEmbedding = shard.readMatrix('tokenEmbedding', config.vocabSize, config.dim);
    head = {
      tokenEmbedding,
      finalNorm: shard.read('finalNorm', [config.dim]),
      classifier: config.sharedClassifier ? tokenEmbedding : shard.readMatrix('classifier', config.vocabSize, config.dim),
    };
  }
  return { config, head, range, layers };
}
