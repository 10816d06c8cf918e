import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readLlama2c } from '../../models/llama2c.js';
import { writeShards } from '../../models/shards.js';
import { CharTokenizer, detectTokenizerKind, Llama2cTokenizer, loadTokenizer, TokenStream } from '../../models/tokenizers/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');
const vocab = { kind: 'heliomesh-char', version: 1, unk: 0, bos: 1, eos: 2, chars: ['\n', ' ', '!', 'a', 'b', 'é', '🌞'] };
const tok = CharTokenizer.parse(JSON.stringify(vocab));

test('char vocabulary: ids are index + 3, unknown characters are unk', () => {
  assert.equal(tok.vocabSize, 10);
  assert.deepEqual(tok.encode('ab a!\n'), [6, 7, 4, 6, 5, 3]);
  assert.deepEqual(tok.encode('abc', { bos: true, eos: true }), [1, 6, 7, 0, 2]);
  // code points, not UTF-16 units
  assert.deepEqual(tok.encode('é🌞'), [8, 9]);
});

test('char vocabulary: specials decode to "", out-of-range ids are refused', () => {
  assert.equal(tok.decode([1, 6, 0, 7, 2, 9]), 'ab🌞');
  assert.equal(tok.decodeToken(6, 4), ' ');
  assert.equal(tok.decodeToken(null, 1), '');
  assert.throws(() => tok.decode([10]), /outside the character vocabulary/);
  const stream = new TokenStream(tok);
  assert.equal([1, 8, 9, 2].map((id) => stream.push(id)).join(''), 'é🌞');
});

test('malformed charvocab.json files are refused with the reason', () => {
  assert.throws(() => CharTokenizer.parse(JSON.stringify({ ...vocab, chars: ['a', 'a'] })), /listed twice/);
  assert.throws(() => CharTokenizer.parse(JSON.stringify({ ...vocab, chars: ['ab'] })), /one character/);
  assert.throws(() => CharTokenizer.parse(JSON.stringify({ ...vocab, bos: 5 })), /bos/);
  assert.throws(() => CharTokenizer.parse('[1'), /not valid JSON/);
});

test('a split with --tokenizer records it in the manifest, and loadTokenizer picks it by kind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tok-load-'));
  try {
    const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
    const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${hex(b)}>`), ' ', 'a'];
    const files = {
      char: join(dir, 'charvocab.json'),
      bin: join(dir, 'tok.bin'),
    };
    writeFileSync(files.char, JSON.stringify(vocab));
    writeFileSync(files.bin, Llama2cTokenizer.serialize(pieces, pieces.map(() => 0)));
    assert.equal(detectTokenizerKind(files.char), 'heliomesh-char');
    assert.equal(detectTokenizerKind(files.bin), 'llama2c');
    writeFileSync(join(dir, 'other.json'), '{"hello": 1}');
    assert.throws(() => detectTokenizerKind(join(dir, 'other.json')), /neither charvocab.json/);
    const model = readLlama2c(stories, { range: { from: 0, to: 0 } });
    const out = join(dir, 'shards');
    const manifest = writeShards({ ...model.config, nLayers: 5 }, (part) => readLlama2c(stories, part), {
      groups: 1, outDir: out, dtype: 'f16', tokenizer: { kind: 'heliomesh-char', path: files.char },
    });
    assert.deepEqual(manifest.tokenizer, { kind: 'heliomesh-char', file: 'charvocab.json' });
    const loaded = loadTokenizer(out, manifest.tokenizer!);
    assert.equal(loaded.kind, 'heliomesh-char');
    assert.deepEqual(loaded.encode('ab'), [6, 7]);
    assert.equal(loadTokenizer(dir, { kind: 'llama2c', file: 'tok.bin' }).decode([1, 260, 259]), 'a ');
    assert.throws(() => loadTokenizer(dir, { kind: 'hf', file: 'missing.json' }), /not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
