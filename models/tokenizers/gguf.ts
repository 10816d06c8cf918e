// The tokenizer a GGUF file carries in its metadata (ggml docs/gguf.md, "Tokenizer"), read
// as llama.cpp's src/llama-vocab.cpp reads it.
//
// - `tokenizer.ggml.model` = "llama": SentencePiece BPE. `tokenizer.ggml.tokens` spell
//   spaces as "▁", `tokenizer.ggml.scores` rank the merges, `<0xXX>` tokens are the byte
//   fallback. We turn "▁" back into spaces, as llama2.c's export of a tokenizer.model does,
//   and encode with llama2.c's encoder (llama2c.ts): the same best-score-first merges,
//   leftmost on ties, as llama.cpp's llm_tokenizer_spm_session.
// - `tokenizer.ggml.model` = "gpt2": byte-level BPE with `tokenizer.ggml.merges`. We write
//   the tokenizer.json this vocabulary came from (BPE model, the pre-tokenizer that
//   `tokenizer.ggml.pre` names, ByteLevel decoder, added tokens) and hand it to
//   @huggingface/tokenizers through HfTokenizer, rather than keep a BPE of our own.
//
// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused,
// 6 byte. Control tokens written in the text (`<|im_start|>`, `</s>`) are encoded as their
// ids unless encode(text, { special: false }); user-defined tokens always are (llama.cpp's
// tokenizer_st_partition matches CONTROL | USER_DEFINED | UNKNOWN, the first and last only
// with parse_special). Control, unknown and unused tokens decode to "".
import { HfTokenizer } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import type { EncodeOptions, Tokenizer } from './types.js';

/** GGUF key/value metadata as the reader hands it over (a Map or a plain object). */
export type GgufMetadata = ReadonlyMap<string, unknown> | Readonly<Record<string, unknown>>;

/** gguf.md, `tokenizer.ggml.token_type`. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface GgufEncodeOptions extends EncodeOptions {
  /**
   * Encode control tokens written in the text (`<|im_start|>`, `</s>`) as their ids (default
   * true, as for a rendered chat prompt); false encodes them as the plain text they spell.
   */
  special?: boolean;
}

/**
 * Tokens that end an assistant turn in the chat formats our users bring (ChatML, Llama 3,
 * Phi-3, Gemma); they stop generation when the chat template writes them.
 */
export const TURN_END_TOKENS = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<|end|>', '<end_of_turn>'] as const;


/** The ids of TURN_END_TOKENS that `template` writes and the vocabulary has. */
export function templateStopIds(template: string | undefined, tokenId: (text: string) => number | undefined): number[] {
  if (template === undefined) return [];
  const ids: number[] = [];
  for (const text of TURN_END_TOKENS) {
    const id = template.includes(text) ? tokenId(text) : undefined;
    if (id !== undefined) ids.push(id);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------
// Metadata, validated key by key.

/** The value of `key`, whichever form the metadata has. */
export function metadataValue(metadata: GgufMetadata, key: string): unknown {
  if (metadata instanceof Map || typeof (metadata as { get?: unknown }).get === 'function') return (metadata as ReadonlyMap<string, unknown>).get(key);
  return Object.hasOwn(metadata, key) ? (metadata as Record<string, unknown>)[key] : undefined;
}

class MetadataKeys {
  constructor(private readonly metadata: GgufMetadata, readonly source: string) {}

  private raw(key: string): unknown {
    return metadataValue(this.metadata, key);
  }

  fail(key: string, why: string): Error {
    return new Error(`${this.source}: GGUF metadata ${key}${why.startsWith('[') ? '' : ' '}${why}`);
  }

  string(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined || typeof v === 'string') return v;
    throw this.fail(key, `should be a string, not ${describe(v)}`);
  }

  boolean(key: string): boolean | undefined {
    const v = this.raw(key);
    if (v === undefined || typeof v === 'boolean') return v;
    throw this.fail(key, `should be a boolean, not ${describe(v)}`);
  }

  /** A token id, which must lie inside the vocabulary. */
  tokenId(key: string, vocabSize: number): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    const id = integer(v);
    if (id === undefined || id < 0) throw this.fail(key, `should be a token id, not ${describe(v)}`);
    if (id >= vocabSize) throw this.fail(key, `= ${id} is outside the vocabulary of ${vocabSize} tokens`);
    return id;
  }

  strings(key: string): string[] | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw this.fail(key, `should be an array of strings, not ${describe(v)}`);
    const bad = v.findIndex((s) => typeof s !== 'string');
    if (bad >= 0) throw this.fail(key, `[${bad}] should be a string, not ${describe(v[bad])}`);
    return v as string[];
  }

  /** An array of numbers (plain, bigint or a typed array). */
  numbers(key: string, length: number, check: (n: number) => boolean, what: string): ArrayLike<number> | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView))) throw this.fail(key, `should be an array of ${what}, not ${describe(v)}`);
    const arr = v as ArrayLike<unknown>;
    if (arr.length !== length) throw this.fail(key, `has ${arr.length} entries for ${length} tokens`);
    const out = new Float64Array(length);
    for (let i = 0; i < length; i++) {
      const n = typeof arr[i] === 'bigint' ? integer(arr[i]) : arr[i];
      if (typeof n !== 'number' || !check(n)) throw this.fail(key, `[${i}] should be ${what}, not ${describe(arr[i])}`);
      out[i] = n;
    }
    return out;
  }
}

