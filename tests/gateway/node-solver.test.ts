// NodeSolver keeps one solve per node running and only the latest request waiting. When a
// node's estimate moves during every solve (each slot record of a young estimate does, at
// the demo's 1440x, faster than a loaded host solves), the finished answer must still be
// applied: it is newer than the one in force. Dropping it for the waiting request left the
// node on its prior (no harvest, q_lim 0) for as long as the estimate kept moving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PAPER_DYNAMIC_TABLE, PAPER_MODES, uniformOnGrid, type DeviceParams } from '../../gateway/scheduler/index.js';
import { NodeSolver, type SolverPool, type Solved } from '../../gateway/solver-pool.js';

/** A pool whose solves finish when the test says, in order. */
function manualPool() {
  const pending: Array<{ params: DeviceParams; resolve: (s: Solved) => void }> = [];
  const pool = {
    isClosed: false,
    solve: (params: DeviceParams) => new Promise<Solved>((resolve) => pending.push({ params, resolve })),
  };
  const finish = async (qLim: number) => {
    const p = pending.shift()!;
    p.resolve({ qLim, qEnergy: qLim, qProc: 1, energyBinds: true, solves: 1, solveMs: 1, hash: String(qLim) });
    await new Promise((r) => setImmediate(r));
  };
  return { pool: pool as unknown as SolverPool, pending, finish };
}

const params = (hiQ: number): DeviceParams => ({
  eMax: 100, eTh: 10, eThUp: 15, modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, harvestPmf: uniformOnGrid(0, hiQ),
});

test('an answer finished while a newer request waits is applied, then the newer one is solved', async () => {
  const { pool, pending, finish } = manualPool();
  const applied: Array<{ hiQ: number; qLim: number }> = [];
  const solver = new NodeSolver(pool);
  solver.on('solved', (_id, p, s) => applied.push({ hiQ: p.harvestPmf.length, qLim: s.qLim }));
  solver.on('failed', (id, err) => assert.fail(`${id}: ${err.message}`));
  // The estimate moves during every solve: three requests, each arriving while the previous one runs.
  solver.update('n', params(10), 0.01);
  solver.update('n', params(20), 0.01);
  await finish(0.1);
  assert.deepEqual(applied.map((a) => a.qLim), [0.1], 'the finished answer is applied although a newer request was waiting');
  assert.equal(pending.length, 1, 'the waiting request is being solved');
  solver.update('n', params(30), 0.01);
  await finish(0.2);
  await finish(0.3);
  assert.deepEqual(applied.map((a) => a.qLim), [0.1, 0.2, 0.3], 'answers are applied in the order requested: an older one never replaces a newer');
  assert.equal(pending.length, 0);
});
