// The gateway's side of the node protocol: subscribes to every node's state, slot and
// event topics, validates each payload with the protocol's schemas, and hands the result
// to the registry. With a job sink it also subscribes to every node's job/out and passes
// frames and reports to the router (which validates them), and tells it when a node enters
// power saving or anything changed that could free a place for a waiting job. A payload that fails validation, or that names another node than its
// topic, is logged with the node and dropped: nothing a node sends can crash the gateway.
// Every number is held to the physical bounds of protocol/bounds.ts: the schemas' bounds of
// any node, then here the bounds of the node's own birth (its battery, panel, slot, modes
// and queue). What is beyond them is refused, counted by kind and reason, and warned of at
// most once per node per minute; it reaches neither the registry nor the router.
import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import {
  eventBeyondProfile, fleetFilter, isFrame, jobEnergyBeyondProfile, parseEvent, parseJobReport, parseNodeTopic, parseSlotRecord, parseState,
  slotBeyondProfile, type BeyondProfile, type DeclaredBounds, type NodeProfile, type ParsedTopic,
} from '../protocol/index.js';
import type { Clock } from '../ground/clock.js';
import type { ChainProfile, Registry, SlotReport } from './registry.js';
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
    ...(p.shard ? { shardRef: { ...p.shard } } : {}),
    quantumJ,
    capacityJ: p.capacityJ,
    eThJ: p.thresholds.eThJ,
    eThUpJ: p.thresholds.eThUpJ,
    modes: p.modes.map((m) => ({ powerMode: m.powerMode, name: m.name, kappa: m.kappa, costQ: Math.max(1, Math.round(m.costJ / quantumJ)) })),
    modeTable: p.modeTable,
    queueCapacity: p.queueCapacity,
    slotMs: p.slotMs,
    // docs/scheduling.md "Idle draw": the board's idle watts over one slot in quanta, not
    // rounded (a Pi 4's 270 J a slot is 0.21 of a 36 Wh battery's quantum at 100 levels); the
    // chain draws it on its grid by chance (idleDraws). Kept to 1e-6 quanta so that the
    // solver's cache key does not change with float noise.
    ...(p.idleW !== undefined ? { idleQ: Math.round(((p.idleW * p.slotMs) / 1000 / quantumJ) * 1e6) / 1e6 } : {}),
    canWake: p.wake?.ok === true,
    priorHarvestPmf: uniformOnGrid(config.priorHarvestJ.loJ / quantumJ, config.priorHarvestJ.hiJ / quantumJ),
  };
}

/** Where job traffic and the node changes the router cares about go (gateway/router). */
export interface JobSink {
  jobOut(nodeId: string, payload: Buffer): void;
  /** A frame one node sent the next on a job's route, seen on its way (`toNodeId`'s job/hop). */
  jobHop?(toNodeId: string, payload: Buffer): void;
  nodePowerSaving(nodeId: string): void;
  wake(): void;
  /** The job `job-<jobId>` and the nodes that served it, while the sink keeps it. */
  job?(id: string): { served: Array<{ nodes: string[] }> } | undefined;
}

/**
 * Where the job topics are heard when not through the client: the embedded broker's bus
 * (broker/local-bus.ts), which hands each message over without an MQTT packet between.
 */
export interface JobBus {
  subscribe(filters: string[], onMessage: (topic: string, payload: Buffer) => void): Promise<void>;
}

/** Which message a refusal was of. */
export type RefusedKind = 'state' | 'slot' | 'event' | 'job-report';
/**
 * Why: not a message of the protocol; a number beyond the bounds of any node; beyond the
 * node's own profile; naming another node; or a profile the chain refuses.
 */
export type RefusedReason = 'malformed' | 'out-of-range' | 'beyond-profile' | 'other-node' | 'chain';

export interface LinkCounters {
  /** Messages on the fleet's state, slot and event topics. */
  messages: number;
  /** Refused: not JSON, wrong schema, oversized, out of bounds, naming another node, or a profile the chain refuses. */
  invalid: number;
  /** Births whose nextSeq went back within the epoch: the node would send numbers already stored. */
  seqRewinds: number;
  /** The refusals by kind and reason (job reports counted here only). */
  refused?: Partial<Record<RefusedKind, Partial<Record<RefusedReason, number>>>>;
}

