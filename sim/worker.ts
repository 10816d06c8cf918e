// A worker thread of the simulation pool: takes tasks, answers results.
import { parentPort } from 'node:worker_threads';
import { doTask, type CellTask } from './task.js';

if (!parentPort) throw new Error('sim/worker.js must run as a worker thread');
const port = parentPort;
port.on('message', (task: CellTask) => {
  try {
    port.postMessage({ ok: true, done: doTask(task) });
  } catch (err) {
    port.postMessage({ ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) });
  }
});
