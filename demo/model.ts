// The model the field serves: the bundled shards when they already hold the field's
// number of groups, otherwise the bundled model re-split into that many block groups in
// a folder the caller owns (and removes).
import { join } from 'node:path';
import { bundledModelDir } from '../models/bundled.js';
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

export function prepareModel(groups: number, scratchDir: string): FieldModel {
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
    groups, outDir: dir, dtype: manifest.head.dtype, tokenizer,
  });
  return { dir, manifest: written, ranges: written.blocks.map((b) => ({ from: b.from, to: b.to })), split: true };
}
