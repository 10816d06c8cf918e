// Picks the tokenizer a shard manifest names, and recognizes tokenizer files by content.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TokenizerKind, TokenizerSpec } from '../shards.js';
import { CharTokenizer } from './char.js';
import { GgufFile } from '../gguf.js';
import { ggufTokenizer, type GgufTokenizer } from './gguf.js';
import { HfTokenizer } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import type { Tokenizer } from './types.js';

export { CharTokenizer } from './char.js';
export { GgufTokenizer, ggufTokenizer } from './gguf.js';
export { HfTokenizer } from './hf.js';
export { Llama2cTokenizer } from './llama2c.js';
export { TokenStream, type EncodeOptions, type Tokenizer } from './types.js';

/** Reads a tokenizer file of a known kind. */
export function readTokenizer(path: string, kind: TokenizerKind): Tokenizer {
  if (!existsSync(path)) throw new Error(`${path}: tokenizer file not found`);
  switch (kind) {
    case 'heliomesh-char':
      return CharTokenizer.parse(readFileSync(path, 'utf8'), path);
    case 'llama2c':
      return Llama2cTokenizer.parse(readFileSync(path), path);
    case 'hf': {
      const configPath = join(dirname(path), 'tokenizer_config.json');
      const config = existsSync(configPath) ? readFileSync(configPath, 'utf8') : undefined;
      return HfTokenizer.parse(readFileSync(path, 'utf8'), config, path);
    }
    case 'gguf':
      return readGgufTokenizer(path);
  }
}

/** The tokenizer in a GGUF file's tokenizer.* metadata (only the header is read). */
export function readGgufTokenizer(path: string): GgufTokenizer {
  const file = GgufFile.open(path);
  try {
    return ggufTokenizer(file.metadata, path);
  } finally {
    file.close();
  }
}

/** The tokenizer a manifest names, read from the manifest's folder. */
export function loadTokenizer(manifestDir: string, spec: TokenizerSpec): Tokenizer {
  return readTokenizer(join(manifestDir, spec.file), spec.kind);
}

/** Tells the kind of a tokenizer file from its content. */
export function detectTokenizerKind(path: string): TokenizerKind {
  const bytes = readFileSync(path);
  const first = bytes.subarray(0, 64).toString('utf8').trimStart()[0];
  if (first === '{') {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${path}: looks like JSON but does not parse (${(err as Error).message})`);
    }
    if (json.kind === 'heliomesh-char') return 'heliomesh-char';
    if (typeof json.model === 'object' && json.model !== null) return 'hf';
    throw new Error(`${path}: a JSON file that is neither charvocab.json ("kind":"heliomesh-char") nor a Hugging Face tokenizer.json`);
  }
  Llama2cTokenizer.parse(bytes, path);
  return 'llama2c';
}
