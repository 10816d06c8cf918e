// What `heliomesh bench pipeline` reports from its rounds: the median ratio of fleet to
// in-process decode speed, the broker crossings per token, and where the median round's
// token went, hop by hop, as the gateway and each node timed it.
import type { GenerationStats } from '../../models/generate.js';
import type { BenchResult } from '../types.js';
import type { BareTokens } from './bare-chain.js';
import type { WakeRoundTrips } from './wake-probe.js';
import type { frameCodecUs, HopTimes } from './trace.js';
import { median, nearestIndex } from '../median.js';

/** The ratio goals of issue 15, by the model run: the small shape's hops weigh most, TinyLlama's forwards dwarf them. */
const GOAL_RATIOS: Record<string, number> = { stories15M: 0.8, 'tinyllama q4_0': 0.95 };
/** The CPU goal: the fleet's CPU per token at most this many times in-process. */
const GOAL_CPU_RATIO = 1.3;

export interface InProcessRun {
  ids: number[];
  decodeTokensPerS: number;
  stats: GenerationStats;
  /** This process's CPU time over the whole generation (prompt included), per token. */
  cpuMsPerToken: number;
  /** Of which in the kernel (system time). */
  systemCpuMsPerToken: number;
  /** Wall time of the whole generation. */
  wallMs: number;
}

export interface FleetRun {
  ids: number[];
  decodeTokensPerS: number;
  jobNum: number;
  /** Wall time from submit to the summary. */
  wallMs: number;
  latencyMs: number;
  failovers: number;
  /** The gateway's head (embedding, final norm, classifier, sampling) per decode token, as the job's generation loop timed it. */
  headMsPerDecodeToken: number;
  /** This process's CPU time (gateway, broker, head) over the whole job, per token. */
  gatewayCpuMsPerToken: number;
  /** Of which in the kernel (system time): the sockets' share. */
  gatewaySystemCpuMsPerToken: number;
}

/** One node's part of a job, from its own counters. */
export interface NodeHop {
  /** Its process's CPU time above its idle rate, per token (the prompt's forward included). */
  cpuMs: number;
  /** Wall time in its blocks' forward, per decode step. */
  forwardMs: number;
  /** Wall time from a decode step's frame arriving at its worker to the output handed to its link. */
  frameMs: number;
}

export interface Round {
  inProcess: InProcessRun;
  fleet: FleetRun;
  /** Each node's decode hops, in pipeline order, as the gateway and the broker saw them. */
  hops: HopTimes[];
  /** What each node timed of its hops, in pipeline order. */
  nodes: NodeHop[];
  /** The same path with nodes that compute nothing (bare-chain.ts), just after, tokens back to back. */
  bare: BareTokens;
  /** The same, each token after idling one fleet token's time, as a node does between its hops. */
  bareIdle: BareTokens;
  /** A frame's bytes over plain TCP to a process that echoes them (wake-probe.ts), back to back and after the same idle time. */
  wake: { backToBack: WakeRoundTrips; afterIdle: WakeRoundTrips };
  /** Activation frames with data that crossed the broker for the job, per token generated. */
  crossingsPerToken: number;
  /** The links those frames travelled, per token: one for a frame to or from the gateway, two for one node to the next. */
  linkLegsPerToken: number;
  idsIdentical: boolean;
}

export interface Measured {
  which: string;
  description: string;
  maxTokens: number;
  promptIds: number[];
  backend: string;
  sampler: { temperature: number; topP: number; seed: number };
  rounds: Round[];
  codec: ReturnType<typeof frameCodecUs>;
  /** Each agent's CPU while idle, % of one core. */
  idleCpuPct: number[];
  /** This process's CPU while no job ran (gateway loops, solver, records), % of a core. */
  gatewayIdleCpuPct: number;
  /** The delay of one link, ms: each activation frame is held at the broker for each link it travels. */
  linkDelayMs: number;
  /** 'chained' (node to node) or 'star' (every hop through the gateway). */
  path: 'chained' | 'star';
  /** Threads of each agent's matmul kernel (the in-process stages and both heads use every core). */
  agentThreads: number;
  /** Unmeasured full-length rounds of each path before these. */
  warmupRounds: number;
  loadAtStart: number[];
  loadAtEnd: number[];
}

