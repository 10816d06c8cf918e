// One kernel thread: instantiates the runtime's compiled module on the runtime's shared
// memory, then sleeps on its wake word; each time the runtime bumps it, runs its share of
// the job described in the control area and counts itself done. Spins briefly before
// sleeping (a decode step issues its calls back to back), never while idle for longer.
import { workerData } from 'node:worker_threads';
import {
  CMD_EXIT, ERROR, J_CMD, J_THREADS, JOB, PENDING, instantiate, readyWord, wakeWord,
  type WasmMemory, type WasmModule,
} from './layout.js';

export interface WorkerData {
  module: WasmModule;
  memory: WasmMemory;
  index: number;
  spinMicros: number;
}

const { module, memory, index, spinMicros } = workerData as WorkerData;
const ctl = new Int32Array(memory.buffer, 0, (JOB + 4096) / 4);

let run: (job: number, index: number, threads: number) => void;
try {
  run = instantiate(module, memory).run;
} catch (e) {
  Atomics.store(ctl, readyWord(index), 2);
  Atomics.notify(ctl, readyWord(index));
  throw e;
}
Atomics.store(ctl, readyWord(index), 1);
Atomics.notify(ctl, readyWord(index));

const wake = wakeWord(index);
const jobWord = JOB / 4;

/** Waits until the wake word differs from `seen`; returns its new value. */
function nextJob(seen: number): number {
  let v = Atomics.load(ctl, wake);
  if (v !== seen) return v;
  if (spinMicros > 0) {
    const until = performance.now() + spinMicros / 1000;
    for (let i = 1; ; i++) {
      v = Atomics.load(ctl, wake);
      if (v !== seen) return v;
      if ((i & 255) === 0 && performance.now() > until) break;
    }
  }
  for (;;) {
    Atomics.wait(ctl, wake, seen);
    v = Atomics.load(ctl, wake);
    if (v !== seen) return v;
  }
}

let seen = 0;
for (;;) {
  seen = nextJob(seen);
  if (Atomics.load(ctl, jobWord + J_CMD) === CMD_EXIT) break;
  try {
    run(JOB, index, Atomics.load(ctl, jobWord + J_THREADS));
  } catch (e) {
    Atomics.store(ctl, ERROR, index);
    console.error(`matmul kernel worker ${index}:`, e);
  }
  if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING);
}
