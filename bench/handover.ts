// `heliomesh bench handover`: the floor that hand-overs between processes set for `bench
// pipeline` on this machine, with none of the project's own path in the way. A synthetic
// token (bench/handover/chain.ts: a head and 3 stages of fixed compute, frames of
// stories15M's size) runs in this process, then through 3 node processes chained by a hub
// that computes the head: over raw TCP (node to hub to next node, as the embedded broker
// relays a chained hop), over raw TCP node to node (as a direct data plane would hand over),
// and over MQTT (aedes in the hub, MQTT.js in the nodes, QoS 0). Rounds alternate the
// four, and medians are reported, because this machine's speed drifts by a factor of two
// within seconds. What the pipeline reaches against what these reach
// says how much of its gap is the machine's hand-overs, how much the MQTT libraries', and
// how much the project's own path. It also times one stage's compute just after a sleep,
// against back to back (handover/wake.ts): the nodes sleep between their turns.
import { fork, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import { FRAME_BYTES, frameSplitter, HEAD_ROWS, inputTopic, matvec, OUT_TOPIC, STAGE_ROWS, TRANSPORTS, weights, type DirectLink, type NodeCount, type Transport } from './handover/chain.js';
import { reapOnExit } from './reap.js';
import type { Bench, BenchOptions, BenchResult } from './types.js';
import { median } from './median.js';
import { wakeTimes } from './handover/wake.js';

const NODE = fileURLToPath(new URL('./handover/node.js', import.meta.url));
const WARMUP_TOKENS = 20;
/** Samples of each case of the wake probe (handover/wake.ts): about 1.2 s in all. */
const WAKE_SAMPLES = 100;

/** A hub and its 3 node processes on one transport; `token(n)` sends n tokens through the chain. */
interface Chain {
  tokens(n: number): Promise<void>;
  counts(): Promise<NodeCount[]>;
  close(): Promise<void>;
}

const head = weights(HEAD_ROWS, 100);
const stages = [1, 2, 3].map((seed) => weights(STAGE_ROWS, seed));
let sink = 0;

function inProcessToken(): void {
  sink += matvec(head);
  for (const w of stages) sink += matvec(w);
}

function startNodes(transport: Transport, port: number): ChildProcess[] {
  return [0, 1, 2].map((i) => {
    const child = fork(NODE, [transport, String(port), String(i)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    reapOnExit(child);
    return child;
  });
}

/** Rejects when a node exits before the chain is closed: a token that cannot come back must not hang the bench. */
function watch(nodes: ChildProcess[]): { lost: Promise<never>; closing: () => void } {
  let closing = false;
  const lost = new Promise<never>((_resolve, reject) => {
    for (const [i, c] of nodes.entries()) {
      c.once('exit', (code, signal) => {
        if (!closing) reject(new Error(`handover node ${i} exited (${signal ?? `code ${code}`}) while the chain was in use`));
      });
    }
  });
  lost.catch(() => undefined);
  return { lost, closing: () => (closing = true) };
}

/** Waits for every node's 'ready' (and `also`); on a failure the nodes and the server are stopped before it is thrown. */
async function started(w: ReturnType<typeof watch>, nodes: ChildProcess[], server: Server, also: Promise<void>[], closeMore?: () => Promise<void>): Promise<void> {
  try {
    await Promise.race([w.lost, Promise.all([...also, ...nodes.map((c) => new Promise((resolve) => c.once('message', resolve)))])]);
  } catch (err) {
    w.closing();
    await stop(nodes, server);
    await closeMore?.();
    throw err;
  }
}

const ask = <T>(child: ChildProcess): Promise<T> => new Promise((resolve) => {
  child.once('message', (m) => resolve(m as T));
  child.send('count');
});

/** Runs `send` once per token after the head's compute, and resolves when `n` have come back. */
function driver(send: () => void): { tokens: (n: number) => Promise<void>; back: () => void } {
  let left = 0;
  let done: (() => void) | undefined;
  const step = () => {
    if (left-- === 0) return done?.();
    sink += matvec(head);
    send();
  };
  return {
    tokens: (n) => new Promise<void>((resolve) => {
      done = resolve;
      left = n;
      step();
    }),
    back: step,
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as { port: number }).port;
}

async function stop(nodes: ChildProcess[], server: Server): Promise<void> {
  await Promise.all(nodes.map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
  })));
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function tcpChain(): Promise<Chain> {
  const sockets: Socket[] = [];
  const frame = Buffer.alloc(FRAME_BYTES);
  const d = driver(() => sockets[0]!.write(frame));
  let allConnected: () => void = () => undefined;
  const connected = new Promise<void>((resolve) => (allConnected = resolve));
  const server = createServer((s) => {
    s.setNoDelay(true);
    if (sockets.push(s) === 3) allConnected();
  });
  const nodes = startNodes('tcp', await listen(server));
  const w = watch(nodes);
  // A node's 'ready' can come before the hub has accepted its connection: both are awaited.
  await started(w, nodes, server, [connected]);
  // Which connection is which node does not matter: any order of the three is a chain.
  sockets.forEach((s, i) => s.on('data', frameSplitter((f) => {
    if (i < 2) sockets[i + 1]!.write(f);
    else d.back();
  })));
  return {
    tokens: (n) => Promise.race([w.lost, d.tokens(n)]),
    counts: () => Promise.race([w.lost, Promise.all(nodes.map((c) => ask<NodeCount>(c)))]),
    close: async () => {
      w.closing();
      for (const s of sockets) s.destroy();
      await stop(nodes, server);
    },
  };
}

/** Each node listens for its input and sends its output straight to the next; the hub feeds the first and hears the last. */
async function directChain(): Promise<Chain> {
  const frame = Buffer.alloc(FRAME_BYTES);
  let first: Socket | undefined;
  const d = driver(() => first!.write(frame));
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', frameSplitter(() => d.back()));
  });
  const hubPort = await listen(server);
  const nodes = startNodes('direct', hubPort);
  const ports: number[] = [];
  nodes.forEach((c, i) => c.once('message', (m) => (ports[i] = (m as { port: number }).port)));
  const w = watch(nodes);
  await started(w, nodes, server, []);
  const closeAll = async () => {
    w.closing();
    first?.destroy();
    await stop(nodes, server);
  };
  try {
    await Promise.race([w.lost, Promise.all(nodes.map((c, i) => new Promise<void>((resolve) => {
      c.once('message', () => resolve());
      c.send({ next: i < nodes.length - 1 ? ports[i + 1]! : hubPort } satisfies DirectLink);
    })))]);
    first = await new Promise<Socket>((resolve, reject) => {
      const s = connect(ports[0]!, '127.0.0.1', () => resolve(s));
      s.setNoDelay(true);
      s.once('error', reject);
    });
  } catch (err) {
    await closeAll();
    throw err;
  }
  return {
    tokens: (n) => Promise.race([w.lost, d.tokens(n)]),
    counts: () => Promise.race([w.lost, Promise.all(nodes.map((c) => ask<NodeCount>(c)))]),
    close: closeAll,
  };
}

