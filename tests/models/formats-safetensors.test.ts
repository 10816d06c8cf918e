import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHfConfig, permuteRotary, permuteRotaryVector, readHfLlama, writeHfLlama } from '../../models/hf-llama.js';
import { dequantize, f32Matrix } from '../../models/weights.js';
import { readLlama2c } from '../../models/llama2c.js';
import { applyRope, referenceLogits } from '../../models/reference.js';
import { decodeFloats, encodeFloats } from '../../models/f16.js';
import { SafetensorsFile, writeSafetensors } from '../../models/safetensors.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const stories = join(root, '..', 'shared', 'models', 'stories260K.bin');
const model = readLlama2c(stories);

function withTmp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  try { fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

/** f16 keeps 11 significant bits: relative error <= 2^-11, absolute <= 2^-25 below the normal range. */
function assertF16Close(a: Float32Array, b: Float32Array): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    const tol = Math.max(Math.abs(a[i]!) * 2 ** -11, 2 ** -25);
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `index ${i}: ${a[i]} vs ${b[i]}`);
  }
}

test('HF q/k permutation: rows of a head are reordered half-split, and undo inverts it', () => {
  // one head of size 4, 1 column: ours [r0 r1 r2 r3] -> HF [r0 r2 r1 r3]
  const ours = Float32Array.from([10, 11, 12, 13]);
  assert.deepEqual(Array.from(permuteRotaryVector(ours, 1, 4, false)), [10, 12, 11, 13]);
  const w = model.layers[1]!.wk;
  const back = permuteRotary(permuteRotary(w, 4, 8, false), 4, 8, true);
  assert.deepEqual(back, w);
});

test("HF's half-split RoPE on permuted rows equals interleaved RoPE on ours", () => {
  const headSize = 8;
  const nHeads = 2;
  const q = Float64Array.from({ length: nHeads * headSize }, (_, i) => Math.sin(i + 1));
  const pos = 5;
  const interleaved = Float64Array.from(q);
  applyRope(interleaved, pos, headSize, 10000);
  // HF rotate_half: out = x*cos + cat(-x2, x1)*sin with frequency index i for both halves.
  const hfIn = permuteRotaryVector(Float32Array.from(q), nHeads, headSize, false);
  const half = headSize / 2;
  const hfOut = new Float64Array(q.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(10000, (-2 * i) / headSize);
      const x1 = hfIn[h * headSize + i]!;
      const x2 = hfIn[h * headSize + half + i]!;
      hfOut[h * headSize + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
      hfOut[h * headSize + half + i] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
    }
  }
  const unpermuted = permuteRotaryVector(Float32Array.from(hfOut), nHeads, headSize, true);
  for (let i = 0; i < q.length; i++) assert.ok(Math.abs(unpermuted[i]! - interleaved[i]!) < 1e-6);
});

test('stories260K -> HF safetensors (f32) -> reader gives identical weights and logits', () => {
  withTmp((dir) => {
    writeHfLlama(dir, model, 'f32');
    const back = readHfLlama(dir);
    assert.deepEqual(back.config, model.config);
    assert.deepEqual(back.layers, model.layers);
    assert.deepEqual(back.head!.tokenEmbedding, model.head!.tokenEmbedding);
    assert.equal(back.head!.classifier, back.head!.tokenEmbedding);
    const tokens = [1, 200, 33, 401];
    assert.deepEqual(referenceLogits(back, tokens), referenceLogits(model, tokens));
    const part = readHfLlama(dir, { range: { from: 3, to: 5 }, head: false });
    assert.equal(part.head, undefined);
    assert.deepEqual(part.layers, model.layers.slice(3, 5));
    // the HF file really holds permuted rows: q_proj differs from our wq
    const st = new SafetensorsFile(join(dir, 'model.safetensors'));
    try {
      assert.notDeepEqual(st.read('model.layers.0.self_attn.q_proj.weight'), dequantize(model.layers[0]!.wq));
      assert.deepEqual(st.read('model.layers.0.self_attn.v_proj.weight'), dequantize(model.layers[0]!.wv));
      assert.equal(st.metadata.format, 'pt');
    } finally {
      st.close();
    }
  });
});

test('f16 safetensors round trip is within f16 rounding', () => {
  withTmp((dir) => {
    writeHfLlama(dir, model, 'f16');
    const back = readHfLlama(dir);
    assert.equal(back.layers[2]!.w2.type, 'f16', 'f16 weights stay f16 in memory');
    assertF16Close(dequantize(back.layers[2]!.w2), dequantize(model.layers[2]!.w2));
    assertF16Close(dequantize(back.head!.tokenEmbedding), dequantize(model.head!.tokenEmbedding));
    assert.notDeepEqual(dequantize(back.layers[2]!.w2), dequantize(model.layers[2]!.w2), 'f16 really rounds');
  });
});