/** Well-formed messages the registry had no use for, by why. */
export interface IgnoredCounters {
  /** Reports and wills from a node that has sent no birth, so nothing can interpret them. */
  unknownNode: number;
  /** Slot records whose sequence number was already seen (repeats, late QoS 1 redeliveries). */
  duplicateSlots: number;
  /** Slot records held for a node without a birth and dropped because the hold was full. */
  heldDropped: number;
}

/**
 * Slot records held per node until its birth arrives, and nodes held at most. A broker
 * that kept the gateway's session hands over the records queued while the gateway was away
 * right after CONNACK, before the retained births that SUBSCRIBE brings: an hour of 10 s
 * slots is 360 records, so a day's outage of a 100 s-slot fleet fits.
 */
const HOLD_PER_NODE = 1024;
const HOLD_NODES = 1024;

/** A node's refusals beyond its bounds are logged at most this often: its first says what was wrong, the next one how many followed. */
const REFUSAL_LOG_MS = 60_000;

/**
 * Topics parsed, kept at most: a fleet's nodes × their topic kinds. Every message is parsed,
 * each output frame of every hop among them, and the same few topics repeat; past the
 * bound (a flood of made-up topics through an external broker) the cache starts over.
 */
const TOPIC_CACHE = 8192;

/** A slot record held until its node's birth, with the slot's length its bounds need. */
type HeldRecord = SlotReport & { slotMs: number };

export class NodeLink {
  readonly counters: LinkCounters & Required<Pick<LinkCounters, 'refused'>> = { messages: 0, invalid: 0, seqRewinds: 0, refused: {} };
  readonly ignored: IgnoredCounters = { unknownNode: 0, duplicateSlots: 0, heldDropped: 0 };
  private readonly held = new Map<string, HeldRecord[]>();
  /** What each node's accepted birth declared, to read its later messages against. */
  private readonly declared = new Map<string, DeclaredBounds>();
  /** Per node: when its last refusal was logged, and how many were refused since. */
  private readonly refusalLog = new Map<string, { atMs: number; since: number }>();
  private readonly topics = new Map<string, ParsedTopic | null>();

  constructor(
    private readonly config: LinkConfig,
    private readonly deps: { client: MqttClient; registry: Registry; clock: Clock; log: Logger; jobs?: JobSink; jobBus?: JobBus },
  ) {}

  /**
   * Listens, then handles `takeEarly`'s messages (those an external broker handed over
   * before anyone listened) before any live one, then subscribes.
   */
  async start(takeEarly?: () => Array<[string, Buffer]>): Promise<void> {
    const { client } = this.deps;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    const early = takeEarly?.() ?? [];
    if (early.length) this.deps.log.info({ messages: early.length }, 'messages the broker kept while the gateway was away');
    for (const [topic, payload] of early) this.onMessage(topic, payload);
    // QoS 1: births, wills and slot records must not be lost on the way in.
    const filters = [fleetFilter(this.config.fleet, 'state'), fleetFilter(this.config.fleet, 'slot'), fleetFilter(this.config.fleet, 'event')];
    const jobFilters: string[] = [];
    // job/out at QoS 1 too: a report carries the job's energy, and the agent publishes at 1.
    if (this.deps.jobs) jobFilters.push(fleetFilter(this.config.fleet, 'jobOut'));
    // Chained hops: the gateway keeps each group's input history from the frames passing by.
    if (this.deps.jobs?.jobHop) jobFilters.push(fleetFilter(this.config.fleet, 'jobHop'));
    const bus = this.deps.jobBus;
    if (bus && jobFilters.length) await bus.subscribe(jobFilters, (topic, payload) => this.onMessage(topic, payload));
    await client.subscribeAsync(bus ? filters : [...filters, ...jobFilters], { qos: 1 });
  }

