// Q4_K and Q6_K: dequantization checked on hand-built blocks (values computed here from the
// block layout of ggml-common.h, independently of models/kquant.ts), conversion to Q8_0 and
// its measured cost, and GGUF files holding k-quant tensors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf } from '@huggingface/gguf';
import { decodeFloats, encodeFloats } from '../../models/f16.js';
import { GgufFile } from '../../models/gguf.js';
import { readGgufLlama } from '../../models/gguf-llama.js';
import { ggufLlamaMetadata } from '../../models/gguf-llama-write.js';
import { writeGguf, type GgufTensorSpec } from '../../models/gguf-write.js';
import {
  KQUANT_BLOCK, dequantizeKQuant, dequantizeQ4K, dequantizeQ6K, halfToFloat, kquantRowsToQ8_0,
  kquantToQ8_0,
} from '../../models/kquant.js';
import type { LlamaConfig } from '../../models/types.js';
import { dequantize, quantize } from '../../models/weights.js';
import { seededValues } from '../support/random.js';


function f16Bits(x: number): number {
  const e = encodeFloats(Float32Array.of(x), 'f16');
  return e[0]! | (e[1]! << 8);
}

/**
 * Packs one Q4_K block from its parts, as ggml-common.h lays it out: d, dmin (f16), the
 * 8 six-bit scales and mins in 12 bytes, and 256 four-bit quants: value v of sub-block
 * j = v / 32 sits in chunk c = j / 2 of 64 values, low nibble for even j, high for odd, at
 * qs[32c + v % 32].
 */
function packQ4K(d: number, dmin: number, sc: number[], m: number[], q: number[]): Uint8Array {
  const b = new Uint8Array(144);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, f16Bits(d), true);
  dv.setUint16(2, f16Bits(dmin), true);
  const scales = b.subarray(4, 16);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      scales[j] = sc[j]!;
      scales[j + 4] = m[j]!;
    } else {
      scales[j + 4] = (sc[j]! & 0xf) | ((m[j]! & 0xf) << 4);
      scales[j - 4]! |= (sc[j]! >> 4) << 6;
      scales[j]! |= (m[j]! >> 4) << 6;
    }
  }
  for (let v = 0; v < 256; v++) {
    const j = v >> 5;
    const at = 16 + 32 * (j >> 1) + (v & 31);
    b[at]! |= j % 2 === 0 ? q[v]! : q[v]! << 4;
  }
  return b;
}

/**
 * Packs one Q6_K block: quant q (0..63, value q - 32) of value v in half n = v / 128, quarter
 * k = (v % 128) / 32, lane l = v % 32: its low 4 bits are the low (k < 2) or high (k ≥ 2)
 * nibble of ql[64n + l + 32·(k % 2)], its high 2 bits are bits 2k, 2k+1 of qh[32n + l]; its
 * scale is scales[v / 16] (8-bit signed); d (f16) last.
 */
function packQ6K(d: number, scales: number[], q: number[]): Uint8Array {
  const b = new Uint8Array(210);
  for (let v = 0; v < 256; v++) {
    const n = v >> 7;
    const k = (v & 127) >> 5;
    const l = v & 31;
    const ql = 64 * n + l + 32 * (k % 2);
    b[ql]! |= k < 2 ? q[v]! & 0xf : (q[v]! & 0xf) << 4;
    b[128 + 32 * n + l]! |= (q[v]! >> 4) << (2 * k);
  }
  for (let s = 0; s < 16; s++) b[192 + s] = scales[s]! & 0xff;
  new DataView(b.buffer).setUint16(208, f16Bits(d), true);
  return b;
}

test('halfToFloat decodes every f16 bit pattern as f16.ts does', () => {
  const bits = new Uint16Array(65536).map((_, i) => i);
  const table = decodeFloats(new Uint8Array(bits.buffer), 'f16', 65536);
  for (let h = 0; h < 65536; h++) {
    const a = halfToFloat(h);
    if (Number.isNaN(table[h]!)) assert.ok(Number.isNaN(a), `bits ${h}`);
    else assert.equal(a, table[h], `bits ${h}`);
  }
});

test('Q4_K: a hand-built block dequantizes to d·sc·q − dmin·m', () => {
  const { uniform } = seededValues(3);
  // Scales and mins above 15 exercise the two high bits packed away from the low ones.
  const sc = [1, 17, 33, 63, 5, 48, 31, 60];
  const m = [0, 63, 16, 2, 47, 9, 32, 63];
  const q = Array.from({ length: 256 }, () => Math.floor(uniform() * 16));
  const d = 0.5;
  const dmin = 0.25;
  const out = dequantizeQ4K(packQ4K(d, dmin, sc, m, q), 256);
  for (let v = 0; v < 256; v++) {
    const j = v >> 5;
    assert.equal(out[v], d * sc[j]! * q[v]! - dmin * m[j]!, `value ${v} (sub-block ${j}, q ${q[v]})`);
  }
  // Two blocks in a row, and f16 scales that are not powers of two (float32 rounding as ggml's).
  const d2 = 0.0123;
  const two = new Uint8Array([...packQ4K(d, dmin, sc, m, q), ...packQ4K(d2, 0.001, sc, m, q)]);
  const both = dequantizeKQuant('q4_k', two, 512);
  assert.deepEqual(both.subarray(0, 256), out);
  const d2h = halfToFloat(f16Bits(d2));
  const m2h = halfToFloat(f16Bits(0.001));
  for (let v = 0; v < 256; v++) {
    const j = v >> 5;
    const f = Math.fround;
    assert.equal(both[256 + v], f(f(f(d2h * sc[j]!) * q[v]!) - f(m2h * m[j]!)));
  }
  assert.throws(() => dequantizeQ4K(two, 300), /q4_k holds blocks of 256 values/);
  assert.throws(() => dequantizeQ4K(two.subarray(0, 200), 512), /512 values need 288 bytes, got 200/);
});