function integer(v: unknown): number | undefined {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

// ---------------------------------------------------------------------------------------
// Pre-tokenizers of `tokenizer.ggml.pre`, as the models' tokenizer.json files define them
// (llama-vocab.cpp's llm_tokenizer_bpe writes the same regexes). The (?i:…) group of the
// original Llama 3 and Qwen2 patterns is spelled out, as llama.cpp does, so that the regex
// needs nothing beyond JavaScript's own syntax.

const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
/** LLAMA_VOCAB_PRE_TYPE_LLAMA3: numbers in groups of up to three digits. */
const LLAMA3_PATTERN = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
/** LLAMA_VOCAB_PRE_TYPE_QWEN2: the Llama 3 pattern with single digits. */
const QWEN2_PATTERN = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;

export interface BpePreTokenizer {
  normalizer: object | null;
  preTokenizer: object;
  /** tokenizer.json's BPE `ignore_merges`: a pre-token that is a whole token is not merged (llama.cpp: ignore_merges). */
  ignoreMerges: boolean;
  /** llama.cpp's add_bos default for this pre-tokenizer, when `tokenizer.ggml.add_bos_token` is absent. */
  addBos: boolean;
}

const split = (pattern: string) => ({ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false });
const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });

const LLAMA3: BpePreTokenizer = {
  normalizer: null,
  preTokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3_PATTERN), byteLevel(false)] },
  ignoreMerges: true,
  addBos: true,
};
/** Qwen2's tokenizer.json normalizes to NFC first (transformers' Qwen2 tokenizers do too). */
const QWEN2: BpePreTokenizer = {
  normalizer: { type: 'NFC' },
  preTokenizer: { type: 'Sequence', pretokenizers: [split(QWEN2_PATTERN), byteLevel(false)] },
  ignoreMerges: false,
  addBos: false,
};
/** SmolLM: every digit on its own (tokenizer.json's Digits, llama.cpp's "\p{N}"), then GPT-2's regex. */
const SMOLLM: BpePreTokenizer = {
  normalizer: null,
  preTokenizer: { type: 'Sequence', pretokenizers: [split('\\p{N}'), byteLevel(true)] },
  ignoreMerges: false,
  addBos: false,
};
/** GPT-2: ByteLevel's own regex, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
const GPT2: BpePreTokenizer = { normalizer: null, preTokenizer: byteLevel(true), ignoreMerges: false, addBos: false };

/**
 * `tokenizer.ggml.pre` values we tokenize exactly (llama-vocab.cpp's names). Anything else is
 * refused: a wrong pre-tokenizer gives the model token ids it was not trained on, which
 * shows only as worse text (llama.cpp itself warns "GENERATION QUALITY WILL BE DEGRADED"),
 * so an error naming the value is kinder than a quiet fallback to GPT-2's regex.
 */
export const BPE_PRE_TOKENIZERS: Readonly<Record<string, BpePreTokenizer>> = {
  'llama-bpe': LLAMA3, 'llama3': LLAMA3, 'llama-v3': LLAMA3,
  'qwen2': QWEN2,
  'smollm': SMOLLM,
  'gpt-2': GPT2, 'gpt2': GPT2,
};

// ---------------------------------------------------------------------------------------

