// The live scheduler: for each job and each group, one available node picked with the
// configured policy — the very functions the simulator runs (gateway/scheduler/ POLICIES,
// SPEC.md §5) over the registry's views — and a seeded draw, so a run can be repeated.
//
// Availability is decided here, not from the last slot record: online, γ = 1, announced
// this group's shard, and fewer of the router's own jobs in hand than its queue capacity
// (a slot record's queue is up to a slot old). A node that missed a hop deadline is a
// suspect and gets no job until it is heard from again.
import type { Logger } from 'pino';
import { Random } from '../../models/head.js';
import type { Clock } from '../clock.js';
import type { SchedulerDecision, SchedulerView } from '../jobs.js';
import type { NodeState, Registry } from '../registry.js';
import { POLICIES, type DeviceView, type Policy } from '../scheduler/index.js';
import { decisionPoint, type Store } from '../store/index.js';
import type { GatewayModel, ModelGroup } from './model.js';

export interface SchedulerServiceConfig {
  fleet: string;
  policy: string;
  seed: number;
}

export type Pick =
  | { ok: true; nodeId: string; decision: SchedulerDecision }
  /** `busy`: nodes are up but their queues are full, so waiting may help; `none`: nobody can serve. */
  | { ok: false; why: 'busy' | 'none'; message: string };

interface Candidates {
  nodes: NodeState[];
  views: DeviceView[];
  /** Why each node that is not available is not. */
  reasons: string[];
}

export class SchedulerService {
  readonly policy: Policy;
  private readonly random: Random;
  /** The router's jobs in hand per node: offered or running, not yet closed. */
  private readonly held = new Map<string, number>();
  /** Nodes that missed a deadline, with when; cleared when they are heard from after it. */
  private readonly suspects = new Map<string, number>();
  private readonly last = new Map<string, SchedulerDecision>();

  constructor(
    private readonly config: SchedulerServiceConfig,
    private readonly deps: { registry: Registry; model: GatewayModel; store: Store; clock: Clock; log: Logger; onRelease?: () => void },
  ) {
    const policy = POLICIES[config.policy];
    if (!policy) throw new Error(`unknown scheduler policy '${config.policy}'; choose one of ${Object.keys(POLICIES).join(', ')}`);
    this.policy = policy;
    this.random = new Random(config.seed);
  }

  hold(nodeId: string): void {
    this.held.set(nodeId, (this.held.get(nodeId) ?? 0) + 1);
  }

  release(nodeId: string): void {
    const n = (this.held.get(nodeId) ?? 0) - 1;
    if (n > 0) this.held.set(nodeId, n);
    else this.held.delete(nodeId);
    this.deps.onRelease?.();
  }

  inHand(nodeId: string): number {
    return this.held.get(nodeId) ?? 0;
  }

  suspect(nodeId: string, atMs: number): void {
    this.suspects.set(nodeId, atMs);
  }

  /** The node spoke (a job message, or anything the registry saw): it is not silent any more. */
  heard(nodeId: string): void {
    this.suspects.delete(nodeId);
  }

  private isSuspect(node: NodeState): boolean {
    const since = this.suspects.get(node.nodeId);
    if (since === undefined) return false;
    if (node.lastSeenMs > since) {
      this.suspects.delete(node.nodeId);
      return false;
    }
    return true;
  }

  /** The group's nodes as the policy sees them, with `exclude` (nodes this job gave up on) unavailable. */
  private candidates(group: ModelGroup, exclude: ReadonlySet<string>): Candidates {
    const { nodes, views } = this.deps.registry.views(group.name);
    const reasons: string[] = [];
    const out = views.map((v, i): DeviceView => {
      const n = nodes[i]!;
      const inHand = this.inHand(n.nodeId);
      let reason = '';
      if (!this.deps.model.serves(group, n.profile.shardRef)) reason = 'holds another shard';
      else if (!n.online) reason = 'offline';
      else if (n.gamma !== 1) reason = 'in power saving';
      else if (exclude.has(n.nodeId)) reason = 'failed this job';
      else if (this.isSuspect(n)) reason = 'silent';
      else if (inHand >= (n.profile.queueCapacity ?? 2)) reason = 'busy';
      reasons.push(reason);
      return { ...v, available: reason === '', busy: inHand > 0 };
    });
    return { nodes, views: out, reasons };
  }

