// The messages between the shape bench (the parent, holding the head) and its stage
// processes, over Node's IPC channel with serialization 'advanced' (structured clone:
// Float32Arrays cross as binary, without JSON), plus the byte counts both sides agree on.
import type { BackendName } from '../../models/backend.js';
import { MATRIX_KINDS, matrixShape, type BlockRange, type LlamaConfig } from '../../models/types.js';
import { matrixBytes, type WeightType } from '../../models/weights.js';

/** What a stage process is started with (JSON in its argv). */
export interface StageSpec {
  config: LlamaConfig;
  seed: number;
  type: WeightType;
  range: BlockRange;
  threads: number;
  backend: BackendName | 'auto';
}

export type ToStage =
  | { type: 'open'; capacity: number }
  | { type: 'forward'; hidden: Float32Array; T: number }
  | { type: 'mark' }
  | { type: 'close' }
  | { type: 'exit' };

export interface StageMemory {
  /** The process's own peak RSS so far, bytes (VmHWM on Linux; see stage.ts). */
  peakRssBytes: number;
  /** process.resourceUsage().maxRSS, bytes (on Linux it includes the forking parent's size). */
  maxRssBytes: number;
  /** process.memoryUsage().rss now. */
  rssBytes: number;
  /** The kernel's wasm memory and the weight bytes uploaded to it. */
  kernelHeapBytes: number;
  kernelWeightBytes: number;
  /** TF.js's own bytes (norm gains, caches). */
  tensorBytes: number;
}

export type FromStage =
  | { type: 'ready'; loadMs: number; backend: string; memory: StageMemory }
  | { type: 'opened' }
  /** forwardMs: the whole forward; kernelMs: of it, inside the matmul kernel's calls. */
  | { type: 'hidden'; hidden: Float32Array; forwardMs: number; kernelMs: number }
  /** At a mark: the process's CPU time (user + system, all threads, µs) and its clock (ms). */
  | { type: 'mark'; cpuUs: number; nowMs: number; forwardMs: number }
  | { type: 'closed'; memory: StageMemory }
  | { type: 'error'; message: string };

/** Bytes of one layer as a stage holds it: its matrices in their stored encoding, the two norm gains and any biases. */
export function layerBytes(config: LlamaConfig, type: WeightType): number {
  let bytes = 2 * config.dim * 4;
  for (const kind of MATRIX_KINDS) {
    const [rows, cols] = matrixShape(config, kind);
    bytes += matrixBytes(type, rows, cols);
  }
  if (config.architecture === 'qwen2') {
    const kvDim = (config.nKvHeads * config.dim) / config.nHeads;
    bytes += (config.dim + 2 * kvDim) * 4;
  }
  return bytes;
}

/** Bytes the head reads per decode token: the classifier, the final norm and one embedding row. */
export function headBytesPerToken(config: LlamaConfig, type: WeightType): number {
  return matrixBytes(type, config.vocabSize, config.dim) + config.dim * 4 + matrixBytes(type, 1, config.dim);
}