/** Each hop of a round: its round trip and what it was made of. */
function hopBreakdown(r: Round) {
  const s = r.inProcess.stats;
  return r.hops.map((h, i) => {
    const node = r.nodes[i]!;
    return {
      group: `g${i + 1}`,
      roundTripMs: h.roundTripMs,
      /** The gateway's publish to the broker taking the frame: its MQTT client and the in-process stream. */
      gatewayOutMs: h.gatewayOutMs,
      /** The broker taking the node's answer to its arrival at the gateway's client (with the answer's link delay). */
      gatewayInMs: h.gatewayInMs,
      /** The broker's delivery to the node, the node's socket, MQTT client and event loop, and its publish back (with the frame's link delay), outside its worker. */
      nodeTransportMs: h.nodeSideMs - node.frameMs,
      /** The node's worker around the forward: frame decode and checks, output encode, handing it to the link. */
      nodeHandlingMs: node.frameMs - node.forwardMs,
      forwardMs: node.forwardMs,
      /** The same stage's forward in the in-process pipeline. */
      inProcessForwardMs: s.stageDecodeMs[i]! / s.decodeTokens,
      nodeCpuMs: node.cpuMs,
    };
  });
}

export function report(m: Measured): BenchResult {
  const { rounds, codec } = m;
  const ratios = rounds.map((r) => r.fleet.decodeTokensPerS / r.inProcess.decodeTokensPerS);
  const ratio = median(ratios);
  const goalRatio = GOAL_RATIOS[m.which];
  const bestLocal = rounds.reduce((a, b) => (b.inProcess.decodeTokensPerS > a.inProcess.decodeTokensPerS ? b : a));
  const bestFleet = rounds.reduce((a, b) => (b.fleet.decodeTokensPerS > a.fleet.decodeTokensPerS ? b : a));
  const identical = rounds.every((r) => r.idsIdentical);
  const crossings = rounds.map((r) => r.crossingsPerToken);
  const legs = rounds.map((r) => r.linkLegsPerToken);
  const cpuRatios = rounds.map((r) => (r.fleet.gatewayCpuMsPerToken + r.nodes.reduce((a, n) => a + n.cpuMs, 0)) / r.inProcess.cpuMsPerToken);
  // The same with the gateway process's background taken out, as each agent's idle CPU is
  // taken out of its share: the work a token costs on each path. The reference runs in a
  // process with no background of its own.
  const background = (wallMs: number, tokens: number) => ((m.gatewayIdleCpuPct / 100) * wallMs) / tokens;
  const workRatio = (r: Round) =>
    (r.fleet.gatewayCpuMsPerToken - background(r.fleet.wallMs, r.fleet.ids.length) + r.nodes.reduce((a, n) => a + n.cpuMs, 0)) / r.inProcess.cpuMsPerToken;
  const cpuWorkRatios = rounds.map(workRatio);
  // The breakdown of the median-ratio round: its fleet and in-process runs were neighbours in time.
  // With an even count the median falls between two rounds; the one nearer to it is shown.
  const mid = rounds[nearestIndex(ratios, ratio)]!;
  const s = mid.inProcess.stats;
  const tokenMs = 1000 / mid.fleet.decodeTokensPerS;
  const hops = hopBreakdown(mid);
  const hopsMs = hops.reduce((a, h) => a + h.roundTripMs, 0);
  const fleetCpuMs = mid.fleet.gatewayCpuMsPerToken + mid.nodes.reduce((a, n) => a + n.cpuMs, 0);
  const breakdown = {
    tokenMs,
    inProcessTokenMs: 1000 / mid.inProcess.decodeTokensPerS,
    hops,
    /** What the gateway spends per token outside the hops: head (embed, norm, classifier, sampling), its side of the codec, the router. */
    gatewayMs: tokenMs - hopsMs,
    /** Of which the head, as the gateway's generation loop timed it; the rest is the router's and the token's events. */
    gatewayHeadMs: mid.fleet.headMsPerDecodeToken,
    inProcessHeadMs: s.headDecodeMs / s.decodeTokens,
    /**
     * CPU time per token, whole generation (prompt included), whatever the machine's load:
     * in-process, against the fleet's gateway process plus its three agents.
     */
    cpuMsPerToken: {
      inProcess: mid.inProcess.cpuMsPerToken, inProcessSystem: mid.inProcess.systemCpuMsPerToken, fleet: fleetCpuMs,
      fleetGateway: mid.fleet.gatewayCpuMsPerToken, fleetGatewaySystem: mid.fleet.gatewaySystemCpuMsPerToken, fleetAgents: mid.nodes.map((n) => n.cpuMs),
    },
    /** A token through the same path with no compute (bare-chain.ts), back to back and after idling a fleet token's time. */
    mqttMsPerToken: mid.bare.medianMs,
    mqttAfterIdleMsPerToken: mid.bareIdle.medianMs,
    /** The CPU of that bare token after idling: this process's (broker and client) and the echo nodes'. */
    gatewayMqttCpuMsPerToken: mid.bareIdle.gatewayCpuMs,
    nodesMqttCpuMsPerToken: mid.bareIdle.nodesCpuMs,
    /** A plain TCP round trip to a process that echoes, with no MQTT: back to back and after idling a fleet token's time. */
    tcpRoundTripMs: mid.wake.backToBack.medianMs,
    tcpRoundTripAfterIdleMs: mid.wake.afterIdle.medianMs,
    /** The probing process's CPU per round trip, µs, back to back and after idling. */
    tcpRoundTripCpuUs: mid.wake.backToBack.cpuUsPerTrip,
    tcpRoundTripAfterIdleCpuUs: mid.wake.afterIdle.cpuUsPerTrip,
  };
  // What the fleet would reach if a token cost nothing beyond the in-process work and the
  // bare path after idling, both measured in this run: what the transport alone leaves of
  // each goal. A bare token takes the same crossings and hand-overs as a decode step, so
  // the project's own path (router, agent, codec) is what lies between these and the fleet.
  const inProcessTokenMs = breakdown.inProcessTokenMs;
  const transportCeiling = inProcessTokenMs / (inProcessTokenMs + breakdown.mqttAfterIdleMsPerToken);
  const transportCpuMs = breakdown.gatewayMqttCpuMsPerToken + breakdown.nodesMqttCpuMsPerToken;
  // Against the in-process CPU per token of the whole generation, as the CPU ratio itself is.
  const transportCpuFloor = (mid.inProcess.cpuMsPerToken + transportCpuMs) / mid.inProcess.cpuMsPerToken;
  const f = (x: number, d = 1) => x.toFixed(d);
  const spread = (xs: number[], d = 2) => `${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)}`;
  const hopText = hops.map((h) => `${h.group} ${f(h.roundTripMs, 2)} ms (gateway out ${f(h.gatewayOutMs, 2)}, node transport ${f(h.nodeTransportMs, 2)}, ` +
    `node handling ${f(h.nodeHandlingMs, 2)}, forward ${f(h.forwardMs, 2)} [in-process ${f(h.inProcessForwardMs, 2)}], gateway in ${f(h.gatewayInMs, 2)}; node CPU ${f(h.nodeCpuMs, 2)})`).join(', ');
  const summary =
    `pipeline [${m.which}, ${m.backend}, agents' kernels on ${m.agentThreads} thread${m.agentThreads === 1 ? '' : 's'}]: fleet ${f(bestFleet.fleet.decodeTokensPerS)} tok/s vs in-process ${f(bestLocal.inProcess.decodeTokensPerS)} tok/s (3 stages), ` +
    `ratio ${f(ratio, 3)} (median of ${rounds.length} rounds after ${m.warmupRounds} unmeasured, spread ${spread(ratios)}${goalRatio === undefined ? '' : `; goal ≥ ${goalRatio}: ${ratio >= goalRatio ? 'met' : 'not met'}`}), token ids ${identical ? 'identical' : 'DIFFER'} (${m.maxTokens} tokens); ` +
    `${m.path} path, broker crossings per token ${spread(crossings, 1)}, link legs per token ${spread(legs, 1)}${m.linkDelayMs > 0 ? `, each frame held ${m.linkDelayMs} ms per leg (link delay)` : ''}; ` +
    `per decode token ${f(tokenMs, 2)} ms: hops ${hopText}; the same path with nodes that compute nothing ${f(mid.bare.medianMs, 2)} ms per token median back to back, ${f(mid.bareIdle.medianMs, 2)} ms after idling a token's time, CPU ${f(transportCpuMs, 2)} ms (gateway ${f(breakdown.gatewayMqttCpuMsPerToken, 2)}, nodes ${f(breakdown.nodesMqttCpuMsPerToken, 2)}) (with that alone the ratio could reach ${f(transportCeiling, 2)} and CPU ${f(transportCpuFloor, 2)}×); a plain TCP round trip to a process that echoes ${f(breakdown.tcpRoundTripMs, 3)} ms back to back, ${f(breakdown.tcpRoundTripAfterIdleMs, 3)} ms after idling a token's time (the machine waking a process that slept), CPU on the probing side ${f(breakdown.tcpRoundTripCpuUs, 0)} and ${f(breakdown.tcpRoundTripAfterIdleCpuUs, 0)} µs a trip; gateway ${f(breakdown.gatewayMs, 2)} ms (its head ${f(breakdown.gatewayHeadMs, 2)} [in-process ${f(breakdown.inProcessHeadMs, 2)}], router and token events ${f(breakdown.gatewayMs - breakdown.gatewayHeadMs, 2)}); ` +
    `CPU per token: fleet ${f(fleetCpuMs, 2)} ms (gateway ${f(mid.fleet.gatewayCpuMsPerToken, 2)}, ${f(mid.fleet.gatewaySystemCpuMsPerToken, 2)} of it system) vs in-process ${f(mid.inProcess.cpuMsPerToken, 2)} ms (${f(mid.inProcess.systemCpuMsPerToken, 2)} system), ${f(median(cpuRatios), 3)}× (median, spread ${spread(cpuRatios)}; goal ≤ ${GOAL_CPU_RATIO}×: ${median(cpuRatios) <= GOAL_CPU_RATIO ? 'met' : 'not met'}); ` +
    `without the gateway process's background of ${f(m.gatewayIdleCpuPct, 1)} % of a core while idle ${f(median(cpuWorkRatios), 2)}× (spread ${spread(cpuWorkRatios)}); ` +
    `frame codec ${f(codec.encodeUs, 1)} + ${f(codec.decodeUs, 1)} µs per ${codec.bytes} B frame; load average ${f(m.loadAtStart[0]!)} → ${f(m.loadAtEnd[0]!)}`;
  return {
    summary,
    metrics: {
      model: m.which,
      modelDescription: m.description,
      backend: m.backend,
      goalRatio,
      goalCpuRatio: GOAL_CPU_RATIO,
      ratio,
      ratioOfBests: bestFleet.fleet.decodeTokensPerS / bestLocal.inProcess.decodeTokensPerS,
      cpuRatio: median(cpuRatios),
      cpuRatioWithoutBackground: median(cpuWorkRatios),
      gatewayIdleCpuPct: m.gatewayIdleCpuPct,
      transportCeiling,
      transportCpuFloor,
      idsIdentical: identical,
      crossingsPerToken: median(crossings),
      linkLegsPerToken: median(legs),
      linkDelayMs: m.linkDelayMs,
      path: m.path,
      agentThreads: m.agentThreads,
      warmupRounds: m.warmupRounds,
      promptTokens: m.promptIds.length,
      maxTokens: m.maxTokens,
      sampler: m.sampler,
      frameDtype: 'f32',
      codec,
      agentIdleCpuPct: m.idleCpuPct,
      breakdownOfMedianRound: breakdown,
      rounds: rounds.map((r, i) => ({
        round: i,
        inProcessDecodeTokensPerS: r.inProcess.decodeTokensPerS,
        fleetDecodeTokensPerS: r.fleet.decodeTokensPerS,
        ratio: ratios[i],
        cpuRatio: cpuRatios[i],
        cpuRatioWithoutBackground: cpuWorkRatios[i],
        tokens: r.fleet.ids.length,
        idsIdentical: r.idsIdentical,
        crossingsPerToken: r.crossingsPerToken,
        linkLegsPerToken: r.linkLegsPerToken,
        hops: hopBreakdown(r),
        bareToken: r.bare,
        bareTokenAfterIdle: r.bareIdle,
        tcpRoundTrip: r.wake.backToBack,
        tcpRoundTripAfterIdle: r.wake.afterIdle,
        inProcessCpuMsPerToken: r.inProcess.cpuMsPerToken,
        gatewayCpuMsPerToken: r.fleet.gatewayCpuMsPerToken,
        fleetLatencyMs: r.fleet.latencyMs,
        failovers: r.fleet.failovers,
      })),
      loadAverage: { atStart: m.loadAtStart, atEnd: m.loadAtEnd },
    },
  };
}
