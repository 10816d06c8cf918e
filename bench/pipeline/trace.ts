// Where a token's time goes on the way through the fleet: every activation frame the
// gateway's MQTT client publishes to a node's job/in is stamped when it leaves, when the
// broker takes it, when the broker takes the node's output frame, and when that arrives
// back (before the gateway decodes it). So one hop's round trip splits into the gateway's
// way out (its client, the in-process stream, the broker's parse), the node's side (the
// broker's delivery to it, its socket and MQTT client, its worker, its publish back) and
// the gateway's way in. The frame codec's own cost is timed apart, on frames of the
// model's width.
import { fork } from 'node:child_process';
import { MqttClient } from 'mqtt';
import type { Broker } from '../../gateway/broker/index.js';
import { decodeFrame, encodeFrame, parseNodeTopic } from '../../protocol/index.js';
import { frameHeader } from './crossings.js';

interface Stamp {
  sentMs: number;
  inAtBrokerMs?: number;
  outAtBrokerMs?: number;
  backMs?: number;
}

/** One node's decode hops of a job, mean ms of each part. */
export interface HopTimes {
  hops: number;
  roundTripMs: number;
  /** From the gateway's publish to the broker taking the frame. */
  gatewayOutMs: number;
  /** From the broker taking the frame to the broker taking the node's answer (a link delay holds the frame in here). */
  nodeSideMs: number;
  /** From the broker taking the answer to its arrival at the gateway's client (and the answer's link delay). */
  gatewayInMs: number;
}

type Parsed = ReturnType<typeof parseNodeTopic>;

/** Steps per job in a hop's number: more than any context holds. */
const HOP_STEPS = 2 ** 20;
const hopNumber = (h: { jobId: number; step: number }): number => h.jobId * HOP_STEPS + h.step;

export class HopTrace {
  /** Per node, by hop (job number × 2^20 + step): what the bench adds to a hop's path must cost next to nothing. */
  private readonly stamps = new Map<string, Map<number, Stamp>>();
  /** The few node topics a job uses, parsed once. */
  private readonly topics = new Map<string, Parsed>();

  /** Stamps the gateway client's frames out (publish) and in (first `message` listener). */
  constructor(client: MqttClient) {
    const publish = client.publish.bind(client) as (...args: unknown[]) => MqttClient;
    client.publish = ((topic: string, message: string | Buffer, ...rest: unknown[]) => {
      const t = this.parsed(topic);
      const h = t?.kind === 'jobIn' && Buffer.isBuffer(message) ? frameHeader(message) : undefined;
      if (t && h?.data) this.byNode(t.nodeId).set(hopNumber(h), { sentMs: performance.now() });
      return publish(topic, message, ...rest);
    }) as MqttClient['publish'];
    client.prependListener('message', (topic: string, payload: Buffer) => {
      const stamp = this.stampOf(this.parsed(topic), 'jobOut', payload);
      if (stamp && stamp.backMs === undefined) stamp.backMs = performance.now();
    });
  }

  /** From the broker's tap: a frame to a node or back from one, as the broker takes it. */
  atBroker(topic: string, payload: Buffer): void {
    const now = performance.now();
    const t = this.parsed(topic);
    const into = this.stampOf(t, 'jobIn', payload);
    if (into && into.inAtBrokerMs === undefined) into.inAtBrokerMs = now;
    const back = this.stampOf(t, 'jobOut', payload);
    if (back && back.outAtBrokerMs === undefined) back.outAtBrokerMs = now;
  }

  private parsed(topic: string): Parsed {
    let t = this.topics.get(topic);
    if (t === undefined) {
      t = parseNodeTopic(topic);
      if (this.topics.size < 1024) this.topics.set(topic, t);
    }
    return t;
  }

  private byNode(nodeId: string): Map<number, Stamp> {
    let m = this.stamps.get(nodeId);
    if (!m) this.stamps.set(nodeId, (m = new Map()));
    return m;
  }

