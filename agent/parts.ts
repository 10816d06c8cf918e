// The parts the agent's composition root builds from its config with some reading of their
// own: the block worker (the shard, the TF.js backend) and the link (the TLS files).
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock } from '../ground/clock.js';
import type { NodeHardware } from '../hardware/node.js';
import { selectBackend } from '../models/backend.js';
import type { AgentConfig } from './config.js';
import type { LinkOptions } from './link.js';
import type { Spool } from './spool.js';
import { BlockWorker } from './worker.js';

/** The block worker of the configured model, drawing on the virtual node's plant while it computes. */
export async function loadWorker(config: AgentConfig, hardware: NodeHardware, clock: Clock, log: Logger): Promise<BlockWorker | undefined> {
  if (!config.model) return undefined;
  const backend = await selectBackend();
  log.info({ backend: backend.name, detail: backend.detail, skipped: backend.skipped }, 'TF.js backend selected');
  return BlockWorker.load({
    ...config.model, ...config.worker, clock, log,
    // The virtual node draws for the forwards' measured CPU time, not for the time a job is
    // held: the busy share of this host's cores stands for that of the node's online cores.
    onBusy: (busy, cpu) => {
      const v = hardware.virtual;
      if (!v) return;
      if (busy) v.plant.setComputeLoad(cpu);
      v.setJobRunning(busy); // brings the plant up to now (sampling the meter) before the change
      if (!busy) v.plant.setComputeLoad(undefined);
    },
  });
}

/** The link's connection settings, with the TLS files the config names read here. */
export function linkOptions(config: AgentConfig, spool: Spool, clock: Clock, log: Logger): LinkOptions {
  const { tls, ...gateway } = config.gateway;
  const read = (path: string | undefined) => (path ? readFileSync(path) : undefined);
  return {
    url: gateway.url, fleet: config.fleet, nodeId: config.nodeId, username: gateway.username, password: gateway.password,
    tls: tls.caFile || tls.certFile ? { ca: read(tls.caFile), cert: read(tls.certFile), key: read(tls.keyFile), rejectUnauthorized: tls.rejectUnauthorized } : undefined,
    keepaliveS: gateway.keepaliveS, reconnectMinMs: gateway.reconnectMinMs, reconnectMaxMs: gateway.reconnectMaxMs,
    spool, clock, log,
  };
}
