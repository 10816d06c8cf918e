// The model the field serves: the bundled shards when they already hold the field's
// number of groups, otherwise the bundled model re-split into that many block groups in
// a folder the caller owns (and removes). With `source` (--model FILE: a GGUF file, any
// checkpoint or a shard folder) that model is split instead, keeping its encoding.
import { basename, join } from 'node:path';
import { bundledModelDir } from '../models/bundled.js';
import { openCheckpoint } from '../models/checkpoint.js';
import { readManifest, readShards, writeShards, type Manifest } from '../models/shards.js';

export interface FieldModel {
  /** Folder with manifest.json and the shard files. */
  dir: string;
  manifest: Manifest;
  /** Block range [from, to) of each group, in group order. */
  ranges: Array<{ from: number; to: number }>;
  /** True when the folder was written for this run. */
  split: boolean;
}

export function prepareModel(groups: number, scratchDir: string, source?: string): FieldModel {
  if (source !== undefined) {
    const checkpoint = openCheckpoint(source);
    const manifest = checkpoint.manifest;
    if (manifest && manifest.blocks.length === groups) {
      return { dir: checkpoint.path, manifest, ranges: manifest.blocks.map((b) => ({ from: b.from, to: b.to })), split: false };
    }
    const spec = manifest?.tokenizer;
    const dir = join(scratchDir, `${basename(checkpoint.path).replace(/\.(gguf|bin)$/, '')}-${groups}-groups`);
    const written = writeShards(checkpoint.config, checkpoint.read, {
      groups, outDir: dir, tokenizerMetadata: checkpoint.tokenizerMetadata,
      tokenizer: spec && spec.kind !== 'gguf' ? { kind: spec.kind, path: join(checkpoint.path, spec.file) } : undefined,
    });
    return { dir, manifest: written, ranges: written.blocks.map((b) => ({ from: b.from, to: b.to })), split: true };
  }
  const bundled = bundledModelDir();
  const manifest = readManifest(bundled);
  if (manifest.blocks.length === groups) {
    return { dir: bundled, manifest, ranges: manifest.blocks.map((b) => ({ from: b.from, to: b.to })), split: false };
  }
  // Throws with the allowed range when `groups` exceeds the model's layers.
  // The folder's name is the model's name on the wire and in the API (agents announce
  // their shard by it), so it says what this is.
  const dir = join(scratchDir, `bundled-${groups}-groups`);
  const tokenizer = manifest.tokenizer ? { kind: manifest.tokenizer.kind, path: join(bundled, manifest.tokenizer.file) } : undefined;
  const written = writeShards({ ...manifest.architecture }, (part) => readShards(bundled, part, manifest), {
    groups, outDir: dir, tokenizer,
  });
  return { dir, manifest: written, ranges: written.blocks.map((b) => ({ from: b.from, to: b.to })), split: true };
}
