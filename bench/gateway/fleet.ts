// The bench's virtual nodes: one MQTT.js client per node, each logging in with its own
// credentials as an agent does (agent/link.ts: persistent session, QoS 1, retained birth
// and will), then publishing a slot record every slot. They answer the gateway's jobs
// without computing anything: an offer is accepted while the node has queue room, an
// activation frame is echoed back unchanged (the same header, the input hidden states as
// the output), a close frame is answered with a job report. The bench measures what the
// gateway spends, so the nodes spend as little as they can; they run in the bench's
// process, never in the gateway's.
import { connect, type MqttClient } from 'mqtt';
import {
  FLAG_CLOSE, FLAG_REPLAY, FRAME_HEADER_BYTES, PROTOCOL_VERSION, encodeJson, isFrame, nodeTopics, parseJobControl,
  type JobReport, type NodeProfile, type NodeTopicKind, type StateMessage,
} from '../../protocol/index.js';
import { birthPayload, SlotSeries } from './messages.js';

export interface BenchNode {
  nodeId: string;
  password: string;
  profile: NodeProfile;
}

export interface FleetCounters {
  connected: number;
  /** Connections lost after the node was up: each one is a failure of the run. */
  dropped: number;
  /** When the first connection was lost (ms since the Unix epoch), and the client errors seen, for the diagnosis. */
  firstDropAtMs: number | null;
  errors: Record<string, number>;
  slotsPublished: number;
  slotsAcked: number;
  publishErrors: number;
  offers: number;
  refused: number;
  framesEchoed: number;
  replays: number;
  reports: number;
}

interface HeldJob {
  sessionId: number;
  steps: number;
  startedMs: number;
}

class VirtualNode {
  client: MqttClient | undefined;
  readonly topics: Record<NodeTopicKind, string>;
  readonly slots: SlotSeries;
  private timer: NodeJS.Timeout | undefined;
  private readonly jobs = new Map<number, HeldJob>();
  /** Slot records published but not yet acknowledged. */
  inFlight = 0;

  constructor(readonly node: BenchNode, index: number, fleet: string, private readonly counters: FleetCounters) {
    this.topics = nodeTopics(fleet, node.nodeId);
    this.slots = new SlotSeries(node.nodeId, index, node.profile.slotMs);
  }

