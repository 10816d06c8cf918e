// The live scheduler: for each job and each group, one available node picked with the
// configured policy — the very functions the simulator runs (gateway/scheduler/ POLICIES,
// SPEC.md §5) over views built as the simulator builds them (gateway/scheduler/view.ts) —
// and a seeded draw, so a run can be repeated.
//
// Availability is decided here, in one place, not from the last slot record: online, γ = 1,
// announced this group's shard, not given up on by this job, in good standing, and fewer
// of the router's own jobs in hand than its queue capacity (a slot record's queue is up to
// a slot old). Those jobs in hand are also what the node owes: committedQ is their C_E.
//
// Standing: a node that missed a deadline (silent) or failed a job it had accepted
// (failing) is a suspect. A suspect is passed over while another node of the group could
// serve, even if that one's queue is full (the job waits for it); when none could, the
// suspect is tried rather than the job failed. A silent node is cleared when it is heard
// from after the deadline; a failing one — answering proves nothing there — by a clean
// run: a job it served to the close frame and reported ok. A new birth (the agent started
// again) clears either.
import type { Logger } from 'pino';
import { Random } from '../../ground/random.js';
import type { Clock } from '../../ground/clock.js';
import type { SchedulerDecision, SchedulerView } from '../jobs.js';
import type { NodeState, Registry } from '../registry.js';
import { DEFAULT_QUEUE_CAPACITY } from '../../protocol/rules.js';
import { POLICIES, deviceView, memberWeights, unavailableReason, type DeviceState, type DeviceView, type Policy } from '../scheduler/index.js';
import { decisionPoint, type Store } from '../store/index.js';
import type { GatewayModel, ModelGroup } from './model.js';

export interface SchedulerServiceConfig {
  fleet: string;
  policy: string;
  seed: number;
}

export type Pick =
  | { ok: true; nodeId: string; decision: SchedulerDecision }
  /**
   * `busy`: nodes are up but their queues are full, so waiting may help; `none`: nobody can
   * serve. `retryAfterS` when nobody can because the group sleeps: seconds to its first planned wake.
   */
  | { ok: false; why: 'busy' | 'none'; message: string; retryAfterS?: number };

/** Why a node lost its standing, and since when. */
interface Suspicion {
  cause: 'silent' | 'failing';
  sinceMs: number;
  /** The node's registry state then: a birth makes a new one. */
  born: NodeState | undefined;
}

/** The reason a node this job gave up on is unavailable to it: no last resort lifts it. */
const GAVE_UP = 'failed this job';
/** Sent to sleep, or going to sleep: it takes no job until it boots again (its next birth). */
const ASLEEP = 'asleep';

export interface Candidates {
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
  /** Nodes out of standing. */
  private readonly suspects = new Map<string, Suspicion>();
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

  /** The node missed a deadline (`silent`) or failed a job it had accepted (`failing`): it loses its standing. */
  suspect(nodeId: string, atMs: number, cause: Suspicion['cause'] = 'silent'): void {
    // A node sent to sleep goes quiet by plan: its silence is no failure.
    if (this.deps.registry.get(nodeId)?.sleep) return;
    const had = this.suspects.get(nodeId);
    // Being heard from clears silence, not failing: a failing node that then goes quiet stays failing.
    const kept = had?.cause === 'failing' ? 'failing' : cause;
    if (had?.cause !== kept) this.deps.log.warn({ node: nodeId, cause: kept }, 'node loses its standing');
    this.suspects.set(nodeId, { cause: kept, sinceMs: atMs, born: this.deps.registry.get(nodeId) });
  }

  /** The node spoke (a job message, or anything the registry saw): it is not silent any more. */
  heard(nodeId: string): void {
    if (this.suspects.get(nodeId)?.cause === 'silent') this.restore(nodeId, 'heard from');
  }

  /** The node served a job to its close frame and reported it ok: its standing is whole again. */
  cleanRun(nodeId: string): void {
    if (this.suspects.has(nodeId)) this.restore(nodeId, 'a clean run');
  }

