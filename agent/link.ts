// The agent's MQTT link (MQTT.js): QoS 1 everywhere, a persistent session (`clean: false`
// with a stable client id, MQTT 3.1.1 §3.1.2.4) so commands sent while the node was away
// are delivered, a retained offline will, a retained online birth with the profile on
// every (re)connect, and reconnects with doubling backoff up to reconnectMaxMs — after a
// refused password too, so a credential fixed at the gateway is picked up without a
// restart. Slot records, events and telemetry go through the spool: appended first,
// published when connected, removed on PUBACK. Commands are validated and always answered
// on cmd/reply. Closing is bounded: what the broker has not acknowledged by the deadline
// stays in the spool, and the connection is dropped. Backoffs and deadlines run on the
// injected clock.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Clock, Timer } from '../ground/clock.js';
import {
  PROTOCOL_VERSION, commandIdOf, encodeJson, isFrame, nodeTopic, nodeTopics, parseCommand,
  type Command, type CommandReply, type NodeTopicKind, type StateMessage,
} from '../protocol/index.js';
import type { Log } from '../ground/log.js';
import { budget, within } from './deadline.js';
import type { Spool, SpoolClass } from './spool.js';

export interface LinkOptions {
  url: string;
  fleet: string;
  nodeId: string;
  username?: string;
  password?: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean };
  keepaliveS: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  spool: Spool;
  /** What the reconnect backoff, the flush and the close deadlines are counted on. */
  clock: Clock;
  log: Log;
  /** Spooled messages in flight at once. */
  maxInflight?: number;
}

/**
 * What the link asks of the node once it connects (given to start(), so the link can be
 * built before the parts that answer it). Until then the link only spools.
 */
export interface LinkNode {
  /** The retained online state, built fresh at every connect (the profile may have changed). */
  birth(): StateMessage;
  /** Runs a validated command; its return value is the reply's result. Throwing answers ok: false. */
  onCommand(cmd: Command): Promise<Record<string, unknown> | undefined>;
  onJobIn?(payload: Buffer): void;
  /**
   * A reconnect found no session at the broker (CONNACK session present = 0, MQTT 3.1.1
   * §3.2.2.2): the broker restarted, and with the embedded one the gateway too, so no one
   * will continue or cancel what the node held under the old session.
   */
  onSessionLost?(): void;
}

/** What arrived on the node's own topics, and what of it was refused (ping reports these). */
export interface LinkCounters {
  commands: number;
  /** Unreadable or not valid by the protocol: answered with ok false and id null or the id read. */
  commandsRefused: number;
  /** Valid commands the agent could not carry out (answered ok false). */
  commandsFailed: number;
  jobMessages: number;
}

/**
 * Where the connection stands. `refused-auth`: the broker answered CONNACK 4 (bad user name
 * or password) or 5 (not authorized), MQTT 3.1.1 §3.2.2.3; retrying will not help until the
 * credential is fixed at one end, but it is retried so the fix needs no restart.
 */
export type ConnectionState = 'connecting' | 'connected' | 'refused-auth' | 'refused' | 'unreachable' | 'closed';

export interface ConnectionStatus {
  state: ConnectionState;
  /** Connection attempts since the last successful one (1 while the first is under way). */
  attempts: number;
  /** CONNACKs refusing the credentials, since start. */
  authRefusals: number;
  lastError: string | null;
  /** The wait before the next attempt. */
  retryMs: number;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3 that blame the credentials. */
const BAD_CREDENTIALS = 4;
const NOT_AUTHORIZED = 5;

export class Link {
  readonly topics: Record<NodeTopicKind, string>;
  readonly counters: LinkCounters = { commands: 0, commandsRefused: 0, commandsFailed: 0, jobMessages: 0 };
  private client: MqttClient | undefined;
  private node: LinkNode | undefined;
  private readonly inflight = new Set<number>();
  private backoffMs: number;
  private drainWaiters: Array<() => void> = [];
  private closing = false;
  private retryTimer: Timer | undefined;
  private status: ConnectionStatus;
  connects = 0;

  constructor(private readonly o: LinkOptions) {
    this.topics = nodeTopics(o.fleet, o.nodeId);
    this.backoffMs = o.reconnectMinMs;
    this.status = { state: 'connecting', attempts: 0, authRefusals: 0, lastError: null, retryMs: o.reconnectMinMs };
  }