  /** Picks one node of `group` for `jobId`; writes and logs the decision. */
  pick(jobId: string, group: ModelGroup, exclude: ReadonlySet<string>, reason: SchedulerDecision['reason']): Pick {
    const { nodes, views, reasons } = this.candidates(group, exclude);
    const probs = this.policy.probabilities(views);
    let total = 0;
    for (let i = 0; i < probs.length; i++) if (views[i]!.available) total += probs[i]!;
    if (!(total > 0)) {
      const busy = reasons.some((r) => r === 'busy');
      return { ok: false, why: busy ? 'busy' : 'none', message: whyNone(group, this.deps.model.name, reasons) };
    }
    // Inverse-CDF draw over the available nodes (probabilities are zero elsewhere).
    const r = this.random.next() * total;
    let chosen = -1;
    let cdf = 0;
    for (let i = 0; i < probs.length; i++) {
      if (!views[i]!.available || !(probs[i]! > 0)) continue;
      chosen = i;
      cdf += probs[i]!;
      if (r < cdf) break;
    }
    const node = nodes[chosen]!;
    const probabilities: Record<string, number> = {};
    nodes.forEach((n, i) => {
      probabilities[n.nodeId] = probs[i]!;
    });
    const atMs = this.deps.clock.now();
    const decision: SchedulerDecision = { jobId, group: group.name, nodeId: node.nodeId, atMs, probabilities, reason };
    this.last.set(group.name, decision);
    const available = views.filter((v) => v.available).length;
    this.deps.log.info({ jobId, group: group.name, node: node.nodeId, policy: this.policy.name, reason, probabilities, available }, 'scheduler decision');
    this.deps.store.write(decisionPoint(this.config.fleet, {
      group: group.name, policy: this.policy.name, node: node.nodeId, jobId, probability: probs[chosen]! / total, candidates: nodes.length, available,
    }, atMs));
    return { ok: true, nodeId: node.nodeId, decision };
  }

  /** Can anyone in the group serve, ignoring full queues? (A waiting job gives up when not.) */
  servable(group: ModelGroup, exclude: ReadonlySet<string>): Pick | null {
    const { reasons } = this.candidates(group, exclude);
    if (reasons.some((r) => r === '' || r === 'busy')) return null;
    return { ok: false, why: 'none', message: whyNone(group, this.deps.model.name, reasons) };
  }

  view(): SchedulerView {
    return {
      policy: this.policy.name,
      groups: this.deps.model.groups.map((group) => {
        const { nodes, views } = this.candidates(group, new Set());
        const probs = this.policy.probabilities(views);
        return {
          group: group.name,
          nodes: nodes.map((n, i) => ({
            nodeId: n.nodeId,
            online: n.online,
            available: views[i]!.available,
            qLim: n.solved?.qLim ?? null,
            weight: n.solved ? views[i]!.weight : null,
            probability: views[i]!.available ? probs[i]! : 0,
          })),
          lastDecision: this.last.get(group.name) ?? null,
        };
      }),
    };
  }
}

/** "group g2: all 3 nodes offline or in power saving (2 offline, 1 in power saving)". */
function whyNone(group: ModelGroup, model: string, reasons: string[]): string {
  const blocks = `blocks ${group.from}-${group.to - 1} of model ${model}`;
  const members = reasons.filter((r) => r !== 'holds another shard');
  if (members.length === 0) {
    const others = reasons.length ? ` (${reasons.length} node(s) declare the group but hold another shard)` : '';
    return `group ${group.name}: no node serves it; none has announced ${blocks}${others}`;
  }
  const counts = new Map<string, number>();
  for (const r of members) counts.set(r, (counts.get(r) ?? 0) + 1);
  const detail = [...counts].map(([r, n]) => `${n} ${r}`).join(', ');
  const all = members.length === 1 ? 'its only node is' : `all ${members.length} nodes are`;
  if (members.every((r) => r === 'busy')) return `group ${group.name}: ${all} busy (queue full)`;
  const down = members.every((r) => r === 'offline' || r === 'in power saving');
  return `group ${group.name}: ${all} ${down ? 'offline or in power saving' : 'unavailable'} (${detail})`;
}
