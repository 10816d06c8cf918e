// llama2.c's tokenizer.bin: an int32 max_token_length, then per token a float32 merge
// score, an int32 byte length and the token's bytes (sentencepiece pieces with "▁" already
// turned into spaces; ids 3..258 are the byte-fallback pieces "<0x00>".."<0xFF>").
// Encoding follows run.c's encode(): a dummy-prefix space, one piece per UTF-8 code point
// (bytes + 3 when the code point is not a piece), then repeated merges of the adjacent
// pair whose merged piece has the best score. Decoding drops the space after BOS and turns
// "<0xHH>" pieces back into bytes.
//
// The same encoder serves any SentencePiece BPE vocabulary given as pieces and scores (a
// GGUF file's `llama` tokenizer, see gguf.ts): SentencePieceOptions then says where its
// special and byte pieces are instead of run.c's fixed layout.
import type { EncodeOptions, Tokenizer } from './types.js';

/** Where a vocabulary keeps what run.c assumes at fixed ids; every field defaults to run.c's layout. */
export interface SentencePieceOptions {
  /** BOS id (run.c: 1). */
  bos?: number;
  /** EOS id (run.c: 2). */
  eos?: number;
  /** The id of each byte's fallback piece, 256 entries (run.c: byte + 3). */
  byteIds?: readonly number[];
  /** Ids that decode to "" (run.c: BOS, EOS and 0, `<unk>`). */
  hiddenIds?: Iterable<number>;
  /** Prepend the dummy-prefix space to non-empty text (run.c: always). */
  spacePrefix?: boolean;
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

export class Llama2cTokenizer implements Tokenizer {
  readonly kind = 'llama2c' as const;
  /** run.c: BOS = 1, EOS = 2, the sentencepiece defaults (other ids through SentencePieceOptions). */
  readonly bos: number;
  readonly eos: number;
  readonly vocabSize: number;
  private readonly pieceIds = new Map<string, number>();
  private readonly pieceBytes: Uint8Array[];
  private readonly byteIds: readonly number[] | undefined;
  private readonly hiddenIds: ReadonlySet<number>;
  private readonly spacePrefix: boolean;

  constructor(readonly pieces: string[], readonly scores: Float32Array, readonly maxTokenLength: number, options: SentencePieceOptions = {}) {
    this.vocabSize = pieces.length;
    this.bos = options.bos ?? 1;
    this.eos = options.eos ?? 2;
    if (options.byteIds !== undefined && options.byteIds.length !== 256) throw new Error(`byteIds has ${options.byteIds.length} entries, not 256`);
    this.byteIds = options.byteIds;
    this.hiddenIds = new Set(options.hiddenIds ?? [this.bos, this.eos, 0]);
    this.spacePrefix = options.spacePrefix ?? true;
    // First occurrence wins, as run.c's sorted lookup would return one of equal strings.
    pieces.forEach((p, i) => { if (!this.pieceIds.has(p)) this.pieceIds.set(p, i); });
    this.pieceBytes = pieces.map((p) => {
      const m = BYTE_PIECE.exec(p);
      return m ? Uint8Array.of(parseInt(m[1]!, 16)) : utf8Encoder.encode(p);
    });
  }

  /** Parses tokenizer.bin bytes; the vocabulary size is however many entries the file holds. */
  static parse(bytes: Uint8Array, source = 'tokenizer.bin'): Llama2cTokenizer {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (why: string) => new Error(`${source}: not a llama2.c tokenizer.bin (${why})`);
    if (buf.length < 4) throw fail('shorter than its header');
    const maxTokenLength = buf.readInt32LE(0);
    if (maxTokenLength <= 0 || maxTokenLength > 1024) throw fail(`max_token_length ${maxTokenLength}`);
    const pieces: string[] = [];
    const scores: number[] = [];
    let at = 4;
    while (at < buf.length) {
      if (at + 8 > buf.length) throw fail(`entry ${pieces.length} is cut short`);
      const score = buf.readFloatLE(at);
      const len = buf.readInt32LE(at + 4);
      at += 8;
      if (len < 0 || len > maxTokenLength || at + len > buf.length) throw fail(`entry ${pieces.length} has length ${len}`);
      pieces.push(utf8.decode(buf.subarray(at, at + len)));
      scores.push(score);
      at += len;
    }
    if (pieces.length < 3 + 256) throw fail(`only ${pieces.length} entries; byte fallback needs at least 259`);
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength);
  }

  /** Serializes to tokenizer.bin bytes (used to write test fixtures and exports). */
  static serialize(pieces: string[], scores: ArrayLike<number>): Uint8Array {
    const encoded = pieces.map((p) => utf8Encoder.encode(p));
    const maxLen = Math.max(1, ...encoded.map((e) => e.length));
    const out = Buffer.alloc(4 + encoded.reduce((s, e) => s + 8 + e.length, 0));
    out.writeInt32LE(maxLen, 0);
    let at = 4;
    encoded.forEach((e, i) => {
      out.writeFloatLE(scores[i]!, at);
      out.writeInt32LE(e.length, at + 4);
      out.set(e, at + 8);
      at += 8 + e.length;
    });
    return out;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const tokens: number[] = [];
    if (text.length > 0 && this.spacePrefix) {
      const space = this.pieceIds.get(' ');
      if (space === undefined) throw new Error('tokenizer has no " " piece for the dummy prefix');
      tokens.push(space);
    }
    for (const codePoint of text) {
      const id = this.pieceIds.get(codePoint);
      if (id !== undefined) tokens.push(id);
      else for (const byte of utf8Encoder.encode(codePoint)) tokens.push(this.byteIds === undefined ? byte + 3 : this.byteIds[byte]!);
    }
    // Greedy merges: each round merges the leftmost adjacent pair with the highest score.
    for (;;) {
      let bestScore = -Infinity;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i + 1 < tokens.length; i++) {
        // an unknown (or other hidden) token stands for text no piece spells: it never merges
        if (this.hiddenIds.has(tokens[i]!) || this.hiddenIds.has(tokens[i + 1]!)) continue;
        const id = this.pieceIds.get(this.pieces[tokens[i]!]! + this.pieces[tokens[i + 1]!]!);
        if (id !== undefined && this.scores[id]! > bestScore) {
          bestScore = this.scores[id]!;
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    if (options.bos) tokens.unshift(this.bos);
    if (options.eos) tokens.push(this.eos);
    return tokens;
  }

  private bytesOf(prev: number | null, id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new Error(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    if (this.hiddenIds.has(id)) return new Uint8Array(0);
    const bytes = this.pieceBytes[id]!;
    // run.c: after BOS, sentencepiece strips the leading whitespace of the first piece.
    return prev === this.bos && bytes[0] === 0x20 ? bytes.subarray(1) : bytes;
  }

  decodeToken(prev: number | null, id: number): string {
    return utf8.decode(this.bytesOf(prev, id));
  }

  decode(ids: readonly number[]): string {
    const parts = ids.map((id, i) => this.bytesOf(i > 0 ? ids[i - 1]! : null, id));
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return utf8.decode(out);
  }
}
