import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, parameterCount } from '../../models/checkpoint.js';
import { writeHfLlama } from '../../models/hf-llama.js';
import { readLlama2c } from '../../models/llama2c.js';
import { referenceLogits } from '../../models/reference.js';
import { readManifest, readShards, splitRanges, writeShards } from '../../models/shards.js';
import { dequantize, type WeightMatrix } from '../../models/weights.js';

const floats = (v: Float32Array | WeightMatrix): Float32Array => (v instanceof Float32Array ? v : dequantize(v));

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');
const model = readLlama2c(stories);

function withTmp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'shards-'));
  try { fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

const split = (outDir: string, dtype: 'f32' | 'f16', groups = 3) =>
  writeShards(model.config, (part) => readLlama2c(stories, part), { groups, outDir, dtype });

test('layers are cut into contiguous ranges as equal as possible', () => {
  assert.deepEqual(splitRanges(5, 3), [{ from: 0, to: 2 }, { from: 2, to: 4 }, { from: 4, to: 5 }]);
  assert.deepEqual(splitRanges(5, 1), [{ from: 0, to: 5 }]);
  assert.deepEqual(splitRanges(5, 5).map((r) => r.to - r.from), [1, 1, 1, 1, 1]);
  assert.deepEqual(splitRanges(22, 4).map((r) => r.to - r.from), [6, 6, 5, 5]);
  assert.throws(() => splitRanges(5, 6), /between 1 and 5/);
  assert.throws(() => splitRanges(5, 0), /between 1 and 5/);
});

test('stories260K split into 3 f32 shards reloads exactly, with a manifest that describes it', () => {
  withTmp((dir) => {
    const progress: number[] = [];
    const manifest = writeShards(model.config, (part) => readLlama2c(stories, part), {
      groups: 3, outDir: dir, dtype: 'f32', onProgress: (done, total) => progress.push(done / total),
    });
    assert.deepEqual(progress.at(-1), 1);
    assert.equal(progress.length, 6);
    const onDisk = readManifest(dir);
    assert.deepEqual(onDisk, manifest);
    assert.equal(onDisk.version, 2);
    assert.ok([...onDisk.blocks, onDisk.head].every((e) => e.file.endsWith('.gguf')), 'shard files are GGUF');
    assert.deepEqual(onDisk.architecture, model.config);
    assert.equal(onDisk.tokenizer, null);
    assert.deepEqual(onDisk.blocks.map((b) => [b.from, b.to, b.dtype]), [[0, 2, 'f32'], [2, 4, 'f32'], [4, 5, 'f32']]);
    for (const entry of [...onDisk.blocks, onDisk.head]) {
      const bytes = readFileSync(join(dir, entry.file));
      assert.equal(bytes.length, entry.bytes);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), entry.sha256);
    }
    const back = readShards(dir);
    assert.deepEqual(back.config, model.config);
    assert.deepEqual(back.layers, model.layers);
    assert.deepEqual(back.head!.tokenEmbedding, model.head!.tokenEmbedding);
    assert.deepEqual(back.head!.finalNorm, model.head!.finalNorm);
    assert.equal(back.head!.classifier, back.head!.tokenEmbedding);
    const mid = readShards(dir, { range: { from: 2, to: 4 }, head: false });
    assert.deepEqual(mid.layers, model.layers.slice(2, 4));
    assert.equal(mid.head, undefined);
    // an f32 split stores 4 bytes per parameter plus small headers
    const total = [...onDisk.blocks, onDisk.head].reduce((s, e) => s + e.bytes, 0);
    assert.ok(total >= parameterCount(model.config) * 4 && total < parameterCount(model.config) * 4 + 20_000, `${total} bytes`);
  });
});

