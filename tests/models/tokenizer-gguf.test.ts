import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { ggufTokenizer, TOKEN_TYPE, type GgufMetadata } from '../../models/tokenizers/gguf.js';
import { Llama2cTokenizer, TokenStream } from '../../models/tokenizers/index.js';

const CORPUS = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox doesn\'t, and they\'re happy.',
  'hello hello world world, hello world! Hello World? HELLO.',
  'In 2024 we counted 12345 stars, then 123 and 45 more: 12345 12345 678.',
  'café café naïve résumé über straße',
  'line one\nline two\n\n  indented   with   spaces\ttab',
  '12345\n12345\n123\n45\n12345',
].join('\n');

const UNICODE_STRINGS = [
  'hello world',
  'The quick brown fox jumps over the lazy dog.',
  '  two  spaces and a trailing one ',
  'naïve café, résumé',
  'check ✓ mark, 日本語のテキスト, emoji 🙂🚀👩‍👩‍👧 and flags 🇫🇷',
  'line one\nline two\r\n\ttabbed',
  'numbers 12345 and 3.14159',
  'x',
];

// ---------------------------------------------------------------------------------------
// `llama`: a SentencePiece-style vocabulary, trained here by greedy pair merges over the
// corpus (pieces hold spaces as llama2.c's tokenizer.bin does), and the same vocabulary as
// GGUF metadata ("▁", token types, ids from the file).

const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');

function trainSentencePiece(corpus: string, merges: number): { pieces: string[]; scores: number[] } {
  const words = (' ' + corpus.replace(/\s+/g, ' ')).split(/(?= )/).map((w) => Array.from(w));
  const chars = [...new Set(words.flat())].sort();
  const learned: string[] = [];
  for (let round = 0; round < merges; round++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) {
      const key = `${w[i]}\u0000${w[i + 1]}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const best = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
    if (best === undefined || best[1] < 2) break;
    const [l, r] = best[0].split('\u0000') as [string, string];
    learned.push(l + r);
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) if (w[i] === l && w[i + 1] === r) w.splice(i, 2, l + r);
  }
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${hex(b)}>`), ...chars, ...learned];
  const scores = [0, 0, 0, ...Array.from({ length: 256 }, () => 0), ...chars.map((_, i) => -1000 - i), ...learned.map((_, i) => -i)];
  return { pieces, scores };
}

/** tokenizer.bin pieces as GGUF's llama tokenizer holds them (what convert_hf_to_gguf writes). */
function llamaMetadata(pieces: string[], scores: ArrayLike<number>, extra: Record<string, unknown> = {}): Map<string, unknown> {
  const tokens = pieces.map((p, i) => (i === 1 ? '<s>' : i === 2 ? '</s>' : /^<0x[0-9A-F]{2}>$/.test(p) ? p : p.replaceAll(' ', '\u2581')));
  const types = pieces.map((p, i) => (i === 0 ? TOKEN_TYPE.unknown : i <= 2 ? TOKEN_TYPE.control : /^<0x[0-9A-F]{2}>$/.test(p) ? TOKEN_TYPE.byte : TOKEN_TYPE.normal));
  return new Map<string, unknown>(Object.entries({
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.scores': Array.from(scores),
    'tokenizer.ggml.token_type': types,
    'tokenizer.ggml.bos_token_id': 1,
    'tokenizer.ggml.eos_token_id': 2,
    'tokenizer.ggml.unknown_token_id': 0,
    ...extra,
  }));
}

const spm = trainSentencePiece(CORPUS, 120);
const reference = new Llama2cTokenizer(spm.pieces, Float32Array.from(spm.scores), 64);
const llama = ggufTokenizer(llamaMetadata(spm.pieces, spm.scores), 'test.gguf');

