// `heliomesh bench gateway`: one real gateway under a fleet's load. The gateway (startGateway:
// embedded broker with node logins and ACL, registry, solver pool, job router) runs alone in a
// child process; the bench's virtual nodes (bench/gateway/fleet.ts) run in this process, one
// MQTT client each, in 3 groups, publishing a slot record at 1 Hz while completions arrive as a
// Poisson process through the gateway's job service. Reported: the gateway process's CPU, its
// event-loop lag p99, the scheduler's decision time p99 and whether every slot record reached
// the registry. No InfluxDB: the gateway runs with its null store.
import { randomBytes, scrypt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import type { CredentialEntry, CredentialsFile } from '../gateway/broker/index.js';
import type { GatewayConfigInput } from '../gateway/config.js';
import { bundledManifestPath, bundledModelDir } from '../models/bundled.js';
import { readManifest } from '../models/shards.js';
import { BenchFleet, type BenchNode } from './gateway/fleet.js';
import { GatewayChild } from './gateway/gateway-child.js';
import type { NodeAccount, WindowResult } from './gateway/ipc.js';
import { benchProfile } from './gateway/messages.js';
import type { Bench, BenchOptions, BenchResult } from './types.js';
import { until } from '../ground/until.js';

const FLEET = 'bench';
const GROUPS = 3;
/** One slot record per node per second. */
const SLOT_MS = 1000;
const GOALS = { decisionP99Ms: 5, cpuPct: 50 };

function intArg(args: BenchOptions['args'], name: string, fallback: number, min: number): number {
  const raw = args[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}, got '${raw}'`);
  return n;
}

// scrypt at N = 2^10 (r 8, p 1) rather than the 2^14 of `heliomesh gateway add-node`: the
// broker checks each login with the entry's own parameters, so logins take the real path,
// but a thousand of them take seconds instead of minutes. Logins happen before the measured
// window; their cost is measured in docs/gateway.md.
const BENCH_KDF = { N: 1024, r: 8, p: 1, keyLen: 32 } as const;

function benchEntry(password: string): Promise<CredentialEntry> {
  const salt = randomBytes(16);
  return new Promise((resolve, reject) => {
    scrypt(password, salt, BENCH_KDF.keyLen, { N: BENCH_KDF.N, r: BENCH_KDF.r, p: BENCH_KDF.p }, (err, hash) => {
      if (err) return reject(err);
      const { N, r, p } = BENCH_KDF;
      resolve({ kdf: 'scrypt', N, r, p, salt: salt.toString('base64'), hash: hash.toString('base64') });
    });
  });
}

/** The nodes, spread round-robin over the bundled model's block ranges, each holding its group's shard. */
function benchNodes(count: number): BenchNode[] {
  const manifest = readManifest(bundledModelDir());
  if (manifest.blocks.length !== GROUPS) throw new Error(`the bundled model has ${manifest.blocks.length} block ranges; the bench needs ${GROUPS}`);
  return Array.from({ length: count }, (_, i) => {
    const g = i % GROUPS;
    const b = manifest.blocks[g]!;
    const shard = { model: 'bundled', firstBlock: b.from, lastBlock: b.to - 1, sha256: b.sha256 };
    return { nodeId: `bench-${i}`, password: randomBytes(18).toString('base64url'), profile: benchProfile(`g${g + 1}`, SLOT_MS, shard) };
  });
}

interface Loss {
  published: number;
  received: number;
  lost: number;
  /** Sequence gaps the registry counted (records that arrived after a later one count here too). */
  gaps: number;
  nodesMissing: number;
  /** Why the registry's account could not be read or did not catch up, if so. */
  accountError?: string;
}

function lossOf(published: Map<string, number>, accounts: NodeAccount[]): Loss {
  const byNode = new Map(accounts.map((a) => [a.nodeId, a]));
  let total = 0;
  let received = 0;
  let gaps = 0;
  let nodesMissing = 0;
  for (const [nodeId, count] of published) {
    total += count;
    const a = byNode.get(nodeId);
    if (!a) {
      nodesMissing++;
      continue;
    }
    // The registry keeps the last seq and counts gaps; seqs start at 0.
    received += (a.lastSeq ?? -1) + 1 - a.missedSlots;
    gaps += a.missedSlots;
  }
  return { published: total, received, lost: total - received, gaps, nodesMissing };
}

function progress(text: string): void {
  process.stderr.write(`bench gateway: ${text}\n`);
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  const nodes = intArg(opts.args, 'nodes', 1000, GROUPS);
  const jobsPerS = intArg(opts.args, 'jobsPerS', 20, 0);
  const seconds = intArg(opts.args, 'seconds', 60, 1);
  const maxTokens = intArg(opts.args, 'tokens', 8, 1);
  const loadAtStart = loadavg();
  const work = mkdtempSync(join(tmpdir(), 'heliomesh-bench-gateway-'));
  const gateway = new GatewayChild();
  const fleetNodes = benchNodes(nodes);
  const fleet = new BenchFleet(fleetNodes, FLEET);
  try {
    progress(`making ${nodes} node logins`);
    const credentials: CredentialsFile = { version: 1, nodes: {} };
    for (const n of fleetNodes) credentials.nodes[n.nodeId] = await benchEntry(n.password);
    const credentialsPath = join(work, 'credentials.json');
    writeFileSync(credentialsPath, JSON.stringify(credentials), { mode: 0o600 });

    const config: GatewayConfigInput = {
      fleet: FLEET,
      broker: {
        host: '127.0.0.1', port: 0, credentialsPath,
        maxClients: nodes + 10,
        // Every bench node connects from 127.0.0.1, all at once: the per-address flood limits are not under test.
        connectsPerMinutePerAddress: nodes * 10,
        maxPendingPerAddress: nodes + 10,
        maxPendingConnections: nodes + 10,
      },
      model: { manifest: bundledManifestPath() },
    };
    const { port } = await gateway.request({ type: 'start', config, logFile: join(work, 'gateway.log') }, 'ready');

    const bar = new cliProgress.SingleBar({ format: 'bench gateway: nodes logging in [{bar}] {value}/{total}', stream: process.stderr }, cliProgress.Presets.shades_classic);
    bar.start(nodes, 0);
    const t0 = performance.now();
    try {
      await fleet.connect(`mqtt://127.0.0.1:${port}`, 16, (n) => bar.update(n));
    } finally {
      bar.stop();
    }
    const loginS = (performance.now() - t0) / 1000;
    // Every birth in the registry and every node's chain solved before the load starts.
    await until(`${nodes} births with solved chains at the gateway`, async () => {
      const { status } = await gateway.request({ type: 'status' }, 'status');
      return status.online === nodes && status.solved === nodes;
    }, 300_000, 250);

    progress(`slot records at ${1000 / SLOT_MS} Hz from ${nodes} nodes, jobs at ${jobsPerS}/s; measuring ${seconds} s`);
    fleet.startSlots();
    // One slot of warm-up, so every node is publishing when the window opens.
    await new Promise((r) => setTimeout(r, SLOT_MS + 1000));
    const loadInWindow = loadavg();
    const windowStartMs = Date.now();
    const runJobs = jobsPerS > 0;
    const { result } = await gateway.request({
      type: 'measure', seconds, drainMs: 30_000, jobs: runJobs ? { jobsPerS, maxTokens, seed: 1 } : null,
    }, 'result');
    const loadAfterWindow = loadavg();

    const allAcked = await fleet.stopSlots(60_000);
    const published = fleet.published();
    const expected = [...published.values()].reduce((a, b) => a + b, 0);
    // The last acknowledged records may still be on their way from the broker to the registry.
    let accounts: NodeAccount[] = [];
    let extra: { linkInvalid: number; brokerRefused: Record<string, number> } = { linkInvalid: 0, brokerRefused: {} };
    let accountError: string | undefined;
    await until('the registry to account for the last slot records', async () => {
      const a = await gateway.request({ type: 'account' }, 'account');
      accounts = a.nodes;
      extra = { linkInvalid: a.linkInvalid, brokerRefused: a.brokerRefused };
      return lossOf(published, accounts).received >= expected;
    }, 120_000, 250).catch((err: Error) => {
      accountError = err.message;
    });
    const loss: Loss = { ...lossOf(published, accounts), ...(accountError ? { accountError } : {}) };
    return report({
      nodes, seconds, jobsPerS, maxTokens, runJobs, loginS, result, loss, allAcked,
      fleet: { ...fleet.counters, errors: { ...fleet.counters.errors }, firstDropAfterWindowStartS: fleet.counters.firstDropAtMs === null ? null : (fleet.counters.firstDropAtMs - windowStartMs) / 1000 }, extra, loadavg: { atStart: loadAtStart, windowStart: loadInWindow, windowEnd: loadAfterWindow },
    });
  } finally {
    await fleet.end();
    await gateway.close();
    rmSync(work, { recursive: true, force: true });
  }
}

