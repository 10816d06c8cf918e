// The threads of one matmul runtime besides the calling one: each a worker (worker.ts, next
// to this file once compiled) that instantiates the runtime's compiled module on its shared
// memory and sleeps in Atomics.wait on its own wake word. A call bumps the wake words of the
// workers it needs, runs share 0 on the calling thread and waits (a short spin, then
// Atomics.wait) for the count of pending workers to reach 0. Workers are unref'd, so a
// runtime never keeps the process alive; close() ends them.
import { Worker } from 'node:worker_threads';
import * as L from './layout.js';
import type { WorkerData } from './worker.js';

const WORKER_START_MS = 15_000;

/**
 * Workers inherit Node's flags, except --input-type (given to `node -e`), which makes a
 * worker started from a file fail to load; only then is an explicit list passed.
 */
function workerExecArgv(): { execArgv?: string[] } {
  const all = process.execArgv;
  const kept = all.filter((a, i) => !a.startsWith('--input-type') && !(all[i - 1] === '--input-type' && !a.startsWith('-')));
  return kept.length === all.length ? {} : { execArgv: kept };
}

export class KernelCrew {
  private readonly workers: Worker[] = [];
  /** The control area: wake, ready and pending words, the error slot, the job descriptor. */
  private readonly ctl: Int32Array;
  private readonly job: Uint32Array;
  private readonly created = performance.now();
  private ready = false;
  private closed = false;

  /**
   * Starts `threads − 1` workers on `memory`, each spinning `spinMicros` before it sleeps;
   * `runShare` is the calling thread's own instance's entry point.
   */
  constructor(module: L.WasmModule, memory: L.WasmMemory, readonly threads: number, private readonly spinMicros: number,
    private readonly runShare: L.KernelExports['run']) {
    this.ctl = new Int32Array(memory.buffer, 0, (L.JOB + 4096) / 4);
    this.job = new Uint32Array(memory.buffer, L.JOB, 1024);
    for (let i = 1; i < threads; i++) {
      const workerData: WorkerData = { module, memory, index: i, spinMicros };
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData, ...workerExecArgv() });
      worker.unref();
      worker.on('error', (e) => {
        console.error(`matmul kernel worker ${i} failed:`, e);
      });
      this.workers.push(worker);
    }
  }

  /**
   * Runs the job in the descriptor on threads [0, n): share 0 on this one, the rest on the
   * workers; returns when all are done. A worker's failure closes the crew and throws.
   */
  run(n: number): void {
    const ctl = this.ctl;
    if (n > 1) {
      this.awaitStarted();
      Atomics.store(ctl, L.PENDING, n - 1);
      this.job[L.J_THREADS] = n;
      for (let i = 1; i < n; i++) {
        Atomics.add(ctl, L.wakeWord(i), 1);
        Atomics.notify(ctl, L.wakeWord(i), 1);
      }
    }
    let failure: unknown;
    try {
      this.runShare(L.JOB, 0, n);
    } catch (e) {
      failure = e;
    }
    if (n > 1) this.awaitPending();
    if (failure !== undefined) throw failure;
    const failed = Atomics.load(ctl, L.ERROR);
    if (failed) {
      this.close();
      throw new Error(`matmul kernel worker ${failed} failed (see its message above); the runtime is closed`);
    }
  }

  /** Closed by close() or by a worker that failed or did not start. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Ends the workers; calling it again does nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.job[L.J_CMD] = L.CMD_EXIT;
    for (let i = 1; i < this.threads; i++) {
      Atomics.add(this.ctl, L.wakeWord(i), 1);
      Atomics.notify(this.ctl, L.wakeWord(i));
    }
    for (const w of this.workers) w.terminate().catch(() => undefined);
    this.workers.length = 0;
  }

  private awaitPending(): void {
    const ctl = this.ctl;
    if (Atomics.load(ctl, L.PENDING) === 0) return;
    const until = performance.now() + this.spinMicros / 1000;
    for (let i = 1; ; i++) {
      if (Atomics.load(ctl, L.PENDING) === 0) return;
      if ((i & 255) === 0 && performance.now() > until) break;
    }
    for (;;) {
      const v = Atomics.load(ctl, L.PENDING);
      if (v === 0) return;
      Atomics.wait(ctl, L.PENDING, v);
    }
  }

  /** The first call that needs the workers waits for them to have started. */
  private awaitStarted(): void {
    if (this.ready) return;
    for (let i = 1; i < this.threads; i++) {
      for (;;) {
        const state = Atomics.load(this.ctl, L.readyWord(i));
        if (state === 1) break;
        const left = this.created + WORKER_START_MS - performance.now();
        if (state === 2 || left <= 0) {
          this.close();
          throw new Error(`matmul kernel worker ${i} did not start${state === 2 ? ' (it could not instantiate the kernel)' : ` within ${WORKER_START_MS / 1000} s`}; the runtime is closed`);
        }
        Atomics.wait(this.ctl, L.readyWord(i), state, Math.min(left, 1000));
      }
    }
    this.ready = true;
  }
}
