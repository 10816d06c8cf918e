// Live state of every node: what its birth declared (group, shard, power modes, battery),
// what its slot records and state reports say now (battery, γ, PM, queue), its harvest
// estimate, when it was last heard from and how many slot records went missing. It keeps
// each node's q_lim up to date by re-solving off-thread. It returns facts: what the
// policies see of a node (the group weights r_i of Eq. 6, availability) is built from them
// by gateway/scheduler/view.ts for the live scheduler (gateway/router/scheduler.ts), which
// also knows the jobs it has handed out.
//
// The registry takes already validated messages in the gateway's own terms; the MQTT
// subscription and the protocol's schemas sit in front of it. Time comes in with each
// call, so the same code runs on the live clock and in a simulated day.
//
// What happens to a node is told as events (RegistryEvents): whoever writes it down or acts
// on it (the store's node history, the router, Home Assistant discovery) subscribes once it
// exists.
import { EventEmitter } from 'node:events';
import { EstimatorConfigSchema, HarvestEstimator, totalVariation, type EstimatorConfig } from './estimator.js';
import { DeviceModel, type DeviceParams, type ModeStep, type PowerModeSpec } from './scheduler/index.js';
import type { NodeSolver, Solved } from './solver-pool.js';

/** The block range a node's birth says it holds (protocol `shard`). */
export interface ShardRef {
  /** The shard folder's name. */
  model: string;
  /** First and last block held, inclusive. */
  firstBlock: number;
  lastBlock: number;
  /** The block file's sha256, when one file holds exactly these blocks. */
  sha256?: string;
}

/** What the chain needs of a node, from its birth, in the gateway's energy quanta. */
export interface ChainProfile {
  group: string;
  shard?: string;
  /** The shard as announced, for the router's group membership. */
  shardRef?: ShardRef;
  /** Size of one battery quantum (J): the chain's energy unit. */
  quantumJ: number;
  /** Usable battery capacity (J); E_max = floor(capacityJ / quantumJ). */
  capacityJ: number;
  /** E_th and E′_th (J). */
  eThJ: number;
  eThUpJ: number;
  /** Modes with κ (slots per job) and C_E in quanta, and the dynamic table. */
  modes: PowerModeSpec[];
  modeTable: ModeStep[];
  /** Harvest law to use until the node's own slot records give an estimate. */
  priorHarvestPmf: Float64Array;
  /** Jobs the node may hold at once (running and waiting); DEFAULT_QUEUE_CAPACITY (protocol/rules.ts) when not given. */
  queueCapacity?: number;
  /** The node's slot δ (ms): what its idle draw, forecast and wake time are counted in. */
  slotMs?: number;
  /**
   * Idle draw per slot in quanta (DeviceParams.idleQ), not rounded: a Pi 4's 270 J a slot is
   * a fifth of a 36 Wh battery's quantum at 100 levels. Absent when the birth declares none:
   * the paper's model.
   */
  idleQ?: number;
  /** True when the birth says its wake path works: only such a node may be sent to sleep. */
  canWake?: boolean;
}

/** A node the gateway sent to sleep, or that said it was going to sleep. */
export interface NodeSleep {
  /** When the `sleep` command was sent; undefined when the node went to sleep of its own accord. */
  orderedAtMs?: number;
  /** Its planned wake-up (the alarm the command set); undefined when not known. */
  wakeAtMs?: number;
  /** When it published `sleeping`: it halts, and its going offline is expected, not a failure. */
  asleepSinceMs?: number;
}

/** One slot record: the node's energy account over one slot. */
export interface SlotReport {
  seq: number;
  slotStartMs: number;
  batteryJ: number;
  harvestJ: number;
  gamma: 0 | 1;
  powerMode: number;
  /** Jobs held (running or waiting). */
  queue: number;
  consumedJ?: number;
  /** The charger's state at the slot's end (the record's `charger`), when known. */
  charger?: string | null;
}