function sameAsLlama2c(ref: Llama2cTokenizer, tok: ReturnType<typeof ggufTokenizer>, strings: string[]) {
  for (const s of strings) {
    for (const bos of [false, true]) {
      const ids = ref.encode(s, { bos, eos: bos });
      assert.deepEqual(tok.encode(s, { bos, eos: bos }), ids, `encode ${JSON.stringify(s)} bos=${bos}`);
      assert.equal(tok.decode(ids), ref.decode(ids), `decode ${JSON.stringify(s)}`);
      ids.forEach((id, i) => assert.equal(tok.decodeToken(i > 0 ? ids[i - 1]! : null, id), ref.decodeToken(i > 0 ? ids[i - 1]! : null, id)));
    }
    assert.equal(tok.decode(tok.encode(s, { bos: true })), s, `round trip ${JSON.stringify(s)}`);
  }
}

test('llama: encodes and decodes exactly as the llama2.c tokenizer of the same vocabulary', () => {
  assert.ok(spm.pieces.length > 259 + 60, 'the trained vocabulary has merges');
  sameAsLlama2c(reference, llama, [...UNICODE_STRINGS, '', 'The fox', 'hello, world', 'über straße 12345']);
  // byte fallback really happened: "✓" is no piece, so its three UTF-8 bytes are
  assert.deepEqual(llama.encode('✓').slice(1), [0xe2 + 3, 0x9c + 3, 0x93 + 3]);
  assert.equal(llama.model, 'llama');
  assert.equal(llama.vocabSize, spm.pieces.length);
});

test('llama: BOS/EOS/stop ids come from the file, add_bos defaults on, control tokens decode to ""', () => {
  assert.equal(llama.bos, 1);
  assert.equal(llama.eos, 2);
  assert.equal(llama.addBos, true);
  assert.equal(llama.addEos, false);
  assert.deepEqual(llama.stopIds, [2]);
  assert.equal(llama.decode([1, 2, 0]), '');
  assert.equal(llama.decodeToken(null, 2), '');
  // ids as the file says, not as the names suggest
  const swapped = ggufTokenizer(llamaMetadata(spm.pieces, spm.scores, { 'tokenizer.ggml.bos_token_id': 2, 'tokenizer.ggml.eos_token_id': 1, 'tokenizer.ggml.add_bos_token': false }), 'x.gguf');
  assert.equal(swapped.bos, 2);
  assert.equal(swapped.eos, 1);
  assert.equal(swapped.addBos, false);
  // bigint ids (uint64 in the file) are accepted
  assert.equal(ggufTokenizer(llamaMetadata(spm.pieces, spm.scores, { 'tokenizer.ggml.eos_token_id': 2n }), 'x.gguf').eos, 2);
});

test('llama: control tokens in the text become their ids (unless special: false), with the space prefix after them', () => {
  const hi = llama.encode('hello');
  assert.deepEqual(llama.encode('<s>hello</s>'), [1, ...hi, 2]);
  assert.deepEqual(llama.encode('hello</s>hello'), [...hi, 2, ...hi]);
  const plain = llama.encode('<s>hello</s>', { special: false });
  assert.ok(!plain.includes(1) && !plain.includes(2));
  assert.equal(llama.decode(plain), ' <s>hello</s>');
});

test('llama: add_space_prefix false drops the dummy prefix', () => {
  const tok = ggufTokenizer(llamaMetadata(spm.pieces, spm.scores, { 'tokenizer.ggml.add_space_prefix': false }), 'x.gguf');
  const noPrefix = new Llama2cTokenizer(spm.pieces, Float32Array.from(spm.scores), 64, { spacePrefix: false });
  for (const s of ['hello', 'the fox', '日本']) {
    assert.deepEqual(tok.encode(s), noPrefix.encode(s));
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  assert.notDeepEqual(tok.encode('hello'), llama.encode('hello'));
});

test('llama: streaming emits multi-byte characters whole', () => {
  const ids = llama.encode('ok 🙂 日本', { bos: true });
  const stream = new TokenStream(llama);
  const text = ids.map((id) => stream.push(id)).join('') + stream.end();
  assert.equal(text, 'ok 🙂 日本');
});

// ---------------------------------------------------------------------------------------
// `gpt2`: byte-level BPE. The byte alphabet of GPT-2's bytes_to_unicode, merges trained here
// over GPT-2 pre-tokens, control tokens and one user-defined token at the end.

function bytesToUnicode(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : 256 + n++);
  return table;
}
const BYTE_CHAR = bytesToUnicode();
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const utf8 = new TextEncoder();
const byteLevel = (s: string) => Array.from(utf8.encode(s), (b) => BYTE_CHAR[b]!).join('');

