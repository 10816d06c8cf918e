import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectTokenizerKind, HfTokenizer, readTokenizer, TokenStream } from '../../models/tokenizers/index.js';

// A small tokenizer.json in the Llama 2 layout: byte-fallback BPE over "▁"-joined text.
const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
const words = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '▁h', 'll', '▁he', 'llo', '▁hello', '▁w', 'or', '▁wor', '▁world'];
const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
for (let b = 0; b < 256; b++) vocab[`<0x${hex(b)}>`] = 3 + b;
words.forEach((w, i) => { vocab[w] = 259 + i; });
const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const tokenizerJson = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
  normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ],
  },
  model: {
    type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab,
    merges: ['▁ h', 'l l', '▁h e', 'll o', '▁he llo', '▁ w', 'o r', '▁w or'],
  },
};
const tok = HfTokenizer.parse(JSON.stringify(tokenizerJson), undefined);

test('tokenizer.json loads offline: vocabulary size and special ids', () => {
  assert.equal(tok.vocabSize, 259 + words.length);
  assert.equal(tok.bos, 1);
  assert.equal(tok.eos, 2);
});

test('encode merges by rank and follows the bos/eos options, not the template', () => {
  assert.deepEqual(tok.encode('hello'), [vocab['▁hello']]);
  assert.deepEqual(tok.encode('hello hello', { bos: true }), [1, vocab['▁hello'], vocab['▁hello']]);
  assert.deepEqual(tok.encode('hello', { eos: true }), [vocab['▁hello'], 2]);
  // "world": "▁wor" + "l" + "d" (no merge continues "▁wor")
  assert.deepEqual(tok.encode('world'), [vocab['▁wor'], vocab['l'], vocab['d']]);
});

test('unknown characters fall back to UTF-8 byte tokens and decode back', () => {
  const ids = tok.encode('hello ✓', { bos: true });
  assert.deepEqual(ids.slice(-3), [0xe2 + 3, 0x9c + 3, 0x93 + 3]);
  assert.equal(tok.decode(ids), 'hello ✓');
});

test('decodeToken and the token stream reproduce the whole decode', () => {
  const ids = tok.encode('hello hello world', { bos: true, eos: true });
  assert.equal(tok.decode(ids), 'hello hello world');
  assert.equal(tok.decodeToken(null, vocab['▁hello']!), 'hello');
  assert.equal(tok.decodeToken(vocab['▁hello']!, vocab['▁hello']!), ' hello');
  assert.equal(tok.decodeToken(vocab['▁hello']!, 2), '');
  const stream = new TokenStream(tok);
  const streamed = [...ids, ...tok.encode('✓')].map((id) => stream.push(id)).join('');
  assert.equal(streamed, 'hello hello world ✓');
});

test('tokenizer_config.json next to tokenizer.json names BOS/EOS; a file without them is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hf-tok-'));
  try {
    const file = join(dir, 'tokenizer.json');
    const renamed = { ...tokenizerJson, added_tokens: [special(0, '<unk>'), special(1, '[BEGIN]'), special(2, '[END]')] };
    const v2: Record<string, number> = { ...vocab, '[BEGIN]': 1, '[END]': 2 };
    delete v2['<s>'];
    delete v2['</s>'];
    writeFileSync(file, JSON.stringify({ ...renamed, post_processor: null, model: { ...renamed.model, vocab: v2 } }));
    assert.equal(detectTokenizerKind(file), 'hf');
    assert.throws(() => readTokenizer(file, 'hf'), /no BOS token found/);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '[BEGIN]', eos_token: { content: '[END]' } }));
    const t = readTokenizer(file, 'hf');
    assert.equal(t.bos, 1);
    assert.equal(t.eos, 2);
    assert.equal(t.decode(t.encode('hello', { bos: true, eos: true })), 'hello');
    writeFileSync(file, JSON.stringify({ version: '1.0' }));
    assert.throws(() => readTokenizer(file, 'hf'), /no "model" section/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