/** An out-of-slot state change (entering power saving, taking a job). */
export interface StateReport {
  gamma: 0 | 1;
  powerMode: number;
  /** Jobs held; unchanged when the report does not say. */
  queue?: number;
  batteryJ?: number;
}

export interface NodeState {
  nodeId: string;
  profile: ChainProfile;
  online: boolean;
  lastSeenMs: number;
  batteryJ: number;
  gamma: 0 | 1;
  powerMode: number;
  queue: number;
  lastSeq: number | undefined;
  /** The epoch of the node's slot count, from its birth (see birth()). */
  seqEpoch: string | undefined;
  /** Slot records missing over the node's lifetime, from sequence gaps. */
  missedSlots: number;
  /** Sequence numbers of the gaps since the birth, so a late record can fill its gap (bounded by MISSING_KEPT). */
  missing: Set<number>;
  estimator: HarvestEstimator;
  /** The harvest law of the last parameters sent to the solver. */
  solvedPmf: Float64Array | undefined;
  solved: Solved | undefined;
  model: DeviceModel | undefined;
  /** Set from a sleep order or the node's `sleeping` event until its next birth (a boot). */
  sleep?: NodeSleep;
}

export interface RegistryEvents {
  /** The node came online: a birth, or heard from again after it was offline. */
  up: [node: NodeState, reason: 'birth' | 'heard', atMs: number];
  /** The node went offline: its will, or silence. */
  down: [node: NodeState, reason: 'will' | 'silence', atMs: number];
  /** A slot record was taken; `seqGap` records went missing before it (0 for a late one). */
  slot: [node: NodeState, report: SlotReport, seqGap: number, atMs: number];
  /** A new q_lim is in force for the node. */
  solved: [node: NodeState, solved: Solved, atMs: number];
  /** The node's chain could not be solved; it keeps its previous solution. */
  solveFailed: [node: NodeState, err: Error];
  /** The node was sent to sleep (`ordered`) or said it is going to sleep (`sleeping`). */
  sleep: [node: NodeState, what: 'ordered' | 'sleeping', atMs: number];
}

export interface RegistryConfig {
  /** A node not heard from for this long is offline. */
  silenceMs: number;
  xiLim: number;
  estimator: EstimatorConfig;
}

/** Gaps remembered per node for late records to fill: a day of 100 s slots. */
const MISSING_KEPT = 1024;

/**
 * The charger had ended its charge (BQ25895 REG0B CHRG_STAT = 11, "charge termination
 * done"): the panel's surplus was not taken, so the slot's harvest is what the node drew
 * and not what the sun offered, a lower bound of it.
 */
function harvestCensored(report: SlotReport): boolean {
  return report.charger === 'done';
}

export class Registry extends EventEmitter<RegistryEvents> {
  private readonly nodes = new Map<string, NodeState>();

  constructor(
    private readonly config: RegistryConfig,
    private readonly solver: Pick<NodeSolver, 'update' | 'forget'>,
  ) {
    super();
  }

  get(nodeId: string): NodeState | undefined {
    return this.nodes.get(nodeId);
  }

  all(): NodeState[] {
    return [...this.nodes.values()];
  }

