// The WebAssembly matmul kernel (models/kernels/) against plain JavaScript references on
// dequantized weights, across thread counts (bit-identical), with biases, row lookups,
// its memory accounting, its errors, and a process that exits with a runtime still open.
//
// Tolerances:
// - f32, f16, bf16: |out − Σ x·w| ≤ 1e-5 · Σ |x·w| (f32 accumulation; the weights decode exactly).
// - Q8_0, Q4_0, against the same dot on the kernel's 16-bit activations (computed here as the
//   kernel documents: per 32 values d = amax/32767, q = round-half-even(x·(1/d))):
//   |out − Σ_b isum_b · s_b| ≤ 1e-5 · Σ_b s_b · Σ_i |q_w,i · q_x,i|, s_b = f32(d_w · d_x):
//   the integer block sums are exact, only f32 rounding of the scaled sums remains.
// - Q8_0, Q4_0, against the f32 activations: each activation moves by at most half its
//   block's step d_x/2, so |out − Σ x·w| ≤ Σ_b (d_x,b / 2) · Σ_{i∈b} |w_i| (+ the f32 term).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeFloats } from '../../models/f16.js';
import { MatmulRuntime, type KernelMatrix } from '../../models/kernels/index.js';
import { dequantize, dequantizeRows, quantize, WEIGHT_TYPES, type WeightMatrix, type WeightType } from '../../models/weights.js';

const here = dirname(fileURLToPath(import.meta.url));
const runtimeModule = join(here, '..', '..', 'models', 'kernels', 'index.js');

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomValues(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

function randomWeights(type: WeightType, rows: number, cols: number, seed: number): WeightMatrix {
  return quantize(randomValues(rows * cols, seed, 0.5), rows, cols, type);
}

/** The kernel's 16-bit activations of x [T][cols]: per block the f32 scale and the int values. */
function quantizeActivations(x: Float32Array): { d: Float32Array; q: Int16Array } {
  const nb = x.length / 32;
  const d = new Float32Array(nb);
  const q = new Int16Array(x.length);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
    const db = Math.fround(amax / 32767);
    const id = db !== 0 ? Math.fround(1 / db) : 0;
    d[b] = db;
    for (let i = 0; i < 32; i++) {
      const v = Math.fround(x[b * 32 + i]! * id);
      let r = Math.round(v);
      if (r - v === 0.5 && r % 2 !== 0) r -= 1; // ties to even
      q[b * 32 + i] = r;
    }
  }
  return { d, q };
}

/** Quants (as signed integers) and f32 scales of a Q8_0 / Q4_0 matrix. */
function blocks(m: WeightMatrix): { q: Int8Array; d: Float32Array } {
  const bb = m.type === 'q8_0' ? 34 : 18;
  const nb = (m.rows * m.cols) / 32;
  const scales = new Uint8Array(nb * 2);
  const q = new Int8Array(nb * 32);
  for (let b = 0; b < nb; b++) {
    scales[2 * b] = m.data[b * bb]!;
    scales[2 * b + 1] = m.data[b * bb + 1]!;
    for (let i = 0; i < (m.type === 'q8_0' ? 32 : 16); i++) {
      const byte = m.data[b * bb + 2 + i]!;
      if (m.type === 'q8_0') q[b * 32 + i] = (byte << 24) >> 24;
      else {
        q[b * 32 + i] = (byte & 15) - 8;
        q[b * 32 + i + 16] = (byte >> 4) - 8;
      }
    }
  }
  return { q, d: decodeFloats(scales, 'f16', nb) };
}

