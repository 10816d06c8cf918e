// One entry point for every weight source we read: a GGUF file, a llama2.c .bin file, a
// Hugging Face folder (config.json + safetensors), or one of our shard folders
// (manifest.json). Callers get the architecture up front and read parts on demand.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GgufFile, GgufValueType, type GgufValue } from './gguf.js';
import { readGgufConfig, readGgufLlama } from './gguf-llama.js';
import type { GgufMetadataEntry, GgufScalarType } from './gguf-write.js';
import type { MatrixAllocator } from './weights.js';
import { hfDtypes, readHfLlama } from './hf-llama.js';
import { readLlama2c, readLlama2cConfig, type ReadPart } from './llama2c.js';
import { MANIFEST_FILE, readManifest, readShards, type Manifest } from './shards.js';
import type { LlamaConfig, ModelWeights } from './types.js';

export interface Checkpoint {
  kind: 'gguf' | 'llama2c' | 'hf' | 'shards';
  path: string;
  config: LlamaConfig;
  /** The encodings of its tensors, as the source names them (GGUF: Q4_0, Q6_K, F32, ...). */
  dtypes: string[];
  /** Present for shard folders. */
  manifest?: Manifest;
  /** A GGUF file's tokenizer.* metadata (with the chat template), to carry into shards. */
  tokenizerMetadata?: GgufMetadataEntry[];
  /** A GGUF file's matrix bytes per layer and of the head part, as stored. */
  storedBytes?: { layers: number[]; head: number };
  /** With `allocate`, GGUF matrices are read straight into that memory (a kernel's). */
  read(part?: ReadPart, allocate?: MatrixAllocator): ModelWeights;
}

const GGUF_MAGIC = Buffer.from('GGUF', 'latin1');

function isGgufFile(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.equals(GGUF_MAGIC);
  } finally {
    closeSync(fd);
  }
}

const SCALAR_OF: Partial<Record<GgufValueType, GgufScalarType>> = {
  [GgufValueType.UINT8]: 'u8', [GgufValueType.INT8]: 'i8', [GgufValueType.UINT16]: 'u16', [GgufValueType.INT16]: 'i16',
  [GgufValueType.UINT32]: 'u32', [GgufValueType.INT32]: 'i32', [GgufValueType.FLOAT32]: 'f32', [GgufValueType.BOOL]: 'bool',
  [GgufValueType.STRING]: 'string', [GgufValueType.UINT64]: 'u64', [GgufValueType.INT64]: 'i64', [GgufValueType.FLOAT64]: 'f64',
};

function openGguf(path: string): Checkpoint {
  const file = GgufFile.open(path);
  try {
    const config = readGgufConfig(file);
    const tokenizerMetadata: GgufMetadataEntry[] = [];
    for (const [key, value] of file.metadata as Map<string, GgufValue>) {
      if (!key.startsWith('tokenizer.')) continue;
      const t = file.metadataType(key)!;
      tokenizerMetadata.push([key, value, SCALAR_OF[t.elementType ?? t.type]]);
    }
    const layers = Array.from({ length: config.nLayers }, () => 0);
    let head = 0;
    for (const t of file.tensors.values()) {
      const m = /^blk\.(\d+)\./.exec(t.name);
      if (m) layers[Number(m[1])] = (layers[Number(m[1])] ?? 0) + t.bytes;
      else head += t.bytes;
    }
    const dtypes = [...new Set([...file.tensors.values()].map((t) => t.type))];
    return {
      kind: 'gguf', path, config, dtypes, tokenizerMetadata, storedBytes: { layers, head },
      read: (part, allocate) => readGgufLlama(path, { range: part?.range, head: part?.head ?? true, allocate }),
    };
  } finally {
    file.close();
  }
}

export function openCheckpoint(path: string): Checkpoint {
  if (!existsSync(path)) throw new Error(`${path}: no such file or folder`);
  const asFolder = statSync(path).isDirectory() ? path : undefined;
  const manifestPath = asFolder ? join(asFolder, MANIFEST_FILE) : path.endsWith(MANIFEST_FILE) ? path : undefined;
  if (manifestPath && existsSync(manifestPath)) {
    const dir = dirname(manifestPath);
    const manifest = readManifest(dir);
    const dtypes = [...new Set([...manifest.blocks.map((b) => b.dtype), manifest.head.dtype])];
    return { kind: 'shards', path: dir, config: { ...manifest.architecture }, dtypes, manifest, read: (part, allocate) => readShards(dir, part, manifest, allocate) };
  }
  if (!asFolder && isGgufFile(path)) return openGguf(path);
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