test('an f16 split reloads within f16 rounding and is half the size', () => {
  withTmp((dir) => {
    const m16 = split(dir, 'f16');
    assert.ok(m16.blocks.every((b) => b.dtype === 'f16') && m16.head.dtype === 'f16');
    const back = readShards(dir);
    back.layers.forEach((layer, l) => {
      for (const [kind, stored] of Object.entries(layer) as [string, Float32Array | WeightMatrix][]) {
        const values = floats(stored);
        const want = floats(model.layers[l]![kind as keyof typeof layer]!);
        for (let i = 0; i < values.length; i++) {
          const tol = Math.max(Math.abs(want[i]!) * 2 ** -11, 2 ** -25);
          assert.ok(Math.abs(values[i]! - want[i]!) <= tol, `layer ${l} ${kind}[${i}]: ${values[i]} vs ${want[i]}`);
        }
      }
    });
    const f16Bytes = m16.blocks[0]!.bytes;
    withTmp((dir32) => {
      const f32Bytes = split(dir32, 'f32').blocks[0]!.bytes;
      assert.ok(Math.abs(f16Bytes / f32Bytes - 0.5) < 0.01, `${f16Bytes} vs ${f32Bytes}`);
    });
    // f16 rounding keeps the model's behaviour: the greedy next token after a prompt agrees
    const tokens = [1, 300, 42, 7];
    const a = referenceLogits(model, tokens);
    const b = referenceLogits(back, tokens);
    for (let p = 0; p < tokens.length; p++) {
      const maxDiff = a[p]!.reduce((m, v, i) => Math.max(m, Math.abs(v - b[p]![i]!)), 0);
      assert.ok(maxDiff < 0.05, `position ${p}: logits differ by up to ${maxDiff}`);
    }
  });
});

test('a corrupted shard is refused, naming the file and both hashes; other shards still load', () => {
  withTmp((dir) => {
    const manifest = split(dir, 'f32');
    const first = manifest.blocks[0]!;
    const path = join(dir, first.file);
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x40;
    writeFileSync(path, bytes);
    const actual = createHash('sha256').update(bytes).digest('hex');
    assert.throws(() => readShards(dir, { range: { from: 0, to: 2 }, head: false }), (err: Error) => {
      assert.ok(err.message.includes(first.file));
      assert.ok(err.message.includes(first.sha256));
      assert.ok(err.message.includes(actual));
      return true;
    });
    // an agent holding [2, 4) and the gateway never read the corrupt file
    assert.deepEqual(readShards(dir, { range: { from: 2, to: 4 }, head: true }).layers, model.layers.slice(2, 4));
    rmSync(join(dir, manifest.head.file));
    assert.throws(() => readShards(dir, { range: { from: 0, to: 0 } }), /missing/);
  });
});

test('a malformed manifest is refused with the reason', () => {
  withTmp((dir) => {
    const manifest = split(dir, 'f32');
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, blocks: manifest.blocks.slice(1) }));
    assert.throws(() => readManifest(dir), /contiguous from 0/);
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, head: { ...manifest.head, file: '../x' } }));
    assert.throws(() => readManifest(dir), /next to the manifest/);
    assert.throws(() => readManifest(join(dir, 'nope')), /no manifest.json/);
  });
});

test('llama2.c -> HF safetensors -> shards keeps the reference logits', () => {
  withTmp((dir) => {
    const hfDir = join(dir, 'hf');
    writeHfLlama(hfDir, model, 'f32');
    const hf = openCheckpoint(hfDir);
    assert.equal(hf.kind, 'hf');
    assert.deepEqual(hf.config, model.config);
    const shardDir = join(dir, 'shards');
    writeShards(hf.config, hf.read, { groups: 2, outDir: shardDir, dtype: 'f32' });
    const shards = openCheckpoint(shardDir);
    assert.equal(shards.kind, 'shards');
    const tokens = [1, 461, 401, 13, 255];
    assert.deepEqual(referenceLogits(shards.read(), tokens), referenceLogits(model, tokens));
    assert.equal(openCheckpoint(join(shardDir, 'manifest.json')).kind, 'shards');
    assert.equal(openCheckpoint(stories).kind, 'llama2c');
    assert.throws(() => openCheckpoint(join(dir, 'missing')), /no such file/);
  });
});

test('parameter count of stories260K matches its file', () => {
  // file = header + 4 bytes per parameter + the freq_cis tables (seq_len * head_size floats)
  const headSize = model.config.dim / model.config.nHeads;
  assert.equal(28 + 4 * (parameterCount(model.config) + model.config.seqLen * headSize), 1056540);
});
