// What crosses the gateway's broker on a job's path: every activation frame a client
// publishes (the gateway's to a node's job/in, a node's to its job/out, and, once hops
// chain, a node's straight to the next one) passes the broker's tap once. The count comes
// from the frames actually published, so a path that crosses fewer times shows it.
//
// The same tap holds each frame back for the links it travels: the link delay of a field
// deployment's Wi-Fi, injected here and nowhere in the gateway itself. The broker runs on
// the gateway, and the gateway's own client of it is in memory, so a frame between the
// gateway and a node travels one node's link, but a frame from one node to the next
// travels two: up the sender's link to the broker and down the receiver's. It is held for
// both. Chaining then saves the gateway's turn between the two legs, not a leg.
import type { PublishTap } from '../../gateway/broker/index.js';
import { FLAG_CLOSE, FLAG_REPLAY, FRAME_HEADER_BYTES, isFrame } from '../../protocol/index.js';

/** The header fields of a frame payload that place it in a job (protocol/frame.ts layout); undefined if not a frame. */
export function frameHeader(payload: Buffer): { jobId: number; step: number; data: boolean } | undefined {
  if (payload.length < FRAME_HEADER_BYTES || !isFrame(payload)) return undefined;
  const flags = payload.readUInt16LE(6);
  const rows = payload.readUInt32LE(24);
  // Replays rebuild a cache and close frames end a session: neither is a token's crossing.
  return { jobId: payload.readUInt32LE(8), step: payload.readUInt32LE(16), data: rows > 0 && (flags & (FLAG_REPLAY | FLAG_CLOSE)) === 0 };
}

/** Links a frame on this topic travels: a node's job/hop frame goes from one node to another through the broker. */
export function linkLegs(topic: string): 1 | 2 {
  return topic.endsWith('/job/hop') ? 2 : 1;
}

export class BrokerCrossings {
  /** Data frames published, by job number. */
  private readonly byJob = new Map<number, number>();
  /** The links those frames travelled, by job number. */
  private readonly legsByJob = new Map<number, number>();

  /** `linkDelayMs`: how long one link holds an activation frame (0: no delay). */
  constructor(readonly linkDelayMs = 0) {
    if (!(Number.isFinite(linkDelayMs) && linkDelayMs >= 0)) throw new Error(`the link delay must be a number of ms ≥ 0, got ${linkDelayMs}`);
  }

  /** The broker tap: counts each data frame for its job, and holds every frame for the link delay of each leg it travels. */
  readonly tap: PublishTap = (topic, payload) => {
    const frame = frameHeader(payload);
    if (!frame) return 0;
    const legs = linkLegs(topic);
    if (frame.data) {
      this.byJob.set(frame.jobId, (this.byJob.get(frame.jobId) ?? 0) + 1);
      this.legsByJob.set(frame.jobId, (this.legsByJob.get(frame.jobId) ?? 0) + legs);
    }
    return legs * this.linkDelayMs;
  };

  /** Data frames of job `jobNum` that crossed the broker. */
  frames(jobNum: number): number {
    return this.byJob.get(jobNum) ?? 0;
  }

  /** Links that job `jobNum`'s data frames travelled, one or two per frame. */
  legs(jobNum: number): number {
    return this.legsByJob.get(jobNum) ?? 0;
  }
}
