// Where a token's time goes on the way through the fleet: every activation frame of a decode
// step is stamped when the gateway publishes it to a node's job/in (on its broker's bus), each time
// the broker takes it on its way (into a node's job/in or, chained, its job/hop; out of the
// last node's job/out), and when it arrives back (just after the gateway decodes it). A node's
// share of a hop runs from the broker taking its input to the broker taking its output,
// which on the chained path is the next node's input: the broker's delivery to it, its
// socket and MQTT client, its worker, its publish. The gateway's way out (its bus, to the
// broker's tap) belongs to the node it sends to, and its way in to
// the node it hears from: each node of a star has both, a chain's first node only the way
// out and its last only the way in. The frame codec's own cost is timed apart, on frames of
// the model's width.
import type { LocalBus } from '../../gateway/broker/index.js';
import { decodeFrame, encodeFrame, fleetFilter, parseNodeTopic } from '../../protocol/index.js';
import { frameHeader } from './crossings.js';

/** The broker taking a frame: into a node (`in`) or out of one back to the gateway (`out`). */
interface AtBroker {
  nodeId: string;
  kind: 'in' | 'out';
  atMs: number;
}

/** One decode step's frame on its way through the fleet. */
interface Stamp {
  /** Gateway publishes, by the node sent to. */
  sent: Map<string, number>;
  atBroker: AtBroker[];
  /** Arrivals back at the gateway, by the node heard from. */
  back: Map<string, number>;
}

/** One node's decode hops of a job, mean ms of each part. */
export interface HopTimes {
  hops: number;
  /** Gateway out + node side + gateway in: summed over the nodes, a token's time in the hops. */
  roundTripMs: number;
  /** From the gateway's publish to the broker taking the frame (0 for a chained node fed by another node). */
  gatewayOutMs: number;
  /** From the broker taking the node's input to the broker taking its output (a link delay holds the frame in here). */
  nodeSideMs: number;
  /** From the broker taking the node's answer to its arrival at the gateway's client (0 for a chained node that feeds another). */
  gatewayInMs: number;
}

type Parsed = ReturnType<typeof parseNodeTopic>;

/** Steps per job in a hop's number: more than any context holds. */
const HOP_STEPS = 2 ** 20;
const hopNumber = (h: { jobId: number; step: number }): number => h.jobId * HOP_STEPS + h.step;

export class HopTrace {
  /** By hop (job number × 2^20 + step): what the bench adds to a hop's path must cost next to nothing. */
  private readonly stamps = new Map<number, Stamp>();
  /** The few node topics a job uses, parsed once. */
  private readonly topics = new Map<string, Parsed>();

  /**
   * Stamps the gateway's frames out (its bus's publish) and in (a subscriber on its bus,
   * after the gateway's own: the stamp follows the link's decode of the frame, and comes
   * before the head, which runs once the router's wait resolves).
   */
  private constructor(bus: LocalBus) {
    const publish = bus.publish.bind(bus);
    bus.publish = (topic, message, opts, cb) => {
      const t = this.parsed(topic);
      const stamp = t?.kind === 'jobIn' ? this.stampOf(message, true) : undefined;
      if (t && stamp) stamp.sent.set(t.nodeId, performance.now());
      publish(topic, message, opts, cb);
    };
  }

  static async on(bus: LocalBus, fleet: string): Promise<HopTrace> {
    const trace = new HopTrace(bus);
    await bus.subscribe([fleetFilter(fleet, 'jobOut')], (topic, payload) => {
      const t = trace.parsed(topic);
      const stamp = t?.kind === 'jobOut' ? trace.stampOf(payload, false) : undefined;
      if (t && stamp && !stamp.back.has(t.nodeId)) stamp.back.set(t.nodeId, performance.now());
    });
    return trace;
  }

