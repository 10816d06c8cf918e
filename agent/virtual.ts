// The agent config of the virtual node: the reference build (docs/hardware.md) on the
// simulated plant, serving a block range of a shard folder. `heliomesh agent --virtual`,
// the demo's benchmarks and the tests all start their virtual agents from it, so it lives
// with the agent rather than with any one of its callers.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { referenceHardwareConfig } from '../hardware/config.js';
import { bundledModelDir } from '../models/bundled.js';
import { readManifest } from '../models/shards.js';
import { parseAgentConfig, type AgentConfig, type AgentConfigInput } from './config.js';

/** What a virtual node may be told; each is the `heliomesh agent --virtual` flag of that name. */
export interface VirtualAgentOptions {
  gateway?: string;
  username?: string;
  password?: string;
  nodeId?: string;
  group?: string;
  /** Blocks to serve, `FROM-TO` inclusive (default: those of the group). */
  blocks?: string;
  /** Shard folder (default: the bundled model). */
  model?: string;
  fleet?: string;
  slotMs?: number;
  spool?: string;
  stopFlushMs?: number;
  /** Where the battery level comes from: the battery INA219's estimate (default) or a UPS HAT's MAX17048 on the cell. */
  batterySource?: 'ina219' | 'max17048';
}

/**
 * The virtual node's config. κ and C_E here are nominal until `heliomesh agent profile`
 * measures them on the node.
 */
export function virtualAgentConfig(o: VirtualAgentOptions, env: Record<string, string | undefined>): AgentConfig {
  const hardware = referenceHardwareConfig('virtual');
  const doc: AgentConfigInput = {
    nodeId: o.nodeId ?? 'virtual-1',
    fleet: o.fleet ?? 'default',
    group: o.group ?? 'g1',
    gateway: { url: o.gateway ?? '', username: o.username, password: o.password },
    hardware: o.batterySource ? { ...hardware, battery: { ...hardware.battery, source: o.batterySource } } : hardware,
    ...(o.slotMs ? { slotMs: o.slotMs } : {}),
    ...(o.stopFlushMs ? { stopFlushMs: o.stopFlushMs } : {}),
    powerModes: [
      { powerMode: 1, name: 'low', kappa: 3, costJ: 30 },
      { powerMode: 2, name: 'medium', kappa: 2, costJ: 35 },
      { powerMode: 3, name: 'high', kappa: 1, costJ: 45 },
    ],
    // SPEC.md §3's hand-found table: < 40 % → PM1, 40–60 % → PM2, ≥ 60 % → PM3.
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.4, powerMode: 2 }, { minFraction: 0.6, powerMode: 3 }],
    spool: { dir: o.spool ?? mkdtempSync(join(tmpdir(), 'heliomesh-agent-spool-')) },
    model: virtualModel(o),
  };
  return parseAgentConfig(doc, env, 'virtual agent options');
}

/**
 * The virtual node's block range: `blocks` (inclusive), or else the range of its group in
 * the shard folder's manifest (group gN serves the manifest's N-th range, as the gateway
 * names them by default).
 */
function virtualModel(o: VirtualAgentOptions): { shardDir: string; firstBlock: number; lastBlock: number } {
  const shardDir = o.model ?? resolve(bundledModelDir());
  const manifest = readManifest(shardDir);
  if (o.blocks !== undefined) {
    const m = /^(\d+)-(\d+)$/.exec(o.blocks);
    if (!m || Number(m[1]) > Number(m[2])) throw new Error(`--blocks must be FROM-TO with FROM ≤ TO (inclusive), e.g. 2-3; got '${o.blocks}'`);
    const [firstBlock, lastBlock] = [Number(m[1]), Number(m[2])];
    if (lastBlock >= manifest.architecture.nLayers) throw new Error(`--blocks ${o.blocks}: the model has blocks 0-${manifest.architecture.nLayers - 1}`);
    return { shardDir, firstBlock, lastBlock };
  }
  const group = o.group ?? 'g1';
  const index = /^g(\d+)$/.exec(group) ? Number(group.slice(1)) - 1 : -1;
  const range = manifest.blocks[index];
  if (!range) {
    const names = manifest.blocks.map((b, i) => `g${i + 1} (blocks ${b.from}-${b.to - 1})`).join(', ');
    throw new Error(`group '${group}' names no block range of ${shardDir}: its groups are ${names}; or pass --blocks FROM-TO`);
  }
  return { shardDir, firstBlock: range.from, lastBlock: range.to - 1 };
}