  onMessage(topic: string, payload: Buffer): void {
    const t = this.parsed(topic);
    if (!t || t.fleet !== this.config.fleet) return;
    this.counters.messages++;
    const { registry, clock, jobs } = this.deps;
    if (t.kind === 'jobHop') {
      jobs?.jobHop?.(t.nodeId, payload);
      return;
    }
    if (t.kind === 'jobOut') {
      // The router validates frames and reports itself (it never throws); an energy report
      // beyond the node's bounds about a job it serves stops here.
      if (!this.jobReportBeyond(t.nodeId, topic, payload)) jobs?.jobOut(t.nodeId, payload);
      return;
    }
    const now = clock.now();
    try {
      switch (t.kind) {
        case 'state': {
          // An empty retained payload clears the topic; it carries no state.
          if (payload.length === 0) return;
          const r = parseState(payload);
          if (!r.ok) return this.invalid(t.nodeId, topic, r.error, 'state', r.outOfRange ? 'out-of-range' : 'malformed');
          if (r.value.nodeId !== t.nodeId) return this.invalid(t.nodeId, topic, `names node ${r.value.nodeId}`, 'state', 'other-node');
          if (r.value.status === 'online') {
            const b = r.value;
            const seq = registry.birth(t.nodeId, chainProfile(b.profile, this.config), now, b.nextSeq === undefined ? undefined : { next: b.nextSeq, epoch: b.seqEpoch });
            this.declared.set(t.nodeId, b.profile);
            if (seq === 'rewound') {
              this.counters.seqRewinds++;
              this.deps.log.warn({ node: t.nodeId, nextSeq: b.nextSeq, lastSeq: registry.get(t.nodeId)?.lastSeq }, 'birth went back in its count: records already stored are refused as repeats');
            }
            if (b.gamma !== undefined && b.powerMode !== undefined) registry.state(t.nodeId, { gamma: b.gamma, powerMode: b.powerMode, batteryJ: b.batteryJ }, now);
            this.release(t.nodeId, now);
          } else if (!registry.will(t.nodeId, now)) this.unknown(t.nodeId, topic);
          jobs?.wake();
          return;
        }
        case 'slot': {
          const r = parseSlotRecord(payload);
          if (!r.ok) return this.invalid(t.nodeId, topic, r.error, 'slot', r.outOfRange ? 'out-of-range' : 'malformed');
          if (r.value.nodeId !== t.nodeId) return this.invalid(t.nodeId, topic, `names node ${r.value.nodeId}`, 'slot', 'other-node');
          const s = r.value;
          const declared = this.declared.get(t.nodeId);
          const beyond = declared && slotBeyondProfile(s, declared);
          if (beyond) return this.beyond(t.nodeId, topic, 'slot', beyond);
          const report: HeldRecord = {
            seq: s.seq, slotStartMs: s.slotStartMs, slotMs: s.slotMs, batteryJ: s.batteryJ, harvestJ: s.harvestJ, consumedJ: s.consumedJ,
            gamma: s.gamma, powerMode: s.powerMode, queue: s.queue, charger: s.charger,
          };
          const taken = registry.slot(t.nodeId, report, now);
          if (taken === 'unknown-node') this.hold(t.nodeId, report, topic);
          else if (taken === 'duplicate') this.ignored.duplicateSlots++;
          // A late record's γ is history, not news for the router.
          else if (taken === 'applied') this.gammaSeen(t.nodeId, s.gamma);
          return;
        }
        case 'event': {
          const r = parseEvent(payload);
          if (!r.ok) return this.invalid(t.nodeId, topic, r.error, 'event', r.outOfRange ? 'out-of-range' : 'malformed');
          if (r.value.nodeId !== t.nodeId) return this.invalid(t.nodeId, topic, `names node ${r.value.nodeId}`, 'event', 'other-node');
          const declared = this.declared.get(t.nodeId);
          const beyond = declared && eventBeyondProfile(r.value, declared);
          if (beyond) return this.beyond(t.nodeId, topic, 'event', beyond);
          if (!registry.state(t.nodeId, { gamma: r.value.gamma, powerMode: r.value.powerMode, batteryJ: r.value.batteryJ }, now)) this.unknown(t.nodeId, topic);
          else {
            if (r.value.kind === 'sleeping') registry.sleeping(t.nodeId, now);
            this.gammaSeen(t.nodeId, r.value.gamma);
          }
          return;
        }
        default:
          return;
      }
    } catch (err) {
      // The registry refused a well-formed message (its checks of the chain's parameters).
      this.invalid(t.nodeId, topic, (err as Error).message, t.kind === 'slot' || t.kind === 'event' ? t.kind : 'state', 'chain');
    }
  }

  private parsed(topic: string): ParsedTopic | null {
    let t = this.topics.get(topic);
    if (t === undefined) {
      if (this.topics.size >= TOPIC_CACHE) this.topics.clear();
      t = parseNodeTopic(topic);
      this.topics.set(topic, t);
    }
    return t;
  }

