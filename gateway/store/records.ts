// Typed constructors for the points of each measurement, so writers name their values
// in the domain's words and the tags/fields split of schema.ts is decided in one place.
import type { BrokerCounters } from '../broker/counters.js';
import { MEASUREMENTS, point, type StorePoint } from './schema.js';

export interface NodeTags {
  fleet: string;
  node: string;
  group: string;
}

export interface SlotSample {
  seq: number;
  batteryJ?: number;
  batteryPct?: number;
  harvestJ?: number;
  consumedJ?: number;
  harvestQ?: number;
  energyQ?: number;
  powerMode?: number;
  gamma?: number;
  queue?: number;
  /** Slot records missing between this one and the previous one seen. */
  seqGap?: number;
}

export function slotPoint(tags: NodeTags, s: SlotSample, timestampMs: number): StorePoint {
  return point(MEASUREMENTS.nodeSlot, { ...tags }, { ...s }, timestampMs);
}

export interface StateChange {
  online: boolean;
  gamma?: number;
  powerMode?: number;
  /** Why: birth, will, silence, state. */
  reason: string;
}

export function statePoint(tags: NodeTags, s: StateChange, timestampMs: number): StorePoint {
  return point(MEASUREMENTS.nodeState, { ...tags }, { ...s }, timestampMs);
}

export interface JobRecord {
  jobId: string;
  outcome: 'ok' | 'failed' | 'cancelled';
  model: string;
  /** Frames answered by the nodes (groups × forward steps, plus repeats after failovers). */
  hops?: number;
  promptTokens?: number;
  outputTokens?: number;
  latencyMs?: number;
  energyJ?: number;
  /** The uncertainty of energyJ (docs/agent.md "Per-job energy"). */
  energyUncertaintyJ?: number;
  failovers?: number;
  /** Comma-separated node ids in group order. */
  nodes?: string;
  /** Output tokens per second of the job's whole latency. */
  tokensPerS?: number;
  /** The gateway's head per decode token, ms (absent when the job decoded no token). */
  headMsPerToken?: number;
}

export function jobPoint(fleet: string, j: JobRecord, timestampMs: number): StorePoint {
  const { outcome, model, ...fields } = j;
  return point(MEASUREMENTS.job, { fleet, outcome, model }, fields, timestampMs);
}

export interface JobGroupRecord {
  jobId: string;
  model: string;
  nodes: string;
  decodeTokens: number;
  hopMsPerToken: number;
  /** The nodes' own time per decode forward, as they reported it; absent when they did not. */
  forwardMsPerToken?: number;
  /** The rest of the hop: hopMsPerToken − forwardMsPerToken. */
  linkMsPerToken?: number;
}

export function jobGroupPoint(fleet: string, group: string, j: JobGroupRecord, timestampMs: number): StorePoint {
  const { model, ...fields } = j;
  return point(MEASUREMENTS.jobGroup, { fleet, group, model }, fields, timestampMs);
}

export interface DecisionRecord {
  group: string;
  policy: string;
  /** The node chosen. */
  node: string;
  jobId: string;
  probability: number;
  candidates: number;
  available: number;
}

export function decisionPoint(fleet: string, d: DecisionRecord, timestampMs: number): StorePoint {
  const { group, policy, node, ...fields } = d;
  return point(MEASUREMENTS.decision, { fleet, group, policy, node }, fields, timestampMs);
}

export interface QLimRecord {
  qLim: number;
  qEnergy: number;
  qProc: number;
  weight?: number;
  energyBinds: boolean;
  solves: number;
}

export function qLimPoint(tags: NodeTags, q: QLimRecord, timestampMs: number): StorePoint {
  return point(MEASUREMENTS.qLim, { ...tags }, { ...q }, timestampMs);
}

/** The broker's counters as the store writes them, with the points the store itself dropped. */
export type BrokerStats = BrokerCounters & { droppedPoints?: number };

export function brokerPoint(fleet: string, b: BrokerStats, timestampMs: number): StorePoint {
  return point(MEASUREMENTS.broker, { fleet }, { ...b }, timestampMs);
}

export interface SleepPlanRecord {
  wakeAtMs: number;
  wakeInS: number;
  reason: string;
  energyQ: number;
}

export function sleepPlanPoint(tags: NodeTags, s: SleepPlanRecord, timestampMs: number): StorePoint {
  return point(MEASUREMENTS.sleepPlan, { ...tags }, { ...s }, timestampMs);
}

export interface SleepGroupRecord {
  asleep: number;
  awake: number;
  arrivalsPerSlot: number;
  nextWakeAtMs?: number;
  wakeRequested: boolean;
}

export function sleepGroupPoint(fleet: string, group: string, s: SleepGroupRecord, timestampMs: number): StorePoint {
  return point(MEASUREMENTS.sleepGroup, { fleet, group }, { ...s }, timestampMs);
}