/** Checks out [T][rows] of one matrix against the references of the header. */
function checkAgainstReference(m: WeightMatrix, x: Float32Array, T: number, out: Float32Array, bias?: Float32Array, what = ''): void {
  const { rows, cols } = m;
  const w = dequantize(m);
  const quant = m.type === 'q8_0' || m.type === 'q4_0';
  const qx = quant ? quantizeActivations(x) : undefined;
  const qw = quant ? blocks(m) : undefined;
  const nb = cols / 32;
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < rows; r++) {
      const got = out[t * rows + r]! - (bias ? bias[r]! : 0);
      let exact = 0;
      let magnitude = 0;
      for (let c = 0; c < cols; c++) {
        exact += x[t * cols + c]! * w[r * cols + c]!;
        magnitude += Math.abs(x[t * cols + c]! * w[r * cols + c]!);
      }
      const where = `${m.type} ${what} t=${t} r=${r}`;
      if (!quant) {
        assert.ok(Math.abs(got - exact) <= 1e-5 * magnitude + 1e-30, `${where}: ${got} vs ${exact}`);
        continue;
      }
      let onQuantized = 0;
      let bound = 0;
      let activationBound = 0;
      for (let b = 0; b < nb; b++) {
        let isum = 0;
        let iabs = 0;
        let wabs = 0;
        for (let i = 0; i < 32; i++) {
          const c = b * 32 + i;
          const p = qw!.q[r * cols + c]! * qx!.q[t * cols + c]!;
          isum += p;
          iabs += Math.abs(p);
          wabs += Math.abs(w[r * cols + c]!);
        }
        const s = Math.fround(qw!.d[r * nb + b]! * qx!.d[t * nb + b]!);
        onQuantized += isum * s;
        bound += iabs * Math.abs(s);
        activationBound += (qx!.d[t * nb + b]! / 2) * wabs;
      }
      assert.ok(Math.abs(got - onQuantized) <= 1e-5 * bound + 1e-30, `${where}: ${got} vs ${onQuantized} on the 16-bit activations`);
      assert.ok(Math.abs(got - exact) <= 1.001 * activationBound + 1e-5 * magnitude, `${where}: ${got} vs ${exact} on f32 activations (bound ${activationBound})`);
    }
  }
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

test('every type matches the JavaScript reference, T = 1 and T = 7, odd row counts', () => {
  const rt = MatmulRuntime.create({ threads: 3, minBytesPerThread: 0 });
  try {
    for (const type of WEIGHT_TYPES) {
      for (const [rows, cols] of [[37, 96], [5, 32], [64, 256]] as const) {
        const m = randomWeights(type, rows, cols, rows * 31 + cols);
        const k = rt.upload(m);
        for (const T of [1, 7]) {
          const x = randomValues(T * cols, T + rows, 2);
          const [out] = rt.matmul(x, T, [k]);
          assert.equal(out!.length, T * rows);
          checkAgainstReference(m, x, T, out!, undefined, `[${rows}][${cols}] T=${T}`);
        }
      }
    }
  } finally {
    rt.close();
  }
});

test('float types take any column count (tails after the last multiple of 16 columns)', () => {
  const rt = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
  try {
    for (const type of ['f32', 'f16', 'bf16'] as const) {
      for (const cols of [1, 7, 13, 17, 31, 40, 172]) {
        const m = randomWeights(type, 9, cols, cols);
        const x = randomValues(3 * cols, cols + 1);
        const [out] = rt.matmul(x, 3, [rt.upload(m)]);
        checkAgainstReference(m, x, 3, out!, undefined, `cols=${cols}`);
      }
    }
  } finally {
    rt.close();
  }
});

test('long rows over several token blocks (cols 8192, T = 7) match the reference', () => {
  const rt = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
  try {
    for (const type of WEIGHT_TYPES) {
      const m = randomWeights(type, 9, 8192, 5);
      const x = randomValues(7 * 8192, 6);
      const [out] = rt.matmul(x, 7, [rt.upload(m)]);
      checkAgainstReference(m, x, 7, out!, undefined, 'cols=8192');
    }
  } finally {
    rt.close();
  }
});

