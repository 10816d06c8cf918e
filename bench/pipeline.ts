// `heliomesh bench pipeline`: decode tokens/s of one completion through the gateway and 3
// real agents (each its own process and its own block range, over MQTT on loopback), against
// the same model generated in this process as 3 stages (models/generate.ts Pipeline), with
// the same prompt, sampler and seed, in rounds that alternate the two. The token ids must be
// identical (f32 frames carry the hidden states exactly). Also reported: where a decode
// token's time goes on the fleet path (each hop's round trip split into the node's forward,
// the frame codec and the MQTT legs; the gateway's own share).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { addNode } from '../gateway/broker/index.js';
import { RealClock } from '../ground/clock.js';
import { parseGatewayConfig } from '../gateway/config.js';
import { startGateway, type Gateway } from '../gateway/index.js';
import { selectBackend } from '../models/backend.js';
import { allTokens, emptyStats, type GenerationStats, type Pipeline } from '../models/generate.js';
import { AgentCpu } from './pipeline/agent-cpu.js';
import { AgentProcess, type AgentSpec } from './pipeline/agents.js';
import { GROUPS, inProcessPipeline, parseBenchModel, prepareModel } from './pipeline/model.js';
import { readManifest } from '../models/shards.js';
import { frameCodecUs, HopTrace, mqttRoundTrips, type RoundTrips } from './pipeline/trace.js';
import type { Bench, BenchOptions, BenchResult } from './types.js';
import { until } from '../ground/until.js';

const FLEET = 'bench';
const ROUNDS = 5;
const PROMPT_TOKENS = 16;
/** Sampled, not greedy: the seed must carry over for the ids to match. */
const SAMPLER = { temperature: 0.8, topP: 0.95, seed: 7 };
const GOAL_RATIO = 0.8;

interface InProcessRun {
  ids: number[];
  decodeTokensPerS: number;
  stats: GenerationStats;
  /** This process's CPU time over the whole generation (prompt included), per token. */
  cpuMsPerToken: number;
}

interface FleetRun {
  ids: number[];
  decodeTokensPerS: number;
  jobNum: number;
  latencyMs: number;
  failovers: number;
  /** This process's CPU time (gateway, broker, head) over the whole job, per token. */
  gatewayCpuMsPerToken: number;
}

async function inProcess(pipeline: Pipeline, promptIds: number[], maxTokens: number, stopIds: readonly number[]): Promise<InProcessRun> {
  const stats = emptyStats(pipeline.stacks.length);
  const cpu0 = process.cpuUsage();
  const ids = await allTokens(pipeline.generate({ promptIds, maxTokens, sampler: SAMPLER, stopIds }, stats));
  const cpu = process.cpuUsage(cpu0);
  return { ids, stats, decodeTokensPerS: (stats.decodeTokens / stats.decodeMs) * 1000, cpuMsPerToken: (cpu.user + cpu.system) / 1000 / ids.length };
}

async function viaFleet(gw: Gateway, promptIds: number[], maxTokens: number): Promise<FleetRun> {
  const at: number[] = [];
  const ids: number[] = [];
  const cpu0 = process.cpuUsage();
  const handle = gw.jobs.submit({ prompt: { ids: promptIds }, maxTokens, ...SAMPLER, stop: [] });
  handle.onToken((t) => {
    at[t.index] = performance.now();
    ids[t.index] = t.id;
  });
  const s = await handle.done;
  const cpu = process.cpuUsage(cpu0);
  // As the in-process stats count it: tokens after the first, each one decode step.
  const decodeTokens = ids.length - 1;
  return {
    ids,
    decodeTokensPerS: decodeTokens > 0 ? (decodeTokens / (at[ids.length - 1]! - at[0]!)) * 1000 : 0,
    jobNum: Number(handle.id.replace(/^job-/, '')),
    latencyMs: s.latencyMs ?? 0,
    failovers: s.failovers,
    gatewayCpuMsPerToken: (cpu.user + cpu.system) / 1000 / Math.max(1, ids.length),
  };
}