  private stampOf(t: Parsed, kind: 'jobIn' | 'jobOut', payload: Buffer): Stamp | undefined {
    if (t?.kind !== kind) return undefined;
    const h = frameHeader(payload);
    return h && this.stamps.get(t.nodeId)?.get(hopNumber(h));
  }

  clear(): void {
    this.stamps.clear();
  }

  /** Each node's decode steps (step ≥ 1) of job `jobNum`, mean ms of each part. */
  decodeRoundTrips(jobNum: number): Map<string, HopTimes> {
    const out = new Map<string, HopTimes>();
    for (const [nodeId, hops] of this.stamps) {
      const acc: HopTimes = { hops: 0, roundTripMs: 0, gatewayOutMs: 0, nodeSideMs: 0, gatewayInMs: 0 };
      for (const [key, s] of hops) {
        const step = key % HOP_STEPS;
        if ((key - step) / HOP_STEPS !== jobNum || step < 1 || s.backMs === undefined || s.inAtBrokerMs === undefined || s.outAtBrokerMs === undefined) continue;
        acc.hops++;
        acc.roundTripMs += s.backMs - s.sentMs;
        acc.gatewayOutMs += s.inAtBrokerMs - s.sentMs;
        acc.nodeSideMs += s.outAtBrokerMs - s.inAtBrokerMs;
        acc.gatewayInMs += s.backMs - s.outAtBrokerMs;
      }
      if (acc.hops === 0) continue;
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

export interface RoundTrips {
  samples: number;
  /** The idle time before each round trip, ms. */
  gapMs: number;
  medianMs: number;
  meanMs: number;
  p90Ms: number;
}

/**
 * The MQTT legs of one hop alone: a decode-step frame published at QoS 0 (as the router sends
 * it) to a node process that computes nothing and answers at QoS 0 (as an agent's output
 * frame goes), through the gateway's broker, timed from publish to the answer's arrival, `n`
 * times, each after `gapMs` of idling. Back to back, both processes stay awake; on a job's
 * path each waits a token's time between its hops, and waking costs more the busier the
 * machine is.
 */
export async function mqttRoundTrips(url: string, broker: Broker, dim: number, n = 300, gapMs = 0): Promise<RoundTrips> {
  const inTopic = 'heliomesh/bench/node/echo/job/in';
  const outTopic = 'heliomesh/bench/node/echo/job/out';
  const login = broker.internal;
  const echo = fork(new URL('./echo-node.js', import.meta.url), [JSON.stringify({ url, ...login, inTopic, outTopic })], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  // As the gateway's own client (gateway/index.ts): in process, not over TCP.
  const client = new MqttClient(() => broker.connectInProcess(), { clientId: `bench-probe-${process.pid}`, ...login, reconnectPeriod: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await new Promise<void>((resolve, reject) => {
      echo.stdout?.once('data', () => resolve());
      echo.once('exit', (code) => reject(new Error(`the echo node exited (code ${code}) before it was ready`)));
    });
    await client.subscribeAsync(outTopic, { qos: 1 });
    const payload = encodeFrame({ jobId: 1, sessionId: 1, step: 1, position: 16, rows: 1, dim, dtype: 'f32', data: new Float32Array(dim) });
    let answered: () => void = () => undefined;
    client.on('message', () => answered());
    const once = async (): Promise<number> => {
      const back = new Promise<void>((resolve) => (answered = resolve));
      const t0 = performance.now();
      client.publish(inTopic, payload, { qos: 0 });
      await back;
      return performance.now() - t0;
    };
    for (let i = 0; i < 30; i++) await once();
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      times.push(await once());
    }
    times.sort((a, b) => a - b);
    return { samples: n, gapMs, medianMs: times[Math.floor(n / 2)]!, meanMs: times.reduce((a, b) => a + b, 0) / n, p90Ms: times[Math.floor(0.9 * n)]! };
  } finally {
    await client.endAsync(true);
    echo.disconnect();
  }
}