test('f16 and bf16: every finite bit pattern decodes exactly (subnormals included) in the SIMD path', () => {
  const rt = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
  try {
    for (const type of ['f16', 'bf16'] as const) {
      const finite: number[] = [];
      for (let h = 0; h < 65536; h++) {
        const exponent = type === 'f16' ? (h >> 10) & 31 : (h >> 7) & 255;
        if (exponent !== (type === 'f16' ? 31 : 255)) finite.push(h);
      }
      const rows = finite.length / 16;
      const data = new Uint8Array(new Uint16Array(finite).buffer);
      const m: WeightMatrix = { type, rows, cols: 16, data };
      // x = the 16 × 16 identity, so out[t][r] = W[r][t]
      const x = new Float32Array(256);
      for (let t = 0; t < 16; t++) x[t * 16 + t] = 1;
      const [out] = rt.matmul(x, 16, [rt.upload(m)]);
      const want = decodeFloats(data, type, finite.length);
      for (let r = 0; r < rows; r++) {
        for (let t = 0; t < 16; t++) {
          if (out![t * rows + r] !== want[r * 16 + t]) {
            assert.fail(`${type} 0x${finite[r * 16 + t]!.toString(16)}: ${out![t * rows + r]} vs ${want[r * 16 + t]}`);
          }
        }
      }
    }
  } finally {
    rt.close();
  }
});

test('outputs are bit-identical for 1, 2, 3 and 4 threads (several matrices per call, biases)', () => {
  const shapes = [37, 6, 64, 1];
  const cols = 96;
  for (const type of WEIGHT_TYPES) {
    const ms = shapes.map((rows, i) => randomWeights(type, rows, cols, 100 + i));
    const biases = shapes.map((rows, i) => (i % 2 === 0 ? randomValues(rows, 200 + i) : undefined));
    let first: Uint32Array[][] | undefined;
    for (const threads of [1, 2, 3, 4]) {
      const rt = MatmulRuntime.create({ threads, minBytesPerThread: 0 });
      try {
        const ks = ms.map((m) => rt.upload(m));
        const results = [1, 7].map((T) => rt.matmul(randomValues(T * cols, T), T, ks, biases).map((o) => Uint32Array.from(bits(o))));
        if (!first) first = results.flat().map((o) => [o]);
        else results.flat().forEach((o, i) => assert.deepEqual(o, first![i]![0], `${type}, ${threads} threads, output ${i}`));
      } finally {
        rt.close();
      }
    }
  }
});

test('outputs written into given arrays equal fresh ones, and a wrong-sized one is refused', () => {
  const rt = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
  try {
    const ks = [randomWeights('f32', 33, 64, 61), randomWeights('q8_0', 5, 64, 62)].map((m) => rt.upload(m));
    const x = randomValues(3 * 64, 63);
    const fresh = rt.matmul(x, 3, ks);
    const room = new Float32Array(3 * 33).fill(Number.NaN);
    const [into, other] = rt.matmul(x, 3, ks, undefined, [room]);
    assert.equal(into, room, 'the given array is the one returned');
    assert.deepEqual(bits(into!), bits(fresh[0]!));
    assert.deepEqual(bits(other!), bits(fresh[1]!), 'a matrix without room gets a fresh array');
    // The next call reuses the runtime's scratch; what was written into `room` stays.
    rt.matmul(randomValues(3 * 64, 64), 3, ks);
    assert.deepEqual(bits(room), bits(fresh[0]!));
    assert.throws(() => rt.matmul(x, 3, ks, undefined, [new Float32Array(33)]), /output 0 has room for 33 values, expected 99/);
  } finally {
    rt.close();
  }
});

test('one call may mix every type (each with its own activation scratch)', () => {
  const rt = MatmulRuntime.create({ threads: 3, minBytesPerThread: 0 });
  try {
    const ms = WEIGHT_TYPES.map((type, i) => randomWeights(type, 9 + i, 160, 40 + i));
    const ks = [...ms, ...ms].map((m) => rt.upload(m));
    const x = randomValues(5 * 160, 41);
    const outs = rt.matmul(x, 5, ks);
    outs.forEach((out, i) => checkAgainstReference(ms[i % ms.length]!, x, 5, out, undefined, `mixed call, matrix ${i}`));
  } finally {
    rt.close();
  }
});