  /** The connection's state, attempts and last error (ping reports it). */
  connection(): ConnectionStatus {
    return { ...this.status, retryMs: this.backoffMs };
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(node: LinkNode): void {
    this.node = node;
    const willState: StateMessage = { v: PROTOCOL_VERSION, status: 'offline', nodeId: this.o.nodeId, reason: 'connection lost' };
    const opts: IClientOptions = {
      // The gateway's broker requires client id = node id = username (one session per node).
      clientId: this.o.nodeId,
      clean: false,
      keepalive: this.o.keepaliveS,
      // Reconnects are scheduled here (see 'close'): MQTT.js keeps one fixed-period timer
      // while it reconnects, so a longer period set meanwhile never takes effect, and after
      // a refused CONNACK it does not reconnect at all.
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      username: this.o.username,
      password: this.o.password,
      protocolVersion: 4,
      will: { topic: this.topics.state, payload: encodeJson(willState), qos: 1, retain: true },
      ...(this.o.tls ? { ca: this.o.tls.ca, cert: this.o.tls.cert, key: this.o.tls.key, rejectUnauthorized: this.o.tls.rejectUnauthorized } : {}),
    };
    const client = mqtt.connect(this.o.url, opts);
    this.client = client;
    this.status.attempts = 1;
    client.on('connect', (connack) => {
      // A connack that crosses the stop: MQTT.js has closed its store, and a publish would throw.
      if (this.closing) return;
      this.connects++;
      this.backoffMs = this.o.reconnectMinMs;
      this.status = { ...this.status, state: 'connected', attempts: 0, lastError: null };
      this.o.log.info({ url: this.o.url, sessionPresent: connack.sessionPresent }, 'connected to the gateway broker');
      client.publish(this.topics.state, encodeJson(node.birth()), { qos: 1, retain: true }, (err) => {
        if (err) this.o.log.warn({ err: err.message }, 'birth not acknowledged');
      });
      if (!connack.sessionPresent) {
        if (this.connects > 1) node.onSessionLost?.();
        client.subscribe([this.topics.cmd, this.topics.jobIn, this.topics.jobHop], { qos: 1 }, (err, granted) => {
          if (err) this.o.log.error({ err: err.message }, 'subscribing to commands failed');
          else if (granted?.some((g) => g.qos === 128)) this.o.log.error({ granted }, 'the broker refused a subscription: check the node ACL');
        });
      }
      // Messages published before the drop and not acknowledged are re-sent by MQTT.js
      // from its own store when the session resumes; the rest come from the spool.
      this.drain();
    });
    client.on('close', () => {
      if (this.closing || this.retryTimer) return;
      const retryMs = this.backoffMs;
      if (this.status.state === 'connected') {
        this.status.state = 'unreachable';
        this.o.log.warn({ retryMs }, 'gateway broker unreachable; spooling');
      } else if (this.status.state === 'connecting') {
        this.status.state = 'unreachable';
      }
      this.retryTimer = this.o.clock.setTimeout(() => {
        this.retryTimer = undefined;
        if (this.closing) return;
        this.status.attempts++;
        // A refusal stays visible until an attempt gets further than the last one did.
        if (this.status.state === 'unreachable') this.status.state = 'connecting';
        client.connect();
      }, retryMs);
      // Exponential backoff between attempts, capped at reconnectMaxMs, reset on success.
      this.backoffMs = Math.min(this.o.reconnectMaxMs, this.backoffMs * 2);
    });
    client.on('error', (err) => {
      this.status.lastError = err.message;
      const code = (err as Error & { code?: unknown }).code;
      if (code === BAD_CREDENTIALS || code === NOT_AUTHORIZED) {
        this.status.state = 'refused-auth';
        this.status.authRefusals++;
        this.o.log.error({ url: this.o.url, username: this.o.username ?? null, attempts: this.status.attempts, retryMs: this.backoffMs, err: err.message },
          `the gateway broker refused the credentials of ${this.o.nodeId} (${err.message}); retrying in ${this.backoffMs} ms. ` +
          `Check the password in agent.yaml (gateway.password, or HELIOMESH_GATEWAY_PASSWORD) and gateway.username (the node id), ` +
          `or re-run \`heliomesh gateway add-node ${this.o.nodeId} --replace\` on the gateway and put the new password here`);
        return;
      }
      if (typeof code === 'number') this.status.state = 'refused';
      this.o.log.warn({ err: err.message, attempts: this.status.attempts, retryMs: this.backoffMs }, 'MQTT error');
    });
    client.on('message', (topic, payload) => {
      if (topic === this.topics.cmd) {
        this.counters.commands++;
        void this.command(node, payload);
      } else if (topic === this.topics.jobIn || topic === this.topics.jobHop) {
        // A frame from the node before us on a route is taken as one from the gateway.
        this.counters.jobMessages++;
        node.onJobIn?.(payload);
      }
    });
  }

  /** Publishes the retained online state again (after the profile changed). */
  announce(): void {
    if (!this.client?.connected || !this.node) return; // the next connect publishes it anyway
    this.client.publish(this.topics.state, encodeJson(this.node.birth()), { qos: 1, retain: true }, (err) => {
      if (err) this.o.log.warn({ err: err.message }, 'state update not acknowledged');
    });
  }

  /** Spools and (when connected) publishes a slot record, event or telemetry sample. */
  send(cls: SpoolClass, msg: object): void {
    const kind: NodeTopicKind = cls;
    const entry = this.o.spool.append(cls, this.topics[kind], encodeJson(msg));
    if (!entry) this.o.log.warn({ cls }, 'spool full of more important messages: dropped');
    this.drain();
  }

  /** Publishes without spooling (replies, state); resolves on PUBACK (QoS 1) or once written (QoS 0). */
  publishNow(kind: 'jobOut' | 'cmdReply' | 'state', payload: Buffer, retain = false, qos: 0 | 1 = 1): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('link not started'));
    return new Promise((resolve, reject) => {
      client.publish(this.topics[kind], payload, { qos, retain }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * job/out. Output frames go at QoS 0, as the gateway sends its frames: within a connection
   * TCP delivers them, and across a reconnect the gateway's hop timeout and replay recover
   * the job, so a PUBACK would only add two packets per hop on the critical path. The JSON
   * answers (accepted, refused, handed back, the energy report) stay QoS 1: a lost one
   * would leave the gateway holding a place or missing a job's energy.
   */
  publishJobOut(payload: Buffer): Promise<void> {
    return this.publishNow('jobOut', payload, false, isFrame(payload) ? 0 : 1);
  }

  /** An output frame straight to the next group's node on a job's route, at QoS 0 as on job/out. */
  publishHop(nodeId: string, payload: Buffer): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('link not started'));
    return new Promise((resolve, reject) => {
      client.publish(nodeTopic(this.o.fleet, nodeId, 'jobHop'), payload, { qos: 0 }, (err) => (err ? reject(err) : resolve()));
    });
  }

  private drain(): void {
    const client = this.client;
    if (!client?.connected) return;
    const max = this.o.maxInflight ?? 32;
    for (const e of this.o.spool.pending()) {
      if (this.inflight.size >= max) break;
      if (this.inflight.has(e.id)) continue;
      this.inflight.add(e.id);
      client.publish(e.topic, e.payload, { qos: 1, retain: e.retain }, (err) => {
        this.inflight.delete(e.id);
        if (err) {
          // Not acknowledged: it stays in the spool and goes out again on the next drain.
          if (!this.closing) this.o.log.warn({ err: err.message, id: e.id }, 'publish not acknowledged; kept in the spool');
          return;
        }
        this.o.spool.remove(e.id);
        this.drain();
      });
    }
    if (this.o.spool.pending().length === 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves true once the spool is empty, false after `timeoutMs` of the clock's time. */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.o.spool.pending().length === 0) return true;
    const emptied = new Promise<true>((resolve) => {
      this.drainWaiters.push(() => resolve(true));
      this.drain();
    });
    return (await within(this.o.clock, emptied, timeoutMs)) === true;
  }

  private async command(node: LinkNode, payload: Buffer): Promise<void> {
    const parsed = parseCommand(payload);
    let reply: CommandReply;
    if (!parsed.ok) {
      this.counters.commandsRefused++;
      this.o.log.warn({ error: parsed.error }, 'refused a command');
      reply = { v: PROTOCOL_VERSION, id: commandIdOf(payload), ok: false, error: parsed.error.slice(0, 1000) };
    } else {
      try {
        const result = await node.onCommand(parsed.value);
        reply = { v: PROTOCOL_VERSION, id: parsed.value.id, ok: true, ...(result ? { result } : {}) };
      } catch (err) {
        this.counters.commandsFailed++;
        reply = { v: PROTOCOL_VERSION, id: parsed.value.id, ok: false, error: (err as Error).message.slice(0, 1000) };
      }
    }
    try {
      await this.publishNow('cmdReply', encodeJson(reply));
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message, id: reply.id }, 'command reply not delivered');
    }
  }

