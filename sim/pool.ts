// Spreads cell tasks over worker threads, one per core, and reports progress.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CellDone, CellTask } from './task.js';

export async function runPool(tasks: CellTask[], onDone: (done: CellDone) => void, threads = availableParallelism()): Promise<void> {
  const queue = tasks.slice();
  const workerUrl = new URL('./worker.js', import.meta.url);
  const n = Math.max(1, Math.min(threads, queue.length));
  const workers: Worker[] = [];
  try {
    await Promise.all(
      Array.from({ length: n }, () =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(workerUrl);
          workers.push(worker);
          const next = () => {
            const task = queue.shift();
            if (task) worker.postMessage(task);
            else resolve();
          };
          worker.on('message', (msg: { ok: true; done: CellDone } | { ok: false; error: string }) => {
            if (!msg.ok) {
              reject(new Error(`simulation worker failed: ${msg.error}`));
              return;
            }
            onDone(msg.done);
            next();
          });
          worker.on('error', reject);
          worker.on('exit', (code) => {
            if (code !== 0) reject(new Error(`simulation worker exited with code ${code}`));
          });
          next();
        }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