test("a token's output does not depend on the other tokens of the call (prefill = decode)", () => {
  const rt = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
  try {
    for (const type of WEIGHT_TYPES) {
      const k = rt.upload(randomWeights(type, 21, 8192, 7));
      const x = randomValues(9 * 8192, 8);
      const [all] = rt.matmul(x, 9, [k]);
      for (const t of [0, 4, 8]) {
        const [one] = rt.matmul(x.subarray(t * 8192, (t + 1) * 8192), 1, [k]);
        assert.deepEqual(bits(one!), bits(all!.subarray(t * 21, (t + 1) * 21)), `${type} token ${t}`);
      }
    }
  } finally {
    rt.close();
  }
});

test('biases are added per row, and several matrices share one input', () => {
  const rt = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
  try {
    for (const type of WEIGHT_TYPES) {
      const ms = [randomWeights(type, 12, 64, 1), randomWeights(type, 5, 64, 2), randomWeights(type, 7, 64, 3)];
      const biases = [randomValues(12, 4, 3), undefined, randomValues(7, 5, 3)];
      const x = randomValues(2 * 64, 6);
      const ks = ms.map((m) => rt.upload(m));
      const outs = rt.matmul(x, 2, ks, biases);
      const plain = rt.matmul(x, 2, ks);
      ms.forEach((m, i) => {
        checkAgainstReference(m, x, 2, outs[i]!, biases[i], `matrix ${i}`);
        const b = biases[i];
        for (let j = 0; j < outs[i]!.length; j++) {
          assert.equal(outs[i]![j], Math.fround(plain[i]![j]! + (b ? b[j % m.rows]! : 0)));
        }
      });
    }
  } finally {
    rt.close();
  }
});

test('row() returns the dequantized row from the kernel copy', () => {
  const rt = MatmulRuntime.create({ threads: 1 });
  try {
    for (const type of WEIGHT_TYPES) {
      const m = randomWeights(type, 11, 160, 9);
      const k = rt.upload(m);
      for (const r of [0, 5, 10]) assert.deepEqual(rt.row(k, r), dequantizeRows(m, r, r + 1), `${type} row ${r}`);
    }
  } finally {
    rt.close();
  }
});

test('no packed copy: memory is the weights plus a fixed overhead', () => {
  const rt = MatmulRuntime.create({ threads: 2 });
  try {
    // 32 MiB of f32 and 32 MiB of Q4_0, stored bytes drawn directly (valid scales)
    const r = rng(3);
    const f32 = randomWeights('f32', 4096, 2048, 1);
    const q4rows = 29128;
    const q4: WeightMatrix = { type: 'q4_0', rows: q4rows, cols: 2048, data: new Uint8Array(q4rows * 64 * 18) };
    for (let o = 0; o < q4.data.length; o++) q4.data[o] = (r() * 256) | 0;
    for (let o = 0; o < q4.data.length; o += 18) {
      q4.data[o] = 0;
      q4.data[o + 1] = 0x20;
    }
    const kf = rt.upload(f32);
    const kq = rt.upload(q4);
    assert.equal(rt.weightBytes(), f32.data.byteLength + q4.data.byteLength);
    assert.ok(rt.weightBytes() >= 64 * 2 ** 20);
    const x = randomValues(2048, 1);
    rt.matmul(x, 1, [kf]);
    rt.matmul(x, 1, [kq]);
    // Fixed: 320 KiB (control area, f16 table) + page rounding (64 KiB) + alignment;
    // scratch of these calls: x, its Q8 forms, outputs (~130 KiB).
    const overhead = rt.heapBytes() - rt.weightBytes();
    assert.ok(overhead >= 0 && overhead <= 1024 * 1024, `overhead ${overhead} bytes`);
  } finally {
    rt.close();
  }
});

