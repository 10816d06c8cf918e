import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Llama2cTokenizer, readTokenizer, TokenStream } from '../../models/tokenizers/index.js';

// A tokenizer.bin laid out as llama2.c's export writes it: specials, 256 byte pieces, merges.
const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
const merges: [string, number][] = [
  [' ', -10], ['h', -11], ['e', -12], ['l', -13], ['o', -14], ['é', -15],
  [' h', -5], ['he', -3], ['ll', -1], [' he', -4], ['llo', -2], [' hello', -6], ['ab', -7], ['bc', -7], ['a', -20], ['b', -21], ['c', -22],
];
const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${hex(b)}>`), ...merges.map((m) => m[0])];
const scores = [0, 0, 0, ...Array.from({ length: 256 }, () => 0), ...merges.map((m) => m[1])];
const tok = Llama2cTokenizer.parse(Llama2cTokenizer.serialize(pieces, scores));
const id = (piece: string) => pieces.indexOf(piece);

test('tokenizer.bin parses: vocabulary size, max token length, scores', () => {
  assert.equal(tok.vocabSize, pieces.length);
  assert.equal(tok.maxTokenLength, 6);
  assert.equal(tok.scores[id('ll')], -1);
  assert.equal(tok.bos, 1);
  assert.equal(tok.eos, 2);
});

test('encode applies the dummy prefix and best-score merges until none applies', () => {
  // " hello": ll(-1) first, then llo(-2), he(-3), " he"(-4), " hello"(-6)
  assert.deepEqual(tok.encode('hello'), [id(' hello')]);
  assert.deepEqual(tok.encode('hello', { bos: true, eos: true }), [1, id(' hello'), 2]);
  assert.deepEqual(tok.encode(''), []);
  assert.deepEqual(tok.encode('', { bos: true }), [1]);
  // equal scores: the leftmost pair merges first ("ab" before "bc")
  assert.deepEqual(tok.encode('abc'), [id(' '), id('ab'), id('c')]);
  // a piece that is one multi-byte code point is used as is
  assert.deepEqual(tok.encode('é'), [id(' '), id('é')]);
});

test('code points without a piece fall back to their UTF-8 bytes at id byte+3', () => {
  assert.deepEqual(tok.encode('hi✓'), [id(' h'), 0x69 + 3, 0xe2 + 3, 0x9c + 3, 0x93 + 3]);
});

test('decode strips the space after BOS, turns <0xHH> into bytes, and drops specials', () => {
  const ids = tok.encode('hi✓ hello', { bos: true, eos: true });
  assert.equal(tok.decode(ids), 'hi✓ hello');
  assert.equal(tok.decode([id(' hello')]), ' hello');
  assert.equal(tok.decodeToken(1, id(' hello')), 'hello');
  assert.equal(tok.decodeToken(id('ll'), id(' hello')), ' hello');
  assert.equal(tok.decodeToken(null, 0x41 + 3), 'A');
  assert.equal(tok.decodeToken(null, 2), '');
  assert.throws(() => tok.decode([pieces.length]), /outside the vocabulary/);
});

test('a token stream emits a multi-byte character once all its bytes arrived', () => {
  const stream = new TokenStream(tok);
  const out = [1, id(' h'), 0x69 + 3, 0xe2 + 3, 0x9c + 3, 0x93 + 3, id(' hello')].map((i) => stream.push(i));
  assert.deepEqual(out, ['', 'h', 'i', '', '', '✓', ' hello']);
  const cut = new TokenStream(tok);
  cut.push(0xe2 + 3);
  assert.equal(cut.end(), '\uFFFD');
});

test('malformed tokenizer.bin files are refused', () => {
  const good = Llama2cTokenizer.serialize(pieces, scores);
  assert.throws(() => Llama2cTokenizer.parse(good.subarray(0, good.length - 3)), /cut short|has length/);
  assert.throws(() => Llama2cTokenizer.parse(Llama2cTokenizer.serialize(pieces.slice(0, 100), scores)), /only 100 entries/);
  assert.throws(() => Llama2cTokenizer.parse(new Uint8Array([0, 0, 0, 0])), /max_token_length 0/);
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));
  try {
    writeFileSync(join(dir, 'tokenizer.bin'), good);
    assert.deepEqual(readTokenizer(join(dir, 'tokenizer.bin'), 'llama2c').encode('hello'), [id(' hello')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