  async connect(url: string): Promise<void> {
    const { nodeId, password, profile } = this.node;
    const will: StateMessage = { v: PROTOCOL_VERSION, status: 'offline', nodeId, reason: 'connection lost' };
    const client = connect(url, {
      clientId: nodeId, username: nodeId, password, clean: false, keepalive: 60, reconnectPeriod: 0, connectTimeout: 60_000, protocolVersion: 4,
      will: { topic: this.topics.state, payload: encodeJson(will), qos: 1, retain: true },
    });
    this.client = client;
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', (err) => reject(new Error(`${nodeId} could not connect to ${url}: ${err.message}`)));
      client.once('close', () => reject(new Error(`${nodeId}: ${url} closed the connection before CONNACK`)));
    });
    this.counters.connected++;
    client.on('close', () => {
      this.counters.dropped++;
      this.counters.firstDropAtMs ??= Date.now();
    });
    client.on('error', (err) => {
      const errors = this.counters.errors;
      if (Object.keys(errors).length < 10 || errors[err.message] !== undefined) errors[err.message] = (errors[err.message] ?? 0) + 1;
    });
    client.on('message', (_topic, payload) => this.onJobIn(payload));
    const granted = await client.subscribeAsync(this.topics.jobIn, { qos: 1 });
    if (granted[0]?.qos !== 1) throw new Error(`${nodeId}: the gateway granted ${this.topics.jobIn} QoS ${granted[0]?.qos}`);
    await client.publishAsync(this.topics.state, birthPayload(nodeId, profile, Date.now()), { qos: 1, retain: true });
  }

  startSlots(phaseMs: number): void {
    const slotMs = this.node.profile.slotMs;
    this.timer = setTimeout(() => {
      this.publishSlot();
      this.timer = setInterval(() => this.publishSlot(), slotMs);
    }, phaseMs);
  }

  stopSlots(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
  }

  private publishSlot(): void {
    const client = this.client;
    if (!client?.connected) return;
    const slotMs = this.node.profile.slotMs;
    const payload = this.slots.next(Math.floor(Date.now() / slotMs) * slotMs - slotMs);
    this.counters.slotsPublished++;
    this.inFlight++;
    client.publish(this.topics.slot, payload, { qos: 1 }, (err) => {
      this.inFlight--;
      if (err) this.counters.publishErrors++;
      else this.counters.slotsAcked++;
    });
  }

  private onJobIn(payload: Buffer): void {
    if (isFrame(payload)) return this.onFrame(payload);
    const c = parseJobControl(payload);
    if (!c.ok) return;
    if (c.value.type === 'offer') {
      this.counters.offers++;
      const { jobId, sessionId } = c.value;
      if (this.jobs.size >= this.node.profile.queueCapacity || this.jobs.has(jobId)) {
        this.counters.refused++;
        return this.reply({ v: PROTOCOL_VERSION, type: 'refused', jobId, reason: `queue full (${this.node.profile.queueCapacity})` });
      }
      this.jobs.set(jobId, { sessionId, steps: 0, startedMs: Date.now() });
      return this.reply({ v: PROTOCOL_VERSION, type: 'accepted', jobId });
    }
    // This fleet answers on job/out whatever the route: the gateway takes that from the serving node.
    if (c.value.type === 'route') return;
    const job = this.jobs.get(c.value.jobId);
    if (job) this.report(c.value.jobId, job, false, `cancelled: ${c.value.reason}`);
  }

  /** Reads the header fields the answer depends on (protocol/frame.ts layout); the data is not decoded. */
  private onFrame(payload: Buffer): void {
    if (payload.length < FRAME_HEADER_BYTES) return;
    const flags = payload.readUInt16LE(6);
    const jobId = payload.readUInt32LE(8);
    const sessionId = payload.readUInt32LE(12);
    const rows = payload.readUInt32LE(24);
    const job = this.jobs.get(jobId);
    if (!job || job.sessionId !== sessionId) return;
    if (rows > 0) job.steps++;
    if (flags & FLAG_REPLAY) {
      this.counters.replays++;
    } else if (rows > 0) {
      this.counters.framesEchoed++;
      this.client?.publish(this.topics.jobOut, payload, { qos: 1 });
    }
    if (flags & FLAG_CLOSE) this.report(jobId, job, true);
  }

  private report(jobId: number, job: HeldJob, ok: boolean, error?: string): void {
    this.jobs.delete(jobId);
    this.counters.reports++;
    this.reply({
      v: PROTOCOL_VERSION, type: 'report', jobId, sessionId: job.sessionId, ok, ...(error ? { error } : {}),
      steps: job.steps, durationMs: Date.now() - job.startedMs, energyJ: 0, baselineW: 0, powerMode: 3,
    });
  }

  private reply(r: JobReport): void {
    this.client?.publish(this.topics.jobOut, encodeJson(r), { qos: 1 });
  }

  async end(): Promise<void> {
    this.stopSlots();
    await this.client?.endAsync(true).catch(() => undefined);
  }
}

export class BenchFleet {
  readonly counters: FleetCounters = {
    connected: 0, dropped: 0, firstDropAtMs: null, errors: {}, slotsPublished: 0, slotsAcked: 0, publishErrors: 0, offers: 0, refused: 0, framesEchoed: 0, replays: 0, reports: 0,
  };
  private readonly nodes: VirtualNode[];

  constructor(nodes: BenchNode[], fleet: string) {
    this.nodes = nodes.map((n, i) => new VirtualNode(n, i, fleet, this.counters));
  }

  /**
   * Connects every node, `parallel` at a time: each login costs the gateway a scrypt check
   * (gateway/broker/credentials.ts), so a thousand at once would only queue in its thread pool.
   */
  async connect(url: string, parallel: number, onProgress?: (connected: number) => void): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < this.nodes.length) {
        await this.nodes[next++]!.connect(url);
        onProgress?.(this.counters.connected);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  }

  /** Every node publishes one slot record per slot, phases spread evenly over the slot. */
  startSlots(): void {
    const n = this.nodes.length;
    this.nodes.forEach((node, i) => node.startSlots((i * node.node.profile.slotMs) / n));
  }

  /** Stops the slot records and waits (up to `timeoutMs`) until every one published is acknowledged. */
  async stopSlots(timeoutMs: number): Promise<boolean> {
    for (const n of this.nodes) n.stopSlots();
    const end = Date.now() + timeoutMs;
    while (this.nodes.some((n) => n.inFlight > 0)) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  /** Slot records each node published, by node id. */
  published(): Map<string, number> {
    return new Map(this.nodes.map((n) => [n.node.nodeId, n.slots.seq]));
  }

  async end(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.end()));
  }
}
