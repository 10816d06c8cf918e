// The agent's one configuration file (YAML or JSON) plus environment overrides, validated
// once at startup. A wrong key stops the agent with the key's path and the reason; every
// object is strict, so a misspelled key is refused by name rather than left at its default.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, formatPath, parseConfig } from '../config-errors.js';
import { hardwareConfigSchema } from '../hardware/config.js';
import { wakeConfigSchema } from '../hardware/wake/config.js';
import { MAX_SAMPLE_HZ, MAX_SLOT_MS, MIN_SLOT_MS, idProblem, modeStepSchema, powerModeEntrySchema, type NodeProfile } from '../protocol/index.js';

const id = z.string().superRefine((s, ctx) => {
  const p = idProblem(s);
  if (p) ctx.addIssue({ code: 'custom', message: p });
});
const pct = z.number().min(0).max(100);

export const agentConfigSchema = z.strictObject({
  nodeId: id,
  fleet: id.default('default'),
  group: id,
  gateway: z.strictObject({
    /** mqtt://, mqtts://, ws:// or wss:// */
    url: z.string().regex(/^(mqtts?|wss?):\/\/[^\s]+$/, 'must look like mqtt://host:1883 or mqtts://host:8883'),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    tls: z.strictObject({
      caFile: z.string().optional(),
      certFile: z.string().optional(),
      keyFile: z.string().optional(),
      rejectUnauthorized: z.boolean().default(true),
    }).prefault({}),
    keepaliveS: z.number().int().min(5).max(600).default(30),
    /** Reconnect backoff: first wait, doubled per failure up to the maximum. */
    reconnectMinMs: z.number().int().positive().default(1000),
    reconnectMaxMs: z.number().int().positive().default(60_000),
  }),
  hardware: hardwareConfigSchema,
  /** δ: slot length, within what the gateway accepts in a birth (protocol/bounds.ts). */
  slotMs: z.number().int().min(MIN_SLOT_MS).max(MAX_SLOT_MS).default(60_000),
  /** Sensor sampling rate for the energy ledger. */
  sampleHz: z.number().positive().max(MAX_SAMPLE_HZ).default(2),
  /** Publish raw sensor samples this often (0: never). */
  telemetryPeriodMs: z.number().int().nonnegative().default(0),
  /** E_th, E′_th and the shutdown level as % of the battery's capacity (SPEC.md §3: 10 % for E_th). */
  thresholds: z.strictObject({
    eThPct: pct.default(10),
    eThUpPct: pct.default(20),
    criticalPct: pct.default(3),
  }).prefault({}),
  /** Power modes: PM index, cpufreq mode name (hardware.cpu.modes), κ at δ and C_E. */
  powerModes: z.array(powerModeEntrySchema.strict()).min(1),
  /** Dynamic table battery fraction → PM (SPEC.md §3). */
  modeTable: z.array(modeStepSchema.strict()).min(1),
  model: z.strictObject({
    shardDir: z.string().min(1),
    firstBlock: z.number().int().nonnegative(),
    lastBlock: z.number().int().nonnegative(),
    /** Threads of the block range's matmul kernel (default: every core of the node). */
    threads: z.number().int().min(1).max(64).optional(),
  }).optional(),
  worker: z.strictObject({
    queueCapacity: z.number().int().min(1).max(8).default(1),
    sessionIdleMs: z.number().int().positive().default(120_000),
  }).prefault({}),
  spool: z.strictObject({
    dir: z.string().min(1),
    maxBytes: z.number().int().min(4096).default(8 * 1024 * 1024),
  }),
  /**
   * How long a stop may spend on the network (ms of the node's clock, like every period of
   * the node: a sped-up node stops as fast as it runs): reporting held jobs, flushing the
   * spool, the offline state and the disconnect. After it the connection is dropped and the
   * process exits; what was not acknowledged stays in the spool. systemd's TimeoutStopSec
   * in deploy/systemd/heliomesh-agent.service must stay above it.
   */
  stopFlushMs: z.number().int().min(0).max(120_000).default(10_000),
  /**
   * The same at the critical battery level, before the shutdown command: the last words
   * (critical event, last slot, offline state) get this long and no more, because every
   * second spent waiting on a dead link is drawn from a battery already at its floor.
   */
  criticalFlushMs: z.number().int().min(0).max(30_000).default(2000),
  /** Run at the critical level; argv, not a shell line. */
  shutdownCommand: z.array(z.string().min(1)).min(1).default(['systemctl', 'poweroff']),
  /** What powers the node up again after a planned sleep (docs/hardware.md "Wake paths"). */
  wake: wakeConfigSchema.prefault({ path: 'none' }),
  /** Run to halt for a planned sleep, once the alarm is set; argv, not a shell line. */
  haltCommand: z.array(z.string().min(1)).min(1).default(['systemctl', 'poweroff']),
  /**
   * How long the jobs held when a sleep command comes may take to finish (ms of the node's
   * clock); those still running then are handed back, as at a stop.
   */
  sleepDrainMs: z.number().int().min(0).max(600_000).default(60_000),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
}).superRefine((c, ctx) => {
  const t = c.thresholds;
  if (!(t.criticalPct < t.eThPct)) ctx.addIssue({ code: 'custom', path: ['thresholds', 'criticalPct'], message: 'must be below eThPct' });
  if (!(t.eThUpPct > t.eThPct)) ctx.addIssue({ code: 'custom', path: ['thresholds', 'eThUpPct'], message: 'must be above eThPct (E′_th > E_th gives the hysteresis)' });
  if (!(t.eThUpPct < 100)) ctx.addIssue({ code: 'custom', path: ['thresholds', 'eThUpPct'], message: 'must be below 100' });
  const gauge = c.hardware.battery.gauge;
  // The gauge's ALRT is an early warning only while the node still runs to hear it.
  if (gauge && gauge.alertThresholdPct <= t.criticalPct) {
    ctx.addIssue({ code: 'custom', path: ['hardware', 'battery', 'gauge', 'alertThresholdPct'], message: `must be above thresholds.criticalPct (${t.criticalPct} %): the node shuts down there, before the gauge's alert could warn` });
  }
  const cpuModes = Object.keys(c.hardware.cpu.modes);
  const pms = new Set<number>();
  c.powerModes.forEach((m, i) => {
    if (!cpuModes.includes(m.name)) ctx.addIssue({ code: 'custom', path: ['powerModes', i, 'name'], message: `"${m.name}" is not one of hardware.cpu.modes (${cpuModes.join(', ')})` });
    if (pms.has(m.powerMode)) ctx.addIssue({ code: 'custom', path: ['powerModes', i, 'powerMode'], message: 'duplicate powerMode' });
    pms.add(m.powerMode);
  });
  c.modeTable.forEach((s, i) => {
    if (!pms.has(s.powerMode)) ctx.addIssue({ code: 'custom', path: ['modeTable', i, 'powerMode'], message: `powerMode ${s.powerMode} is not in powerModes` });
    if (i === 0 && s.minFraction !== 0) ctx.addIssue({ code: 'custom', path: ['modeTable', 0, 'minFraction'], message: 'the first step must start at 0' });
    if (i > 0 && s.minFraction <= c.modeTable[i - 1]!.minFraction) ctx.addIssue({ code: 'custom', path: ['modeTable', i, 'minFraction'], message: 'must increase' });
  });
  if (c.model && c.model.lastBlock < c.model.firstBlock) ctx.addIssue({ code: 'custom', path: ['model', 'lastBlock'], message: 'must not be below firstBlock' });
  if (c.wake.path === 'virtual' && c.hardware.kind !== 'virtual') ctx.addIssue({ code: 'custom', path: ['wake', 'path'], message: 'the virtual RTC wakes only a virtual node (hardware.kind virtual); a Pi uses rtc-wakealarm or witty-pi-4' });
  if (c.gateway.reconnectMaxMs < c.gateway.reconnectMinMs) ctx.addIssue({ code: 'custom', path: ['gateway', 'reconnectMaxMs'], message: 'must not be below reconnectMinMs' });
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

/** Environment variables that override single keys (secrets stay out of the file). */
export const ENV_OVERRIDES: Record<string, string[]> = {
  HELIOMESH_NODE_ID: ['nodeId'],
  HELIOMESH_FLEET: ['fleet'],
  HELIOMESH_GROUP: ['group'],
  HELIOMESH_GATEWAY_URL: ['gateway', 'url'],
  HELIOMESH_GATEWAY_USERNAME: ['gateway', 'username'],
  HELIOMESH_GATEWAY_PASSWORD: ['gateway', 'password'],
  HELIOMESH_SPOOL_DIR: ['spool', 'dir'],
  HELIOMESH_LOG_LEVEL: ['logLevel'],
};

export class AgentConfigError extends ConfigError {}

/** Validates a parsed document after applying `env` overrides. */
export function parseAgentConfig(doc: unknown, env: Record<string, string | undefined> = {}, source = 'config'): AgentConfig {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new AgentConfigError(`${source}: the top level must be a mapping of keys`);
  const merged = structuredClone(doc) as Record<string, unknown>;
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let at = merged;
    for (const key of path.slice(0, -1)) {
      if (typeof at[key] !== 'object' || at[key] === null) at[key] = {};
      at = at[key] as Record<string, unknown>;
    }
    at[path.at(-1)!] = value;
  }
  const fromEnv = (path: string) => {
    const override = Object.entries(ENV_OVERRIDES).find(([n, p]) => formatPath(p) === path && env[n]);
    return override ? `from ${override[0]}` : undefined;
  };
  return parseConfig(agentConfigSchema, merged, source, { annotate: fromEnv, error: AgentConfigError, seeAlso: 'see docs/agent.md for every setting' });
}

/** Reads YAML (or JSON, which is YAML) from `path`. */
export function loadAgentConfigFile(path: string, env: Record<string, string | undefined>): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentConfigError(`cannot read the agent config ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new AgentConfigError(`${path} is not valid YAML/JSON: ${(err as Error).message}`);
  }
  return parseAgentConfig(doc, env, path);
}

export function capacityJ(c: AgentConfig): number {
  return c.hardware.battery.capacityWh * 3600;
}

export interface ThresholdsJ { eThJ: number; eThUpJ: number; criticalJ: number }

export function thresholdsJ(c: AgentConfig): ThresholdsJ {
  const cap = capacityJ(c);
  return { eThJ: (cap * c.thresholds.eThPct) / 100, eThUpJ: (cap * c.thresholds.eThUpPct) / 100, criticalJ: (cap * c.thresholds.criticalPct) / 100 };
}

/** The profile the birth message carries; `measured` adds what the node found out running (idle draw, wake path). */
export function profileOf(
  c: AgentConfig, modes = c.powerModes, table = c.modeTable, thresholds = thresholdsJ(c), shard?: NodeProfile['shard'],
  measured: Pick<NodeProfile, 'idleW' | 'wake'> = {},
): NodeProfile {
  return {
    ...measured,
    group: c.group,
    ...(shard ? { shard } : {}),
    slotMs: c.slotMs,
    capacityJ: capacityJ(c),
    thresholds,
    modes,
    modeTable: table,
    queueCapacity: c.worker.queueCapacity,
  };
}
