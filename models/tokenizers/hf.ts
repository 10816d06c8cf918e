// Hugging Face tokenizer.json (and tokenizer_config.json when present beside it), through
// @huggingface/tokenizers: the pure-JavaScript tokenizer of Transformers.js published on
// its own, with no dependencies and no network access of its own (we hand it the parsed
// JSON). The full @huggingface/transformers would bring onnxruntime and sharp, native
// packages we do not want on a Raspberry Pi for a tokenizer.
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import type { EncodeOptions, Tokenizer } from './types.js';

const BOS_NAMES = ['<s>', '<|begin_of_text|>', '<|startoftext|>', '<bos>', '<|im_start|>'];
const EOS_NAMES = ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>', '<|eot_id|>', '<|im_end|>'];

type TokenConfigValue = string | { content?: string } | null | undefined;

function tokenName(v: TokenConfigValue): string | undefined {
  if (typeof v === 'string') return v;
  return v?.content;
}

export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf' as const;
  readonly bos: number;
  readonly eos: number;
  readonly vocabSize: number;
  private readonly impl: HfTokenizerImpl;
  private readonly specialIds: Set<number>;

  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}, source = 'tokenizer.json') {
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    } catch (err) {
      throw new Error(`${source}: cannot load this tokenizer (${(err as Error).message})`);
    }
    // A loop, not Math.max(...ids): spreading a 128k-entry vocabulary overflows the stack.
    let maxId = -1;
    for (const id of this.impl.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const find = (configured: TokenConfigValue, names: string[], what: string): number => {
      const candidates = [tokenName(configured), ...names].filter((n): n is string => n !== undefined);
      for (const name of candidates) {
        const id = this.impl.token_to_id(name);
        if (id !== undefined) return id;
      }
      throw new Error(`${source}: no ${what} token found (looked for ${candidates.join(', ')}); ` +
        `put tokenizer_config.json with "${what.toLowerCase()}_token" next to it`);
    };
    this.bos = find(tokenizerConfig.bos_token as TokenConfigValue, BOS_NAMES, 'BOS');
    this.eos = find(tokenizerConfig.eos_token as TokenConfigValue, EOS_NAMES, 'EOS');
    this.specialIds = new Set([...this.impl.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id));
  }

  static parse(tokenizerText: string, configText: string | undefined, source = 'tokenizer.json'): HfTokenizer {
    const parse = (text: string, name: string): Record<string, unknown> => {
      try {
        const value: unknown = JSON.parse(text);
        if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
        return value as Record<string, unknown>;
      } catch (err) {
        throw new Error(`${name}: not a tokenizer file (${(err as Error).message})`);
      }
    };
    const json = parse(tokenizerText, source);
    if (typeof json.model !== 'object' || json.model === null) throw new Error(`${source}: has no "model" section; is this a Hugging Face tokenizer.json?`);
    return new HfTokenizer(json, configText === undefined ? {} : parse(configText, 'tokenizer_config.json'), source);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    // Special tokens are added here rather than by the file's post-processor, so that BOS
    // and EOS follow the options whatever template the file carries.
    const ids = this.impl.encode(text, { add_special_tokens: false }).ids;
    if (options.bos) ids.unshift(this.bos);
    if (options.eos) ids.push(this.eos);
    return ids;
  }

  decode(ids: readonly number[]): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    return this.impl.decode([...ids], { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  decodeToken(prev: number | null, id: number): string {
    if (this.specialIds.has(id)) return '';
    // Decoders such as Metaspace treat the first token specially, so the text of `id` is
    // what decoding it after `prev` adds to decoding `prev` alone.
    if (prev === null) return this.decode([id]);
    const before = this.decode([prev]);
    const both = this.decode([prev, id]);
    return both.startsWith(before) ? both.slice(before.length) : this.decode([id]);
  }
}