interface Measured {
  nodes: number;
  seconds: number;
  jobsPerS: number;
  maxTokens: number;
  runJobs: boolean;
  loginS: number;
  result: WindowResult;
  loss: Loss;
  allAcked: boolean;
  fleet: BenchFleet['counters'] & { firstDropAfterWindowStartS: number | null };
  extra: { linkInvalid: number; brokerRefused: Record<string, number> };
  loadavg: Record<string, number[]>;
}

function report(m: Measured): BenchResult {
  const r = m.result;
  const f = (x: number, d = 1) => x.toFixed(d);
  const decision = `decision p99 ${f(r.decisionMs.p99, 2)} ms wall, ${f(r.decisionCpuMs.p99, 2)} ms CPU (goal < ${GOALS.decisionP99Ms} ms, ${r.decisionMs.count} picks)`;
  const jobs = r.jobs
    ? `jobs ${r.jobs.completed}/${r.jobs.submitted} completed, ${r.jobs.failed} failed, ${r.jobs.unfinished} unfinished (${m.maxTokens} tokens each, p99 latency ${f(r.jobs.latencyMs.p99, 0)} ms)`
    : 'jobs not run (--jobs-per-s 0)';
  const lossText = m.loss.lost === 0 && m.loss.gaps === 0 && m.loss.nodesMissing === 0
    ? `message loss 0 of ${m.loss.published.toLocaleString('en-US')} slot records`
    : `MESSAGE LOSS ${m.loss.lost} of ${m.loss.published} slot records (${m.loss.gaps} gaps, ${m.loss.nodesMissing} nodes unknown` +
      `${m.loss.accountError ? `; the registry's account: ${m.loss.accountError}` : ''})`;
  const summary =
    `gateway: ${m.nodes} nodes × 1 slot record/s, ${m.runJobs ? `${m.jobsPerS} jobs/s` : 'no jobs'}, ${f(r.seconds, 0)} s: ` +
    `CPU ${f(r.cpuPct)} % of one core (goal < ${GOALS.cpuPct} %; main thread busy ${f(100 * r.eventLoopUtilization)} %, solver ${f(r.solver.solveMs / 10 / r.seconds)} %), ` +
    `event-loop lag p99 ${f(r.eventLoopLagMs.p99)} ms, ${decision}, ${lossText}; ${jobs}; ` +
    (m.fleet.dropped ? `${m.fleet.dropped} NODE CONNECTIONS LOST (the first ${f(m.fleet.firstDropAfterWindowStartS ?? 0, 0)} s into the window); ` : '') +
    `load average ${f(m.loadavg.windowStart![0]!)} → ${f(m.loadavg.windowEnd![0]!)}`;
  return {
    summary,
    metrics: {
      goals: GOALS,
      nodes: m.nodes,
      groups: GROUPS,
      slotMs: SLOT_MS,
      jobsPerS: m.runJobs ? m.jobsPerS : 0,
      jobsRun: m.runJobs,
      tokensPerJob: m.maxTokens,
      nodeAnswer: 'echo: an activation frame is answered with itself (same header, the input hidden states as output); nothing is computed on the nodes',
      store: 'none (null store, no InfluxDB)',
      loginSeconds: m.loginS,
      window: r,
      solverSharePct: r.solver.solveMs / 10 / r.seconds,
      loss: m.loss,
      allSlotRecordsAcked: m.allAcked,
      fleet: m.fleet,
      linkInvalid: m.extra.linkInvalid,
      brokerRefused: m.extra.brokerRefused,
      loadAverage: m.loadavg,
    },
  };
}

export const gatewayBench: Bench = {
  description: '1,000 virtual nodes (slot records at 1 Hz) and Poisson jobs on one gateway: CPU, event-loop lag, decision time, message loss',
  run,
};
