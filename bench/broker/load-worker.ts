// Worker side of bench/broker/load.ts: N publishers send M slot-record-sized messages each at
// QoS 1 to one QoS 1 subscriber, which checks every message against what was sent.
import { parentPort, workerData } from 'node:worker_threads';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { LoadResult, LoadSpec, LoginOptions } from './load.js';

/** A record shaped like an agent's slot record, padded to `bytes` so every message is the same size. */
export function slotRecord(nodeId: string, seq: number, bytes: number): Buffer {
  const rec = {
    node: nodeId,
    seq,
    slotStartMs: 1_764_000_000_000 + seq * 60_000,
    harvestedJ: 30 + (seq % 17) * 1.25,
    consumedJ: 22 + (seq % 13) * 0.5,
    batteryJ: 41_000 - seq,
    batteryPct: 80 - (seq % 50) / 10,
    powerMode: seq % 4,
    gamma: 0.5,
    queue: seq % 2,
    chrgStat: 'fast-charging',
    degraded: false,
    pad: '',
  };
  const base = Buffer.byteLength(JSON.stringify(rec));
  rec.pad = '.'.repeat(Math.max(0, bytes - base));
  return Buffer.from(JSON.stringify(rec));
}

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
  const payloads = spec.publishers.map((p) => Array.from({ length: m }, (_, seq) => slotRecord(p.clientId, seq, spec.payloadBytes)));
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
    payloadBytes: payloads[0]?.[0]?.length ?? 0,
  };
}

run(workerData as LoadSpec).then(
  (result) => parentPort?.postMessage({ result }),
  (err: unknown) => parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) }),
);
