// The solver's worker thread: q_lim and its parts for one parameter set (SPEC.md Eq. 5).
// Solving a chain takes milliseconds to tens of milliseconds per node, so it runs here and
// the gateway's event loop keeps routing jobs meanwhile.
import { parentPort } from 'node:worker_threads';
import { DeviceModel, limits, type DeviceParams } from './scheduler/index.js';

export interface SolveRequest {
  id: number;
  params: DeviceParams;
  xiLim: number;
}

export type SolveReply =
  | { id: number; ok: true; qLim: number; qEnergy: number; qProc: number; energyBinds: boolean; solves: number; solveMs: number }
  | { id: number; ok: false; error: string };

if (!parentPort) throw new Error('solver-worker.js runs only as a worker thread');
const port = parentPort;
port.on('message', (req: SolveRequest) => {
  const t0 = performance.now();
  try {
    const lim = limits(new DeviceModel(req.params), req.xiLim);
    const reply: SolveReply = { id: req.id, ok: true, ...lim, solveMs: performance.now() - t0 };
    port.postMessage(reply);
  } catch (err) {
    port.postMessage({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies SolveReply);
  }
});
