// The matmul kernel (models/kernels/) on one TinyLlama-sized layer (dim 2048, 32 query
// heads over 4 KV heads of 64, hidden 5632) in each weight type: matrix-vector speed (weight
// bytes streamed per second at T = 1, the four calls a decode step makes per layer: q/k/v,
// o, gate/up, down), a short prefill (T = 16), the cost of one call of a tiny matrix on one
// thread and on all, and the runtime's own read bandwidth with the fraction matvec reaches.
// The stored bytes are drawn directly in each encoding (randomMatrix), without quantizing.
import { MatmulRuntime, type KernelMatrix } from '../models/kernels/index.js';
import { matrixBytes, WEIGHT_TYPES, type WeightMatrix, type WeightType } from '../models/weights.js';

export interface KernelBenchOptions {
  threads?: number;
  log?: (line: string) => void;
  /** Types to run (default all five). */
  types?: readonly WeightType[];
  /** Bytes for readBandwidth (default 256 MiB). */
  bandwidthBytes?: number;
}

export interface KernelTypeResult {
  type: WeightType;
  layerMiB: number;
  /** Weight bytes / time of one layer's decode matmuls (fastest of the rounds, and median). */
  matvecGBs: number;
  matvecGBsMedian: number;
  /** matvecGBs / readBandwidthGBs. */
  bandwidthFraction: number;
  /** Per-layer time at T = 1 (fastest round), and per token at T = 16. */
  decodeLayerMs: number;
  prefillMsPerToken: number;
}

export interface KernelBenchResult {
  threads: number;
  /** The runtime's readBandwidth() (256 MiB unless told), best of the samples taken between the types. */
  readBandwidthGBs: number;
  readBandwidthSamplesGBs: number[];
  /** Median time of one matmul call of a 64 × 64 f32 matrix: on one thread, and with every thread woken, back to back and after 50 µs of other work. */
  callMicros: { oneThread: number; allThreads: number; allThreadsAfterGap: number };
  types: KernelTypeResult[];
}

const DIM = 2048;
const KV_DIM = 256;
const HIDDEN = 5632;

/** xorshift32, as a stream of 32-bit words. */
function words(seed: number, n: number): Uint32Array {
  const out = new Uint32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s >>> 0;
  }
  return out;
}

/**
 * Random stored bytes of a type, shaped like a trained matrix: floats roughly normal with
 * standard deviation 0.02 (so f16 has subnormals at about the rate a real checkpoint has,
 * ~0.2 %, which matters on x86: see models/kernels/README.md), blocks with random quants and
 * scales of that size.
 */
export function randomMatrix(type: WeightType, rows: number, cols: number, seed: number): WeightMatrix {
  const bytes = matrixBytes(type, rows, cols);
  if (type === 'q8_0' || type === 'q4_0') {
    const data = new Uint8Array(words(seed, Math.ceil(bytes / 4)).buffer, 0, bytes);
    const bb = type === 'q8_0' ? 34 : 18;
    for (let o = 0; o < bytes; o += bb) {
      data[o] = data[o + 2]!; // f16 scales 2^-10 .. 2^-8 (mantissa random)
      data[o + 1] = 0x14 + (data[o + 1]! & 3) * 2 + (data[o + 1]! >> 7);
    }
    return { type, rows, cols, data };
  }
  const n = rows * cols;
  const u = words(seed, n * 2);
  const values = new Float32Array(n);
  const k = 0.02 * Math.sqrt(3) / 2 ** 31; // the sum of two uniforms on ±2^31, scaled to σ = 0.02
  for (let i = 0; i < n; i++) values[i] = ((u[2 * i]! | 0) + (u[2 * i + 1]! | 0)) * k * Math.SQRT1_2;
  const bits = new Uint32Array(values.buffer);
  if (type === 'f32') return { type, rows, cols, data: new Uint8Array(values.buffer) };
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const b = bits[i]!;
    if (type === 'bf16') {
      out[i] = b >>> 16;
      continue;
    }
    const sign = (b >>> 16) & 0x8000;
    const e = ((b >>> 23) & 0xff) - 112;
    if (e <= 0) out[i] = sign | Math.round(Math.abs(values[i]!) * 2 ** 24); // subnormal (or zero)
    else out[i] = sign | (e << 10) | ((b >>> 13) & 0x3ff);
  }
  return { type, rows, cols, data: new Uint8Array(out.buffer) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeCalls(fn: () => void, minMs: number, minRuns: number): number[] {
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minRuns || performance.now() - start < minMs) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return times;
}

