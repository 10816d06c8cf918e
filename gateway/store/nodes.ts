// What happens to the fleet's nodes, written down: the registry's events become node_state,
// node_slot and node_qlim points, and log lines. The rules of how a fact becomes a point
// live here, beside the schema, not in the composition root.
import type { Logger } from 'pino';
import type { NodeState, Registry } from '../registry.js';
import { memberWeights } from '../scheduler/index.js';
import type { Store } from './influx-store.js';
import { qLimPoint, slotPoint, statePoint, type NodeTags } from './records.js';

/** Subscribes the store and the log to the registry's events. */
export function recordNodeHistory(registry: Registry, deps: { fleet: string; store: Store; log: Logger }): void {
  const { store, log } = deps;
  const tags = (nodeId: string, group: string): NodeTags => ({ fleet: deps.fleet, node: nodeId, group });
  const lastSlotMs = new Map<string, number>();

  const stateChanged = (online: boolean) => (node: NodeState, reason: string, atMs: number) => {
    log.info({ node: node.nodeId, group: node.profile.group, online, reason }, online ? 'node online' : 'node offline');
    store.write(statePoint(tags(node.nodeId, node.profile.group), { online, reason, gamma: node.gamma, powerMode: node.powerMode }, atMs));
  };
  registry.on('up', stateChanged(true));
  registry.on('down', stateChanged(false));
  registry.on('slot', (node, r, seqGap, atMs) => {
    if (seqGap > 0) log.warn({ node: node.nodeId, seq: r.seq, missed: seqGap }, 'slot records missing');
    // A node's spool drains in a burst after an outage, many records in one millisecond;
    // InfluxDB keeps one point per series and time, so each node's slot points get
    // strictly increasing times, or all but the last of the burst would be overwritten.
    const timeMs = Math.max(Math.round(atMs), (lastSlotMs.get(node.nodeId) ?? -Infinity) + 1);
    lastSlotMs.set(node.nodeId, timeMs);
    store.write(slotPoint(tags(node.nodeId, node.profile.group), {
      seq: r.seq,
      batteryJ: r.batteryJ,
      batteryPct: (100 * r.batteryJ) / node.profile.capacityJ,
      harvestJ: r.harvestJ,
      consumedJ: r.consumedJ,
      energyQ: Math.floor(r.batteryJ / node.profile.quantumJ),
      powerMode: r.powerMode,
      gamma: r.gamma,
      queue: r.queue,
      seqGap,
    }, timeMs));
  });
  registry.on('solved', (node, s, atMs) => {
    const members = registry.members(node.profile.group);
    const weight = memberWeights(members)[members.indexOf(node)];
    log.debug({ node: node.nodeId, qLim: s.qLim, solves: s.solves, solveMs: s.solveMs }, 'q_lim solved');
    store.write(qLimPoint(tags(node.nodeId, node.profile.group), {
      qLim: s.qLim, qEnergy: s.qEnergy, qProc: s.qProc, energyBinds: s.energyBinds, solves: s.solves, weight,
    }, atMs));
  });
  registry.on('solveFailed', (node, err) => {
    log.error({ node: node.nodeId, err: err.message }, 'q_lim solve failed; the node keeps its previous solution');
  });
}
