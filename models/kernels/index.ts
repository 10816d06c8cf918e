// The matmul runtime: our WebAssembly SIMD kernel (matmul.as) on one shared memory per
// runtime, run by the calling thread plus (threads − 1) worker threads.
//
// A runtime holds the weight matrices of one pipeline stage, each exactly once and in its
// stored encoding (f32, f16, bf16, Q8_0, Q4_0; models/weights.ts), and computes
// out_i[T][rows_i] = x[T][cols] · W_iᵀ (+ bias_i) for several matrices sharing one input.
// Rows of all the matrices of a call are split into contiguous chunks, one per thread;
// every output row is computed by one thread in an order that does not depend on the
// chunking, so results are bit-identical for any thread count.
//
// Memory: one WebAssembly.Memory per runtime (shared, at most 4 GiB), grown as matrices are
// uploaded; a bump allocator managed here (layout.ts). Scratch for a call (its input, the
// quantized input, outputs, biases) lives above the last weight and is reused by the next
// call or overwritten by the next upload, so memory is weights + a fixed 320 KiB + the
// largest call's scratch.
//
// Threads: crew.ts, the calling thread plus (threads − 1) workers on the same memory.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { checkMatrix, matrixBytes, rowBytes, type WeightMatrix, type WeightType } from '../weights.js';
import * as L from './layout.js';
import { KernelCrew } from './crew.js';

export interface KernelOptions {
  /** Threads, the calling one included (default: os.availableParallelism()). */
  threads?: number;
  /** How long a thread spins on its wake word or on the workers before it sleeps (default 100 µs). */
  spinMicros?: number;
  /**
   * Weight bytes × tokens a call needs per thread before it uses another one (default
   * MIN_BYTES_PER_THREAD): a small matmul is faster on one thread than the wake-up of a
   * second. 0 makes every call use all threads. Results do not depend on it.
   */
  minBytesPerThread?: number;
}

export interface KernelMatrix {
  readonly type: WeightType;
  readonly rows: number;
  readonly cols: number;
  readonly bytes: number;
}

interface Placed {
  readonly owner: MatmulRuntime;
  readonly ptr: number;
  readonly rowBytes: number;
}

/** Where each uploaded matrix lives; private to this module. */
const placement = new WeakMap<KernelMatrix, Placed>();
/** Room handed out by allocate(), by its view: upload() adopts it without a copy. */
const allocated = new WeakMap<Uint8Array, KernelMatrix>();

let compiled: L.WasmModule | undefined;

function kernelModule(): L.WasmModule {
  if (!compiled) {
    const url = new URL('./matmul.wasm', import.meta.url);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(url);
    } catch (e) {
      throw new Error(`the matmul kernel ${fileURLToPath(url)} cannot be read (${(e as Error).message}); run \`npm run build\`, which compiles it`);
    }
    compiled = new L.wasm.Module(bytes);
  }
  return compiled;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * A shared memory that may grow to 4 GiB; where the address space cannot hold that (a
 * 32-bit system), to the largest of 2 GiB, 1 GiB, 512 MiB that it can.
 */
function sharedMemory(): [L.WasmMemory, number] {
  for (let maximum = L.MAX_PAGES; ; maximum /= 2) {
    try {
      return [new L.wasm.Memory({ initial: L.HEAP_BASE / L.PAGE, maximum, shared: true }), maximum];
    } catch (e) {
      if (maximum <= L.MAX_PAGES / 8) throw e;
    }
  }
}

const TOKEN_BLOCK_BYTES = 256 * 1024;
/**
 * A second thread pays for its wake-up and the join only when its share of the weights
 * takes longer to stream than those do. Measured here (2 vCPUs) on f32 matvecs at 2
 * threads: back to back, the split was no faster from 0.3 to 4 MiB of weights (one 0.8 MiB
 * shape 6× slower) and halved the time at 8 MiB; after 10 ms idle, as a decode step's
 * first call comes, it lost up to 16 MiB. At 1 MiB per thread every call of a
 * stories15M-sized layer (1.7 MiB at most) stays on one thread, and every decode call of a
 * TinyLlama-sized layer in Q4_0 (2.3–12 MiB) still splits.
 */
const MIN_BYTES_PER_THREAD = 1024 * 1024;

