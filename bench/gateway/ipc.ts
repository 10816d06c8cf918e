// Messages between `heliomesh bench gateway` and the gateway process it starts, over the
// child process's IPC channel. The gateway runs alone in that process, so its CPU time,
// event loop and memory are measured without the bench nodes' share.
import type { GatewayConfigInput } from '../../gateway/config.js';

export interface JobLoad {
  /** Mean arrivals per second of the Poisson process. */
  jobsPerS: number;
  /** Completion tokens per job. */
  maxTokens: number;
  seed: number;
}

export type ToGateway =
  | { type: 'start'; config: GatewayConfigInput; logFile: string }
  | { type: 'status' }
  | { type: 'measure'; seconds: number; jobs: JobLoad | null; drainMs: number }
  | { type: 'account' }
  | { type: 'close' };

export interface GatewayStatus {
  nodes: number;
  online: number;
  /** Nodes with a q_lim, i.e. a solved chain the policies can weigh. */
  solved: number;
  solverQueued: number;
}

export interface Percentiles {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export interface JobOutcome {
  submitted: number;
  completed: number;
  failed: number;
  /** Still running when the drain time after the window ended. */
  unfinished: number;
  errors: Record<string, number>;
  latencyMs: Percentiles;
  completionTokens: number;
  failovers: number;
}

export interface WindowResult {
  seconds: number;
  /** (user + system) CPU of the whole gateway process (its solver threads included) over the window, % of one core. */
  cpuPct: number;
  cpuUserPct: number;
  cpuSystemPct: number;
  /** Share of the window the main thread's event loop was busy (performance.eventLoopUtilization). */
  eventLoopUtilization: number;
  eventLoopLagMs: Percentiles;
  /** Wall time of each scheduler pick (policy decision for one group of one job), ms. */
  decisionMs: Percentiles;
  /** Process CPU time during each pick (an upper bound of the pick's own CPU), ms. */
  decisionCpuMs: Percentiles;
  /** Chains solved (not from the cache) in the window and the solver threads' time on them. */
  solver: { solved: number; cacheHits: number; solveMs: number; queuedAtEnd: number };
  rssMiB: number;
  jobs: JobOutcome | null;
  /** Node messages the gateway's link handled and refused in the window. */
  linkMessages: number;
  linkInvalid: number;
  brokerPublishesIn: number;
}

export interface NodeAccount {
  nodeId: string;
  lastSeq: number | null;
  missedSlots: number;
  online: boolean;
}

export type FromGateway =
  | { type: 'ready'; port: number }
  | { type: 'status'; status: GatewayStatus }
  | { type: 'result'; result: WindowResult }
  | { type: 'account'; nodes: NodeAccount[]; linkInvalid: number; brokerRefused: Record<string, number> }
  | { type: 'error'; message: string };

export function percentiles(xs: number[]): Percentiles {
  if (xs.length === 0) return { count: 0, p50: 0, p99: 0, max: 0, mean: 0 };
  const s = xs.slice().sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { count: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}