  /** From the broker's tap: a frame into a node (job/in, job/hop) or back from one (job/out), as the broker takes it. */
  atBroker(topic: string, payload: Buffer): void {
    const atMs = performance.now();
    const t = this.parsed(topic);
    const kind = t?.kind === 'jobIn' || t?.kind === 'jobHop' ? 'in' : t?.kind === 'jobOut' ? 'out' : undefined;
    const stamp = kind ? this.stampOf(payload, false) : undefined;
    if (t && kind && stamp && !stamp.atBroker.some((e) => e.nodeId === t.nodeId && e.kind === kind)) stamp.atBroker.push({ nodeId: t.nodeId, kind, atMs });
  }

  private parsed(topic: string): Parsed {
    let t = this.topics.get(topic);
    if (t === undefined) {
      t = parseNodeTopic(topic);
      if (this.topics.size < 1024) this.topics.set(topic, t);
    }
    return t;
  }

  /** The stamp of a data frame's hop; `open` starts one (only the gateway's own publish does). */
  private stampOf(payload: string | Buffer, open: boolean): Stamp | undefined {
    const h = Buffer.isBuffer(payload) ? frameHeader(payload) : undefined;
    if (!h?.data) return undefined;
    const key = hopNumber(h);
    let s = this.stamps.get(key);
    if (!s && open) this.stamps.set(key, (s = { sent: new Map(), atBroker: [], back: new Map() }));
    return s;
  }

  clear(): void {
    this.stamps.clear();
  }

  /** Each node's decode steps (step ≥ 1) of job `jobNum`, mean ms of each part. */
  decodeRoundTrips(jobNum: number): Map<string, HopTimes> {
    const sums = new Map<string, HopTimes>();
    for (const [key, s] of this.stamps) {
      const step = key % HOP_STEPS;
      if ((key - step) / HOP_STEPS !== jobNum || step < 1) continue;
      s.atBroker.forEach((e, i) => {
        const next = s.atBroker[i + 1];
        if (e.kind !== 'in' || !next) return;
        const sent = s.sent.get(e.nodeId);
        const back = next.kind === 'out' && next.nodeId === e.nodeId ? s.back.get(e.nodeId) : undefined;
        // A frame that never came back whole is no measured hop.
        if (next.kind === 'out' && back === undefined) return;
        let acc = sums.get(e.nodeId);
        if (!acc) sums.set(e.nodeId, (acc = { hops: 0, roundTripMs: 0, gatewayOutMs: 0, nodeSideMs: 0, gatewayInMs: 0 }));
        const out = sent === undefined ? 0 : e.atMs - sent;
        const side = next.atMs - e.atMs;
        const into = back === undefined ? 0 : back - next.atMs;
        acc.hops++;
        acc.roundTripMs += out + side + into;
        acc.gatewayOutMs += out;
        acc.nodeSideMs += side;
        acc.gatewayInMs += into;
      });
    }
    const out = new Map<string, HopTimes>();
    for (const [nodeId, acc] of sums) {
      const n = acc.hops;
      out.set(nodeId, { hops: n, roundTripMs: acc.roundTripMs / n, gatewayOutMs: acc.gatewayOutMs / n, nodeSideMs: acc.nodeSideMs / n, gatewayInMs: acc.gatewayInMs / n });
    }
    return out;
  }
}

/** Mean µs to encode and to decode one decode-step frame ([1, dim] f32), over `n` of each. */
export function frameCodecUs(dim: number, n = 2000): { encodeUs: number; decodeUs: number; bytes: number } {
  const data = Float32Array.from({ length: dim }, (_, i) => Math.sin(i));
  const frame = { jobId: 1, sessionId: 1, step: 1, position: 16, rows: 1, dim, dtype: 'f32' as const, data };
  for (let i = 0; i < 200; i++) decodeFrame(encodeFrame(frame));
  let payload = encodeFrame(frame);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) payload = encodeFrame(frame);
  const t1 = performance.now();
  for (let i = 0; i < n; i++) {
    if (!decodeFrame(payload).ok) throw new Error('the frame codec refused its own frame');
  }
  const t2 = performance.now();
  return { encodeUs: ((t1 - t0) * 1000) / n, decodeUs: ((t2 - t1) * 1000) / n, bytes: payload.length };
}