test('inputs are checked with clear errors', () => {
  const rt = MatmulRuntime.create({ threads: 2 });
  const other = MatmulRuntime.create({ threads: 1 });
  try {
    const a = rt.upload(randomWeights('q8_0', 4, 64, 1));
    const b = rt.upload(randomWeights('f32', 4, 32, 2));
    const foreign = other.upload(randomWeights('f32', 4, 64, 3));
    const x = new Float32Array(64);
    assert.throws(() => rt.matmul(new Float32Array(63), 1, [a]), /x has 63 values, expected T × cols = 1 × 64 = 64/);
    assert.throws(() => rt.matmul(new Float32Array(64), 2, [a]), /expected T × cols = 2 × 64 = 128/);
    assert.throws(() => rt.matmul(x, 0, [a]), /T must be a positive integer/);
    assert.throws(() => rt.matmul(x, 1.5, [a]), /T must be a positive integer/);
    assert.throws(() => rt.matmul(x, 1, [a, b]), /same cols; matrix 0 has 64, matrix 1 has 32/);
    assert.throws(() => rt.matmul(x, 1, [a], [new Float32Array(3)]), /bias 0 has 3 values, matrix 0 has 4 rows/);
    assert.throws(() => rt.matmul(x, 1, [a], []), /0 biases for 1 matrices/);
    assert.throws(() => rt.matmul(x, 1, [foreign]), /matrix 0 was not uploaded to this runtime/);
    assert.throws(() => rt.matmul(x, 1, [{ type: 'f32', rows: 4, cols: 64, bytes: 1024 } as KernelMatrix]), /not uploaded to this runtime/);
    assert.throws(() => rt.row(a, 4), /row 4 is outside \[0, 4\)/);
    assert.throws(() => rt.upload({ type: 'q4_0', rows: 2, cols: 64, data: new Uint8Array(71) }), /needs 72 bytes, got 71/);
    assert.throws(() => rt.upload({ type: 'q4_0', rows: 2, cols: 48, data: new Uint8Array(54) }), /multiple of 32 columns/);
    assert.throws(() => MatmulRuntime.create({ threads: 0 }), /threads must be an integer from 1 to 64/);
    assert.deepEqual(rt.matmul(x, 1, []), []);
    rt.close();
    rt.close();
    assert.throws(() => rt.matmul(x, 1, [a]), /closed/);
    assert.throws(() => rt.upload(randomWeights('f32', 1, 32, 1)), /closed/);
    assert.throws(() => rt.row(a, 0), /closed/);
    assert.throws(() => rt.readBandwidth(), /closed/);
  } finally {
    rt.close();
    other.close();
  }
});

test('readBandwidth measures something plausible', () => {
  const rt = MatmulRuntime.create({ threads: 2 });
  try {
    const bw = rt.readBandwidth(8 * 2 ** 20);
    assert.ok(Number.isFinite(bw) && bw > 1e8, `${bw} B/s`);
  } finally {
    rt.close();
  }
});

test('a process exits with a runtime left open (its workers are unref\'d) and with one closed', () => {
  const script = `
    import { MatmulRuntime } from ${JSON.stringify(runtimeModule)};
    const a = MatmulRuntime.create({ threads: 3, minBytesPerThread: 0 });
    const b = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
    const m = a.upload({ type: 'f32', rows: 8, cols: 32, data: new Uint8Array(1024) });
    const n = b.upload({ type: 'f32', rows: 8, cols: 32, data: new Uint8Array(1024) });
    a.matmul(new Float32Array(32), 1, [m]);
    b.matmul(new Float32Array(32), 1, [n]);
    b.close();
    console.log('done');
  `;
  const started = Date.now();
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.signal, null, `killed after ${Date.now() - started} ms: the process did not exit`);
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'done');
});

test('a closed runtime refuses calls, and closing it again does nothing', () => {
  const rt = MatmulRuntime.create({ threads: 2, minBytesPerThread: 0 });
  const m = randomWeights('f32', 8, 32, 3);
  const k = rt.upload(m);
  const x = randomValues(32, 5);
  // Both threads ran a share before the close.
  checkAgainstReference(m, x, 1, rt.matmul(x, 1, [k])[0]!, undefined, 'before close');
  rt.close();
  rt.close();
  assert.throws(() => rt.matmul(x, 1, [k]), /this MatmulRuntime is closed/);
});