test('Q6_K: a hand-built block dequantizes to d·scale·(q − 32)', () => {
  const { uniform } = seededValues(4);
  const scales = [1, -1, 127, -128, 5, 64, -77, 3, 9, -9, 100, 2, -3, 50, 17, -60];
  const q = Array.from({ length: 256 }, () => Math.floor(uniform() * 64));
  q[0] = 0;
  q[1] = 63;
  const d = 0.25;
  const out = dequantizeQ6K(packQ6K(d, scales, q), 256);
  for (let v = 0; v < 256; v++) {
    assert.equal(out[v], d * scales[v >> 4]! * (q[v]! - 32), `value ${v} (scale ${scales[v >> 4]}, q ${q[v]})`);
  }
  assert.equal(KQUANT_BLOCK.q6_k.bytes, 210);
  assert.equal(KQUANT_BLOCK.q4_k.bytes, 144);
});

/** A plain Q4_K encoder (per 32: min ≤ 0 and range over 15 steps; 6-bit scales and mins). */
function encodeQ4K(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 256) * 144);
  for (let b = 0; b < x.length / 256; b++) {
    const blk = x.subarray(b * 256, b * 256 + 256);
    const scale: number[] = [];
    const min: number[] = [];
    for (let j = 0; j < 8; j++) {
      const s = blk.subarray(32 * j, 32 * j + 32);
      const lo = Math.min(0, ...s);
      const hi = Math.max(...s);
      scale.push((hi - lo) / 15);
      min.push(-lo);
    }
    const d = halfToFloat(f16Bits(Math.max(...scale) / 63));
    const dmin = halfToFloat(f16Bits(Math.max(...min) / 63));
    const sc = scale.map((s) => Math.min(63, Math.round(s / d)));
    const m = min.map((v) => Math.min(63, Math.round(v / dmin)));
    const q = Array.from(blk, (v, i) => {
      const j = i >> 5;
      return sc[j] ? Math.max(0, Math.min(15, Math.round((v + dmin * m[j]!) / (d * sc[j]!)))) : 0;
    });
    out.set(packQ4K(d, dmin, sc, m, q), b * 144);
  }
  return out;
}

/** A plain Q6_K encoder (per 16: scale = amax / 31; signed 8-bit scales under one f16 d). */
function encodeQ6K(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 256) * 210);
  for (let b = 0; b < x.length / 256; b++) {
    const blk = x.subarray(b * 256, b * 256 + 256);
    const scale = Array.from({ length: 16 }, (_, s) => Math.max(...blk.subarray(16 * s, 16 * s + 16).map(Math.abs)) / 31);
    const d = halfToFloat(f16Bits(Math.max(...scale) / 127));
    const sc = scale.map((s) => Math.min(127, Math.round(s / d)));
    const q = Array.from(blk, (v, i) => {
      const s = sc[i >> 4]!;
      return s ? Math.max(-32, Math.min(31, Math.round(v / (d * s)))) + 32 : 32;
    });
    out.set(packQ6K(d, sc, q), b * 210);
  }
  return out;
}

