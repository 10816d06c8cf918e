// The bundled model's character vocabulary (charvocab.json): {"kind":"heliomesh-char",
// "version":1,"unk":0,"bos":1,"eos":2,"chars":[...]}. chars[i] has id i + 3; a character
// not in the list encodes to unk; special ids decode to "".
import { z } from 'zod';
import type { EncodeOptions, Tokenizer } from './types.js';

const charVocabSchema = z.object({
  kind: z.literal('heliomesh-char'),
  version: z.literal(1),
  unk: z.literal(0),
  bos: z.literal(1),
  eos: z.literal(2),
  chars: z.array(z.string().refine((c) => [...c].length === 1, 'each entry must be one character')).min(1),
});
export type CharVocab = z.infer<typeof charVocabSchema>;

const FIRST_CHAR_ID = 3;

export class CharTokenizer implements Tokenizer {
  readonly kind = 'heliomesh-char' as const;
  readonly unk: number;
  readonly bos: number;
  readonly eos: number;
  readonly vocabSize: number;
  private readonly ids = new Map<string, number>();
  private readonly chars: string[];

  constructor(vocab: CharVocab) {
    this.unk = vocab.unk;
    this.bos = vocab.bos;
    this.eos = vocab.eos;
    this.chars = vocab.chars;
    this.vocabSize = vocab.chars.length + FIRST_CHAR_ID;
    vocab.chars.forEach((c, i) => {
      if (this.ids.has(c)) throw new Error(`charvocab.json: character ${JSON.stringify(c)} is listed twice`);
      this.ids.set(c, i + FIRST_CHAR_ID);
    });
  }

  static parse(text: string, source = 'charvocab.json'): CharTokenizer {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
    }
    const parsed = charVocabSchema.safeParse(raw);
    if (!parsed.success) {
      throw new Error(`${source}: not a heliomesh-char vocabulary: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    return new CharTokenizer(parsed.data);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = options.bos ? [this.bos] : [];
    for (const c of text) out.push(this.ids.get(c) ?? this.unk);
    if (options.eos) out.push(this.eos);
    return out;
  }

  decode(ids: readonly number[]): string {
    return ids.map((id) => this.decodeToken(null, id)).join('');
  }

  decodeToken(_prev: number | null, id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new Error(`token id ${id} is outside the character vocabulary [0, ${this.vocabSize})`);
    }
    return id >= FIRST_CHAR_ID ? this.chars[id - FIRST_CHAR_ID]! : '';
  }
}
