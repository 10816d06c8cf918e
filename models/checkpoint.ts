// One entry point for every weight source we read: a llama2.c .bin file, a Hugging Face
// folder (config.json + safetensors), or one of our shard folders (manifest.json). Callers
// get the architecture up front and read parts on demand.
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FloatDtype } from './f16.js';
import { hfDtypes, readHfLlama } from './hf-llama.js';
import { readLlama2c, readLlama2cConfig, type ReadPart } from './llama2c.js';
import { MANIFEST_FILE, readManifest, readShards, type Manifest } from './shards.js';
import type { LlamaConfig, ModelWeights } from './types.js';

export interface Checkpoint {
  kind: 'llama2c' | 'hf' | 'shards';
  path: string;
  config: LlamaConfig;
  dtypes: FloatDtype[];
  /** Present for shard folders. */
  manifest?: Manifest;
  read(part?: ReadPart): ModelWeights;
}

export function openCheckpoint(path: string): Checkpoint {
  if (!existsSync(path)) throw new Error(`${path}: no such file or folder`);
  const asFolder = statSync(path).isDirectory() ? path : undefined;
  const manifestPath = asFolder ? join(asFolder, MANIFEST_FILE) : path.endsWith(MANIFEST_FILE) ? path : undefined;
  if (manifestPath && existsSync(manifestPath)) {
    const dir = dirname(manifestPath);
    const manifest = readManifest(dir);
    const dtypes = [...new Set([...manifest.blocks.map((b) => b.dtype), manifest.head.dtype])];
    return { kind: 'shards', path: dir, config: { ...manifest.architecture }, dtypes, manifest, read: (part) => readShards(dir, part, manifest) };
  }
  if (asFolder) {
    if (!existsSync(join(asFolder, 'config.json'))) {
      throw new Error(`${path}: a folder checkpoint needs ${MANIFEST_FILE} (our shards) or config.json with *.safetensors (Hugging Face)`);
    }
    // a zero-layer read opens only the headers, and settles a tied classifier from the files
    const config = readHfLlama(asFolder, { range: { from: 0, to: 0 }, head: false }).config;
    return { kind: 'hf', path, config, dtypes: hfDtypes(asFolder), read: (part) => readHfLlama(asFolder, part) };
  }
  return { kind: 'llama2c', path, config: readLlama2cConfig(path), dtypes: ['f32'], read: (part) => readLlama2c(path, part) };
}

/** Parameter count of a Llama model (the classifier counted once when shared). */
export function parameterCount(c: LlamaConfig): number {
  const kvDim = (c.nKvHeads * c.dim) / c.nHeads;
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kvDim * c.dim + 3 * c.dim * c.hiddenDim;
  return c.vocabSize * c.dim * (c.sharedClassifier ? 1 : 2) + c.dim + c.nLayers * perLayer;
}