/** Median µs of one call of a tiny matmul, back to back, and after `gapMicros` of busy work. */
function callCost(threads: number, minBytesPerThread: number, gapMicros: number): number {
  const rt = MatmulRuntime.create({ threads, minBytesPerThread });
  try {
    const m = rt.upload(randomMatrix('f32', 64, 64, 7));
    const x = new Float32Array(64).fill(0.5);
    timeCalls(() => rt.matmul(x, 1, [m]), 20, 200); // warm-up (workers started, code optimized)
    if (gapMicros === 0) {
      const n = 500;
      const rounds = timeCalls(() => {
        for (let i = 0; i < n; i++) rt.matmul(x, 1, [m]);
      }, 150, 5);
      return (median(rounds) / n) * 1000;
    }
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const until = performance.now() + gapMicros / 1000;
      while (performance.now() < until); // the rest of a decode step
      const t0 = performance.now();
      rt.matmul(x, 1, [m]);
      times.push((performance.now() - t0) * 1000);
    }
    return median(times);
  } finally {
    rt.close();
  }
}

export async function benchKernels(opts: KernelBenchOptions = {}): Promise<KernelBenchResult> {
  const log = opts.log ?? (() => undefined);
  const probe = MatmulRuntime.create({ threads: opts.threads });
  const threads = probe.threads;
  const samples: number[] = [];
  const sample = () => {
    samples.push(probe.readBandwidth(opts.bandwidthBytes) / 1e9);
    return samples[samples.length - 1]!;
  };
  const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));
  try {
    log(`read bandwidth, ${threads} thread(s): ${sample().toFixed(1)} GB/s`);
    const callMicros = {
      oneThread: callCost(threads, Number.MAX_SAFE_INTEGER, 0),
      allThreads: callCost(threads, 0, 0),
      allThreadsAfterGap: callCost(threads, 0, 50),
    };
    log(`one call of a 64 × 64 f32 matmul: ${callMicros.oneThread.toFixed(1)} µs on one thread, ${callMicros.allThreads.toFixed(1)} µs on ${threads} back to back, ${callMicros.allThreadsAfterGap.toFixed(1)} µs after 50 µs of other work`);
    await yieldToLoop();

    const types: KernelTypeResult[] = [];
    for (const type of opts.types ?? WEIGHT_TYPES) {
      const rt = MatmulRuntime.create({ threads });
      try {
        const up = (rows: number, cols: number, seed: number): KernelMatrix => rt.upload(randomMatrix(type, rows, cols, seed));
        const q = up(DIM, DIM, 1), k = up(KV_DIM, DIM, 2), v = up(KV_DIM, DIM, 3), o = up(DIM, DIM, 4);
        const gate = up(HIDDEN, DIM, 5), upM = up(HIDDEN, DIM, 6), down = up(DIM, HIDDEN, 7);
        const layerBytes = rt.weightBytes();
        const inputs = (T: number) => ({
          x: Float32Array.from(words(11, T * DIM), (w) => (w / 2 ** 32 - 0.5) * 2),
          h: Float32Array.from(words(12, T * HIDDEN), (w) => (w / 2 ** 32 - 0.5) * 2),
        });
        const layer = (T: number, x: Float32Array, h: Float32Array) => {
          rt.matmul(x, T, [q, k, v]);
          rt.matmul(x, T, [o]);
          rt.matmul(x, T, [gate, upM]);
          rt.matmul(h, T, [down]);
        };
        const d = inputs(1);
        const decode: number[] = [];
        for (let round = 0; round < 4; round++) {
          decode.push(...timeCalls(() => layer(1, d.x, d.h), 100, 3));
          sample();
        }
        const p = inputs(16);
        const prefill = timeCalls(() => layer(16, p.x, p.h), 200, 2);
        const best = Math.min(...decode);
        const r: KernelTypeResult = {
          type,
          layerMiB: layerBytes / 2 ** 20,
          matvecGBs: layerBytes / (best / 1000) / 1e9,
          matvecGBsMedian: layerBytes / (median(decode) / 1000) / 1e9,
          bandwidthFraction: 0,
          decodeLayerMs: best,
          prefillMsPerToken: Math.min(...prefill) / 16,
        };
        types.push(r);
        log(`${type.padEnd(5)} layer ${r.layerMiB.toFixed(1)} MiB: matvec ${r.matvecGBs.toFixed(1)} GB/s (median ${r.matvecGBsMedian.toFixed(1)}), ${r.decodeLayerMs.toFixed(2)} ms/layer; prefill T=16 ${r.prefillMsPerToken.toFixed(2)} ms/token/layer`);
      } finally {
        rt.close();
      }
      await yieldToLoop();
    }
    const readBandwidthGBs = Math.max(...samples);
    for (const r of types) r.bandwidthFraction = r.matvecGBs / readBandwidthGBs;
    log(`read bandwidth, best of ${samples.length} samples: ${readBandwidthGBs.toFixed(1)} GB/s; matvec fractions: ${types.map((r) => `${r.type} ${r.bandwidthFraction.toFixed(2)}`).join(', ')}`);
    return { threads, readBandwidthGBs, readBandwidthSamplesGBs: samples, callMicros, types };
  } finally {
    probe.close();
  }
}
