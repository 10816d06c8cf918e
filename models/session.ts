// Inference sessions on a block stack: the preallocated KV cache each session holds, written
// in place (TF.js has no in-place update; see backend.ts storageView), and the tensors a
// decode step rewrites instead of allocating.
import * as tf from '@tensorflow/tfjs';
import { storageView } from './backend.js';
import type { Geometry } from './layout.js';

/** How a session writes new keys and values into its cache. */
export type CacheUpdate = 'in-place' | 'upload';

export interface SessionOptions {
  /** Positions the cache holds (default: the model's seqLen). Attention cost grows with it. */
  capacity?: number;
  /**
   * 'in-place' writes into the cache tensors' storage (wasm, cpu); 'upload' keeps a host copy
   * and re-uploads it after each forward (any backend). Default: in-place when possible.
   */
  cacheUpdate?: CacheUpdate;
}

/**
 * One layer's cache: keys [nKvHeads][C][headSize] and values transposed [nKvHeads][headSize][C],
 * so both attention matmuls read their rows contiguously (and with transposeB, which keeps the
 * wasm backend from caching a packed copy of a tensor we mutate).
 */
export class LayerCache {
  keys: tf.Tensor3D;
  valuesT: tf.Tensor3D;
  /** Host copies, only in 'upload' mode. */
  private hostKeys?: Float32Array;
  private hostValuesT?: Float32Array;

  constructor(g: Geometry, C: number, mode: CacheUpdate) {
    this.keys = tf.zeros([g.nKvHeads, C, g.headSize]);
    this.valuesT = tf.zeros([g.nKvHeads, g.headSize, C]);
    if (mode === 'upload') {
      this.hostKeys = new Float32Array(this.keys.size);
      this.hostValuesT = new Float32Array(this.valuesT.size);
    }
  }

  keysView(): Float32Array {
    return this.hostKeys ?? storageView(this.keys)!;
  }

  valuesTView(): Float32Array {
    return this.hostValuesT ?? storageView(this.valuesT)!;
  }

  /** After writing through the views: in 'upload' mode, replace the tensors with the host copies. */
  written(): void {
    if (!this.hostKeys || !this.hostValuesT) return;
    const old = [this.keys, this.valuesT];
    // Copies, so that a backend that adopts the array (cpu) never sees later host writes.
    this.keys = tf.keep(tf.tensor3d(this.hostKeys.slice(), this.keys.shape));
    this.valuesT = tf.keep(tf.tensor3d(this.hostValuesT.slice(), this.valuesT.shape));
    tf.dispose(old);
  }

  dispose(): void {
    tf.dispose([this.keys, this.valuesT]);
  }
}

/**
 * Tensors a decode step (T = 1) rewrites in place instead of allocating: the query, and the
 * attention mask, which only ever opens one more position per step.
 */
export class DecodeScratch {
  readonly q: tf.Tensor3D;
  private readonly mask: tf.Tensor2D;
  /** Positions [0, open) are already unmasked. */
  private open = 0;

  constructor(g: Geometry, private readonly C: number) {
    this.q = tf.zeros([g.nKvHeads, g.kvMul, g.headSize]);
    this.mask = tf.fill([g.kvMul, C], -1e9);
  }

  /** The mask letting every query row attend to positions 0..pos. */
  maskUpTo(pos: number): tf.Tensor2D {
    if (pos + 1 > this.open) {
      const m = storageView(this.mask)!;
      for (let row = 0; row < m.length; row += this.C) m.fill(0, row + this.open, row + pos + 1);
      this.open = pos + 1;
    }
    return this.mask;
  }

  dispose(): void {
    tf.dispose([this.q, this.mask]);
  }
}

/** One inference session on one block stack: its KV cache and position. */
export class BlockSession {
  readonly capacity: number;
  readonly cacheUpdate: CacheUpdate;
  private caches: LayerCache[];
  /** Present when tensors can be written in place. */
  readonly decodeScratch: DecodeScratch | undefined;
  private filled = 0;
  private closed = false;

  /** Sessions are opened by BlockStack.openSession; `layers` is the number of layers it holds. */
  constructor(g: Geometry, seqLen: number, layers: number, opts: SessionOptions, private readonly onClose: () => void) {
    const C = opts.capacity ?? seqLen;
    if (!Number.isInteger(C) || C < 1 || C > seqLen) {
      throw new Error(`session capacity ${C} must be an integer in [1, ${seqLen}] (the model's seqLen)`);
    }
    this.capacity = C;
    const probe = tf.zeros([1]);
    const canWrite = storageView(probe) !== undefined;
    probe.dispose();
    if (opts.cacheUpdate === 'in-place' && !canWrite) {
      throw new Error(`the '${tf.getBackend()}' backend does not expose tensor storage; use cacheUpdate 'upload'`);
    }
    this.cacheUpdate = opts.cacheUpdate ?? (canWrite ? 'in-place' : 'upload');
    this.caches = Array.from({ length: layers }, () => new LayerCache(g, C, this.cacheUpdate));
    this.decodeScratch = this.cacheUpdate === 'in-place' ? new DecodeScratch(g, C) : undefined;
  }

  /** Positions already in the cache; the next forward starts here. */
  get length(): number {
    return this.filled;
  }

  cache(l: number): LayerCache {
    return this.caches[l]!;
  }

  /** Checks that T more positions fit. */
  reserve(T: number): void {
    if (this.closed) throw new Error('this session is closed');
    if (this.filled + T > this.capacity) {
      throw new Error(`the session's context is full: ${this.filled} + ${T} positions exceed its capacity of ${this.capacity}`);
    }
  }

  commit(T: number): void {
    this.filled += T;
  }

  /** Frees the cache. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.caches) c.dispose();
    this.decodeScratch?.dispose();
    this.caches = [];
    this.onClose();
  }
}