function trainByteLevel(corpus: string, rounds: number): string[] {
  const words = (corpus.match(GPT2_SPLIT) ?? []).map((w) => Array.from(byteLevel(w)));
  const merges: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) {
      const key = `${w[i]} ${w[i + 1]}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const best = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
    if (best === undefined || best[1] < 2) break;
    merges.push(best[0]);
    const [l, r] = best[0].split(' ') as [string, string];
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) if (w[i] === l && w[i + 1] === r) w.splice(i, 2, l + r);
  }
  return merges;
}

const MERGES = trainByteLevel(CORPUS, 150);
const SPECIALS: [string, number][] = [['<|endoftext|>', TOKEN_TYPE.control], ['<|im_start|>', TOKEN_TYPE.control], ['<|im_end|>', TOKEN_TYPE.control], ['<tool_call>', TOKEN_TYPE.userDefined]];
const BPE_TOKENS = [...BYTE_CHAR, ...MERGES.map((m) => m.replace(' ', '')), ...SPECIALS.map((s) => s[0])];
const bpeId = (t: string) => BPE_TOKENS.indexOf(t);

function gpt2Metadata(pre: string | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'tokenizer.ggml.model': 'gpt2',
    ...(pre === undefined ? {} : { 'tokenizer.ggml.pre': pre }),
    'tokenizer.ggml.tokens': BPE_TOKENS,
    'tokenizer.ggml.token_type': [...BYTE_CHAR.map(() => 1), ...MERGES.map(() => 1), ...SPECIALS.map((s) => s[1])],
    'tokenizer.ggml.merges': MERGES,
    'tokenizer.ggml.bos_token_id': bpeId('<|endoftext|>'),
    'tokenizer.ggml.eos_token_id': bpeId('<|im_end|>'),
    ...extra,
  };
}

/** The tokenizer.json each model family ships, written out here on its own: the original regexes, (?i:) and all. */
function referenceJson(pre: string): object {
  const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
  const byteLevelPre = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
  const forPre: Record<string, { normalizer: object | null; pre_tokenizer: object; ignore_merges: boolean }> = {
    'llama-bpe': {
      normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [split("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"), byteLevelPre(false)] },
      ignore_merges: true,
    },
    'qwen2': {
      normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [split("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"), byteLevelPre(false)] },
      ignore_merges: false,
    },
    'smollm': { normalizer: null, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevelPre(true)] }, ignore_merges: false },
    'gpt-2': { normalizer: null, pre_tokenizer: byteLevelPre(true), ignore_merges: false },
  };
  const p = forPre[pre]!;
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: SPECIALS.map(([content, type]) => ({ id: bpeId(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type === TOKEN_TYPE.control })),
    normalizer: p.normalizer,
    pre_tokenizer: p.pre_tokenizer,
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: p.ignore_merges, vocab: Object.fromEntries(BPE_TOKENS.map((t, i) => [t, i])), merges: MERGES.map((m) => m.split(' ')) },
  };
}

/** Plain GPT-2 BPE: pre-tokenize, map bytes, merge the lowest-ranked pair until none is left. */
function naiveGpt2(text: string): number[] {
  const rank = new Map(MERGES.map((m, i) => [m, i]));
  return (text.match(GPT2_SPLIT) ?? []).flatMap((word) => {
    const parts = Array.from(byteLevel(word));
    for (;;) {
      let best = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rank.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && (best < 0 || r < rank.get(`${parts[best]} ${parts[best + 1]}`)!)) best = i;
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best]! + parts[best + 1]!);
    }
    return parts.map(bpeId);
  });
}

const PRES = ['llama-bpe', 'qwen2', 'smollm', 'gpt-2'];
const BPE_STRINGS = [...UNICODE_STRINGS, "They're here, we'LL see; it's HE'S", 'e\u0301 vs é', '<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n', 'a <tool_call> b'];

test('gpt2: every supported pre-tokenizer agrees with @huggingface/tokenizers on the model family\'s own tokenizer.json', () => {
  assert.ok(MERGES.length > 40, `${MERGES.length} merges`);
  for (const pre of PRES) {
    const tok = ggufTokenizer(gpt2Metadata(pre), `${pre}.gguf`);
    const ref = new HfTokenizerImpl(referenceJson(pre), {});
    for (const s of BPE_STRINGS) {
      assert.deepEqual(tok.encode(s), ref.encode(s, { add_special_tokens: false }).ids, `${pre}: ${JSON.stringify(s)}`);
    }
  }
});

test('gpt2: gpt-2 matches a plain BPE written here', () => {
  const tok = ggufTokenizer(gpt2Metadata('gpt-2'), 'gpt2.gguf');
  for (const s of UNICODE_STRINGS) assert.deepEqual(tok.encode(s), naiveGpt2(s), JSON.stringify(s));
  assert.ok(tok.encode('hello world').length < byteLevel('hello world').length, 'merges applied');
});

test('gpt2: text round-trips through encode and decode, emoji and all; streaming is exact', () => {
  for (const pre of PRES) {
    const tok = ggufTokenizer(gpt2Metadata(pre), `${pre}.gguf`);
    for (const s of UNICODE_STRINGS) {
      const ids = tok.encode(s);
      assert.equal(tok.decode(ids), s, `${pre}: ${JSON.stringify(s)}`);
      const stream = new TokenStream(tok);
      assert.equal(ids.map((id) => stream.push(id)).join('') + stream.end(), s);
    }
  }
});

test('gpt2: the pre-tokenizers split numbers as their models do', () => {
  const pieces = (pre: string) => {
    const tok = ggufTokenizer(gpt2Metadata(pre), `${pre}.gguf`);
    return tok.encode('12345').map((id) => tok.decode([id]));
  };
  assert.ok(pieces('llama-bpe').every((p) => p.length <= 3) && pieces('llama-bpe')[0]!.length === 3, pieces('llama-bpe').join('|'));
  assert.deepEqual(pieces('qwen2'), ['1', '2', '3', '4', '5']);
  assert.deepEqual(pieces('smollm'), ['1', '2', '3', '4', '5']);
  assert.deepEqual(pieces('gpt-2'), ['12345']);
  // Qwen2 normalizes to NFC first: a decomposed é encodes as the composed one
  const qwen = ggufTokenizer(gpt2Metadata('qwen2'), 'qwen.gguf');
  assert.deepEqual(qwen.encode('cafe\u0301'), qwen.encode('café'));
});

test('gpt2: control tokens are recognized in the text only when allowed; user-defined ones always', () => {
  const tok = ggufTokenizer(gpt2Metadata('qwen2'), 'qwen.gguf');
  const text = '<|im_start|>user\nhi<|im_end|>';
  const ids = tok.encode(text);
  assert.equal(ids[0], bpeId('<|im_start|>'));
  assert.equal(ids.at(-1), bpeId('<|im_end|>'));
  assert.equal(tok.decode(ids), 'user\nhi', 'control tokens decode to ""');
  const plain = tok.encode(text, { special: false });
  assert.ok(!plain.includes(bpeId('<|im_start|>')) && !plain.includes(bpeId('<|im_end|>')));
  assert.equal(tok.decode(plain), text);
  const tool = bpeId('<tool_call>');
  assert.ok(tok.encode('a <tool_call> b', { special: false }).includes(tool));
  assert.equal(tok.decode(tok.encode('a <tool_call> b')), 'a <tool_call> b');
  assert.equal(tok.decodeToken(null, bpeId('<|im_end|>')), '');
  assert.equal(tok.decode([]), '');
});

test('gpt2: BOS/EOS as the file says, add_bos by pre-tokenizer, stop ids from EOS, EOT and the template', () => {
  const qwen = ggufTokenizer(gpt2Metadata('qwen2'), 'qwen.gguf');
  assert.equal(qwen.bos, bpeId('<|endoftext|>'));
  assert.equal(qwen.eos, bpeId('<|im_end|>'));
  assert.equal(qwen.addBos, false);
  assert.equal(ggufTokenizer(gpt2Metadata('llama-bpe'), 'l3.gguf').addBos, true);
  assert.equal(ggufTokenizer(gpt2Metadata('llama-bpe', { 'tokenizer.ggml.add_bos_token': false }), 'l3.gguf').addBos, false);
  assert.deepEqual(qwen.stopIds, [bpeId('<|im_end|>')]);
  const eot = ggufTokenizer(gpt2Metadata('qwen2', {
    'tokenizer.ggml.eos_token_id': bpeId('<|endoftext|>'),
    'tokenizer.ggml.eot_token_id': bpeId('<|im_start|>'),
    'tokenizer.chat_template': "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}",
  }), 'qwen.gguf');
  assert.deepEqual(eot.stopIds, [bpeId('<|endoftext|>'), bpeId('<|im_start|>'), bpeId('<|im_end|>')]);
  assert.deepEqual(qwen.encode('hi', { bos: true, eos: true }), [qwen.bos, ...qwen.encode('hi'), qwen.eos]);
});

test('a 150k-token vocabulary loads (no argument spreading over the vocabulary)', () => {
  const tokens = [...BPE_TOKENS, ...Array.from({ length: 150_000 }, (_, i) => `zz${i}`)];
  const tok = ggufTokenizer(gpt2Metadata('qwen2', { 'tokenizer.ggml.tokens': tokens, 'tokenizer.ggml.token_type': tokens.map((t) => (t === '<|im_end|>' || t === '<|im_start|>' || t === '<|endoftext|>' ? 3 : 1)) }), 'big.gguf');
  assert.equal(tok.vocabSize, tokens.length);
  assert.equal(tok.decode(tok.encode('hello world')), 'hello world');
});

test('bad metadata is refused with the key named', () => {
  const fails = (m: GgufMetadata, re: RegExp) => assert.throws(() => ggufTokenizer(m, 'bad.gguf'), re);
  fails(gpt2Metadata('foo'), /bad\.gguf: GGUF metadata tokenizer\.ggml\.pre is "foo", a pre-tokenizer we do not know; supported: llama-bpe, .*qwen2.*smollm/);
  fails(gpt2Metadata(undefined), /tokenizer\.ggml\.pre is missing/);
  fails({}, /tokenizer\.ggml\.model is missing/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.model': 'rwkv' }), /tokenizer\.ggml\.model is "rwkv"/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.tokens': [1, 2, 3] }), /tokenizer\.ggml\.tokens\[0\] should be a string/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.token_type': [1, 2] }), /tokenizer\.ggml\.token_type has 2 entries/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.eos_token_id': 1e9 }), /tokenizer\.ggml\.eos_token_id = 1000000000 is outside the vocabulary/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.bos_token_id': 'x' }), /tokenizer\.ggml\.bos_token_id should be a token id/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.merges': ['a b c'] }), /tokenizer\.ggml\.merges\[0\] = "a b c" is not two tokens/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.merges': undefined }), /tokenizer\.ggml\.merges is missing/);
  fails(gpt2Metadata('qwen2', { 'tokenizer.ggml.tokens': ['a', 'a'], 'tokenizer.ggml.token_type': [1, 1], 'tokenizer.ggml.bos_token_id': 0, 'tokenizer.ggml.eos_token_id': 1 }), /has "a" twice/);
  fails(llamaMetadata(spm.pieces, spm.scores, { 'tokenizer.ggml.scores': undefined }), /tokenizer\.ggml\.scores is missing/);
  fails(llamaMetadata(spm.pieces, spm.scores, { 'tokenizer.ggml.add_bos_token': 'yes' }), /add_bos_token should be a boolean/);
});
