// Light nodes for the gateway fault tests: MQTT clients that speak the node protocol —
// a retained birth with a will, then one slot record per slot on the given clock — without
// virtual hardware or a model, so a test can run many of them and count every record.
import { writeFile } from 'node:fs/promises';
import { connectAsync, type MqttClient } from 'mqtt';
import type { Clock, Timer } from '../../ground/clock.js';
import { encodeJson, nodeTopics } from '../../protocol/index.js';
import { cheapEntry } from '../fuzz/mqtt-raw.js';
import { birth, paperProfile, slotRecord, will } from '../support/protocol-messages.js';

/** Writes a credentials file for `ids` (password = `pw-<id>`), mode 0600. */
export async function writeCredentials(path: string, ids: readonly string[]): Promise<void> {
  const nodes = Object.fromEntries(ids.map((id) => [id, cheapEntry(`pw-${id}`)]));
  await writeFile(path, JSON.stringify({ version: 1, nodes }), { mode: 0o600 });
}

export class LightNode {
  /** The next slot record's sequence number; records 0..nextSeq-1 have been published. */
  nextSeq = 0;
  /** Publishes that failed (a test asserts there are none). */
  readonly errors: Error[] = [];
  private timer: Timer | undefined;
  private client: MqttClient | undefined;
  private readonly topics;

  constructor(readonly nodeId: string, readonly fleet: string, readonly slotMs: number, private readonly clock: Clock) {
    this.topics = nodeTopics(fleet, nodeId);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects (reconnecting every `reconnectMs` if the line drops) and publishes the birth. */
  async connect(port: number, reconnectMs = 200): Promise<void> {
    this.client = await connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId: this.nodeId, username: this.nodeId, password: `pw-${this.nodeId}`, reconnectPeriod: reconnectMs,
      will: { topic: this.topics.state, payload: encodeJson(will(this.nodeId)), qos: 1, retain: true },
    });
    // A birth on every (re)connect, as an agent sends one.
    this.client.on('connect', () => void this.birth());
    await this.birth();
  }

  private birth(): Promise<unknown> | undefined {
    return this.client?.publishAsync(this.topics.state, encodeJson(birth(this.nodeId, Math.round(this.clock.now()), paperProfile('g1'))), { qos: 1, retain: true });
  }

  /** One slot record, now. The harvest is constant, so the node's estimate never moves. */
  async publishSlot(): Promise<void> {
    const seq = this.nextSeq++;
    const slotStartMs = Math.round(this.clock.now()) - this.slotMs;
    // The paper device's 200 W harvest and 150 W draw (20 kJ and 15 kJ per 100 s slot) over
    // this slot's length: a short slot's record holds what a panel and a board can in it.
    const energies = { harvestJ: (200 * this.slotMs) / 1000, consumedJ: (150 * this.slotMs) / 1000 };
    await this.client!.publishAsync(this.topics.slot, encodeJson(slotRecord(this.nodeId, seq, { slotStartMs, slotMs: this.slotMs, batteryJ: 50_000, ...energies })), { qos: 1 });
  }

  /** A slot record every slot on the clock until `stopSlots`. */
  startSlots(): void {
    this.timer = this.clock.setInterval(() => {
      this.publishSlot().catch((err: Error) => this.errors.push(err));
    }, this.slotMs);
  }

  stopSlots(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  async end(): Promise<void> {
    this.stopSlots();
    await this.client?.endAsync(true);
  }
}
