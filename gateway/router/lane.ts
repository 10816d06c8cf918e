// One group's part of one job: which node serves it now, the session it holds there, the
// nodes it has been through, and the hidden states sent to the group so far — the job's
// history that a replacement node replays to rebuild its KV cache (as a Petals client
// keeps each span's inputs).
import { FRAME_HEADER_BYTES, type Frame, type HopRoute } from '../../protocol/index.js';
import type { ModelGroup } from './model.js';

/** The rows [T][dim] sent to one group so far, in position order. */
export class RowHistory {
  private data: Float32Array;
  private used = 0;

  constructor(private readonly dim: number, initialRows: number) {
    this.data = new Float32Array(Math.max(1, initialRows) * dim);
  }

  get length(): number {
    return this.used / this.dim;
  }

  append(rows: Float32Array): void {
    if (this.used + rows.length > this.data.length) {
      const grown = new Float32Array(Math.max(this.data.length * 2, this.used + rows.length));
      grown.set(this.data.subarray(0, this.used));
      this.data = grown;
    }
    this.data.set(rows, this.used);
    this.used += rows.length;
  }

  /** Frees the rows once the job is over (finished jobs are kept for lookup). */
  release(): void {
    this.data = new Float32Array(0);
    this.used = 0;
  }

  /** Rows [from, from + count), without copying. */
  rows(from: number, count: number): Float32Array {
    return this.data.subarray(from * this.dim, (from + count) * this.dim);
  }
}

export class Lane {
  /** The node serving the group now. */
  nodeId: string | undefined;
  sessionId = 0;
  /** The node has no cache for this job yet: the history must be replayed before the next frame. */
  fresh = false;
  /** Set when the node must be left before the next hop (power saving, handed back). */
  move: string | undefined;
  /** Where the node was told to send its outputs (the next group's node); undefined: to the gateway. */
  route: HopRoute | undefined;
  /** Outputs of the serving node that came before the stage waited for them. */
  readonly early = new EarlyOutputs();
  /** Nodes that accepted the job for this group, in order. */
  readonly served: string[] = [];
  /** Nodes this job gave up on in this group (refused, failed, silent, gone). */
  readonly tried = new Set<string>();
  /** The decode forwards its nodes reported, and their time on the nodes, ms. */
  readonly decode = { frames: 0, forwardMs: 0 };
  readonly history: RowHistory;

  constructor(readonly group: ModelGroup, dim: number, rows: number) {
    this.history = new RowHistory(dim, rows);
  }
}

/** Where a frame was seen: on the sender's job/out, or on the job/hop of the node it was sent to. */
export type Via = 'out' | 'hop';

/** Did the frame come from the node serving (nodeId, sessionId), on its job/out or along its route? */
export function fromServing(serving: { nodeId: string; sessionId: number; route: HopRoute | undefined }, via: Via, topicNode: string, f: Frame): boolean {
  if (via === 'out') return topicNode === serving.nodeId && f.sessionId === serving.sessionId;
  return serving.route !== undefined && topicNode === serving.route.nodeId && f.sessionId === serving.route.sessionId;
}

/**
 * A chained node answers as soon as its predecessor's output reaches it, which may be before
 * the gateway, still busy with the earlier group (the other blocks of a long prompt), waits
 * for it. Such outputs are kept here, for the current step only, until the stage asks.
 */
export class EarlyOutputs {
  /** One per block of a forward at most; more is a node sending what nobody asked for. */
  static readonly MAX = 64;
  private step = -1;
  private readonly byPosition = new Map<number, { frame: Frame; via: Via }>();

  keep(step: number, frame: Frame, via: Via): boolean {
    if (step !== this.step) this.clear(step);
    if (this.byPosition.size >= EarlyOutputs.MAX) return false;
    this.byPosition.set(frame.position, { frame, via });
    return true;
  }

  take(step: number, position: number): { frame: Frame; via: Via } | undefined {
    if (step !== this.step) return undefined;
    const got = this.byPosition.get(position);
    this.byPosition.delete(position);
    return got;
  }

  clear(step = -1): void {
    this.step = step;
    this.byPosition.clear();
  }
}

/** Rows per activation frame that fit in `maxFrameBytes` (at least one). */
export function maxFrameRows(settings: { maxFrameBytes: number; frameDtype: 'f32' | 'f16' }, dim: number): number {
  const rowBytes = dim * (settings.frameDtype === 'f32' ? 4 : 2);
  const rows = Math.floor((settings.maxFrameBytes - FRAME_HEADER_BYTES) / rowBytes);
  if (rows < 1) throw new Error(`router.maxFrameBytes ${settings.maxFrameBytes} cannot hold one row of ${rowBytes} bytes; raise it`);
  return rows;
}

/** [start, count] blocks of at most `max` covering [0, total). */
export function* blocks(total: number, max: number): Generator<[number, number]> {
  for (let at = 0; at < total; at += max) yield [at, Math.min(max, total - at)];
}