  /**
   * `seq`, when the birth carries it, keeps the node's sequence across the birth: a
   * reconnect continues where its records left off, so records lost while it was away
   * still count as missing, and records resent from its spool are still seen as repeats.
   * A new epoch means the node's count started again: the sequence starts afresh, as it
   * does for a birth without `seq`. A next number at or below the last one seen in the same
   * epoch is no new start: the node lost track of numbers it had already sent (a seq file
   * that could not be written), so the sequence carries on and its repeats are refused as
   * duplicates until the count passes what is stored ('rewound'). Without an epoch there is
   * nothing to tell the two apart, and a lower number starts afresh.
   */
  birth(nodeId: string, profile: ChainProfile, atMs: number, seq?: { next: number; epoch?: string }): 'continues' | 'rewound' | 'afresh' {
    const params = toParams(profile, profile.priorHarvestPmf);
    // Check the profile before it replaces anything: a bad birth must not break a known node.
    new DeviceModel(params);
    const old = this.nodes.get(nodeId);
    const sameBattery = old && old.profile.quantumJ === profile.quantumJ;
    const sameCount = old?.lastSeq !== undefined && seq !== undefined && seq.epoch === old.seqEpoch;
    const rewound = sameCount && seq.epoch !== undefined && seq.next <= old.lastSeq!;
    const continues = sameCount && (rewound || seq.next > old.lastSeq!);
    const node: NodeState = {
      nodeId,
      profile,
      online: true,
      lastSeenMs: atMs,
      batteryJ: old?.batteryJ ?? 0,
      gamma: old?.gamma ?? 0,
      powerMode: old?.powerMode ?? 0,
      queue: 0,
      lastSeq: continues ? old.lastSeq : undefined,
      seqEpoch: seq?.epoch,
      missedSlots: old?.missedSlots ?? 0,
      missing: continues ? old.missing : new Set(),
      // The harvest history survives a restart when the quantum is unchanged.
      estimator: sameBattery ? old.estimator : new HarvestEstimator(EstimatorConfigSchema.parse(this.config.estimator), profile.quantumJ),
      solvedPmf: undefined,
      solved: undefined,
      model: undefined,
    };
    this.nodes.set(nodeId, node);
    this.emit('up', node, 'birth', atMs);
    this.resolve(node, atMs);
    return rewound ? 'rewound' : continues ? 'continues' : 'afresh';
  }

  /**
   * What became of a slot record: taken, taken late (it fills a gap: its energy counts, but
   * it is history, not the node's state now), from a node without a birth, or already seen.
   */
  slot(nodeId: string, report: SlotReport, atMs: number): 'applied' | 'late' | 'unknown-node' | 'duplicate' {
    const node = this.seen(nodeId, atMs);
    if (!node) return 'unknown-node';
    let gap = 0;
    if (node.lastSeq !== undefined) {
      if (report.seq <= node.lastSeq) {
        // QoS 1 keeps order on one connection, not across a reconnect's resends and spool drains.
        if (!node.missing.delete(report.seq)) return 'duplicate';
        node.missedSlots--;
        node.estimator.add(report.harvestJ, report.slotStartMs, harvestCensored(report));
        this.emit('slot', node, report, 0, atMs);
        return 'late';
      }
      gap = report.seq - node.lastSeq - 1;
      for (let k = Math.max(node.lastSeq + 1, report.seq - MISSING_KEPT); k < report.seq; k++) node.missing.add(k);
      for (const k of node.missing) {
        if (node.missing.size <= MISSING_KEPT) break;
        node.missing.delete(k); // the oldest gaps first: Sets iterate in insertion order
      }
    }
    node.lastSeq = report.seq;
    node.missedSlots += gap;
    node.batteryJ = report.batteryJ;
    node.gamma = report.gamma;
    node.powerMode = report.powerMode;
    node.queue = report.queue;
    node.estimator.add(report.harvestJ, report.slotStartMs, harvestCensored(report));
    this.emit('slot', node, report, gap, atMs);
    this.resolve(node, atMs);
    return 'applied';
  }

  /** False when the node has sent no birth yet: the report is not taken. */
  state(nodeId: string, report: StateReport, atMs: number): boolean {
    const node = this.seen(nodeId, atMs);
    if (!node) return false;
    node.gamma = report.gamma;
    node.powerMode = report.powerMode;
    if (report.queue !== undefined) node.queue = report.queue;
    if (report.batteryJ !== undefined) node.batteryJ = report.batteryJ;
    return true;
  }

  /** The broker delivered the node's will: it is gone until its next birth. False for a node never born. */
  will(nodeId: string, atMs: number): boolean {
    const node = this.nodes.get(nodeId);
    if (node?.online) this.setOffline(node, 'will', atMs);
    return node !== undefined;
  }

  /** The gateway sent the node to sleep until `wakeAtMs`: it takes no new job from now on. */
  sleepOrdered(nodeId: string, wakeAtMs: number, atMs: number): void {
    const node = this.nodes.get(nodeId);
    if (!node) return;
    node.sleep = { orderedAtMs: atMs, wakeAtMs };
    this.emit('sleep', node, 'ordered', atMs);
  }