async function mqttChain(): Promise<Chain> {
  const aedes = new Aedes();
  await aedes.listen();
  const frame = Buffer.alloc(FRAME_BYTES);
  // The hub publishes and subscribes on aedes directly, as the gateway's bus does.
  const d = driver(() => aedes.publish({ cmd: 'publish', topic: inputTopic(0), payload: frame, qos: 0, retain: false, dup: false }, () => undefined));
  await new Promise<void>((resolve) => aedes.subscribe(OUT_TOPIC, (_packet, cb) => {
    cb();
    d.back();
  }, resolve));
  const server = createServer((s) => {
    s.setNoDelay(true);
    aedes.handle(s);
  });
  const nodes = startNodes('mqtt', await listen(server));
  const w = watch(nodes);
  await started(w, nodes, server, [], () => new Promise<void>((resolve) => aedes.close(() => resolve())));
  return {
    tokens: (n) => Promise.race([w.lost, d.tokens(n)]),
    counts: () => Promise.race([w.lost, Promise.all(nodes.map((c) => ask<NodeCount>(c)))]),
    close: async () => {
      w.closing();
      await stop(nodes, server);
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

interface Round {
  inProcess: { msPerToken: number; cpuMsPerToken: number };
  chains: Record<Transport, { msPerToken: number; cpuMsPerToken: number; hubCpuMsPerToken: number; framesPerNode: number[] }>;
}

async function measureChain(chain: Chain, n: number): Promise<Round['chains'][Transport]> {
  const before = await chain.counts();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await chain.tokens(n);
  const msPerToken = (performance.now() - t0) / n;
  const hub = process.cpuUsage(cpu0);
  const after = await chain.counts();
  const hubCpuMsPerToken = (hub.user + hub.system) / 1000 / n;
  const nodesCpuMs = after.reduce((a, c, i) => a + (c.cpuUs - before[i]!.cpuUs) / 1000, 0);
  return { msPerToken, hubCpuMsPerToken, cpuMsPerToken: hubCpuMsPerToken + nodesCpuMs / n, framesPerNode: after.map((c, i) => c.frames - before[i]!.frames) };
}

function parseCount(text: string | undefined, fallback: number, name: string, min: number): number {
  const n = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number ≥ ${min}, got '${text}'`);
  return n;
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  const roundCount = parseCount(opts.args.rounds, 21, 'rounds', 1);
  const tokens = parseCount(opts.args.tokens, 50, 'tokens', 1);
  const loadAtStart = loadavg();
  const chains = new Map<Transport, Chain>();
  try {
    for (const t of TRANSPORTS) chains.set(t, t === 'tcp' ? await tcpChain() : t === 'direct' ? await directChain() : await mqttChain());
    for (let i = 0; i < WARMUP_TOKENS; i++) inProcessToken();
    for (const c of chains.values()) await c.tokens(WARMUP_TOKENS);
    const rounds: Round[] = [];
    for (let r = 0; r < roundCount; r++) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < tokens; i++) inProcessToken();
      const msPerToken = (performance.now() - t0) / tokens;
      const cpu = process.cpuUsage(cpu0);
      const round = { inProcess: { msPerToken, cpuMsPerToken: (cpu.user + cpu.system) / 1000 / tokens }, chains: {} } as Round;
      for (const [t, c] of chains) round.chains[t] = await measureChain(c, tokens);
      rounds.push(round);
      process.stderr.write(`bench handover: round ${r + 1}/${roundCount}: in-process ${msPerToken.toFixed(2)} ms/token, ` +
        TRANSPORTS.map((t) => `${t} ${round.chains[t].msPerToken.toFixed(2)}`).join(', ') + '\n');
    }
    const by = Object.fromEntries(TRANSPORTS.map((t) => {
      const ratios = rounds.map((r) => r.inProcess.msPerToken / r.chains[t].msPerToken);
      const cpus = rounds.map((r) => r.chains[t].cpuMsPerToken / r.inProcess.cpuMsPerToken);
      return [t, { medianRatio: median(ratios), minRatio: Math.min(...ratios), maxRatio: Math.max(...ratios), medianCpuRatio: median(cpus), minCpuRatio: Math.min(...cpus), maxCpuRatio: Math.max(...cpus) }];
    })) as Record<Transport, { medianRatio: number; minRatio: number; maxRatio: number; medianCpuRatio: number; minCpuRatio: number; maxCpuRatio: number }>;
    const box = { value: 0 };
    const wake = await wakeTimes(stages[0]!, WAKE_SAMPLES, box);
    sink += box.value;
    const slower = (ms: number) => `${ms.toFixed(3)} ms (${((ms / wake.backToBackMs - 1) * 100).toFixed(0)} %)`;
    const inMs = median(rounds.map((r) => r.inProcess.msPerToken));
    const describe = (t: Transport, name: string) => {
      const b = by[t];
      return `${name}: speed ratio ${b.medianRatio.toFixed(3)} (rounds ${b.minRatio.toFixed(2)}–${b.maxRatio.toFixed(2)}), CPU ${b.medianCpuRatio.toFixed(2)}× (${b.minCpuRatio.toFixed(2)}–${b.maxCpuRatio.toFixed(2)})`;
    };
    const summary = `handover floor [a head and 3 stages of fixed compute, ${FRAME_BYTES}-byte frames, in-process ${inMs.toFixed(2)} ms per token, median of ${roundCount} alternating rounds of ${tokens} tokens]: ` +
      `${describe('tcp', 'raw TCP')}; ${describe('direct', 'raw TCP node to node (4 hand-overs a token, not 6)')}; ${describe('mqtt', 'MQTT (aedes + MQTT.js, QoS 0)')}; against bench pipeline's goals of 0.8 and 1.3×; ` +
      `one stage's compute alone: ${wake.backToBackMs.toFixed(3)} ms back to back, ${slower(wake.afterSleep1Ms)} after sleeping 1 ms, ${slower(wake.afterSleep5Ms)} after 5 ms, ${slower(wake.afterSpin5Ms)} after spinning 5 ms awake (median of ${wake.samples}); load average ${loadAtStart[0]!.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`;
    return { summary, metrics: { tokens, frameBytes: FRAME_BYTES, stageRows: STAGE_ROWS, headRows: HEAD_ROWS, byTransport: by, wake, rounds, loadAtStart, loadAtEnd: loadavg(), sink } };
  } finally {
    for (const c of chains.values()) await c.close();
  }
}

export const handoverBench: Bench = {
  description: 'the floor hand-overs set for bench pipeline: a synthetic token in one process against 3 node processes chained over raw TCP and over MQTT',
  run,
};