  private restore(nodeId: string, why: string): void {
    this.suspects.delete(nodeId);
    this.deps.log.info({ node: nodeId, after: why }, 'node in good standing again');
  }

  /** '' for a node in good standing, else why not ('silent', 'failing'). */
  private standing(node: NodeState): string {
    const s = this.suspects.get(node.nodeId);
    if (s === undefined) return '';
    if (s.born !== node || (s.cause === 'silent' && node.lastSeenMs > s.sinceMs)) {
      this.restore(node.nodeId, s.born !== node ? 'a birth' : 'heard from');
      return '';
    }
    return s.cause;
  }

  /**
   * The group's nodes as the policy sees them, with why each unavailable one is not;
   * `exclude` are the nodes this job gave up on.
   */
  views(group: ModelGroup, exclude: ReadonlySet<string> = new Set()): Candidates {
    const nodes = this.deps.registry.members(group.name);
    const weights = memberWeights(nodes);
    const states = nodes.map((n, i): DeviceState => {
      const eMax = Math.floor(n.profile.capacityJ / n.profile.quantumJ);
      return {
        barred: !this.deps.model.serves(group, n.profile.shardRef) ? 'holds another shard' : n.sleep ? ASLEEP : !n.online ? 'offline' : '',
        passedOver: exclude.has(n.nodeId) ? GAVE_UP : this.standing(n),
        gamma: n.gamma,
        powerMode: n.powerMode,
        energyQ: Math.max(0, Math.min(eMax, Math.floor(n.batteryJ / n.profile.quantumJ))),
        held: this.inHand(n.nodeId),
        capacity: n.profile.queueCapacity ?? DEFAULT_QUEUE_CAPACITY,
        modes: n.profile.modes,
        weight: weights[i]!,
        model: n.model,
      };
    });
    const couldServe = (s: DeviceState) => ['', 'busy'].includes(unavailableReason(s));
    if (!states.some(couldServe)) {
      // Nobody in good standing could serve: the suspects are the last resort.
      for (const s of states) if (s.passedOver !== GAVE_UP) s.passedOver = '';
    }
    return { nodes, views: states.map((s) => deviceView(s)), reasons: states.map(unavailableReason) };
  }

  /** Picks one node of `group` for `jobId`; writes and logs the decision. */
  pick(jobId: string, group: ModelGroup, exclude: ReadonlySet<string>, reason: SchedulerDecision['reason']): Pick {
    const { nodes, views, reasons } = this.views(group, exclude);
    const probs = this.policy.probabilities(views);
    let total = 0;
    for (let i = 0; i < probs.length; i++) if (views[i]!.available) total += probs[i]!;
    if (!(total > 0)) {
      const busy = reasons.some((r) => r === 'busy');
      return busy ? { ok: false, why: 'busy', message: whyNone(group, this.deps.model.name, reasons) } : this.none(group, nodes, reasons);
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
    const { nodes, reasons } = this.views(group, exclude);
    if (reasons.some((r) => r === '' || r === 'busy')) return null;
    return this.none(group, nodes, reasons);
  }

  /** Nobody can serve: why, and when the group is asleep, when to come back. */
  private none(group: ModelGroup, nodes: NodeState[], reasons: string[]): Pick {
    const message = whyNone(group, this.deps.model.name, reasons);
    const wakes = nodes.flatMap((n, i) => (reasons[i] === ASLEEP && n.sleep?.wakeAtMs !== undefined ? [n.sleep.wakeAtMs] : []));
    if (wakes.length === 0) return { ok: false, why: 'none', message };
    const now = this.deps.clock.now();
    const first = Math.min(...wakes);
    // A node late for its alarm is still expected any moment: a second, not a negative wait.
    const retryAfterS = Math.max(1, Math.ceil((first - now) / 1000));
    const when = new Date(first).toISOString();
    return { ok: false, why: 'none', retryAfterS, message: `${message}; the group sleeps, its first node is planned to wake at ${when} (in ${retryAfterS} s): retry then` };
  }

  view(): SchedulerView {
    return {
      policy: this.policy.name,
      groups: this.deps.model.groups.map((group) => {
        const { nodes, views } = this.views(group);
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
