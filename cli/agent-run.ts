// What `heliomesh agent` and `heliomesh agent profile` run; cli/agent.ts registers them.
import { writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { stringify } from 'yaml';
import { pino, type Logger } from 'pino';
import { Agent } from '../agent/index.js';
import { Ledger } from '../agent/ledger.js';
import { profileModes } from '../agent/profile.js';
import { buildNode } from '../hardware/node.js';
import { selectBackend } from '../models/backend.js';
import { BlockStack } from '../models/forward.js';
import { readShards } from '../models/shards.js';
import { loadAgentConfigFile } from '../agent/config.js';
import { virtualAgentConfig, type VirtualAgentOptions } from '../agent/virtual.js';
import { RealClock, type Clock } from '../ground/clock.js';
import { ScaledClock } from '../hardware/clock.js';
import { serviceNotifier } from './notify.js';

export interface AgentCliOptions extends VirtualAgentOptions {
  config?: string;
  virtual?: boolean;
  timeScale?: number;
  pretty?: boolean;
}

export interface ProfileOptions { config?: string; virtual?: boolean; jobs: number; idleMs: number; out?: string }

function logger(level: string, pretty: boolean): Logger {
  return pino({ level }, pretty ? pino.transport({ target: 'pino-pretty' }) : undefined);
}

/** `heliomesh agent`: runs the agent until SIGINT or SIGTERM. */
export async function runAgent(opts: AgentCliOptions): Promise<void> {
  if (!opts.config && !opts.virtual) throw new Error('pass --config FILE on a Pi, or --virtual --gateway mqtt://HOST:PORT');
  if (opts.config && opts.virtual) throw new Error('--config and --virtual exclude each other');
  if (opts.virtual && !opts.gateway) throw new Error('--virtual needs --gateway mqtt://HOST:PORT');
  const config = opts.config ? loadAgentConfigFile(opts.config, process.env) : virtualAgentConfig(opts, process.env);
  const log = logger(config.logLevel, opts.pretty ?? process.stdout.isTTY === true);
  const clock: Clock = opts.timeScale && opts.timeScale !== 1 ? new ScaledClock(opts.timeScale) : new RealClock();
  let agent: Agent | undefined;
  let exiting = false;
  // On the virtual node "power off" means: this process ends.
  const virtualShutdown = async (reason: string): Promise<void> => {
    log.warn({ reason }, 'virtual node powering off: the process exits');
    exiting = true;
    setImmediate(() => process.exit(0));
  };
  const notify = serviceNotifier(process.env, process.pid, log);
  agent = await Agent.start(config, { clock, log, ...(notify ? { notify } : {}), ...(opts.virtual ? { shutdown: virtualShutdown } : {}) });
  await new Promise<void>((done) => {
    const stop = (signal: string): void => {
      if (exiting) return;
      exiting = true;
      log.info({ signal }, 'stopping');
      agent!.stop(`stopped by ${signal}`).then(done, (err: Error) => {
        log.error({ err: err.message }, 'error while stopping');
        done();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  agent = undefined;
  // The stop is over (bounded by stopFlushMs): a timer or socket a library still holds
  // must not keep the process alive after "agent stopped".
  process.exit(0);
}

/** `heliomesh agent profile`: meters the power modes and writes their table. */
export async function profileAgent(opts: ProfileOptions): Promise<void> {
  if (!opts.config && !opts.virtual) throw new Error('pass --config FILE on a Pi, or --virtual');
  const config = opts.config ? loadAgentConfigFile(opts.config, process.env) : virtualAgentConfig({ gateway: 'mqtt://localhost:1883' }, process.env);
  if (!config.model) throw new Error('the config has no model: profiling runs the node\'s own block range (set model.shardDir, firstBlock, lastBlock)');
  await selectBackend();
  const clock = new RealClock();
  const hardware = await buildNode(config.hardware, { clock });
  hardware.virtual?.start();
  const range = { from: config.model.firstBlock, to: config.model.lastBlock + 1 };
  const shardDir = config.model.shardDir;
  const stack = new BlockStack((allocate) => readShards(shardDir, { range, head: false }, undefined, allocate), range, { threads: config.model.threads });
  const idle = { gamma: () => 1 as const, powerMode: () => 0, queue: () => 0 };
  const ledger = new Ledger({ nodeId: config.nodeId, clock, source: hardware, policy: idle, slotMs: 3_600_000, samplePeriodMs: 1000 / config.sampleHz, firstSeq: 0, onSlot: () => {} });
  await ledger.start();
  const bar = new cliProgress.SingleBar({ format: 'profile [{bar}] {value}/{total} jobs | mode {mode} | {duration_formatted}', hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar.start(config.powerModes.length * opts.jobs, 0, { mode: '-' });
  try {
    const result = await profileModes({
      hardware, stack, ledger, clock, modes: config.powerModes, slotMs: config.slotMs, jobsPerMode: Math.round(opts.jobs), idleMs: opts.idleMs,
      onProgress: (done, _total, mode) => bar.update(done, { mode }),
      onRetry: (mode, attempt, reason) => console.error(`\nmode ${mode}: cost not resolved (${reason}); measuring again with twice as many jobs per metered span (attempt ${attempt + 1})`),
    });
    bar.stop();
    for (const r of result) {
      console.error(`PM${r.powerMode} ${r.name}: ${r.jobs} × ${r.jobsPerSpan} jobs, ${r.meanDurationMs.toFixed(1)} ms and ${r.meanEnergyJ.toFixed(3)} ± ${r.energyUncertaintyJ.toFixed(3)} J above a ${r.baselineW.toFixed(2)} W idle baseline per job → κ ${r.kappa}, C_E ${r.costJ} J`);
    }
    const yaml = stringify({ powerModes: result.map((r) => ({ powerMode: r.powerMode, name: r.name, kappa: r.kappa, costJ: r.costJ })) });
    if (opts.out) {
      writeFileSync(opts.out, yaml);
      console.error(`wrote ${opts.out}; paste it into the agent config, or send it to running agents with the set-mode-table command`);
    } else {
      process.stdout.write(yaml);
    }
  } finally {
    bar.stop();
    ledger.stop();
    stack.dispose();
    hardware.virtual?.stop();
    await hardware.close();
  }
}
