// Re-solving nodes' chains off the event loop. A pool of worker threads answers q_lim for
// a parameter set; answers are cached by a hash of the parameters, so nodes with the same
// profile and the same harvest estimate (or a node whose estimate returns to an earlier
// one) cost nothing. `NodeSolver` keeps only the latest request per node: when a node's
// estimate moves twice while a solve runs, the middle one is never computed; every answer
// is applied as it comes, in order, so a late answer never replaces a newer one.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { DeviceParams } from './scheduler/index.js';
import type { SolveReply, SolveRequest } from './solver-worker.js';

export interface Solved {
  qLim: number;
  qEnergy: number;
  qProc: number;
  energyBinds: boolean;
  /** Chain solves the worker needed (0 when answered from the cache). */
  solves: number;
  solveMs: number;
  hash: string;
}

/** A stable digest of everything the chain depends on. */
export function paramsHash(params: DeviceParams, xiLim: number): string {
  const canonical = JSON.stringify({
    eMax: params.eMax,
    eTh: params.eTh,
    eThUp: params.eThUp,
    modes: params.modes.map((m) => [m.powerMode, m.kappa, m.costQ]),
    modeTable: params.modeTable.map((s) => [s.minFraction, s.powerMode]),
    harvestPmf: Array.from(params.harvestPmf),
    // Only when drawn: the paper's device keeps the digests (and cache hits) it had.
    ...(params.idleQ ? { idleQ: params.idleQ } : {}),
    xiLim,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

interface Pending {
  req: SolveRequest;
  resolve: (r: SolveReply) => void;
}

class SolverThread {
  private worker: Worker;
  current: Pending | undefined;

  constructor(private readonly onIdle: () => void) {
    this.worker = this.spawn();
  }

  run(p: Pending): void {
    this.current = p;
    this.worker.postMessage(p.req);
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./solver-worker.js', import.meta.url));
    w.on('message', (reply: SolveReply) => this.finish(reply));
    // A crashed worker fails its request and is replaced, so one bad input cannot stop re-solving.
    w.on('error', (err) => {
      const id = this.current?.req.id ?? -1;
      this.worker = this.spawn();
      this.finish({ id, ok: false, error: `solver thread crashed: ${err.message}` });
    });
    return w;
  }

  private finish(reply: SolveReply): void {
    const p = this.current;
    this.current = undefined;
    p?.resolve(reply);
    this.onIdle();
  }
}

export class SolverPool {
  private readonly threads: SolverThread[] = [];
  private readonly queue: Pending[] = [];
  private readonly cache = new Map<string, Promise<Solved>>();
  private nextId = 1;
  private closed = false;
  private counts = { solved: 0, cacheHits: 0, failed: 0 };

  constructor(private readonly opts: { threads?: number; cacheSize?: number } = {}) {}

  solve(params: DeviceParams, xiLim: number): Promise<Solved> {
    if (this.closed) return Promise.reject(new Error('solver pool is closed'));
    const hash = paramsHash(params, xiLim);
    const hit = this.cache.get(hash);
    if (hit) {
      this.counts.cacheHits++;
      // Refresh its place in the LRU order.
      this.cache.delete(hash);
      this.cache.set(hash, hit);
      return hit.then((s) => ({ ...s, solves: 0, solveMs: 0 }));
    }
    const result = new Promise<SolveReply>((resolve) => {
      this.queue.push({ req: { id: this.nextId++, params, xiLim }, resolve });
      this.pump();
    }).then((reply): Solved => {
      if (!reply.ok) {
        this.counts.failed++;
        this.cache.delete(hash);
        throw new Error(reply.error);
      }
      this.counts.solved++;
      const { qLim, qEnergy, qProc, energyBinds, solves, solveMs } = reply;
      return { qLim, qEnergy, qProc, energyBinds, solves, solveMs, hash };
    });
    this.cache.set(hash, result);
    const max = this.opts.cacheSize ?? 4096;
    while (this.cache.size > max) this.cache.delete(this.cache.keys().next().value as string);
    return result;
  }

  /** True once close() began: solves then fail, and nobody is waiting for them. */
  get isClosed(): boolean {
    return this.closed;
  }

  stats(): { solved: number; cacheHits: number; failed: number; queued: number } {
    return { ...this.counts, queued: this.queue.length };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve({ id: p.req.id, ok: false, error: 'solver pool closed' });
    await Promise.all(this.threads.map((t) => t.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let idle = this.threads.find((t) => !t.current);
      if (!idle && this.threads.length < (this.opts.threads ?? 1)) {
        idle = new SolverThread(() => this.pump());
        this.threads.push(idle);
      }
      if (!idle) return;
      idle.run(this.queue.shift()!);
    }
  }
}

/** What a NodeSolver reports: an answer for the parameters it was asked, or why there is none. */
export interface NodeSolverEvents {
  solved: [nodeId: string, params: DeviceParams, solved: Solved];
  failed: [nodeId: string, err: Error];
}

/**
 * Latest-wins re-solving per node on top of a pool: at most one solve per node runs at a
 * time; a request made meanwhile waits, and a newer one replaces it. Answers are events,
 * so whoever applies them subscribes once it exists.
 */
export class NodeSolver extends EventEmitter<NodeSolverEvents> {
  private readonly running = new Set<string>();
  private readonly waiting = new Map<string, { params: DeviceParams; xiLim: number }>();

  constructor(private readonly pool: SolverPool) {
    super();
  }

  update(nodeId: string, params: DeviceParams, xiLim: number): void {
    if (this.pool.isClosed) return; // the gateway is stopping: no one will read the answer
    if (this.running.has(nodeId)) {
      this.waiting.set(nodeId, { params, xiLim });
      return;
    }
    this.running.add(nodeId);
    this.pool.solve(params, xiLim).then(
      (solved) => this.done(nodeId, () => this.emit('solved', nodeId, params, solved)),
      // Solves cut short by close() are not failures of the node's parameters.
      (err: Error) => this.done(nodeId, () => (this.pool.isClosed ? undefined : this.emit('failed', nodeId, err))),
    );
  }

  forget(nodeId: string): void {
    this.waiting.delete(nodeId);
  }

  private done(nodeId: string, report: () => void): void {
    this.running.delete(nodeId);
    const next = this.waiting.get(nodeId);
    this.waiting.delete(nodeId);
    // This answer is newer than the one in force, so it is applied even when a newer request
    // waits: dropping it would leave the node on an older answer (its prior) for as long as
    // its estimate keeps moving during each solve. One solve per node at a time keeps the
    // answers in order, so an older one never replaces a newer.
    report();
    if (next) this.update(nodeId, next.params, next.xiLim);
  }
}
