// The gateway's side of the node protocol: subscribes to every node's state, slot and
// event topics, validates each payload with the protocol's schemas, and hands the result
// to the registry. A payload that fails validation, or that names another node than its
// topic, is logged with the node and dropped: nothing a node sends can crash the gateway.
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import {
  fleetFilter, parseEvent, parseNodeTopic, parseSlotRecord, parseState, type NodeProfile,
} from '../protocol/index.js';
import type { Clock } from './clock.js';
import type { ChainProfile, Registry } from './registry.js';
import { uniformOnGrid } from './scheduler/index.js';

export interface LinkConfig {
  fleet: string;
  /** Battery levels of the chain, E_max: the quantum is capacityJ / levels. */
  levels: number;
  /**
   * The harvest per slot assumed until a node's own estimate is trusted: uniform on
   * [loJ, hiJ]. The default, none at all, is the cautious choice: a new node gets no
   * long-term weight until its slot records show what it earns.
   */
  priorHarvestJ: { loJ: number; hiJ: number };
}

/**
 * Puts a node's declared profile on the chain's integer energy grid. Thresholds round to
 * the nearest level; a job's cost rounds to the nearest quantum but at least one, since a
 * job that costs nothing would make the chain's processing rows free.
 */
export function chainProfile(p: NodeProfile, config: Pick<LinkConfig, 'levels' | 'priorHarvestJ'>): ChainProfile {
  const quantumJ = p.capacityJ / config.levels;
  return {
    group: p.group,
    shard: p.shard ? `${p.shard.model}:${p.shard.firstBlock}-${p.shard.lastBlock}` : undefined,
    quantumJ,
    capacityJ: p.capacityJ,
    eThJ: p.thresholds.eThJ,
    eThUpJ: p.thresholds.eThUpJ,
    modes: p.modes.map((m) => ({ powerMode: m.powerMode, name: m.name, kappa: m.kappa, costQ: Math.max(1, Math.round(m.costJ / quantumJ)) })),
    modeTable: p.modeTable,
    queueCapacity: p.queueCapacity,
    priorHarvestPmf: uniformOnGrid(config.priorHarvestJ.loJ / quantumJ, config.priorHarvestJ.hiJ / quantumJ),
  };
}

export interface LinkCounters {
  messages: number;
  invalid: number;
}

export class NodeLink {
  readonly counters: LinkCounters = { messages: 0, invalid: 0 };

  constructor(
    private readonly config: LinkConfig,
    private readonly deps: { client: MqttClient; registry: Registry; clock: Clock; log: Logger },
  ) {}

  async start(): Promise<void> {
    const { client } = this.deps;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    // QoS 1: births, wills and slot records must not be lost on the way in.
    await client.subscribeAsync([fleetFilter(this.config.fleet, 'state'), fleetFilter(this.config.fleet, 'slot'), fleetFilter(this.config.fleet, 'event')], { qos: 1 });
  }

  onMessage(topic: string, payload: Buffer): void {
    const t = parseNodeTopic(topic);
    if (!t || t.fleet !== this.config.fleet) return;
    this.counters.messages++;
    const { registry, clock } = this.deps;
    const now = clock.now();
    try {
      switch (t.kind) {
        case 'state': {
          // An empty retained payload clears the topic; it carries no state.
          if (payload.length === 0) return;
          const r = parseState(payload);
          if (!r.ok) return this.invalid(t.nodeId, topic, r.error);
          if (r.value.nodeId !== t.nodeId) return this.invalid(t.nodeId, topic, `names node ${r.value.nodeId}`);
          if (r.value.status === 'online') registry.birth(t.nodeId, chainProfile(r.value.profile, this.config), now);
          else registry.will(t.nodeId, now);
          return;
        }
        case 'slot': {
          const r = parseSlotRecord(payload);
          if (!r.ok) return this.invalid(t.nodeId, topic, r.error);
          if (r.value.nodeId !== t.nodeId) return this.invalid(t.nodeId, topic, `names node ${r.value.nodeId}`);
          const s = r.value;
          registry.slot(t.nodeId, {
            seq: s.seq, slotStartMs: s.slotStartMs, batteryJ: s.batteryJ, harvestJ: s.harvestJ, consumedJ: s.consumedJ,
            gamma: s.gamma, powerMode: s.powerMode, queue: s.queue,
          }, now);
          return;
        }
        case 'event': {
          const r = parseEvent(payload);
          if (!r.ok) return this.invalid(t.nodeId, topic, r.error);
          if (r.value.nodeId !== t.nodeId) return this.invalid(t.nodeId, topic, `names node ${r.value.nodeId}`);
          registry.state(t.nodeId, { gamma: r.value.gamma, powerMode: r.value.powerMode, batteryJ: r.value.batteryJ }, now);
          return;
        }
        default:
          return;
      }
    } catch (err) {
      // The registry refused a well-formed message (its checks of the chain's parameters).
      this.invalid(t.nodeId, topic, (err as Error).message);
    }
  }

  private invalid(nodeId: string, topic: string, error: string): void {
    this.counters.invalid++;
    this.deps.log.warn({ node: nodeId, topic, err: error }, 'node message refused');
  }
}
