// `heliomesh bench pipeline`: decode tokens/s of one completion through the gateway and 3
// real agents (each its own process and its own block range, over MQTT on loopback), against
// the same model generated in a process of its own as 3 stages (models/generate.ts Pipeline,
// bench/pipeline/reference.ts), with
// the same prompt, sampler and seed, in rounds that alternate the two. The token ids must be
// identical (f32 frames carry the hidden states exactly). Also reported: the activation
// frames that crossed the broker per token, counted as they were published; and where a
// decode token's time goes on the fleet path (each hop's round trip split into the MQTT
// legs, the node's forward and its handling around it, as the node itself timed them; the
// gateway's own share); and the same path with nodes that compute nothing
// (pipeline/bare-chain.ts), whose time and CPU per token are what the transport alone
// costs; and a plain TCP round trip to a process that echoes (pipeline/wake-probe.ts), what
// the machine itself charges for waking a process that slept a token's time. `--link-delay-ms D` holds every frame D ms at the broker, as a field deployment's
// Wi-Fi would, so paths that cross it a different number of times can be compared under the
// same link.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { addNode, type PublishTap } from '../gateway/broker/index.js';
import { RealClock } from '../ground/clock.js';
import { parseGatewayConfig } from '../gateway/config.js';
import { startGateway, type Gateway } from '../gateway/index.js';
import { selectBackend } from '../models/backend.js';
import { AgentCpu, type AgentReading } from './pipeline/agent-cpu.js';
import { AgentProcess, type AgentSpec } from './pipeline/agents.js';
import { benchModelName, parseBenchModel, prepareModel } from './pipeline/model.js';
import { ReferenceProcess } from './pipeline/reference.js';
import { readManifest } from '../models/shards.js';
import { BrokerCrossings } from './pipeline/crossings.js';
import { report, type FleetRun, type NodeHop, type Round } from './pipeline/report.js';
import { frameCodecUs, HopTrace } from './pipeline/trace.js';
import { BareChain } from './pipeline/bare-chain.js';
import { WakeProbe } from './pipeline/wake-probe.js';
import type { Bench, BenchOptions, BenchResult } from './types.js';
import { until } from '../ground/until.js';

const FLEET = 'bench';
const ROUNDS = 5;
/**
 * Unmeasured full-length rounds of each path first. V8 keeps optimizing the agents' code for
 * a long while: counted per thread, the 3 agents' compiler threads used 2.4 ms per token in
 * the first 128-token job and 0.1–0.3 ms after about 12 jobs, while the fleet's CPU per
 * token fell from 22 to 13–15 ms. A node in the field serves for days, so the rounds that
 * are measured come after that.
 */
const WARMUP_ROUNDS = 8;
const PROMPT_TOKENS = 16;
/** Sampled, not greedy: the seed must carry over for the ids to match. */
const SAMPLER = { temperature: 0.8, topP: 0.95, seed: 7 };

async function viaFleet(gw: Gateway, promptIds: number[], maxTokens: number): Promise<FleetRun> {
  const at: number[] = [];
  const ids: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const handle = gw.jobs.submit({ prompt: { ids: promptIds }, maxTokens, ...SAMPLER, stop: [] });
  handle.onToken((t) => {
    at[t.index] = performance.now();
    ids[t.index] = t.id;
  });
  const s = await handle.done;
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - t0;
  // As the in-process stats count it: tokens after the first, each one decode step.
  const decodeTokens = ids.length - 1;
  return {
    ids,
    decodeTokensPerS: decodeTokens > 0 ? (decodeTokens / (at[ids.length - 1]! - at[0]!)) * 1000 : 0,
    jobNum: Number(handle.id.replace(/^job-/, '')),
    wallMs,
    latencyMs: s.latencyMs ?? 0,
    failovers: s.failovers,
    headMsPerDecodeToken: s.timing && s.timing.decodeTokens > 0 ? s.timing.headDecodeMs / s.timing.decodeTokens : NaN,
    gatewayCpuMsPerToken: (cpu.user + cpu.system) / 1000 / Math.max(1, ids.length),
    gatewaySystemCpuMsPerToken: cpu.system / 1000 / Math.max(1, ids.length),
  };
}

