// TF.js backend selection. A process picks its backend once, at startup, before any tensor
// exists: native TensorFlow (@tensorflow/tfjs-node) when it loads, else WebAssembly (XNNPACK
// kernels, SIMD when the runtime validates it), else the pure-JavaScript `cpu` backend.
//
// The module also gives the forward pass a way to update tensors in place (the KV cache),
// which TF.js's immutable API has no operation for. It is only offered for backends whose
// tensor storage is ordinary host memory (wasm heap, cpu typed arrays); callers fall back to
// re-uploading on any other backend.
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BACKEND_NAMES, type BackendName } from './backend-names.js';

export { BACKEND_ENV, BACKEND_NAMES, parseBackendName, type BackendName } from './backend-names.js';

export interface BackendSelection {
  /** The backend in use. */
  name: BackendName;
  /** What it runs with, e.g. "wasm (SIMD, 1 thread)". */
  detail: string;
  /** Backends tried before it, and why each was not used. */
  skipped: { name: string; reason: string }[];
}

export interface BackendOptions {
  /** A backend to use instead of the automatic order; failing to start it is an error. */
  backend?: BackendName | 'auto';
}

let selected: BackendSelection | undefined;

/** The selection made by `selectBackend`, if any. */
export function currentBackend(): BackendSelection | undefined {
  return selected;
}

/**
 * Selects and initializes the TF.js backend. Idempotent for the same request; asking for a
 * different backend later is refused, because tensors already made would live in the old one.
 */
export async function selectBackend(opts: BackendOptions = {}): Promise<BackendSelection> {
  const wanted = opts.backend ?? 'auto';
  if (selected) {
    if (wanted === 'auto' || wanted === selected.name) return selected;
    throw new Error(`the TF.js backend is already '${selected.name}'; it is chosen once per process`);
  }
  const order: BackendName[] = wanted === 'auto' ? [...BACKEND_NAMES] : [wanted];
  const skipped: BackendSelection['skipped'] = [];
  for (const name of order) {
    const outcome = await tryBackend(name, skipped);
    if (outcome) {
      selected = { name, detail: outcome, skipped };
      return selected;
    }
  }
  const reasons = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  throw new Error(wanted === 'auto'
    ? `no TF.js backend could start (${reasons})`
    : `the TF.js backend '${wanted}' could not start (${reasons}); try --backend auto`);
}

/** Starts one backend; returns its description, or undefined after recording why not. */
async function tryBackend(name: BackendName, skipped: BackendSelection['skipped']): Promise<string | undefined> {
  try {
    if (name === 'tensorflow') return await startNative(skipped);
    if (name === 'wasm') return await startWasm(skipped);
    if (await tf.setBackend('cpu')) return 'cpu (JavaScript kernels)';
    skipped.push({ name, reason: 'tf.setBackend returned false' });
  } catch (err) {
    skipped.push({ name, reason: err instanceof Error ? err.message.split('\n')[0]! : String(err) });
  }
  return undefined;
}

async function startNative(skipped: BackendSelection['skipped']): Promise<string | undefined> {
  // An optional dependency: its installer downloads libtensorflow, which fails offline.
  const moduleName = '@tensorflow/tfjs-node';
  await import(moduleName);
  if (await quietly(() => tf.setBackend('tensorflow'))) return 'tensorflow (libtensorflow, native)';
  skipped.push({ name: 'tensorflow', reason: 'tf.setBackend returned false' });
  return undefined;
}

async function startWasm(skipped: BackendSelection['skipped']): Promise<string | undefined> {
  // The .wasm binaries ship inside the npm package; pointing TF.js at them avoids any fetch.
  const require = createRequire(import.meta.url);
  const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  setWasmPaths(dist + '/');
  const env = tf.env();
  // TF.js reports no thread support under Node; try the threaded SIMD build anyway, since a
  // runtime that can start its workers would run matmuls on every core.
  env.set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  const warnings: string[] = [];
  if (await quietly(() => tf.setBackend('wasm'), warnings)) {
    return `wasm (threaded SIMD, ${getThreadsCount()} threads)`;
  }
  skipped.push({ name: 'wasm threaded SIMD', reason: firstLine(warnings) ?? 'did not start' });
  env.set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  if (await quietly(() => tf.setBackend('wasm'), warnings)) {
    const simd = await env.getAsync('WASM_HAS_SIMD_SUPPORT');
    return `wasm (${simd ? 'SIMD' : 'no SIMD'}, ${getThreadsCount()} thread)`;
  }
  skipped.push({ name: 'wasm', reason: firstLine(warnings.slice(1)) ?? 'did not start' });
  return undefined;
}

function firstLine(lines: string[]): string | undefined {
  const text = lines.find((l) => !/^Initialization of backend/.test(l)) ?? lines[0];
  return text?.split('\n')[0];
}

/** Runs `fn` with TF.js's console warnings captured instead of printed. */
async function quietly<T>(fn: () => Promise<T>, into: string[] = []): Promise<T> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    into.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  };
  try {
    return await fn();
  } finally {
    console.warn = warn;
  }
}

// In-place access to tensor storage. The shapes below are the public fields of TF.js 4's
// BackendWasm (dataIdMap, wasm.HEAPU8) and MathBackendCPU (data); they are declared here
// rather than imported so that a backend without them simply yields no view.
interface WasmLike {
  dataIdMap: { get(id: object): { memoryOffset: number } | undefined };
  wasm: { HEAPU8: Uint8Array };
}
interface CpuLike {
  data: { get(id: object): { values?: unknown } | undefined };
}

/**
 * A live Float32Array over a float32 tensor's storage, or undefined when the backend keeps
 * it elsewhere (native, GPU). Writing into the view changes the tensor. The view must be
 * used at once: on wasm the heap can grow (and move) on the next allocation.
 */
export function storageView(t: tf.Tensor): Float32Array | undefined {
  if (t.dtype !== 'float32') return undefined;
  const backend = tf.backend() as unknown;
  const name = tf.getBackend();
  if (name === 'wasm') {
    const wasm = backend as WasmLike;
    const entry = wasm.dataIdMap.get(t.dataId);
    if (!entry) return undefined;
    return new Float32Array(wasm.wasm.HEAPU8.buffer, entry.memoryOffset, t.size);
  }
  if (name === 'cpu') {
    const values = (backend as CpuLike).data.get(t.dataId)?.values;
    return values instanceof Float32Array && values.length === t.size ? values : undefined;
  }
  return undefined;
}

/** Reads a float32 tensor's values without copying when the backend allows it. */
export function readValues(t: tf.Tensor): Float32Array {
  return storageView(t) ?? (t.dataSync() as Float32Array);
}
