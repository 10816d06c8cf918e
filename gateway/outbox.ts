// The gateway client's publishes, with its QoS 1 messages counted from publish to PUBACK.
// MQTT.js calls a QoS 1 publish's callback when the broker's PUBACK arrives (MQTT 3.1.1
// §4.3.2), so the count needs nothing of the client but its public publish: the gateway's
// close waits on it for its last cancels to be through the broker, on the injected clock.
import type { Clock } from '../ground/clock.js';

/** What the outbox needs of a publisher: an MQTT.js client, or the embedded broker's bus (broker/local-bus.ts). */
export interface OutboxClient {
  connected: boolean;
  publish(topic: string, payload: Buffer | string, opts: PublishOptions, cb: (err?: Error) => void): void;
  once(event: 'close', listener: () => void): unknown;
  removeListener(event: 'close', listener: () => void): unknown;
}

export interface PublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
}

export class Outbox {
  private unacknowledged = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly client: OutboxClient, private readonly clock: Clock) {}

  /** QoS 1 messages published and not yet acknowledged. */
  get pending(): number {
    return this.unacknowledged;
  }

  /** Publishes; `onError` hears of a message the client could not send or the broker refused. */
  publish(topic: string, payload: Buffer | string, opts: PublishOptions, onError: (err: Error) => void): void {
    const counted = (opts.qos ?? 0) > 0;
    if (counted) this.unacknowledged++;
    this.client.publish(topic, payload, opts, (err) => {
      if (counted) this.settle();
      if (err) onError(err);
    });
  }

  /**
   * True once every QoS 1 message published so far is acknowledged; false when `ms` of the
   * clock's time pass first, or the connection is gone (what is unacknowledged then waits
   * in the client for a reconnect that a closing gateway will not make).
   */
  acknowledged(ms: number): Promise<boolean> {
    if (this.unacknowledged === 0) return Promise.resolve(true);
    if (!this.client.connected) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        timer.cancel();
        this.client.removeListener('close', closed);
        this.waiters = this.waiters.filter((w) => w !== drained);
        resolve(ok);
      };
      const drained = () => done(true);
      const closed = () => done(false);
      const timer = this.clock.setTimeout(() => done(false), ms);
      this.client.once('close', closed);
      this.waiters.push(drained);
    });
  }

  private settle(): void {
    this.unacknowledged--;
    if (this.unacknowledged > 0) return;
    for (const w of [...this.waiters]) w();
  }
}
