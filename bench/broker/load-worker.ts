// Worker side of bench/broker/load.ts: N publishers send M slot records each at QoS 1 to one
// QoS 1 subscriber, which checks every message byte for byte against what was sent.
import { parentPort, workerData } from 'node:worker_threads';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { PROTOCOL_VERSION, encodeJson, parseSlotRecord, type SlotRecord } from '../../protocol/index.js';
import type { LoadResult, LoadSpec, LoginOptions } from './load.js';
import { median } from '../median.js';

/**
 * Slot record `seq` of a node, as an agent publishes it (protocol/messages.ts), with
 * daytime-like values. Checked against the protocol's schema so the load stays honest if the
 * record changes.
 */
export function slotRecordPayload(nodeId: string, seq: number): Buffer {
  const slotMs = 60_000;
  const record: SlotRecord = {
    v: PROTOCOL_VERSION,
    nodeId,
    seq,
    slotStartMs: 1_764_000_000_000 + seq * slotMs,
    slotMs,
    harvestJ: 30.25 + (seq % 17) * 1.125,
    consumedJ: 22.5 + (seq % 13) * 0.375,
    batteryJ: 41_000.5 - seq * 0.25,
    batteryPct: 80.5 - (seq % 50) / 8,
    powerMode: 1 + (seq % 3),
    gamma: 1,
    queue: seq % 2,
    charger: 'fast-charging',
    health: [],
    degraded: false,
    samples: 120,
  };
  const payload = encodeJson(record);
  const check = parseSlotRecord(payload);
  if (!check.ok) throw new Error(`the bench's slot record no longer matches the protocol: ${check.error}`);
  return payload;
}

const medianOrZero = (xs: number[]) => (xs.length ? median(xs) : 0);

function open(url: string, login: LoginOptions): Promise<MqttClient> {
  const opts: IClientOptions = { ...login, clean: true, reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 4 };
  return new Promise((resolve, reject) => {
    const client = connect(url, opts);
    client.once('connect', () => resolve(client));
    client.once('error', (err) => reject(new Error(`${login.clientId} could not connect to ${url}: ${err.message}`)));
    client.once('close', () => reject(new Error(`${login.clientId}: ${url} closed the connection before CONNACK`)));
  });
}

/** Publishes `payloads` in order at QoS 1 with at most `window` unacknowledged; resolves on the last PUBACK. */
function publishAll(client: MqttClient, topic: string, payloads: Buffer[], window: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let acked = 0;
    const pump = () => {
      while (next < payloads.length && next - acked < window) {
        client.publish(topic, payloads[next++]!, { qos: 1 }, (err) => {
          if (err) return reject(new Error(`publish to ${topic} failed: ${err.message}`));
          if (++acked === payloads.length) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const n = spec.publishers.length;
  const m = spec.messagesPerPublisher;
  const payloads = spec.publishers.map((p) => Array.from({ length: m }, (_, seq) => slotRecordPayload(p.clientId, seq)));
  const publisherOf = new Map(spec.topics.map((t, i) => [t, i]));
  const seen = spec.publishers.map(() => new Uint8Array(m));
  const total = n * m;
  let delivered = 0;
  let duplicates = 0;
  let corrupted = 0;
  let t0 = 0;
  let tLast = 0;
  let allDelivered: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allDelivered = resolve));

  const sub = await open(spec.url, spec.subscriber);
  sub.on('message', (topic, payload) => {
    const i = publisherOf.get(topic);
    let seq = -1;
    try {
      seq = (JSON.parse(payload.toString('utf8')) as { seq: number }).seq;
    } catch {
      // counted below as corrupted
    }
    if (i === undefined || !Number.isInteger(seq) || seq < 0 || seq >= m || !payload.equals(payloads[i]![seq]!)) {
      corrupted++;
      return;
    }
    if (seen[i]![seq]) {
      duplicates++;
      return;
    }
    seen[i]![seq] = 1;
    tLast = performance.now();
    if (++delivered === total) allDelivered();
  });
  const granted = await sub.subscribeAsync(spec.filter, { qos: 1 });
  if (granted[0]?.qos !== 1) throw new Error(`subscription to ${spec.filter} was granted QoS ${granted[0]?.qos}, not 1`);

  const pubs = await Promise.all(spec.publishers.map((login) => open(spec.url, login)));
  t0 = performance.now();
  let tAcked = 0;
  const published = Promise.all(pubs.map((c, i) => publishAll(c, spec.topics[i]!, payloads[i]!, spec.window))).then(() => {
    tAcked = performance.now();
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    Promise.all([published, done]).then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), spec.timeoutMs))),
  ]);
  clearTimeout(timer);
  const tEnd = timedOut ? performance.now() : tLast;
  await Promise.all([...pubs, sub].map((c) => c.endAsync(true)));
  return {
    sent: total,
    delivered,
    lost: total - delivered,
    duplicates,
    corrupted,
    elapsedMs: tEnd - t0,
    ackedMs: (tAcked || performance.now()) - t0,
    timedOut,
    payloadBytes: medianOrZero(payloads.flat().map((b) => b.length)),
  };
}

run(workerData as LoadSpec).then(
  (result) => parentPort?.postMessage({ result }),
  (err: unknown) => parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) }),
);
