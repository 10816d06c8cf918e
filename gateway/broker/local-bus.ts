// The gateway's job traffic on its own embedded broker, handed to aedes directly. Through
// the gateway's MQTT client, every job message was built into an MQTT packet, crossed the
// in-process stream and was parsed again, on both sides; the nodes' job/out and job/hop
// frames took that path three or four times per token. Measured on this machine, a bare
// round trip to a node cost the gateway 0.86–0.93 ms of CPU this way against 1.27–1.48 ms
// through its client (docs/benchmarks.md).
//
// What the broker does for the gateway's client it does here too: its offers and route
// messages teach the hop grants where a node may publish, and a benchmark's tap sees each
// publish and may hold it back. Publishes leave in the order given, a held one holding back
// those behind it, as the broker holds a client's packets behind its first.
import { EventEmitter } from 'node:events';
import type { Aedes, AedesPublishPacket } from 'aedes';
import type { Clock, Timer } from '../../ground/clock.js';
import type { PublishTap } from './counters.js';
import type { HopGrants } from './hop-grants.js';

export interface LocalBusDeps {
  aedes: Aedes;
  hops: HopGrants;
  clock: Clock;
  tap: () => PublishTap | undefined;
}

type Handed = { topic: string; payload: Buffer; qos: 0 | 1; cb: (err?: Error) => void };

/**
 * Publishes and subscribes as the gateway, with no client in between. The shape the
 * gateway's outbox takes of an MQTT client: `publish` acknowledges once the broker has
 * routed the message (a QoS 1 publish's PUBACK says no more), and 'close' is the broker's.
 */
export class LocalBus extends EventEmitter {
  private open = true;
  /** The publish the tap holds now, and its timer; those published meanwhile wait behind it. */
  private hold: { m: Handed; timer: Timer } | undefined;
  private readonly waiting: Handed[] = [];

  constructor(private readonly deps: LocalBusDeps) {
    super();
  }

  get connected(): boolean {
    return this.open;
  }

  publish(topic: string, payload: Buffer | string, opts: { qos?: 0 | 1 | 2 }, cb: (err?: Error) => void): void {
    if (!this.open) return cb(new Error('the embedded broker is closed'));
    const m: Handed = { topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: opts.qos ? 1 : 0, cb };
    if (this.hold) this.waiting.push(m);
    else this.pass(m);
  }

  /** `onMessage` hears every message on these filters, from any client. */
  subscribe(filters: string[], onMessage: (topic: string, payload: Buffer) => void): Promise<void> {
    const deliver = (packet: AedesPublishPacket, done: () => void) => {
      done();
      onMessage(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
    };
    return Promise.all(filters.map((f) => new Promise<void>((resolve) => this.deps.aedes.subscribe(f, deliver, resolve)))).then(() => undefined);
  }

  /** The broker is closing: later publishes fail, and the outbox's waits end. */
  closed(): void {
    if (!this.open) return;
    this.open = false;
    const unsent = this.hold ? [this.hold.m, ...this.waiting.splice(0)] : [];
    this.hold?.timer.cancel();
    this.hold = undefined;
    // 'close' first: a wait for acknowledgements ends unacknowledged, as when a client's connection drops.
    this.emit('close');
    for (const m of unsent) m.cb(new Error('the embedded broker is closed'));
  }

  /** Through what the broker does for its internal client's publishes, then routed now or once the tap's hold is over. */
  private pass(m: Handed): void {
    this.deps.hops.fromGateway(m.topic, m.payload);
    const holdMs = this.deps.tap()?.(m.topic, m.payload) ?? 0;
    if (holdMs <= 0) return this.route(m);
    const timer = this.deps.clock.setTimeout(() => {
      this.hold = undefined;
      this.route(m);
      // Each one behind may be held in turn, and those after it wait again.
      while (!this.hold && this.waiting.length > 0) this.pass(this.waiting.shift()!);
    }, holdMs);
    this.hold = { m, timer };
  }

  private route(m: Handed): void {
    this.deps.aedes.publish({ cmd: 'publish', topic: m.topic, payload: m.payload, qos: m.qos, retain: false, dup: false }, (err) => m.cb(err ?? undefined));
  }
}
