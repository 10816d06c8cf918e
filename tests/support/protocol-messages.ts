// Well-formed protocol messages for gateway tests, built the way an agent would send them.
import { PROTOCOL_VERSION, type NodeProfile, type SlotRecord, type StateMessage } from '../../protocol/index.js';

/** The paper's device on a 100 kJ battery: 15/30/60 W modes and its dynamic table. */
export function paperProfile(group = 'g0'): NodeProfile {
  return {
    group,
    slotMs: 100_000,
    capacityJ: 100_000,
    thresholds: { eThJ: 10_000, eThUpJ: 15_000, criticalJ: 2_000 },
    modes: [
      { powerMode: 1, name: '15W', kappa: 3, costJ: 26_000 },
      { powerMode: 2, name: '30W', kappa: 2, costJ: 22_000 },
      { powerMode: 3, name: '60W', kappa: 1, costJ: 23_000 },
    ],
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.4, powerMode: 2 }, { minFraction: 0.6, powerMode: 3 }],
    queueCapacity: 2,
  };
}

export function birth(nodeId: string, atMs: number, profile: NodeProfile = paperProfile()): StateMessage {
  return { v: PROTOCOL_VERSION, status: 'online', nodeId, atMs, profile };
}

export function will(nodeId: string): StateMessage {
  return { v: PROTOCOL_VERSION, status: 'offline', nodeId, reason: 'connection lost' };
}

export function slotRecord(nodeId: string, seq: number, over: Partial<SlotRecord> = {}): SlotRecord {
  return {
    v: PROTOCOL_VERSION, nodeId, seq, slotStartMs: 1_700_000_000_000 + seq * 100_000, slotMs: 100_000,
    harvestJ: 20_000, consumedJ: 15_000, batteryJ: 60_000, batteryPct: 60, powerMode: 3, gamma: 1, queue: 0,
    charger: null, health: [], degraded: false, samples: 100, ...over,
  };
}