  /**
   * Leaves: publishes the retained offline state (the will is for unclean ends) and
   * disconnects, all within `deadlineMs` of the clock's time. A broker that has not acknowledged by
   * then gets its connection dropped (MQTT.js end(true)); it publishes the will, which
   * says offline too.
   */
  async close(reason: string, deadlineMs = 10_000): Promise<void> {
    const client = this.client;
    if (!client || this.closing) return;
    const left = budget(this.o.clock, deadlineMs);
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    if (client.connected) {
      const off: StateMessage = { v: PROTOCOL_VERSION, status: 'offline', nodeId: this.o.nodeId, reason: reason.slice(0, 200) };
      const sent = await within(this.o.clock, this.publishNow('state', encodeJson(off), true).then(() => true, (err: Error) => {
        this.o.log.warn({ err: err.message }, 'offline state not delivered');
        return false;
      }), left());
      if (sent === 'late') this.o.log.warn({ deadlineMs }, 'offline state not acknowledged by the stop deadline; the broker publishes the will instead');
    }
    this.closing = true;
    this.status.state = 'closed';
    const ended = await within(this.o.clock, client.endAsync(), left());
    if (ended === 'late') {
      this.o.log.warn({ deadlineMs }, 'the broker did not take the disconnect by the stop deadline; dropping the connection');
      await within(this.o.clock, client.endAsync(true), 1000);
    }
  }

  /** Drops the connection without the clean goodbye (tests: a crash). */
  async kill(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.retryTimer?.cancel();
    this.status.state = 'closed';
    await this.client?.endAsync(true);
  }
}