  /** The order did not take (the node stayed on and never said it sleeps): it is awake after all. */
  sleepSettled(nodeId: string): void {
    const node = this.nodes.get(nodeId);
    if (node) node.sleep = undefined;
  }

  /** The node published `sleeping`: it halts now. False for a node never born. */
  sleeping(nodeId: string, atMs: number): boolean {
    const node = this.nodes.get(nodeId);
    if (!node) return false;
    node.sleep = { ...node.sleep, asleepSinceMs: atMs };
    this.emit('sleep', node, 'sleeping', atMs);
    return true;
  }

  /** Marks nodes offline that have been silent too long; call it periodically. */
  checkSilence(nowMs: number): void {
    for (const node of this.nodes.values()) {
      if (node.online && nowMs - node.lastSeenMs > this.config.silenceMs) this.setOffline(node, 'silence', nowMs);
    }
  }

  groups(): string[] {
    return [...new Set([...this.nodes.values()].map((n) => n.profile.group))].sort();
  }

  /** The group's nodes in a stable order (what their weights and views are built over: gateway/scheduler/view.ts). */
  members(group: string): NodeState[] {
    return [...this.nodes.values()].filter((n) => n.profile.group === group).sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
  }

  /** Called with the solver's answer for the parameters last sent for this node. */
  applySolved(nodeId: string, params: DeviceParams, solved: Solved, atMs: number): void {
    const node = this.nodes.get(nodeId);
    if (!node) return;
    node.solved = solved;
    node.model = new DeviceModel(params);
    this.emit('solved', node, solved, atMs);
  }

  solveFailed(nodeId: string, err: Error): void {
    const node = this.nodes.get(nodeId);
    if (node) this.emit('solveFailed', node, err);
  }

  private seen(nodeId: string, atMs: number): NodeState | undefined {
    const node = this.nodes.get(nodeId);
    // Without a birth there is no profile to interpret the report with; the node's next
    // birth (sent on every connect) brings it in.
    if (!node) return undefined;
    node.lastSeenMs = atMs;
    if (!node.online) {
      node.online = true;
      this.emit('up', node, 'heard', atMs);
    }
    return node;
  }

  private setOffline(node: NodeState, reason: 'will' | 'silence', atMs: number): void {
    node.online = false;
    node.queue = 0;
    this.emit('down', node, reason, atMs);
  }

  /** Re-solves when there is no solution yet or the harvest estimate has moved enough. */
  private resolve(node: NodeState, atMs: number): void {
    const pmf = node.estimator.pmf(atMs, harvestTopLevel(node.profile)) ?? node.profile.priorHarvestPmf;
    if (node.solvedPmf && totalVariation(pmf, node.solvedPmf) <= this.config.estimator.changeThreshold) return;
    node.solvedPmf = pmf;
    this.solver.update(node.nodeId, toParams(node.profile, pmf), this.config.xiLim);
  }
}

/**
 * The highest harvest per slot, in quanta, that the chain can tell apart: E_max plus the
 * largest C_E. A slot harvesting that much ends its stage at E_max whatever the battery held
 * (Eq. 1 clips at E_max), so anything above it is the same to the chain.
 */
export function harvestTopLevel(profile: ChainProfile): number {
  const eMax = Math.floor(profile.capacityJ / profile.quantumJ);
  return eMax + Math.max(0, ...profile.modes.map((m) => m.costQ));
}

export function toParams(profile: ChainProfile, harvestPmf: Float64Array): DeviceParams {
  const q = profile.quantumJ;
  return {
    eMax: Math.floor(profile.capacityJ / q),
    eTh: Math.round(profile.eThJ / q),
    eThUp: Math.round(profile.eThUpJ / q),
    modes: profile.modes,
    modeTable: profile.modeTable,
    harvestPmf,
    ...(profile.idleQ ? { idleQ: profile.idleQ } : {}),
  };
}