test('bf16 tensors decode as the upper half of float32', () => {
  withTmp((dir) => {
    const values = [1.5, -2.25, 0.1, 3e38, -0];
    const f32 = Float32Array.from(values);
    const bits = new Uint32Array(f32.buffer);
    const data = Buffer.alloc(values.length * 2);
    bits.forEach((b, i) => data.writeUInt16LE(b >>> 16, i * 2));
    const header = Buffer.from(JSON.stringify({ t: { dtype: 'BF16', shape: [5], data_offsets: [0, 10] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const file = join(dir, 'bf16.safetensors');
    writeFileSync(file, Buffer.concat([len, header, data]));
    const st = new SafetensorsFile(file);
    const out = st.read('t', [5]);
    st.close();
    assert.equal(out[0], 1.5);
    assert.equal(out[1], -2.25);
    assert.ok(Math.abs(out[2]! - 0.1) < 0.1 * 2 ** -7 && out[2] !== Math.fround(0.1), 'bf16 truncates 0.1 to 8 significant bits');
    assert.ok(Math.abs(out[3]! - 3e38) / 3e38 < 2 ** -7);
    assert.ok(Object.is(out[4], -0));
  });
});

test('a separate lm_head is read, and a missing one is reported', () => {
  withTmp((dir) => {
    const untied = { ...model, config: { ...model.config, sharedClassifier: false }, head: { ...model.head!, classifier: f32Matrix(dequantize(model.head!.tokenEmbedding).map((v) => -v), model.config.vocabSize, model.config.dim) } };
    writeHfLlama(dir, untied, 'f32');
    const back = readHfLlama(dir);
    assert.equal(back.config.sharedClassifier, false);
    assert.deepEqual(back.head!.classifier, untied.head.classifier);
    // drop lm_head while config.json still says untied
    const st = new SafetensorsFile(join(dir, 'model.safetensors'));
    const names = [...st.tensors.keys()].filter((n) => n !== 'lm_head.weight');
    const tensors = names.map((name) => ({ name, shape: st.tensors.get(name)!.shape, data: st.read(name) }));
    st.close();
    writeSafetensors(join(dir, 'model.safetensors'), tensors, 'f32');
    assert.throws(() => readHfLlama(dir), /tie_word_embeddings is false but there is no lm_head.weight/);
  });
});

test('config.json: defaults, and refusals a user can act on', () => {
  const base = { hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, vocab_size: 512, max_position_embeddings: 512 };
  const { config, tied } = parseHfConfig(JSON.stringify(base));
  assert.equal(config.nKvHeads, 8);
  assert.equal(config.ropeTheta, 10000);
  assert.equal(tied, undefined);
  assert.equal(parseHfConfig(JSON.stringify({ ...base, num_key_value_heads: 4, rope_theta: 500000, rms_norm_eps: 1e-5 })).config.ropeTheta, 500000);
  assert.throws(() => parseHfConfig(JSON.stringify({ ...base, rope_scaling: { type: 'llama3' } })), /rope_scaling/);
  assert.throws(() => parseHfConfig(JSON.stringify({ ...base, model_type: 'gpt2' })), /model_type is 'gpt2'/);
  assert.throws(() => parseHfConfig(JSON.stringify({ hidden_size: 64 })), /intermediate_size/);
  assert.throws(() => parseHfConfig('{'), /not valid JSON/);
});

test('malformed safetensors files are refused with the reason', () => {
  withTmp((dir) => {
    const file = join(dir, 'bad.safetensors');
    writeFileSync(file, Buffer.from([255, 255, 255, 255, 0, 0, 0, 0, 1, 2]));
    assert.throws(() => new SafetensorsFile(file), /not a safetensors file/);
    const header = Buffer.from(JSON.stringify({ t: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(file, Buffer.concat([len, header, Buffer.alloc(16)]));
    assert.throws(() => new SafetensorsFile(file), /do not fit its shape/);
    const i8 = Buffer.from(JSON.stringify({ t: { dtype: 'I8', shape: [1], data_offsets: [0, 1] } }));
    len.writeBigUInt64LE(BigInt(i8.length));
    writeFileSync(file, Buffer.concat([len, i8, Buffer.alloc(1)]));
    assert.throws(() => new SafetensorsFile(file), /only F32, F16 and BF16/);
  });
});

test('f16 encoding rounds to nearest even and decodes the special values', () => {
  const values = Float32Array.from([1 / 3, 65504, 65520, -(2 ** -24), 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, NaN]);
  const bytes = encodeFloats(values, 'f16');
  const bits = Array.from({ length: values.length }, (_, i) => bytes[2 * i]! | (bytes[2 * i + 1]! << 8));
  // 1/3 -> 0x3555; max normal 65504 -> 0x7BFF; 65520 rounds up to +Inf 0x7C00; -2^-24 is the
  // smallest subnormal 0x8001; 2^-26 underflows to +0; ties go to the even mantissa.
  assert.deepEqual(bits.slice(0, 7), [0x3555, 0x7bff, 0x7c00, 0x8001, 0x0000, 0x3c00, 0x3c02]);
  const back = decodeFloats(bytes, 'f16', values.length);
  assert.equal(back[0], 0.333251953125);
  assert.equal(back[2], Infinity);
  assert.equal(back[3], -(2 ** -24));
  assert.ok(Number.isNaN(back[7]));
  // an odd byte offset (possible in a foreign file) decodes the same
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  assert.deepEqual(decodeFloats(shifted.subarray(1), 'f16', values.length), back);
});
