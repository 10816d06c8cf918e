// What a bench node says: the birth and slot records an agent publishes (protocol/messages.ts),
// with the reference virtual node's battery and power-mode table, so the gateway treats
// these nodes as it treats real ones. Every payload is checked against the protocol's own
// parser once per node, so the load stays honest if the schemas change.
import { PROTOCOL_VERSION, encodeJson, parseSlotRecord, parseState, type NodeProfile, type SlotRecord, type StateMessage } from '../../protocol/index.js';
import { Random } from '../../ground/random.js';

/** The reference build's 74 Wh pack (hardware/config.ts referenceHardwareConfig). */
const CAPACITY_J = 74 * 3600;

export interface ShardClaim {
  model: string;
  firstBlock: number;
  lastBlock: number;
  sha256?: string;
}

/** The profile an agent on the reference virtual node announces (agent/virtual.ts virtualAgentConfig), with the bench's slot length. */
export function benchProfile(group: string, slotMs: number, shard: ShardClaim | undefined): NodeProfile {
  return {
    group,
    ...(shard ? { shard } : {}),
    slotMs,
    capacityJ: CAPACITY_J,
    // The agent's defaults: E_th 10 %, E′_th 20 %, critical 3 % of capacity.
    thresholds: { eThJ: 0.1 * CAPACITY_J, eThUpJ: 0.2 * CAPACITY_J, criticalJ: 0.03 * CAPACITY_J },
    modes: [
      { powerMode: 1, name: 'low', kappa: 3, costJ: 30 },
      { powerMode: 2, name: 'medium', kappa: 2, costJ: 35 },
      { powerMode: 3, name: 'high', kappa: 1, costJ: 45 },
    ],
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.4, powerMode: 2 }, { minFraction: 0.6, powerMode: 3 }],
    queueCapacity: 2,
  };
}

export function birthPayload(nodeId: string, profile: NodeProfile, atMs: number): Buffer {
  const msg: StateMessage = { v: PROTOCOL_VERSION, status: 'online', nodeId, atMs, profile };
  const payload = encodeJson(msg);
  const check = parseState(payload);
  if (!check.ok) throw new Error(`the bench's birth no longer matches the protocol: ${check.error}`);
  return payload;
}

/**
 * One node's slot records. Each node has its own panel, so its own mean harvest per slot;
 * the draws around that mean are seeded by the node's index, so two runs send the same
 * records. The battery follows harvest minus consumption, held within the pack.
 */
export class SlotSeries {
  private readonly random: Random;
  private readonly meanHarvestJ: number;
  private batteryJ: number;
  private checked = false;
  seq = 0;

  constructor(readonly nodeId: string, index: number, private readonly slotMs: number) {
    this.random = new Random(1000 + index);
    // A 15 W panel yields up to 15 J per second of slot; nodes spread over 20–80 % of it.
    this.meanHarvestJ = (slotMs / 1000) * 15 * (0.2 + 0.6 * ((index * 7919) % 1000) / 1000);
    this.batteryJ = CAPACITY_J * (0.5 + 0.4 * ((index * 104729) % 1000) / 1000);
  }

  next(startMs: number): Buffer {
    const harvestJ = this.meanHarvestJ * (0.5 + this.random.next());
    // The reference Pi 4 idles near 3 W.
    const consumedJ = (this.slotMs / 1000) * 3 * (0.9 + 0.2 * this.random.next());
    this.batteryJ = Math.min(CAPACITY_J, Math.max(0, this.batteryJ + harvestJ - consumedJ));
    const fraction = this.batteryJ / CAPACITY_J;
    const record: SlotRecord = {
      v: PROTOCOL_VERSION,
      nodeId: this.nodeId,
      seq: this.seq++,
      slotStartMs: startMs,
      slotMs: this.slotMs,
      harvestJ,
      consumedJ,
      batteryJ: this.batteryJ,
      batteryPct: 100 * fraction,
      powerMode: fraction >= 0.6 ? 3 : fraction >= 0.4 ? 2 : 1,
      gamma: 1,
      queue: 0,
      charger: 'fast-charging',
      health: [],
      degraded: false,
      samples: Math.max(1, Math.round(this.slotMs / 500)),
    };
    const payload = encodeJson(record);
    if (!this.checked) {
      const check = parseSlotRecord(payload);
      if (!check.ok) throw new Error(`the bench's slot record no longer matches the protocol: ${check.error}`);
      this.checked = true;
    }
    return payload;
  }
}
