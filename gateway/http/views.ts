// What the read-only routes show: the registry's nodes as plain JSON (GET /api/nodes,
// `heliomesh status`), and the gateway's health (GET /healthz).
import { DEFAULT_QUEUE_CAPACITY } from '../../protocol/rules.js';
import type { BrokerCounters } from '../broker/index.js';
import type { JobService } from '../jobs.js';
import type { IgnoredCounters, LinkCounters } from '../link.js';
import type { Registry } from '../registry.js';
import { memberWeights } from '../scheduler/index.js';
import type { StoreStats } from '../store/index.js';

/** Everything the HTTP API reads from the running gateway, besides its jobs. */
export interface GatewaySources {
  jobs: JobService;
  registry: Pick<Registry, 'all' | 'groups' | 'members'>;
  /** Whether the gateway's own MQTT client is connected to its broker. */
  brokerUp(): boolean;
  /** The embedded broker's counters; undefined with an external broker. */
  brokerStats(): BrokerCounters | undefined;
  store: { configured: boolean; stats(): StoreStats };
  linkCounters(): LinkCounters;
  /** Well-formed node messages the registry had no use for (absent: not exposed). */
  linkIgnored?(): IgnoredCounters;
  /** job/out messages the router refused or found about no live hop (absent: not exposed). */
  jobMessages?(): { invalid: number; stale: number };
}

export interface NodeView {
  node: string;
  group: string;
  shard: string | null;
  online: boolean;
  lastSeenMs: number;
  batteryJ: number;
  capacityJ: number;
  batteryPct: number;
  /** γ: 1 active, 0 in power saving. */
  gamma: 0 | 1;
  powerMode: number;
  /** The power mode's name from the node's birth. */
  mode: string | null;
  queue: number;
  queueCapacity: number;
  qLim: number | null;
  /** Eq. 6 weight r_i within its group (0 while offline). */
  weight: number;
  /** Slot records missing from sequence gaps. */
  missedSlots: number;
}

export function nodeViews(registry: GatewaySources['registry']): NodeView[] {
  const out: NodeView[] = [];
  for (const group of registry.groups()) {
    const nodes = registry.members(group);
    const weights = memberWeights(nodes);
    nodes.forEach((n, i) => {
      const p = n.profile;
      out.push({
        node: n.nodeId,
        group: p.group,
        shard: p.shard ?? null,
        online: n.online,
        lastSeenMs: n.lastSeenMs,
        batteryJ: n.batteryJ,
        capacityJ: p.capacityJ,
        batteryPct: p.capacityJ > 0 ? (100 * n.batteryJ) / p.capacityJ : 0,
        gamma: n.gamma,
        powerMode: n.powerMode,
        mode: p.modes.find((m) => m.powerMode === n.powerMode)?.name ?? null,
        queue: n.queue,
        queueCapacity: p.queueCapacity ?? DEFAULT_QUEUE_CAPACITY,
        qLim: n.solved?.qLim ?? null,
        weight: weights[i] ?? 0,
        missedSlots: n.missedSlots,
      });
    });
  }
  return out;
}

/** GET /healthz: 503 only when the broker is down, since then no job can run at all. */
export function health(sources: GatewaySources, nowMs: number): { status: number; body: unknown } {
  const up = sources.brokerUp();
  const store = sources.store.stats();
  const nodes = sources.registry.all();
  const view = sources.jobs.scheduler();
  const groups = view.groups.map((g) => ({ group: g.group, available: g.nodes.filter((n) => n.available).length, nodes: g.nodes.length }));
  const ready = up && groups.length > 0 && groups.every((g) => g.available > 0);
  return {
    status: up ? 200 : 503,
    body: {
      status: !up ? 'broker down' : ready ? 'ok' : 'no complete pipeline',
      timeMs: nowMs,
      broker: { up, clients: sources.brokerStats()?.clients ?? null },
      store: { configured: sources.store.configured, outage: store.outage, buffered: store.buffered, dropped: store.dropped },
      model: { id: sources.jobs.model.id, contextLength: sources.jobs.model.contextLength },
      nodes: { total: nodes.length, online: nodes.filter((n) => n.online).length },
      groups,
      jobs: { active: sources.jobs.counters().active },
    },
  };
}