/** A prompt of PROMPT_TOKENS ids: BOS, then ids spread over the vocabulary (as bench model's). */
function promptFor(gw: Gateway): number[] {
  const vocab = gw.model.config.vocabSize;
  const text = gw.model.tokenizer ? gw.jobs.encode('Once upon a time, there was a little') : [];
  if (text.length >= PROMPT_TOKENS) return text.slice(0, PROMPT_TOKENS);
  return [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, (_, i) => (i * 7919 + 3) % vocab)];
}

/** Each node's part of a job from its counters before and after: its times per decode step, its CPU above its idle rate per token. */
function nodeHops(before: AgentReading[], after: AgentReading[], idleCpuPerMs: number[], jobMs: number, tokens: number): NodeHop[] {
  return after.map((a, i) => {
    const b = before[i]!;
    const frames = Math.max(1, a.decodeFrames - b.decodeFrames);
    // One hop per token: the prompt's forward, then one per decode step.
    const cpuMs = ((a.cpuUs - b.cpuUs) / 1000 - idleCpuPerMs[i]! * jobMs) / tokens;
    return { cpuMs, forwardMs: (a.decodeForwardMs - b.decodeForwardMs) / frames, frameMs: (a.decodeFrameMs - b.decodeFrameMs) / frames };
  });
}

