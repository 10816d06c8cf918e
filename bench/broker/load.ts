// The load of `heliomesh bench broker`, run in a worker thread so that the clients never
// share an event loop with the in-process broker (Mosquitto has its own process; aedes would
// otherwise pay for the clients' work too).
import { Worker } from 'node:worker_threads';

export interface LoginOptions {
  clientId: string;
  username?: string;
  password?: string;
}

export interface LoadSpec {
  url: string;
  /** One login per publisher; publisher i publishes to `topics[i]`. */
  publishers: LoginOptions[];
  topics: string[];
  subscriber: LoginOptions;
  /** The subscriber's filter; it must match every publisher's topic. */
  filter: string;
  messagesPerPublisher: number;
  /** QoS 1 publishes a publisher keeps unacknowledged at once. */
  window: number;
  /** Give up waiting for deliveries after this long, and report what is missing. */
  timeoutMs: number;
}

export interface LoadResult {
  sent: number;
  /** Distinct messages the subscriber received, each checked against what was sent. */
  delivered: number;
  lost: number;
  /** QoS 1 is at-least-once: redeliveries are counted, not double-counted as delivered. */
  duplicates: number;
  /** Received payloads that did not match what their publisher sent. */
  corrupted: number;
  /** From the first publish to the last distinct delivery (or the timeout). */
  elapsedMs: number;
  /** From the first publish to the last PUBACK the publishers received. */
  ackedMs: number;
  timedOut: boolean;
  /** Median size of the slot records sent. */
  payloadBytes: number;
}

/** Runs one load against the broker at `spec.url` in a fresh worker. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.js', import.meta.url), { workerData: spec });
    let settled = false;
    worker.once('message', (msg: { result?: LoadResult; error?: string }) => {
      settled = true;
      if (msg.result) resolve(msg.result);
      else reject(new Error(msg.error ?? 'the load worker failed without a message'));
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`the load worker exited with code ${code} before reporting`));
    });
  });
}