interface Backend {
  encode(text: string, special: boolean): number[];
  decode(ids: readonly number[]): string;
  decodeToken(prev: number | null, id: number): string;
}

const BOS_NAMES = ['<s>', '<|begin_of_text|>', '<|startoftext|>', '<bos>', '<|im_start|>'];
const EOS_NAMES = ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>', '<|eot_id|>', '<|im_end|>'];
const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');

/** The tokenizer of a GGUF file; build it with ggufTokenizer(). */
export class GgufTokenizer implements Tokenizer {
  readonly kind = 'gguf' as const;
  /** `tokenizer.ggml.model`. */
  readonly model: 'llama' | 'gpt2';
  /** `tokenizer.ggml.pre` (gpt2 only). */
  readonly pre: string | undefined;
  readonly vocabSize: number;
  /** `tokenizer.ggml.bos_token_id` / `eos_token_id` as the file says (a name is looked up only when the id is absent). */
  readonly bos: number;
  readonly eos: number;
  /** `tokenizer.ggml.eot_token_id`, `eom_token_id`, `unknown_token_id`, `padding_token_id`. */
  readonly eot: number | undefined;
  readonly eom: number | undefined;
  readonly unknown: number | undefined;
  readonly padding: number | undefined;
  /** `tokenizer.ggml.add_bos_token` / `add_eos_token`, llama.cpp's defaults when absent. */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** Ids that end generation: EOS, EOT, EOM, and the turn-end tokens the chat template writes. */
  readonly stopIds: readonly number[];
  /** `tokenizer.chat_template`, if the file has one. */
  readonly chatTemplate: string | undefined;
  private readonly ids = new Map<string, number>();
  private readonly tokens: readonly string[];
  private readonly types: Uint8Array;
  /** Ids that decode to "": control, unknown and unused tokens, BOS and EOS. */
  private readonly hiddenIds = new Set<number>();
  private readonly backend: Backend;

  constructor(metadata: GgufMetadata, readonly source = 'model.gguf') {
    const keys = new MetadataKeys(metadata, source);
    const model = keys.string('tokenizer.ggml.model');
    if (model === undefined) throw keys.fail('tokenizer.ggml.model', 'is missing: this GGUF file carries no tokenizer; give the model a tokenizer file of its own');
    if (model !== 'llama' && model !== 'gpt2') {
      throw keys.fail('tokenizer.ggml.model', `is ${JSON.stringify(model)}; supported are "llama" (SentencePiece) and "gpt2" (byte-level BPE)`);
    }
    this.model = model;
    const tokens = keys.strings('tokenizer.ggml.tokens');
    if (tokens === undefined || tokens.length === 0) throw keys.fail('tokenizer.ggml.tokens', 'is missing or empty');
    this.tokens = tokens;
    this.vocabSize = tokens.length;
    tokens.forEach((t, i) => {
      const seen = this.ids.get(t);
      if (seen !== undefined) throw keys.fail('tokenizer.ggml.tokens', `has ${JSON.stringify(t)} twice (ids ${seen} and ${i})`);
      this.ids.set(t, i);
    });
    const types = keys.numbers('tokenizer.ggml.token_type', tokens.length, (n) => Number.isInteger(n) && n >= 0 && n <= 6, 'a token type 0..6');
    this.types = Uint8Array.from(types ?? new Uint8Array(tokens.length).fill(TOKEN_TYPE.normal));

    const id = (key: string) => keys.tokenId(`tokenizer.ggml.${key}`, tokens.length);
    const named = (names: string[]) => names.map((n) => this.ids.get(n)).find((i) => i !== undefined);
    const eos = id('eos_token_id') ?? named(EOS_NAMES);
    if (eos === undefined) throw keys.fail('tokenizer.ggml.eos_token_id', `is missing and no token is named ${EOS_NAMES.join(', ')}`);
    this.eos = eos;
    this.bos = id('bos_token_id') ?? named(BOS_NAMES) ?? eos;
    this.eot = id('eot_token_id');
    this.eom = id('eom_token_id');
    this.unknown = id('unknown_token_id');
    this.padding = id('padding_token_id');
    this.chatTemplate = keys.string('tokenizer.chat_template');
    this.types.forEach((t, i) => {
      if (t === TOKEN_TYPE.control || t === TOKEN_TYPE.unknown || t === TOKEN_TYPE.unused) this.hiddenIds.add(i);
    });
    this.hiddenIds.add(this.bos).add(this.eos);

    let pre: BpePreTokenizer | undefined;
    this.pre = model === 'gpt2' ? keys.string('tokenizer.ggml.pre') : undefined;
    if (model === 'gpt2') {
      const supported = Object.keys(BPE_PRE_TOKENIZERS).join(', ');
      if (this.pre === undefined) {
        throw keys.fail('tokenizer.ggml.pre', `is missing, so the pre-tokenizer is unknown (supported: ${supported}); convert the model again with a current llama.cpp convert_hf_to_gguf.py`);
      }
      pre = BPE_PRE_TOKENIZERS[this.pre];
      if (pre === undefined) throw keys.fail('tokenizer.ggml.pre', `is ${JSON.stringify(this.pre)}, a pre-tokenizer we do not know; supported: ${supported}`);
    }
    // llama-vocab.cpp: SPM adds BOS by default, BPE only for some pre-tokenizers; EOS never.
    this.addBos = keys.boolean('tokenizer.ggml.add_bos_token') ?? (pre?.addBos ?? true);
    this.addEos = keys.boolean('tokenizer.ggml.add_eos_token') ?? false;
    if (this.addBos && id('bos_token_id') === undefined && named(BOS_NAMES) === undefined) {
      throw keys.fail('tokenizer.ggml.bos_token_id', 'is missing although the tokenizer adds BOS');
    }

    this.backend = pre === undefined
      ? this.sentencePiece(keys, keys.boolean('tokenizer.ggml.add_space_prefix') ?? true)
      : this.bytePairs(keys, pre);

    const stops = [this.eos, this.eot, this.eom, ...templateStopIds(this.chatTemplate, (t) => this.tokenId(t))];
    this.stopIds = [...new Set(stops.filter((s): s is number => s !== undefined))];
  }