/** The fleet: credentials, a gateway on loopback holding the head, one agent process per block range. */
async function startFleet(dir: string, work: string, agents: AgentProcess[], agentThreads: number | undefined, star: boolean): Promise<Gateway> {
  const blocks = readManifest(dir).blocks;
  const credentialsPath = join(work, 'credentials.json');
  // The gateway's default group names: g1, g2, ... in block order.
  const specs: AgentSpec[] = [];
  for (const [i, b] of blocks.entries()) {
    const nodeId = `stage-${i + 1}`;
    specs.push({ nodeId, password: await addNode(credentialsPath, nodeId), group: `g${i + 1}`, firstBlock: b.from, lastBlock: b.to - 1, threads: agentThreads });
  }
  const gw = await startGateway(parseGatewayConfig({
    fleet: FLEET,
    broker: { host: '127.0.0.1', port: 0, credentialsPath },
    model: { manifest: join(dir, 'manifest.json') },
    // f32 frames: the hidden states cross the wire unrounded, so the ids can be compared exactly.
    // Chained hops (node to node), or with --star every hop through the gateway.
    router: { frameDtype: 'f32', chainHops: !star },
  }), { clock: new RealClock(), log: pino({ level: 'warn' }, pino.destination(join(work, 'gateway.log'))) });
  const url = `mqtt://127.0.0.1:${gw.broker.ports.mqtt}`;
  for (const spec of specs) agents.push(AgentProcess.start(spec, { fleet: FLEET, url, shardDir: dir, dir: join(work, 'agents') }));
  // Loading TF.js and a shard takes an agent a few seconds; it is ready once the gateway has its birth, γ = 1 and a solved chain.
  await until('the 3 agents online, active and solved at the gateway', () => {
    const dead = agents.find((a) => !a.running);
    if (dead) throw new Error(`agent ${dead.nodeId} exited; see its log ${dead.logFile}`);
    return specs.every((s) => {
      const n = gw.registry.get(s.nodeId);
      return !!n && n.online && n.gamma === 1 && n.solved !== undefined;
    });
  }, 180_000, 100);
  return gw;
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  const which = parseBenchModel(opts.args.model, opts.args.shape, opts.args.quant);
  const maxTokens = opts.args.tokens === undefined ? 128 : Number(opts.args.tokens);
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new Error(`--tokens must be a whole number ≥ 2, got '${opts.args.tokens}'`);
  const roundCount = opts.args.rounds === undefined ? ROUNDS : Number(opts.args.rounds);
  if (!Number.isInteger(roundCount) || roundCount < 1) throw new Error(`--rounds must be a whole number ≥ 1, got '${opts.args.rounds}'`);
  const warmupRounds = opts.args.warmupRounds === undefined ? WARMUP_ROUNDS : Number(opts.args.warmupRounds);
  if (!Number.isInteger(warmupRounds) || warmupRounds < 0) throw new Error(`--warmup-rounds must be a whole number ≥ 0, got '${opts.args.warmupRounds}'`);
  const agentThreads = opts.args.agentThreads === undefined ? undefined : Number(opts.args.agentThreads);
  if (agentThreads !== undefined && !(Number.isInteger(agentThreads) && agentThreads >= 1)) throw new Error(`--agent-threads must be a whole number ≥ 1, got '${opts.args.agentThreads}'`);
  const linkDelayMs = opts.args.linkDelayMs === undefined ? 0 : Number(opts.args.linkDelayMs);
  if (!Number.isFinite(linkDelayMs) || linkDelayMs < 0) throw new Error(`--link-delay-ms must be a number of ms ≥ 0, got '${opts.args.linkDelayMs}'`);
  const star = opts.args.star === 'true';
  const backend = await selectBackend();
  const loadAtStart = loadavg();
  const work = mkdtempSync(join(tmpdir(), 'heliomesh-bench-pipeline-'));
  const agents: AgentProcess[] = [];
  let gw: Gateway | undefined;
  let reference: ReferenceProcess | undefined;
  let cpu: AgentCpu | undefined;
  let bare: BareChain | undefined;
  let wake: WakeProbe | undefined;
  try {
    const model = prepareModel(which, work);
    mkdirSync(join(work, 'agents'));
    gw = await startFleet(model.dir, work, agents, agentThreads, star);
    const trace = await HopTrace.on(gw.broker.bus, FLEET);
    const crossings = new BrokerCrossings(linkDelayMs);
    const tap: PublishTap = (topic, payload) => {
      trace.atBroker(topic, payload);
      return crossings.tap(topic, payload);
    };
    const url = `mqtt://127.0.0.1:${gw.broker.ports.mqtt}`;
    // Started before the tap: its warm-up tokens are neither counted nor delayed.
    bare = await BareChain.start({ url, broker: gw.broker, fleet: FLEET, nodes: agents.length, star, dim: gw.model.config.dim });
    gw.broker.tap(tap);
    cpu = await AgentCpu.connect(url, gw.broker.internal, FLEET);
    const nodeIds = agents.map((a) => a.nodeId);
    reference = await ReferenceProcess.start(model.dir);
    // Each agent's CPU while it holds no job (its ledger sampling the virtual node, its link),
    // per ms of wall time: subtracted from a job's CPU, so what is left is the job's.
    const idle0 = await cpu.readAll(nodeIds);
    const idleT0 = performance.now();
    const gatewayIdle0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 3000));
    const gatewayIdle = process.cpuUsage(gatewayIdle0);
    const idle1 = await cpu.readAll(nodeIds);
    // The gateway process's own background (its loops, its solver, the agents' slot records),
    // which the in-process reference, in a process of its own, does not carry.
    const gatewayIdleCpuPerMs = (gatewayIdle.user + gatewayIdle.system) / 1000 / (performance.now() - idleT0);
    const idleCpuPerMs = idle1.map((a, i) => (a.cpuUs - idle0[i]!.cpuUs) / 1000 / (performance.now() - idleT0));
    const promptIds = promptFor(gw);
    const stopIds = gw.model.stopIds;
    const codec = frameCodecUs(gw.model.config.dim);
    wake = await WakeProbe.start(codec.bytes);

    // Warm-up: the first forward of each kernel pays for setup (XNNPACK packs the weights) on
    // every side, and the JIT goes on optimizing for many rounds after (WARMUP_ROUNDS).
    await reference.run({ promptIds, maxTokens: 4, stopIds: [...stopIds], sampler: SAMPLER });
    await viaFleet(gw, promptIds, 4);
    for (let r = 0; r < warmupRounds; r++) {
      await reference.run({ promptIds, maxTokens, stopIds: [...stopIds], sampler: SAMPLER });
      await viaFleet(gw, promptIds, maxTokens);
      process.stderr.write(`bench pipeline: warm-up round ${r + 1}/${warmupRounds}\n`);
    }

    const rounds: Round[] = [];
    for (let r = 0; r < roundCount; r++) {
      const local = await reference.run({ promptIds, maxTokens, stopIds: [...stopIds], sampler: SAMPLER });
      trace.clear();
      const before = await cpu.readAll(nodeIds);
      const jobT0 = performance.now();
      const fleet = await viaFleet(gw, promptIds, maxTokens);
      const after = await cpu.readAll(nodeIds);
      const jobMs = performance.now() - jobT0;
      const trips = trace.decodeRoundTrips(fleet.jobNum);
      const hops = agents.map((a) => trips.get(a.nodeId) ?? { hops: 0, roundTripMs: NaN, gatewayOutMs: NaN, nodeSideMs: NaN, gatewayInMs: NaN });
      const idsIdentical = local.ids.length === fleet.ids.length && local.ids.every((id, i) => id === fleet.ids[i]);
      // The same path with no compute: neither held by the link delay nor counted as a job's crossings.
      gw.broker.tap(undefined);
      const bareToken = await bare.run(200);
      const bareIdle = await bare.run(60, 1000 / fleet.decodeTokensPerS);
      const wakeTrips = { backToBack: await wake.run(200), afterIdle: await wake.run(60, 1000 / fleet.decodeTokensPerS) };
      gw.broker.tap(tap);
      const crossingsPerToken = crossings.frames(fleet.jobNum) / fleet.ids.length;
      const linkLegsPerToken = crossings.legs(fleet.jobNum) / fleet.ids.length;
      rounds.push({ inProcess: local, fleet, hops, nodes: nodeHops(before, after, idleCpuPerMs, jobMs, fleet.ids.length), bare: bareToken, bareIdle, wake: wakeTrips, crossingsPerToken, linkLegsPerToken, idsIdentical });
      process.stderr.write(`bench pipeline: round ${r + 1}/${roundCount}: in-process ${local.decodeTokensPerS.toFixed(1)} tok/s, ` +
        `fleet ${fleet.decodeTokensPerS.toFixed(1)} tok/s, ${crossingsPerToken.toFixed(1)} broker crossings and ${linkLegsPerToken.toFixed(1)} link legs per token, ids ${idsIdentical ? 'identical' : 'DIFFER'}\n`);
    }
    return report({
      which: benchModelName(which), description: model.description, maxTokens, promptIds, backend: backend.detail, sampler: SAMPLER, rounds, codec,
      idleCpuPct: idleCpuPerMs.map((x) => 100 * x), gatewayIdleCpuPct: 100 * gatewayIdleCpuPerMs, linkDelayMs, path: star ? 'star' : 'chained', agentThreads: agentThreads ?? availableParallelism(), warmupRounds, loadAtStart, loadAtEnd: loadavg(),
    });
  } finally {
    await bare?.close();
    await wake?.close();
    await cpu?.close();
    await Promise.all(agents.map((a) => a.stop()));
    await reference?.close();
    await gw?.close();
    rmSync(work, { recursive: true, force: true });
  }
}

export const pipelineBench: Bench = {
  description: 'decode tokens/s through the gateway and 3 agents over MQTT against in-process generation with 3 stages; identical ids; time per hop',
  run,
};
