// Seeded random weights (models/random.ts): any part of a model (a layer range, the head)
// is the same whichever part it is generated in, the quantized matrices hold exactly the
// bytes weights.ts's quantize writes for the same values, and the scales are right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { llamaConfig, randomHead, randomLayer, randomWeights } from '../../models/random.js';
import { MATRIX_KINDS, type LayerWeights } from '../../models/types.js';
import { dequantize, quantize, type WeightMatrix, type WeightType } from '../../models/weights.js';

const config = llamaConfig({ dim: 64, hiddenDim: 96, nLayers: 5, nHeads: 4, nKvHeads: 2, vocabSize: 40, seqLen: 16, sharedClassifier: false });
const qwen = { ...config, architecture: 'qwen2' as const };

function sameLayer(a: LayerWeights, b: LayerWeights, what: string): void {
  for (const k of MATRIX_KINDS) assert.deepEqual(a[k], b[k], `${what}: ${k}`);
  for (const k of ['attnNorm', 'ffnNorm', 'bq', 'bk', 'bv'] as const) assert.deepEqual(a[k], b[k], `${what}: ${k}`);
}

test('a layer range or the head alone is exactly that part of the whole model', () => {
  for (const c of [config, qwen]) {
    for (const type of ['f32', 'q8_0', 'q4_0'] as WeightType[]) {
      const whole = randomWeights(c, 9, type);
      assert.deepEqual(whole.range, { from: 0, to: 5 });
      assert.equal(whole.layers.length, 5);
      const parts = [randomWeights(c, 9, type, { range: { from: 0, to: 2 } }), randomWeights(c, 9, type, { range: { from: 2, to: 5 }, head: true })];
      assert.equal(parts[0]!.head, undefined, 'a range alone has no head');
      assert.deepEqual(parts[1]!.range, { from: 2, to: 5 });
      const layers = [...parts[0]!.layers, ...parts[1]!.layers];
      layers.forEach((l, i) => sameLayer(l, whole.layers[i]!, `${c.architecture ?? 'llama'} ${type} layer ${i}`));
      assert.deepEqual(randomLayer(c, 9, 3, type), whole.layers[3]);
      assert.deepEqual(parts[1]!.head, whole.head);
      const headOnly = randomWeights(c, 9, type, { head: true });
      assert.deepEqual(headOnly.layers, []);
      assert.deepEqual(headOnly.head, whole.head);
    }
  }
  const q = randomWeights(qwen, 1).layers[0]!;
  assert.equal(q.bq?.length, 64);
  assert.equal(q.bk?.length, 32);
  assert.equal(randomWeights(config, 1).layers[0]!.bq, undefined, 'llama has no biases');
  // other seeds, other layers: different values
  assert.notDeepEqual(randomLayer(config, 9, 1).wq, randomLayer(config, 9, 2).wq);
  assert.notDeepEqual(randomLayer(config, 9, 1).wq, randomLayer(config, 10, 1).wq);
  // a tied classifier is the embedding itself
  const tied = randomHead({ ...config, sharedClassifier: true }, 3);
  assert.equal(tied.classifier, tied.tokenEmbedding);
});

test('quantized random matrices are quantize() of the f32 random values, byte for byte', () => {
  // rows longer than one generation band (2^20 values), so the banded encoding is covered
  const wide = llamaConfig({ dim: 2048, hiddenDim: 64, nLayers: 1, nHeads: 16, nKvHeads: 16, vocabSize: 640, seqLen: 8 });
  for (const type of ['q8_0', 'q4_0', 'f16', 'bf16'] as WeightType[]) {
    const check = (a: WeightMatrix, b: WeightMatrix, what: string) => {
      const want = quantize(dequantize(a), a.rows, a.cols, type);
      assert.equal(b.type, type);
      assert.ok(Buffer.from(b.data).equals(Buffer.from(want.data)), `${type} ${what}`);
    };
    const f32 = randomWeights(config, 4, 'f32');
    const q = randomWeights(config, 4, type);
    for (const k of MATRIX_KINDS) check(f32.layers[0]![k], q.layers[0]![k], k);
    check(f32.head!.tokenEmbedding, q.head!.tokenEmbedding, 'token embedding');
    check(randomHead(wide, 4, 'f32').tokenEmbedding, randomHead(wide, 4, type).tokenEmbedding, 'wide token embedding');
  }
});

