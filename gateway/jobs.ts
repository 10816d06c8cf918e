// What the gateway's job router offers to its front ends (the HTTP API, `heliomesh status`,
// the demo): submit a completion, follow its tokens, read finished jobs and the scheduler's
// live view. The router implements it; the front ends see nothing else of the router.
import type { GenerationStats } from '../models/generate.js';

export interface CompletionRequest {
  /** Text, tokenized with the model's tokenizer (BOS first), or explicit token ids. */
  prompt: string | { ids: number[] };
  /** New tokens to produce at most. */
  maxTokens: number;
  /** 0 is greedy. */
  temperature: number;
  /** Nucleus sampling mass in (0, 1]. */
  topP: number;
  /** Seeds the sampler, so the same request gives the same text on any nodes. */
  seed: number;
  /** Text stop sequences: generation ends before the first one appears. */
  stop: string[];
}

export interface TokenEvent {
  /** 0-based index among the generated tokens. */
  index: number;
  id: number;
  /** This token's text, decoded in context (may be '' for a partial multi-byte piece). */
  text: string;
}

/** The nodes that served one group of a job, in order: more than one means failovers. */
export interface GroupService {
  group: string;
  nodes: string[];
  /** The decode forwards its nodes reported, and their time on the nodes, ms; absent when none reported them. */
  decode?: { frames: number; forwardMs: number };
}

export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface JobSummary {
  /** 'job-<n>'. */
  id: string;
  status: JobStatus;
  model: string;
  createdMs: number;
  finishedMs?: number;
  promptTokens: number;
  completionTokens: number;
  text: string;
  /** 'stop': a stop id or stop sequence ended it; 'length': maxTokens or the context did. */
  finishReason?: 'stop' | 'length';
  latencyMs?: number;
  /** Sum of the serving nodes' reported job energies, J. */
  energyJ: number;
  /** Sum of their uncertainties, J (docs/agent.md "Per-job energy"); absent when no node reported one. */
  energyUncertaintyJ?: number;
  failovers: number;
  served: GroupService[];
  error?: { group?: string; message: string };
  /**
   * Where the generation's wall time went here, as the loop timed it: the prompt's pass, then
   * per decode token the head's share (embedding, final norm, classifier, sampling) and each
   * group's hop, in pipeline order (what a slow group costs shows in its share).
   */
  timing?: GenerationStats;
}

export type JobErrorKind = 'bad-request' | 'no-node' | 'timeout' | 'cancelled' | 'shutdown' | 'internal';

/**
 * Why a job could not be run; `group` names the group that had no node, when that was it;
 * `retryAfterS`, when the group sleeps, is how long until its first planned wake.
 */
export class JobError extends Error {
  constructor(message: string, readonly kind: JobErrorKind, readonly group?: string, readonly retryAfterS?: number) {
    super(message);
    this.name = 'JobError';
  }
}

export interface JobHandle {
  readonly id: string;
  /** Resolves with the finished job; rejects with a JobError. */
  readonly done: Promise<JobSummary>;
  /** Called for each generated token, in order (the SSE stream). */
  onToken(listener: (t: TokenEvent) => void): void;
  cancel(reason: string): void;
}

export interface ModelCard {
  id: string;
  contextLength: number;
  vocabSize: number;
  /** Unix seconds, for OpenAI's `created`. */
  createdS: number;
}

export interface SchedulerNodeView {
  nodeId: string;
  online: boolean;
  /** Active, not in power saving, with queue room: a candidate for the next job. */
  available: boolean;
  qLim: number | null;
  /** Eq. 6 weight r_i within its group. */
  weight: number | null;
  /** The policy's probability of picking it for the next job. */
  probability: number;
}

export interface SchedulerDecision {
  jobId: string;
  group: string;
  nodeId: string;
  atMs: number;
  probabilities: Record<string, number>;
  reason: 'dispatch' | 'failover';
}

export interface SchedulerView {
  policy: string;
  groups: Array<{ group: string; nodes: SchedulerNodeView[]; lastDecision: SchedulerDecision | null }>;
}

export interface JobCounters {
  submitted: number;
  completed: number;
  failed: number;
  cancelled: number;
  failovers: number;
  active: number;
  promptTokens: number;
  completionTokens: number;
  energyJ: number;
}

export interface JobService {
  readonly model: ModelCard;
  /** Throws a JobError of kind 'bad-request' at once for a request that cannot run (prompt too long, ...). */
  submit(req: CompletionRequest): JobHandle;
  job(id: string): JobSummary | undefined;
  /** Newest first. */
  recent(limit: number): JobSummary[];
  scheduler(): SchedulerView;
  counters(): JobCounters;
  /** Tokenizes text as `submit` would (for usage counts and chat templates). */
  encode(text: string): number[];
  /** The prompt ids of a conversation through the model's own chat template; undefined when it has none. */
  chatIds(messages: { role: string; content: string }[]): number[] | undefined;
}