/** A prompt of PROMPT_TOKENS ids: BOS, then ids spread over the vocabulary (as bench model's). */
function promptFor(gw: Gateway): number[] {
  const vocab = gw.model.config.vocabSize;
  const text = gw.model.tokenizer ? gw.jobs.encode('Once upon a time, there was a little') : [];
  if (text.length >= PROMPT_TOKENS) return text.slice(0, PROMPT_TOKENS);
  return [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, (_, i) => (i * 7919 + 3) % vocab)];
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Round {
  inProcess: InProcessRun;
  fleet: FleetRun;
  /** Mean round trip of each node's decode hops, in pipeline order, ms. */
  hopMs: number[];
  /** The MQTT legs of a hop alone, measured with a node that computes nothing, just after. */
  mqtt: RoundTrips;
  /** Each agent process's CPU time over the job (its ping before and after) per hop it served, ms. */
  agentCpuMs: number[];
  idsIdentical: boolean;
}

/** The fleet: credentials, a gateway on loopback holding the head, one agent process per block range. */
async function startFleet(dir: string, work: string, agents: AgentProcess[]): Promise<Gateway> {
  const blocks = readManifest(dir).blocks;
  const credentialsPath = join(work, 'credentials.json');
  // The gateway's default group names: g1, g2, ... in block order.
  const specs: AgentSpec[] = [];
  for (const [i, b] of blocks.entries()) {
    const nodeId = `stage-${i + 1}`;
    specs.push({ nodeId, password: await addNode(credentialsPath, nodeId), group: `g${i + 1}`, firstBlock: b.from, lastBlock: b.to - 1 });
  }
  const gw = await startGateway(parseGatewayConfig({
    fleet: FLEET,
    broker: { host: '127.0.0.1', port: 0, credentialsPath },
    model: { manifest: join(dir, 'manifest.json') },
    // f32 frames: the hidden states cross the wire unrounded, so the ids can be compared exactly.
    router: { frameDtype: 'f32' },
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
  const which = parseBenchModel(opts.args.model);
  const maxTokens = opts.args.tokens === undefined ? 128 : Number(opts.args.tokens);
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new Error(`--tokens must be a whole number ≥ 2, got '${opts.args.tokens}'`);
  const backend = await selectBackend();
  const loadAtStart = loadavg();
  const work = mkdtempSync(join(tmpdir(), 'heliomesh-bench-pipeline-'));
  const agents: AgentProcess[] = [];
  let gw: Gateway | undefined;
  let pipeline: Pipeline | undefined;
  let cpu: AgentCpu | undefined;
  try {
    const model = prepareModel(which, work);
    mkdirSync(join(work, 'agents'));
    gw = await startFleet(model.dir, work, agents);
    const trace = new HopTrace(gw.client);
    const url = `mqtt://127.0.0.1:${gw.broker.ports.mqtt}`;
    cpu = await AgentCpu.connect(url, gw.broker.internal, FLEET);
    const nodeIds = agents.map((a) => a.nodeId);
    pipeline = inProcessPipeline(model.dir);
    // Each agent's CPU while it holds no job (its ledger sampling the virtual node, its link),
    // per ms of wall time: subtracted from a job's CPU, so what is left is the job's.
    const idle0 = await cpu.readAll(nodeIds);
    const idleT0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const idle1 = await cpu.readAll(nodeIds);
    const idleCpuPerMs = idle1.map((us, i) => (us - idle0[i]!) / 1000 / (performance.now() - idleT0));
    const promptIds = promptFor(gw);
    const stopIds = gw.model.stopIds;
    const codec = frameCodecUs(gw.model.config.dim);

    // Warm-up: the first forward of each kernel pays for setup (XNNPACK packs the weights) on every side.
    await inProcess(pipeline, promptIds, 4, stopIds);
    await viaFleet(gw, promptIds, 4);

    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const local = await inProcess(pipeline, promptIds, maxTokens, stopIds);
      trace.clear();
      const cpuBefore = await cpu.readAll(nodeIds);
      const jobT0 = performance.now();
      const fleet = await viaFleet(gw, promptIds, maxTokens);
      const cpuAfter = await cpu.readAll(nodeIds);
      const jobMs = performance.now() - jobT0;
      // One hop per token: the prompt's forward, then one per decode step.
      const agentCpuMs = cpuAfter.map((us, i) => ((us - cpuBefore[i]!) / 1000 - idleCpuPerMs[i]! * jobMs) / fleet.ids.length);
      const trips = trace.decodeRoundTrips(fleet.jobNum);
      const hopMs = agents.map((a) => trips.get(a.nodeId)?.meanMs ?? NaN);
      const idsIdentical = local.ids.length === fleet.ids.length && local.ids.every((id, i) => id === fleet.ids[i]);
      const mqtt = await mqttRoundTrips(url, gw.broker, gw.model.config.dim, 200);
      rounds.push({ inProcess: local, fleet, hopMs, mqtt, agentCpuMs, idsIdentical });
      process.stderr.write(`bench pipeline: round ${r + 1}/${ROUNDS}: in-process ${local.decodeTokensPerS.toFixed(1)} tok/s, ` +
        `fleet ${fleet.decodeTokensPerS.toFixed(1)} tok/s, ids ${idsIdentical ? 'identical' : 'DIFFER'}\n`);
    }
    return report({ which, description: model.description, maxTokens, promptIds, backend: backend.detail, rounds, codec, idleCpuPct: idleCpuPerMs.map((x) => 100 * x), loadAtStart, loadAtEnd: loadavg() });
  } finally {
    await cpu?.close();
    await Promise.all(agents.map((a) => a.stop()));
    pipeline?.dispose();
    await gw?.close();
    rmSync(work, { recursive: true, force: true });
  }
}

interface Measured {
  which: string;
  description: string;
  maxTokens: number;
  promptIds: number[];
  backend: string;
  rounds: Round[];
  codec: ReturnType<typeof frameCodecUs>;
  /** Each agent's CPU while idle, % of one core. */
  idleCpuPct: number[];
  loadAtStart: number[];
  loadAtEnd: number[];
}

function report(m: Measured): BenchResult {
  const { rounds, codec } = m;
  const ratios = rounds.map((r) => r.fleet.decodeTokensPerS / r.inProcess.decodeTokensPerS);
  const ratio = median(ratios);
  const bestLocal = rounds.reduce((a, b) => (b.inProcess.decodeTokensPerS > a.inProcess.decodeTokensPerS ? b : a));
  const bestFleet = rounds.reduce((a, b) => (b.fleet.decodeTokensPerS > a.fleet.decodeTokensPerS ? b : a));
  const identical = rounds.every((r) => r.idsIdentical);
  // The breakdown of the median-ratio round: its fleet and in-process runs were neighbours in time.
  const mid = rounds[ratios.indexOf(ratio)]!;
  const s = mid.inProcess.stats;
  const tokenMs = 1000 / mid.fleet.decodeTokensPerS;
  const codecMs = (codec.encodeUs + codec.decodeUs) / 1000;
  const hops = mid.hopMs.map((rttMs, i) => {
    // An agent sizes its session to the offer's positions (prompt + max tokens − 1), as the
    // in-process pipeline does, so its forward is the same computation on the same weights.
    const forwardMs = s.stageDecodeMs[i]! / s.decodeTokens;
    // Each hop: the MQTT legs (measured apart with a node that computes nothing), the node's
    // decode of the frame in, its blocks' forward, its encode of the frame out; what is left
    // is the agent's own handling (worker bookkeeping, tensor copies, its event loop).
    const mqttMs = mid.mqtt.medianMs;
    const agentCpuMs = mid.agentCpuMs[i]!;
    return {
      group: `g${i + 1}`, roundTripMs: rttMs, forwardMs, codecMs, mqttMs, agentOtherMs: rttMs - forwardMs - codecMs - mqttMs,
      // What the agent process computed per hop (the job's CPU above its idle rate, prompt included); the rest of the round trip it was not computing.
      agentCpuMs, notComputingMs: rttMs - agentCpuMs,
    };
  });
  const hopsMs = hops.reduce((a, h) => a + h.roundTripMs, 0);
  const breakdown = {
    tokenMs,
    inProcessTokenMs: 1000 / mid.inProcess.decodeTokensPerS,
    hops,
    /** What the gateway spends per token outside the hops: head (embed, norm, classifier, sampling), its side of the codec, the router. */
    gatewayMs: tokenMs - hopsMs,
    inProcessHeadMs: s.headDecodeMs / s.decodeTokens,
    /**
     * CPU time per token, whole generation (prompt included), whatever the machine's load:
     * in-process, against the fleet's gateway process plus its three agents.
     */
    cpuMsPerToken: {
      inProcess: mid.inProcess.cpuMsPerToken,
      fleet: mid.fleet.gatewayCpuMsPerToken + mid.agentCpuMs.reduce((a, b) => a + b, 0),
      fleetGateway: mid.fleet.gatewayCpuMsPerToken,
      fleetAgents: mid.agentCpuMs,
    },
    mqttMsPerToken: hops.reduce((a, h) => a + h.mqttMs, 0),
    codecMsPerToken: 2 * GROUPS * codecMs,
  };
  // The ratio the fleet would reach if each hop cost nothing beyond its forward and the bare
  // MQTT round trip measured in this run: what the transport alone leaves of the goal.
  const inProcessTokenMs = breakdown.inProcessTokenMs;
  const transportCeiling = inProcessTokenMs / (inProcessTokenMs + breakdown.mqttMsPerToken);
  const f = (x: number, d = 1) => x.toFixed(d);
  const hopText = hops.map((h) => `${h.group} ${f(h.roundTripMs, 2)} ms (agent CPU ${f(h.agentCpuMs, 2)}, forward ${f(h.forwardMs, 2)})`).join(', ');
  const summary =
    `pipeline [${m.which}, ${m.backend}]: fleet ${f(bestFleet.fleet.decodeTokensPerS)} tok/s vs in-process ${f(bestLocal.inProcess.decodeTokensPerS)} tok/s (3 stages), ` +
    `ratio ${f(ratio, 2)} (median of ${rounds.length} rounds; goal ≥ ${GOAL_RATIO} for stories15M), token ids ${identical ? 'identical' : 'DIFFER'} (${m.maxTokens} tokens); ` +
    `per decode token ${f(tokenMs, 2)} ms: hops ${hopText}, each with an MQTT round trip of ${f(mid.mqtt.medianMs, 2)} ms (median, no compute; with those alone the ratio could reach ${f(transportCeiling, 2)}); gateway ${f(breakdown.gatewayMs, 2)} ms (in-process head ${f(breakdown.inProcessHeadMs, 2)} ms); ` +
    `CPU per token: fleet ${f(breakdown.cpuMsPerToken.fleet, 2)} ms (gateway ${f(breakdown.cpuMsPerToken.fleetGateway, 2)}) vs in-process ${f(breakdown.cpuMsPerToken.inProcess, 2)} ms; ` +
    `frame codec ${f(codec.encodeUs, 0)} + ${f(codec.decodeUs, 0)} µs per ${codec.bytes} B frame; load average ${f(m.loadAtStart[0]!)} → ${f(m.loadAtEnd[0]!)}`;
  return {
    summary,
    metrics: {
      model: m.which,
      modelDescription: m.description,
      backend: m.backend,
      goalRatio: GOAL_RATIO,
      ratio,
      ratioOfBests: bestFleet.fleet.decodeTokensPerS / bestLocal.inProcess.decodeTokensPerS,
      transportCeiling,
      idsIdentical: identical,
      promptTokens: m.promptIds.length,
      maxTokens: m.maxTokens,
      sampler: SAMPLER,
      frameDtype: 'f32',
      codec,
      agentIdleCpuPct: m.idleCpuPct,
      breakdownOfMedianRound: breakdown,
      rounds: rounds.map((r, i) => ({
        round: i,
        inProcessDecodeTokensPerS: r.inProcess.decodeTokensPerS,
        fleetDecodeTokensPerS: r.fleet.decodeTokensPerS,
        ratio: ratios[i],
        tokens: r.fleet.ids.length,
        idsIdentical: r.idsIdentical,
        hopRoundTripMs: r.hopMs,
        mqttRoundTripMs: r.mqtt,
        inProcessStageMs: r.inProcess.stats.stageDecodeMs.map((ms) => ms / r.inProcess.stats.decodeTokens),
        agentCpuMs: r.agentCpuMs,
        inProcessCpuMsPerToken: r.inProcess.cpuMsPerToken,
        gatewayCpuMsPerToken: r.fleet.gatewayCpuMsPerToken,
        fleetLatencyMs: r.fleet.latencyMs,
        failovers: r.fleet.failovers,
      })),
      loadAverage: { atStart: m.loadAtStart, atEnd: m.loadAtEnd },
    },
  };
}

export const pipelineBench: Bench = {
  description: 'decode tokens/s through the gateway and 3 agents over MQTT against in-process generation with 3 stages; identical ids; time per hop',
  run,
};
