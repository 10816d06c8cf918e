// The gateway process of `heliomesh bench gateway`: one real gateway (startGateway, its
// embedded broker, the bench's credentials file) alone in this process, measured over a
// window the bench opens: process CPU, event-loop utilization and lag, the scheduler's
// decision times, and the solver's share. Driven over the IPC channel (ipc.ts).
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import type { Solved } from '../../gateway/solver-pool.js';
import { percentiles, type FromGateway, type GatewayStatus, type NodeAccount, type ToGateway, type WindowResult } from './ipc.js';
import { decisionTimer, runJobs } from './jobs.js';

let gateway: Gateway | undefined;
let log: Logger | undefined;

function send(msg: FromGateway): void {
  process.send?.(msg);
}

/** Solves that reach a solver thread, and the time the thread spent on them. */
const solverTime = { solved: 0, cacheHits: 0, solveMs: 0 };

function instrumentSolver(gw: Gateway): void {
  const pool = gw.solver;
  const solve = pool.solve.bind(pool);
  // The registry's NodeSolver calls the pool's `solve`; the wrapper only adds up the times.
  pool.solve = (params, xiLim) => solve(params, xiLim).then((s: Solved) => {
    if (s.solves > 0) {
      solverTime.solved++;
      solverTime.solveMs += s.solveMs;
    } else {
      solverTime.cacheHits++;
    }
    return s;
  });
}

function status(gw: Gateway): GatewayStatus {
  const nodes = gw.registry.all();
  return {
    nodes: nodes.length,
    online: nodes.filter((n) => n.online).length,
    solved: nodes.filter((n) => n.solved !== undefined).length,
    solverQueued: gw.solver.stats().queued,
  };
}

async function measure(gw: Gateway, msg: Extract<ToGateway, { type: 'measure' }>): Promise<WindowResult> {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  const solver0 = { ...solverTime };
  const link0 = { ...gw.link.counters };
  const broker0 = gw.broker.stats().publishesIn;
  decisionTimer.reset();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  lag.enable();
  const jobs = msg.jobs ? runJobs(gw, msg.jobs, msg.seconds * 1000, log!) : null;
  await new Promise((r) => setTimeout(r, msg.seconds * 1000));
  lag.disable();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const solverQueued = gw.solver.stats().queued;
  const link = gw.link.counters;
  const brokerIn = gw.broker.stats().publishesIn - broker0;
  const pct = (us: number) => (100 * us) / 1000 / wallMs;
  const lagMs = (q: number) => lag.percentile(q) / 1e6;
  return {
    seconds: wallMs / 1000,
    cpuPct: pct(cpu.user + cpu.system),
    cpuUserPct: pct(cpu.user),
    cpuSystemPct: pct(cpu.system),
    eventLoopUtilization: elu.utilization,
    eventLoopLagMs: { count: lag.count, p50: lagMs(50), p99: lagMs(99), max: lag.max / 1e6, mean: lag.mean / 1e6 },
    decisionMs: percentiles(decisionTimer.wallMs),
    decisionCpuMs: percentiles(decisionTimer.cpuMs),
    solver: {
      solved: solverTime.solved - solver0.solved,
      cacheHits: solverTime.cacheHits - solver0.cacheHits,
      solveMs: solverTime.solveMs - solver0.solveMs,
      queuedAtEnd: solverQueued,
    },
    rssMiB: process.memoryUsage().rss / 2 ** 20,
    // Jobs still running when the window closes get `drainMs` to finish; their CPU is not in the window.
    jobs: jobs ? await jobs.finish(msg.drainMs) : null,
    linkMessages: link.messages - link0.messages,
    linkInvalid: link.invalid - link0.invalid,
    brokerPublishesIn: brokerIn,
  };
}

function account(gw: Gateway): NodeAccount[] {
  return gw.registry.all().map((n) => ({ nodeId: n.nodeId, lastSeq: n.lastSeq ?? null, missedSlots: n.missedSlots, online: n.online }));
}

async function handle(msg: ToGateway): Promise<void> {
  switch (msg.type) {
    case 'start': {
      // The gateway logs as it does in service (info), to a file: formatting its lines is part of its cost.
      log = pino({ level: 'info' }, pino.destination({ dest: msg.logFile, sync: false }));
      gateway = await startGateway(parseGatewayConfig(msg.config, 'bench gateway config'), { clock: new RealClock(), log });
      instrumentSolver(gateway);
      decisionTimer.install(gateway);
      send({ type: 'ready', port: gateway.broker.ports.mqtt! });
      return;
    }
    case 'status':
      send({ type: 'status', status: status(gateway!) });
      return;
    case 'measure':
      send({ type: 'result', result: await measure(gateway!, msg) });
      return;
    case 'account': {
      const s = gateway!.broker.stats();
      send({
        type: 'account', nodes: account(gateway!), linkInvalid: gateway!.link.counters.invalid,
        brokerRefused: { auth: s.refusedAuth, acl: s.refusedAcl, rate: s.refusedRate, size: s.refusedSize, slowDisconnects: s.slowDisconnects },
      });
      return;
    }
    case 'close':
      await gateway?.close();
      gateway = undefined;
      log?.flush();
      process.disconnect?.();
      return;
  }
}

process.on('message', (msg: ToGateway) => {
  handle(msg).catch((err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) });
  });
});
// The bench ends this process; if the bench dies first, the channel closes and so does the gateway.
process.on('disconnect', () => {
  void (gateway?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
