// The one tokenizer surface the gateway and the CLI use, whatever the model's vocabulary.
import type { TokenizerKind } from '../shards.js';

export interface EncodeOptions {
  /** Prepend the BOS token (default false). */
  bos?: boolean;
  /** Append the EOS token (default false). */
  eos?: boolean;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  readonly bos: number;
  readonly eos: number;
  readonly vocabSize: number;
  encode(text: string, options?: EncodeOptions): number[];
  /** Text of a whole id sequence; special tokens decode to "". */
  decode(ids: readonly number[]): string;
  /**
   * The text token `id` adds after token `prev` (null at the start), for streaming one
   * token at a time. A byte-fallback token that is only part of a multi-byte character
   * cannot be text on its own; use TokenStream to stream such output exactly.
   */
  decodeToken(prev: number | null, id: number): string;
}

/**
 * Streams text as ids arrive, emitting only complete characters: it decodes the whole
 * sequence so far and returns what was added, holding back a trailing U+FFFD that a later
 * byte may complete. Exact for every tokenizer, at O(n) per token, which is negligible
 * next to a forward pass.
 */
export class TokenStream {
  private readonly ids: number[] = [];
  private emitted = '';
  constructor(private readonly tokenizer: Tokenizer) {}

  /** Adds one id; returns the new text (possibly ""). */
  push(id: number): string {
    this.ids.push(id);
    let text = this.tokenizer.decode(this.ids);
    // hold back up to 3 replacement characters: an unfinished UTF-8 sequence is at most 3 bytes
    let held = 0;
    while (held < 3 && text.endsWith('\uFFFD')) {
      text = text.slice(0, -1);
      held++;
    }
    // Decoders only append as ids are added, so the new text extends what was emitted.
    const delta = text.length > this.emitted.length ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return delta;
  }

  /** Flushes held-back bytes (as U+FFFD) at the end of generation. */
  end(): string {
    const text = this.tokenizer.decode(this.ids);
    const delta = text.length > this.emitted.length ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return delta;
  }
}
