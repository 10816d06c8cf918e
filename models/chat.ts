// Chat templates: the Jinja template a model ships (GGUF `tokenizer.chat_template`, gguf.md
// "Tokenizer / Other") rendered with @huggingface/jinja, the renderer of Transformers.js,
// with the variables Hugging Face's apply_chat_template passes: `messages`,
// `add_generation_prompt`, `bos_token` and `eos_token` (the token strings). The library
// itself provides `raise_exception`, `strftime_now`, `range` and the Python-style methods
// the templates call; `tools` stays undefined. The Llama 3.x templates read `date_string`
// before falling back to `strftime_now`, so we pass it from an injected clock.
//
// A rendered prompt holds control tokens as text (`<|im_start|>`, `</s>`); encode() hands it
// to the tokenizer with special tokens parsed, and adds BOS only when the tokenizer adds one
// and the template did not already write it.
import { Template } from '@huggingface/jinja';
import { metadataValue, templateStopIds, type GgufEncodeOptions, type GgufMetadata } from './tokenizers/gguf.js';
import type { Tokenizer } from './tokenizers/types.js';

export interface ChatMessage {
  role: string;
  content: string;
}

/** What a template needs of its tokenizer; GgufTokenizer has all of it. */
export interface ChatTokenizer extends Tokenizer {
  /** Whether the model's prompts start with BOS (`tokenizer.ggml.add_bos_token`). */
  readonly addBos: boolean;
  /** Ids that end generation whatever the template (EOS, EOT). */
  readonly stopIds: readonly number[];
  tokenText(id: number): string | undefined;
  tokenId(text: string): number | undefined;
  encode(text: string, options?: GgufEncodeOptions): number[];
}

export interface ChatTemplateOptions {
  /** Where the template came from, for error messages. */
  source?: string;
  /** The clock behind `date_string` (default: the system clock). */
  now?: () => Date;
}

export interface RenderOptions {
  /** End with the header of an assistant turn, for generation (default true). */
  addGenerationPrompt?: boolean;
}

/** A template that does not parse, or refused to render a conversation. */
export class ChatTemplateError extends Error {
  override readonly name = 'ChatTemplateError';
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** strftime("%d %b %Y") in the C locale, local time: the form the Llama 3.x templates print. */
function dateString(date: Date): string {
  return `${String(date.getDate()).padStart(2, '0')} ${MONTHS[date.getMonth()]} ${date.getFullYear()}`;
}

export class ChatTemplate {
  /** Ids that end the assistant's turn: the tokenizer's, plus the turn-end tokens this template writes. */
  readonly stopIds: readonly number[];
  readonly bosToken: string;
  readonly eosToken: string;
  private readonly template: Template;
  private readonly source: string;
  private readonly now: () => Date;

  constructor(readonly text: string, private readonly tokenizer: ChatTokenizer, options: ChatTemplateOptions = {}) {
    this.source = options.source ?? 'chat template';
    this.now = options.now ?? (() => new Date());
    try {
      this.template = new Template(text);
    } catch (err) {
      throw new ChatTemplateError(`${this.source}: the chat template does not parse (${(err as Error).message}); ` +
        'fix the template or replace it with one of your own');
    }
    this.bosToken = tokenizer.tokenText(tokenizer.bos) ?? '';
    this.eosToken = tokenizer.tokenText(tokenizer.eos) ?? '';
    this.stopIds = [...new Set([...tokenizer.stopIds, ...templateStopIds(text, (t) => tokenizer.tokenId(t))])];
  }

  /** The template of a GGUF file (`tokenizer.chat_template`), or undefined if it has none. */
  static fromMetadata(metadata: GgufMetadata, tokenizer: ChatTokenizer, options: ChatTemplateOptions = {}): ChatTemplate | undefined {
    const key = 'tokenizer.chat_template';
    const value = metadataValue(metadata, key);
    const source = options.source ?? 'model.gguf';
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new ChatTemplateError(`${source}: GGUF metadata ${key} should be a string, not ${typeof value}`);
    return new ChatTemplate(value, tokenizer, { ...options, source: `${source} (${key})` });
  }

  /** The prompt text for `messages`. */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    messages.forEach((m, i) => {
      if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
        throw new ChatTemplateError(`message ${i} should be { role: string, content: string }`);
      }
    });
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
        bos_token: this.bosToken,
        eos_token: this.eosToken,
        date_string: dateString(this.now()),
      });
    } catch (err) {
      // raise_exception() lands here with the template's own message, e.g. "Conversation
      // roles must alternate user/assistant/user/assistant/...".
      throw new ChatTemplateError(`${this.source}: the chat template cannot render this conversation: ${(err as Error).message}`);
    }
  }

  /** Whether encoding `prompt` should add BOS: the tokenizer adds one and the template has not written it. */
  needsBos(prompt: string): boolean {
    return this.tokenizer.addBos && !(this.bosToken !== '' && prompt.startsWith(this.bosToken));
  }

  /** The prompt's token ids: control tokens as their ids, BOS exactly once when the model wants it. */
  encode(messages: readonly ChatMessage[], options: RenderOptions = {}): number[] {
    const prompt = this.render(messages, options);
    return this.tokenizer.encode(prompt, { bos: this.needsBos(prompt), special: true });
  }
}