export class MatmulRuntime {
  readonly threads: number;
  private readonly memory: L.WasmMemory;
  private readonly maxPages: number;
  private readonly exports: L.KernelExports;
  private readonly job: Uint32Array;
  private readonly crew: KernelCrew;
  private readonly minBytesPerThread: number;
  private u8!: Uint8Array;
  private f32!: Float32Array;
  private top = L.HEAP_BASE;
  private weights = 0;
  /** The bandwidth buffer above the weights, while no upload has moved it. */
  private noise: { ptr: number; bytes: number } | undefined;
  private closed = false;

  static create(opts: KernelOptions = {}): MatmulRuntime {
    return new MatmulRuntime(opts);
  }

  private constructor(opts: KernelOptions) {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1 || threads > L.MAX_THREADS) {
      throw new Error(`threads must be an integer from 1 to ${L.MAX_THREADS}, got ${threads}`);
    }
    this.threads = threads;
    this.minBytesPerThread = opts.minBytesPerThread ?? MIN_BYTES_PER_THREAD;
    const module = kernelModule();
    [this.memory, this.maxPages] = sharedMemory();
    this.exports = L.instantiate(module, this.memory);
    if (this.exports.layoutCheck() >>> 0 !== L.LAYOUT_CHECK) {
      throw new Error('the matmul kernel and its runtime disagree on the memory layout (a stale matmul.wasm?); run `npm run build`');
    }
    if (this.exports.dataEnd() > L.STATIC_END) {
      throw new Error(`the matmul kernel's static data ends at ${this.exports.dataEnd()}, above the control area at ${L.STATIC_END}`);
    }
    this.refreshViews();
    this.job = new Uint32Array(this.memory.buffer, L.JOB, 1024);
    this.exports.initTable(L.TABLE);
    this.crew = new KernelCrew(module, this.memory, threads, opts.spinMicros ?? 100, this.exports.run);
  }

  /**
   * Room for a matrix in this runtime's memory, for a reader to fill in place (a positional
   * read of the file straight into it), so that a stage never holds its weights twice while
   * it loads. upload() of a matrix whose data is this view adopts it without a copy.
   */
  allocate(type: WeightType, rows: number, cols: number): Uint8Array {
    this.checkOpen();
    const bytes = matrixBytes(type, rows, cols);
    const ptr = align(this.top, 64);
    this.reserve(ptr + bytes, `room for a ${type} [${rows}][${cols}] matrix`);
    this.top = ptr + bytes;
    this.weights += bytes;
    const view = new Uint8Array(this.memory.buffer, ptr, bytes);
    const handle: KernelMatrix = Object.freeze({ type, rows, cols, bytes });
    placement.set(handle, { owner: this, ptr, rowBytes: rowBytes(type, cols) });
    allocated.set(view, handle);
    return view;
  }

  /** Copies the matrix's stored bytes into this runtime's memory once; the caller may then drop m.data. */
  upload(m: WeightMatrix): KernelMatrix {
    this.checkOpen();
    checkMatrix(m);
    const adopted = allocated.get(m.data);
    if (adopted && placement.get(adopted)?.owner === this) {
      if (adopted.type !== m.type || adopted.rows !== m.rows || adopted.cols !== m.cols) {
        throw new Error(`upload: a ${m.type} [${m.rows}][${m.cols}] matrix in room allocated for ${adopted.type} [${adopted.rows}][${adopted.cols}]`);
      }
      return adopted;
    }
    const bytes = m.data.byteLength;
    const ptr = align(this.top, 64);
    this.reserve(ptr + bytes, `uploading a ${m.type} [${m.rows}][${m.cols}] matrix`);
    this.u8.set(m.data, ptr);
    this.top = ptr + bytes;
    this.weights += bytes;
    const handle: KernelMatrix = Object.freeze({ type: m.type, rows: m.rows, cols: m.cols, bytes });
    placement.set(handle, { owner: this, ptr, rowBytes: rowBytes(m.type, m.cols) });
    return handle;
  }

  /**
   * For each matrix W_i [rows_i][cols]: out_i[T][rows_i] = x[T][cols] · W_iᵀ (+ bias_i per
   * row when given). All matrices share the same input x and cols. Returns fresh arrays, or
   * writes out_i into `into[i]` where one is given (of T × rows_i values) and returns it.
   */
  matmul(x: Float32Array, T: number, ms: readonly KernelMatrix[], biases?: readonly (Float32Array | undefined)[], into?: readonly (Float32Array | undefined)[]): Float32Array[] {
    this.checkOpen();
    if (!Number.isInteger(T) || T < 1) throw new Error(`matmul: T must be a positive integer, got ${T}`);
    if (ms.length === 0) return [];
    if (ms.length > L.MAX_MATRICES) throw new Error(`matmul: at most ${L.MAX_MATRICES} matrices per call, got ${ms.length}`);
    const places = ms.map((m, i) => this.placed(m, `matmul: matrix ${i}`));
    const cols = ms[0]!.cols;
    ms.forEach((m, i) => {
      if (m.cols !== cols) throw new Error(`matmul: all matrices must have the same cols; matrix 0 has ${cols}, matrix ${i} has ${m.cols}`);
    });
    if (x.length !== T * cols) throw new Error(`matmul: x has ${x.length} values, expected T × cols = ${T} × ${cols} = ${T * cols}`);
    if (biases !== undefined) {
      if (biases.length !== ms.length) throw new Error(`matmul: ${biases.length} biases for ${ms.length} matrices`);
      biases.forEach((b, i) => {
        if (b !== undefined && b.length !== ms[i]!.rows) throw new Error(`matmul: bias ${i} has ${b.length} values, matrix ${i} has ${ms[i]!.rows} rows`);
      });
    }
    into?.forEach((o, i) => {
      if (o !== undefined && o.length !== T * (ms[i]?.rows ?? 0)) throw new Error(`matmul: output ${i} has room for ${o.length} values, expected ${T * (ms[i]?.rows ?? 0)}`);
    });
    const needQ8 = ms.some((m) => m.type === 'q8_0');
    const needQ4 = ms.some((m) => m.type === 'q4_0');
    const nb = cols / 32;

    // Scratch above the last weight.
    let p = align(this.top, 64);
    const take = (bytes: number) => {
      const at = p;
      p = align(p + bytes, 64);
      return at;
    };
    const xPtr = take(T * cols * 4);
    const xq = needQ8 ? take(T * nb * L.XBLOCK) : 0;
    const x4 = needQ4 ? take(T * nb * L.XBLOCK) : 0;
    const outs = ms.map((m) => take(T * m.rows * 4));
    const biasPtrs = ms.map((m, i) => (biases?.[i] ? take(m.rows * 4) : 0));
    this.reserve(p, `a matmul of T = ${T} over ${ms.length} matrices`);

    this.f32.set(x, xPtr / 4);
    biasPtrs.forEach((b, i) => {
      if (b) this.f32.set(biases![i]!, b / 4);
    });
    const job = this.job;
    job.fill(0, 0, L.J_MATS + ms.length * L.MAT_WORDS);
    job[L.J_CMD] = L.CMD_MATMUL;
    job[L.J_NMAT] = ms.length;
    job[L.J_T] = T;
    job[L.J_COLS] = cols;
    job[L.J_X] = xPtr;
    job[L.J_XQ] = xq;
    job[L.J_X4] = x4;
    job[L.J_TABLE] = L.TABLE;
    const perToken = cols * 4 + ((needQ8 ? 1 : 0) + (needQ4 ? 1 : 0)) * nb * L.XBLOCK;
    job[L.J_TB] = Math.max(1, Math.floor(TOKEN_BLOCK_BYTES / perToken));
    let total = 0;
    let work = 0;
    ms.forEach((m, i) => {
      const w = L.J_MATS + i * L.MAT_WORDS;
      job[w + L.M_TYPE] = L.TYPE_CODE[m.type];
      job[w + L.M_ROWS] = m.rows;
      job[w + L.M_W] = places[i]!.ptr;
      job[w + L.M_OUT] = outs[i]!;
      job[w + L.M_BIAS] = biasPtrs[i]!;
      job[w + L.M_START] = total;
      job[w + L.M_ROWBYTES] = places[i]!.rowBytes;
      total += m.rows;
      work += m.bytes;
    });
    job[L.J_TOTAL] = total;
    if (needQ8 || needQ4) this.exports.quantizeActivations(L.JOB);
    const wanted = this.minBytesPerThread > 0 ? Math.floor((work * T) / this.minBytesPerThread) : this.threads;
    this.dispatch(Math.max(1, Math.min(this.threads, wanted, total)));
    return ms.map((m, i) => {
      const at = outs[i]! / 4;
      const o = into?.[i];
      if (!o) return this.f32.slice(at, at + T * m.rows);
      o.set(this.f32.subarray(at, at + T * m.rows));
      return o;
    });
  }

  /** f32 values of row r of an uploaded matrix (embedding lookup from the kernel's own copy). */
  row(m: KernelMatrix, r: number): Float32Array {
    this.checkOpen();
    const at = this.placed(m, 'row');
    if (!Number.isInteger(r) || r < 0 || r >= m.rows) throw new Error(`row ${r} is outside [0, ${m.rows})`);
    const out = align(this.top, 64);
    this.reserve(out + m.cols * 4, 'a row');
    this.exports.decodeRow(L.TYPE_CODE[m.type], at.ptr + r * at.rowBytes, m.cols, L.TABLE, out);
    return this.f32.slice(out / 4, out / 4 + m.cols);
  }

  /** Bytes of this runtime's wasm memory. */
  heapBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Bytes of the weights uploaded into it. */
  weightBytes(): number {
    return this.weights;
  }

  /**
   * Measured read bandwidth (bytes/s) on all this runtime's threads: a SIMD sum over
   * `bytes` (default 256 MiB), best of 5 runs after a warm-up. Reads the uploaded weights
   * when there are enough of them; otherwise uses the space above them, which stays part
   * of the memory (wasm memory does not shrink) and is reused by later uploads.
   */
  readBandwidth(bytes = 256 * 1024 * 1024): number {
    this.checkOpen();
    const n = Math.floor(bytes / 64) * 64;
    if (n < 65536) throw new Error(`readBandwidth needs at least 64 KiB, got ${bytes}`);
    let ptr = L.HEAP_BASE;
    if (this.top - L.HEAP_BASE < n) {
      ptr = align(this.top, 64);
      if (!this.noise || this.noise.ptr !== ptr || this.noise.bytes < n) {
        this.reserve(ptr + n, 'the bandwidth buffer');
        // Noise, not a constant: untouched pages all map the zero page, and on some virtual
        // machines pages of one repeated value read faster than real data (deduplication).
        this.exports.fillNoise(ptr, n, 0x9e3779b9);
        this.noise = { ptr, bytes: n };
      }
    }
    const job = this.job;
    let best = Infinity;
    for (let run = 0; run < 6; run++) {
      job[L.J_CMD] = L.CMD_BANDWIDTH;
      job[L.J_BW_PTR] = ptr;
      job[L.J_BW_BYTES] = n;
      const t0 = performance.now();
      this.dispatch(this.threads);
      const dt = performance.now() - t0;
      if (run > 0) best = Math.min(best, dt);
    }
    return n / (best / 1000);
  }

  /** Ends the workers. The runtime cannot be used afterwards; calling close() again does nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.crew.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('this MatmulRuntime is closed');
  }

  private placed(m: KernelMatrix, what: string): Placed {
    const at = placement.get(m);
    if (!at || at.owner !== this) throw new Error(`${what} was not uploaded to this runtime`);
    return at;
  }

  /** Grows the memory so that [0, end) exists. */
  private reserve(end: number, what: string): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    if (end > this.maxPages * L.PAGE) {
      throw new Error(`${what} needs ${(end / 2 ** 30).toFixed(2)} GiB of kernel memory; a runtime holds at most ${this.maxPages / 16384} GiB here (split the model over more stages)`);
    }
    try {
      this.memory.grow(Math.ceil((end - have) / L.PAGE));
    } catch (e) {
      throw new Error(`${what}: cannot grow the kernel memory to ${end} bytes (${(e as Error).message})`);
    }
    this.refreshViews();
  }

  private refreshViews(): void {
    const buffer = this.memory.buffer;
    this.u8 = new Uint8Array(buffer);
    this.f32 = new Float32Array(buffer);
  }

  /** Runs the job in the descriptor on threads [0, n) and returns when all are done. */
  private dispatch(n: number): void {
    try {
      this.crew.run(n);
    } finally {
      // A worker's failure has closed the crew: the runtime is closed with it.
      if (this.crew.isClosed) this.closed = true;
    }
  }
}
