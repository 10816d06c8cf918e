import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerModelFiles } from '../../cli/model-files.js';
import { openCheckpoint } from '../../models/checkpoint.js';
import { readHfLlama, writeHfLlama } from '../../models/hf-llama.js';
import { readLlama2c } from '../../models/llama2c.js';
import { dequantize } from '../../models/weights.js';
import { readManifest, readShards } from '../../models/shards.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');

/** Runs `model <args>` through commander, returning what it printed. */
async function run(...args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerModelFiles(program.command('model').exitOverride());
  const lines: string[] = [];
  const log = console.log;
  console.log = (...parts: unknown[]) => { lines.push(parts.join(' ')); };
  try {
    await program.parseAsync(['model', ...args], { from: 'user' });
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

test('model split writes a loadable shard folder, and model info describes it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-split-'));
  try {
    const vocab = join(dir, 'charvocab.json');
    writeFileSync(vocab, JSON.stringify({ kind: 'heliomesh-char', version: 1, unk: 0, bos: 1, eos: 2, chars: ['a', 'b'] }));
    const out = join(dir, 'shards');
    const printed = await run('split', stories, '--groups', '2', '--out', out, '--dtype', 'f32', '--tokenizer', vocab);
    assert.match(printed, /wrote 2 block shard\(s\) \+ head/);
    assert.deepEqual(readdirSync(out).sort(), ['blocks-0-3.gguf', 'blocks-3-5.gguf', 'charvocab.json', 'head.gguf', 'manifest.json']);
    assert.deepEqual(readShards(out).layers, readLlama2c(stories).layers);
    const info = await run('info', join(out, 'manifest.json'));
    assert.match(info, /heliomesh shard folder/);
    assert.match(info, /dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads/);
    assert.match(info, /parameters: 260\.0K \(260032\)/);
    assert.match(info, /layers \[0, 3\).*f32/);
    assert.match(info, /tokenizer: heliomesh-char \(charvocab\.json\), 5 ids, BOS 1, EOS 2/);
    assert.equal(readManifest(out).tokenizer?.kind, 'heliomesh-char');
    await assert.rejects(run('split', stories, '--groups', '2', '--out', out), /is not empty/);
    await assert.rejects(run('split', stories, '--groups', '7', '--out', join(dir, 'x')), /between 1 and 5/);
    await assert.rejects(run('split', stories, '--groups', '2', '--out', join(dir, 'y'), '--dtype', 'f8'), /--dtype must be/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('model info on a llama2.c checkpoint', async () => {
  const info = await run('info', stories);
  assert.match(info, /llama2\.c checkpoint/);
  assert.match(info, /vocab 512, seq_len 512/);
  assert.match(info, /tensor types: f32/);
  assert.match(info, /bytes per layer in f32: 177\.5 KiB, f16 89\.0 KiB, q8_0 57\.6 KiB, q4_0 40\.8 KiB/);
  await assert.rejects(run('info', join(tmpdir(), 'no-such-model.bin')), /no such file/);
});

test('model quantize writes GGUF from a Hugging Face folder and from a GGUF file; info shows types and bytes per stage', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-quantize-'));
  try {
    const model = readLlama2c(stories);
    const hf = join(dir, 'hf');
    writeHfLlama(hf, model, 'f16');
    const f16 = join(dir, 'stories.F16.gguf');
    assert.match(await run('quantize', hf, '--type', 'f16', '--out', f16), /wrote .*stories\.F16\.gguf .*f16/);
    // f16 in the folder, f16 in the file: the values are the f16 rounding of the originals, both ways
    const back = openCheckpoint(f16).read();
    assert.equal(back.layers[1]!.wq.type, 'f16');
    assert.deepEqual(dequantize(back.layers[1]!.wq), dequantize(readHfLlama(hf).layers[1]!.wq));
    const q4 = join(dir, 'stories.Q4_0.gguf');
    const printed = await run('quantize', f16, '--type', 'q4_0', '--out', q4);
    assert.match(printed, /5 matrices kept as f16: their rows are not whole q4_0 blocks of 32/);
    const info = await run('info', q4);
    assert.match(info, /GGUF file/);
    assert.match(info, /tensor types: .*Q4_0/);
    assert.match(info, /3 group\(s\): .* \+ .* \+ .*, head /);
    await assert.rejects(run('quantize', f16, '--type', 'q5_1', '--out', join(dir, 'x.gguf')), /--type must be one of/);
    await assert.rejects(run('quantize', f16, '--type', 'q8_0', '--out', join(dir, 'x.bin')), /--out must name a \.gguf file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
