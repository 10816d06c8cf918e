// The layout of a kernel runtime's memory, shared by the runtime (index.ts), its workers
// (worker.ts) and the kernel itself (matmul.as repeats the job-descriptor word numbers;
// keep the two in step).
//
//   [0, 4096)            the kernel's static data (none today; checked at start-up)
//   [4096, 16384)        control words: pending count, error flag, one wake word per
//                        worker (64 bytes apart), ready flags at 12288; at 12800 the
//                        kernel's vector constants (written by its initTable)
//   [16384, 20480)       the job descriptor (u32 words, J_* below)
//   [65536, 327680)      f32[65536]: the value of every f16 bit pattern (block scales)
//   [327680, …)          weights, bump-allocated, 64-byte aligned, never freed one by one;
//                        above the last weight, the scratch of the current call
import type { WeightType } from '../weights.js';

export const PAGE = 65536;
export const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit
export const MAX_THREADS = 64;
export const MAX_MATRICES = 64;

export const STATIC_END = 4096;
const CONTROL = 4096;
/** Int32 indices into the memory. */
export const PENDING = CONTROL / 4;
export const ERROR = PENDING + 1;
/** The word worker `i` (1 ≤ i < MAX_THREADS) sleeps on; the runtime adds 1 to start a job. */
export function wakeWord(i: number): number {
  return CONTROL / 4 + 16 * i;
}
/** Set to 1 by worker `i` once its instance exists (2 if it could not start). */
export function readyWord(i: number): number {
  return 12288 / 4 + i;
}

export const JOB = 16384;
export const J_CMD = 0;
export const J_NMAT = 1;
export const J_T = 2;
export const J_COLS = 3;
export const J_X = 4;
export const J_XQ = 5;
export const J_X4 = 6;
export const J_TOTAL = 9;
export const J_TB = 10;
export const J_TABLE = 11;
export const J_BW_PTR = 12;
export const J_BW_BYTES = 13;
export const J_THREADS = 14; // read by the workers only
export const J_RESULT = 64;
export const J_MATS = 128;
export const MAT_WORDS = 8;
export const M_TYPE = 0;
export const M_ROWS = 1;
export const M_W = 2;
export const M_OUT = 3;
export const M_BIAS = 4;
export const M_START = 5;
export const M_ROWBYTES = 6;

export const CMD_MATMUL = 0;
export const CMD_BANDWIDTH = 1;
export const CMD_EXIT = 2;

/** Bytes of one block of 32 quantized activations with its scale (and Q4_0 correction); see matmul.as. */
export const XBLOCK = 80;

/** What the kernel's layoutCheck() returns when its constants agree with these. */
export const LAYOUT_CHECK = (XBLOCK | (J_MATS << 8) | (J_TB << 16) | (J_RESULT << 24)) >>> 0;
/** Where the kernel keeps its vector constants (inside the control area). */
export const CONSTS = 12800;

export const TABLE = PAGE;
export const HEAP_BASE = TABLE + 65536 * 4;

export const TYPE_CODE: Record<WeightType, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };

// The WebAssembly JS API, typed here for what we use (the project's TypeScript lib is
// ES2022 without DOM, which is where its declarations live).
export interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
export type WasmModule = object;
export interface KernelExports {
  run(job: number, index: number, threads: number): void;
  quantizeActivations(job: number): void;
  initTable(table: number): void;
  decodeRow(type: number, w: number, cols: number, table: number, out: number): void;
  fillNoise(p: number, bytes: number, seed: number): void;
  layoutCheck(): number;
  dataEnd(): number;
}
interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (m: WasmModule, imports: object) => { exports: unknown };
}
export const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export function instantiate(module: WasmModule, memory: WasmMemory): KernelExports {
  const abort = () => {
    throw new Error('matmul kernel aborted');
  };
  return new wasm.Instance(module, { env: { memory, abort } }).exports as KernelExports;
}