  /** The token's string as the file spells it ("▁the", "Ġthe", "<|im_end|>"). */
  tokenText(id: number): string | undefined {
    return this.tokens[id];
  }

  /** The id of the token spelled `text` in the file, if there is one. */
  tokenId(text: string): number | undefined {
    return this.ids.get(text);
  }

  /** `tokenizer.ggml.token_type` of `id` (TOKEN_TYPE). */
  tokenType(id: number): number {
    const t = this.types[id];
    if (t === undefined) throw new Error(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    return t;
  }

  encode(text: string, options: GgufEncodeOptions = {}): number[] {
    const ids = this.backend.encode(text, options.special ?? true);
    if (options.bos) ids.unshift(this.bos);
    if (options.eos) ids.push(this.eos);
    return ids;
  }

  decode(ids: readonly number[]): string {
    return this.backend.decode(ids);
  }

  decodeToken(prev: number | null, id: number): string {
    return this.backend.decodeToken(prev, id);
  }

  /** `llama`: llama2.c's encoder on "▁"-to-space pieces, between the specials found in the text. */
  private sentencePiece(keys: MetadataKeys, spacePrefix: boolean): Backend {
    const scores = keys.numbers('tokenizer.ggml.scores', this.vocabSize, Number.isFinite, 'a finite number');
    if (scores === undefined) throw keys.fail('tokenizer.ggml.scores', 'is missing; a "llama" tokenizer merges by score');
    const pieces = this.tokens.map((t, i) => {
      // SentencePiece never produces control or unknown pieces from text (they are not in
      // its piece table); an empty piece is one no merge can spell.
      if (this.types[i] === TOKEN_TYPE.control || this.types[i] === TOKEN_TYPE.unknown) return '';
      return this.types[i] === TOKEN_TYPE.byte ? t : t.replaceAll('\u2581', ' ');
    });
    const byteIds = Array.from({ length: 256 }, (_, b) => {
      const found = this.ids.get(`<0x${hex(b)}>`) ?? this.unknown;
      if (found === undefined) throw keys.fail('tokenizer.ggml.tokens', `has no byte token <0x${hex(b)}> and tokenizer.ggml.unknown_token_id is not set`);
      return found;
    });
    const encoder = new TextEncoder();
    const maxTokenLength = pieces.reduce((m, p) => Math.max(m, encoder.encode(p).length), 1);
    const spm = new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength, {
      bos: this.bos, eos: this.eos, byteIds, hiddenIds: this.hiddenIds, spacePrefix,
    });
    const all = this.specialMatcher([TOKEN_TYPE.control, TOKEN_TYPE.unknown, TOKEN_TYPE.userDefined]);
    const userDefined = this.specialMatcher([TOKEN_TYPE.userDefined]);
    return {
      // llama.cpp's SPM tokenize: each run of text between specials gets the space prefix
      // (it follows the start or a special token).
      encode: (text, special) => (special ? all : userDefined)(text).flatMap((part) => (typeof part === 'number' ? [part] : spm.encode(part))),
      decode: (ids) => spm.decode(ids),
      decodeToken: (prev, id) => spm.decodeToken(prev, id),
    };
  }