test('scales: matrices ~ N(0, 1/in), gains ~ N(1, 0.01), embedding ~ N(0, 1)', () => {
  const c = llamaConfig({ dim: 256, hiddenDim: 512, nLayers: 1, nHeads: 4, nKvHeads: 4, vocabSize: 512, seqLen: 8 });
  const w = randomWeights(c, 77);
  const moments = (a: Float32Array) => {
    let m = 0;
    let sq = 0;
    for (const x of a) {
      m += x;
      sq += x * x;
    }
    m /= a.length;
    return { mean: m, std: Math.sqrt(sq / a.length - m * m) };
  };
  const w2 = moments(dequantize(w.layers[0]!.w2));
  assert.ok(Math.abs(w2.mean) < 0.002 && Math.abs(w2.std * Math.sqrt(512) - 1) < 0.02, JSON.stringify(w2));
  const wq = moments(dequantize(w.layers[0]!.wq));
  assert.ok(Math.abs(wq.std * 16 - 1) < 0.02, JSON.stringify(wq));
  const gain = moments(w.layers[0]!.attnNorm);
  assert.ok(Math.abs(gain.mean - 1) < 0.03 && Math.abs(gain.std - 0.1) < 0.02, JSON.stringify(gain));
  const emb = moments(dequantize(w.head!.tokenEmbedding));
  assert.ok(Math.abs(emb.std - 1) < 0.01, JSON.stringify(emb));
  // a normal shape, not a uniform one: about 4.6 % of the values beyond 2σ
  const a = dequantize(w.head!.tokenEmbedding);
  const beyond = a.filter((x) => Math.abs(x) > 2).length / a.length;
  assert.ok(beyond > 0.04 && beyond < 0.052, `share beyond 2σ: ${beyond}`);
});

test('with an allocator, every matrix is generated into the room it hands out', () => {
  for (const type of ['f32', 'q8_0', 'q4_0'] as WeightType[]) {
    const rooms: Uint8Array[] = [];
    const pool = new SharedArrayBuffer(1 << 22);
    let top = 0;
    const allocate = (t: WeightType, rows: number, cols: number) => {
      assert.equal(t, type);
      const bytes = Math.ceil(((rows * cols) / (t === 'f32' ? 1 : 32)) * (t === 'f32' ? 4 : t === 'q8_0' ? 34 : 18));
      const room = new Uint8Array(pool, top, bytes);
      top = Math.ceil((top + bytes) / 64) * 64;
      rooms.push(room);
      return room;
    };
    const inRoom = randomWeights(qwen, 6, type, { range: { from: 1, to: 3 }, head: true }, allocate);
    const plain = randomWeights(qwen, 6, type, { range: { from: 1, to: 3 }, head: true });
    assert.equal(rooms.length, 2 * 7 + 2, 'seven matrices per layer, embedding and classifier');
    inRoom.layers.forEach((l, i) => {
      sameLayer(l, plain.layers[i]!, `${type} layer ${i}`);
      for (const k of MATRIX_KINDS) assert.ok(rooms.includes(l[k].data), `${type} ${k} lives in its room`);
    });
    assert.deepEqual(inRoom.head, plain.head);
    assert.ok(rooms.includes(inRoom.head!.classifier.data));
  }
  assert.throws(() => randomWeights(config, 1, 'q8_0', { range: { from: 0, to: 1 } }, () => new Uint8Array(5)), /allocator gave 5 bytes/);
});

test('a part outside the model is refused', () => {
  assert.throws(() => randomWeights(config, 1, 'f32', { range: { from: 3, to: 7 } }), /layer range \[3, 7\) is not inside the model's \[0, 5\)/);
  assert.throws(() => randomWeights(config, 1, 'f32', { range: { from: 3, to: 2 } }), /not inside/);
});