  /**
   * True when `payload` is an energy report beyond the node's bounds about a job the node
   * serves: refused here. Frames, other reports and reports about no job of the node's go
   * on to the router, which validates them and counts the stale ones.
   */
  private jobReportBeyond(nodeId: string, topic: string, payload: Buffer): boolean {
    if (isFrame(payload)) return false;
    const r = parseJobReport(payload);
    if (!r.ok || r.value.type !== 'report') return false;
    // A node without a birth serves no job: the router counts its report as stale.
    const declared = this.declared.get(nodeId);
    const beyond = declared && jobEnergyBeyondProfile(r.value, declared);
    if (!beyond) return false;
    const job = this.deps.jobs?.job?.(`job-${r.value.jobId}`);
    if (!job?.served.some((g) => g.nodes.includes(nodeId))) return false;
    this.beyond(nodeId, topic, 'job-report', beyond);
    return true;
  }

  /** γ = 0 moves the node's jobs elsewhere; any report may have freed a place for a waiting job. */
  private gammaSeen(nodeId: string, gamma: 0 | 1): void {
    if (gamma === 0) this.deps.jobs?.nodePowerSaving(nodeId);
    else this.deps.jobs?.wake();
  }

  /** Slot records held for `nodeId` until its birth. */
  heldFor(nodeId: string): number {
    return this.held.get(nodeId)?.length ?? 0;
  }

  /** Keeps a slot record of a node without a birth until the birth comes (see HOLD_PER_NODE). */
  private hold(nodeId: string, report: HeldRecord, topic: string): void {
    let list = this.held.get(nodeId);
    if (!list && this.held.size >= HOLD_NODES) return this.unknown(nodeId, topic);
    if (!list) this.held.set(nodeId, (list = []));
    if (list.length >= HOLD_PER_NODE) {
      list.shift();
      this.ignored.heldDropped++;
    }
    list.push(report);
    this.deps.log.debug({ node: nodeId, seq: report.seq, held: list.length }, 'slot record held until the node\'s birth');
  }

  /** A birth arrived: the held records go to the registry in sequence order. */
  private release(nodeId: string, now: number): void {
    const list = this.held.get(nodeId);
    if (!list) return;
    this.held.delete(nodeId);
    list.sort((a, b) => a.seq - b.seq);
    const declared = this.declared.get(nodeId);
    for (const report of list) {
      // Held before there was a profile to read them against: read now.
      const beyond = declared && slotBeyondProfile(report, declared);
      if (beyond) this.beyond(nodeId, `slot (held record ${report.seq})`, 'slot', beyond);
      else if (this.deps.registry.slot(nodeId, report, now) === 'duplicate') this.ignored.duplicateSlots++;
    }
    this.deps.log.info({ node: nodeId, records: list.length }, 'slot records held before the node\'s birth taken');
  }

  private unknown(nodeId: string, topic: string): void {
    this.ignored.unknownNode++;
    // Debug only: after a restart a node's reports can race its birth.
    this.deps.log.debug({ node: nodeId, topic }, 'report from a node without a birth ignored');
  }

  private invalid(nodeId: string, topic: string, error: string, kind: RefusedKind, reason: RefusedReason): void {
    this.counters.invalid++;
    const byKind = (this.counters.refused[kind] ??= {});
    byKind[reason] = (byKind[reason] ?? 0) + 1;
    if (reason === 'out-of-range' || reason === 'beyond-profile') this.logRefusal(nodeId, topic, error);
    else this.deps.log.warn({ node: nodeId, topic, err: error }, 'node message refused');
  }

  private beyond(nodeId: string, topic: string, kind: RefusedKind, b: BeyondProfile): void {
    this.invalid(nodeId, topic, `${kind}: ${b.message}`, kind, 'beyond-profile');
  }

  /**
   * A node beyond its bounds sends the same wrong number every slot, or floods it: one
   * warning per node per minute (on the gateway's clock) says what, the next how many
   * followed; the others are debug lines, seen only when debugging.
   */
  private logRefusal(nodeId: string, topic: string, error: string): void {
    const now = this.deps.clock.now();
    const last = this.refusalLog.get(nodeId);
    if (last && now - last.atMs < REFUSAL_LOG_MS) {
      last.since++;
      this.deps.log.debug({ node: nodeId, topic, err: error }, 'node message refused');
      return;
    }
    // Node ids are the broker's authenticated clients, so this stays small; bounded all the same.
    if (!last && this.refusalLog.size >= HOLD_NODES) this.refusalLog.delete(this.refusalLog.keys().next().value!);
    this.refusalLog.set(nodeId, { atMs: now, since: 0 });
    this.deps.log.warn({ node: nodeId, topic, err: error, refusedSinceLast: last?.since ?? 0 }, 'node message refused');
  }
}