  /** Splits text into runs of plain text and ids of the tokens of `types` it spells, longest match first. */
  private specialMatcher(types: number[]): (text: string) => (string | number)[] {
    const byFirst = new Map<string, { text: string; id: number }[]>();
    this.tokens.forEach((text, id) => {
      if (text.length === 0 || !types.includes(this.types[id]!)) return;
      const list = byFirst.get(text[0]!) ?? [];
      list.push({ text, id });
      byFirst.set(text[0]!, list);
    });
    for (const list of byFirst.values()) list.sort((a, b) => b.text.length - a.text.length);
    return (text) => {
      const parts: (string | number)[] = [];
      let plainFrom = 0;
      for (let i = 0; i < text.length;) {
        const match = byFirst.get(text[i]!)?.find((s) => text.startsWith(s.text, i));
        if (match === undefined) {
          i++;
          continue;
        }
        if (i > plainFrom) parts.push(text.slice(plainFrom, i));
        parts.push(match.id);
        i += match.text.length;
        plainFrom = i;
      }
      if (plainFrom < text.length) parts.push(text.slice(plainFrom));
      return parts;
    };
  }

  /** `gpt2`: the vocabulary as a tokenizer.json, run by @huggingface/tokenizers. */
  private bytePairs(keys: MetadataKeys, pre: BpePreTokenizer): Backend {
    const merges = keys.strings('tokenizer.ggml.merges');
    if (merges === undefined) throw keys.fail('tokenizer.ggml.merges', 'is missing; a "gpt2" tokenizer needs its merges');
    const bad = merges.findIndex((m) => !/^[^ ]+ [^ ]+$/.test(m));
    if (bad >= 0) throw keys.fail('tokenizer.ggml.merges', `[${bad}] = ${describe(merges[bad])} is not two tokens separated by one space`);
    const vocab = Object.fromEntries(this.tokens.map((t, i) => [t, i]));
    const json = (specials: boolean) => ({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.tokens.flatMap((content, id) => {
        const type = this.types[id];
        const special = type === TOKEN_TYPE.control || type === TOKEN_TYPE.unknown;
        if (!(type === TOKEN_TYPE.userDefined || (specials && special))) return [];
        return [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special }];
      }),
      normalizer: pre.normalizer,
      pre_tokenizer: pre.preTokenizer,
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: this.unknown === undefined ? null : this.tokens[this.unknown],
        continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
        ignore_merges: pre.ignoreMerges, vocab, merges,
      },
    });
    const config = { bos_token: this.tokens[this.bos], eos_token: this.tokens[this.eos] };
    const withSpecials = new HfTokenizer(json(true), config, this.source);
    // Built on first use: only encode(text, { special: false }) needs it.
    let plain: HfTokenizer | undefined;
    const checked = (ids: number[], text: string) => {
      if (ids.some((i) => !Number.isInteger(i))) throw new Error(`${this.source}: the vocabulary cannot spell some bytes of ${describe(text)}`);
      return ids;
    };
    return {
      encode: (text, special) => checked((special ? withSpecials : (plain ??= new HfTokenizer(json(false), config, this.source))).encode(text), text),
      decode: (ids) => {
        const shown = ids.filter((i) => !this.hiddenIds.has(i));
        return shown.length === 0 ? '' : withSpecials.decode(shown);
      },
      decodeToken: (prev, id) => {
        if (this.hiddenIds.has(id)) return '';
        return withSpecials.decodeToken(prev === null || this.hiddenIds.has(prev) ? null : prev, id);
      },
    };
  }
}

/** The tokenizer of a GGUF file from its metadata; `source` names the file in errors. */
export function ggufTokenizer(metadata: GgufMetadata, source: string): GgufTokenizer {
  return new GgufTokenizer(metadata, source);
}