function relRms(a: Float32Array, ref: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

test('conversion to Q8_0: row by row, and what it costs in memory and accuracy', (t) => {
  const rows = 64;
  const cols = 1024;
  const { gauss } = seededValues(9);
  const x = Float32Array.from({ length: rows * cols }, () => 0.02 * gauss());
  for (const [type, encode] of [['q4_k', encodeQ4K], ['q6_k', encodeQ6K]] as const) {
    const k = encode(x);
    const kValues = dequantizeKQuant(type, k, rows * cols);
    const q8 = kquantToQ8_0(type, k, rows, cols);
    assert.equal(q8.type, 'q8_0');
    // the same bytes as quantizing the dequantized values in one go
    assert.deepEqual(q8.data, quantize(kValues, rows, cols, 'q8_0').data);
    // and the same again when converted a few rows at a time into one buffer
    const out = new Uint8Array(q8.data.byteLength);
    const srcRow = (cols / 256) * KQUANT_BLOCK[type].bytes;
    const dstRow = (cols / 32) * 34;
    kquantRowsToQ8_0(type, k.subarray(0, 10 * srcRow), 10, cols, out, 0);
    kquantRowsToQ8_0(type, k.subarray(10 * srcRow), rows - 10, cols, out, 10 * dstRow);
    assert.deepEqual(out, q8.data);

    const q8Values = dequantize(q8);
    const conversionError = relRms(q8Values, kValues);
    const fileError = relRms(kValues, x);
    const totalError = relRms(q8Values, x);
    const bitsBefore = (KQUANT_BLOCK[type].bytes * 8) / 256;
    t.diagnostic(`${type}: ${bitsBefore} → 8.5 bits/weight (${(8.5 / bitsBefore).toFixed(2)}× the bytes); ` +
      `Q8_0 vs ${type} values: relative RMS error ${(100 * conversionError).toFixed(3)} %; ` +
      `${type} vs the original Gaussian values: ${(100 * fileError).toFixed(2)} %, Q8_0 vs them: ${(100 * totalError).toFixed(2)} %`);
    assert.ok(conversionError < 0.01, `${type} → q8_0 relative RMS error ${conversionError}`);
    // The errors add about in quadrature: the conversion adds a few per cent to the file's own error.
    assert.ok(totalError < fileError * 1.05, `total error ${totalError} against the file's ${fileError}`);
    assert.ok(fileError < (type === 'q4_k' ? 0.15 : 0.05), `${type} encoding error ${fileError}`);
  }
});

test('a GGUF file with Q4_K and Q6_K tensors loads as Q8_0 matrices', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gguf-kq-'));
  return (async () => {
    const config: LlamaConfig = {
      dim: 256, hiddenDim: 512, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 12, seqLen: 64,
      sharedClassifier: false, normEps: 1e-6, ropeTheta: 500000, architecture: 'llama',
    };
    const { gauss } = seededValues(21);
    const values = (n: number) => Float32Array.from({ length: n }, () => 0.05 * gauss());
    const kv = 2 * 64;
    // [name, rows, cols, type] as a Q4_K_M file mixes them
    const matrices: [string, number, number, 'Q4_K' | 'Q6_K'][] = [
      ['token_embd.weight', 12, 256, 'Q4_K'], ['output.weight', 12, 256, 'Q6_K'],
      ['blk.0.attn_q.weight', 256, 256, 'Q4_K'], ['blk.0.attn_k.weight', kv, 256, 'Q4_K'],
      ['blk.0.attn_v.weight', kv, 256, 'Q6_K'], ['blk.0.attn_output.weight', 256, 256, 'Q4_K'],
      ['blk.0.ffn_gate.weight', 512, 256, 'Q4_K'], ['blk.0.ffn_down.weight', 256, 512, 'Q6_K'],
      ['blk.0.ffn_up.weight', 512, 256, 'Q4_K'],
    ];
    const stored = new Map<string, Uint8Array>();
    const tensors: GgufTensorSpec[] = matrices.map(([name, rows, cols, type]) => {
      const bytes = (type === 'Q4_K' ? encodeQ4K : encodeQ6K)(values(rows * cols));
      stored.set(name, bytes);
      return { name, type, dims: [cols, rows], data: bytes };
    });
    const ones = new Uint8Array(new Float32Array(256).fill(1).buffer);
    for (const name of ['output_norm.weight', 'blk.0.attn_norm.weight', 'blk.0.ffn_norm.weight']) tensors.push({ name, type: 'F32', dims: [256], data: ones });
    const path = join(dir, 'q4km.gguf');
    writeGguf(path, { metadata: ggufLlamaMetadata(config, { name: 'k-quant test' }), tensors });

    const theirs = await gguf(path, { allowLocalFile: true });
    const file = GgufFile.open(path);
    try {
      for (const t of theirs.tensorInfos) {
        assert.equal(Number(t.dtype), file.tensor(t.name).typeId);
        assert.equal(Number(t.offset), file.tensor(t.name).relativeOffset);
      }
      assert.equal(file.tensor('blk.0.ffn_down.weight').bytes, 256 * 2 * 210);
      assert.equal(file.tensor('blk.0.ffn_gate.weight').bytes, 512 * 144);
      const w = readGgufLlama(file);
      assert.deepEqual(w.config, config);
      const l = w.layers[0]!;
      const got = new Map([
        ['token_embd.weight', w.head!.tokenEmbedding], ['output.weight', w.head!.classifier],
        ['blk.0.attn_q.weight', l.wq], ['blk.0.attn_k.weight', l.wk], ['blk.0.attn_v.weight', l.wv],
        ['blk.0.attn_output.weight', l.wo], ['blk.0.ffn_gate.weight', l.w1], ['blk.0.ffn_down.weight', l.w2],
        ['blk.0.ffn_up.weight', l.w3],
      ]);
      for (const [name, rows, cols, type] of matrices) {
        const m = got.get(name)!;
        assert.equal(m.type, 'q8_0', name);
        assert.deepEqual([m.rows, m.cols], [rows, cols], name);
        assert.deepEqual(m, kquantToQ8_0(type === 'Q4_K' ? 'q4_k' : 'q6_k', stored.get(name)!, rows, cols), name);
      }
    } finally {
      file.close();
    }
  })().finally(() => rmSync(dir, { recursive: true, force: true }));
});
