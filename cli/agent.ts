// `heliomesh agent --config FILE`: run the node agent on a Pi.
// `heliomesh agent --virtual --gateway mqtt://HOST:PORT`: run it on the virtual node.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { pino, type Logger } from 'pino';
import { Agent } from '../agent/index.js';
import { loadAgentConfigFile, parseAgentConfig, type AgentConfig, type AgentConfigInput } from '../agent/config.js';
import { RealClock, ScaledClock, type Clock } from '../hardware/clock.js';
import { referenceHardwareConfig } from '../hardware/config.js';

interface AgentCliOptions {
  config?: string;
  virtual?: boolean;
  gateway?: string;
  username?: string;
  password?: string;
  nodeId?: string;
  group?: string;
  fleet?: string;
  timeScale?: number;
  slotMs?: number;
  spool?: string;
  pretty?: boolean;
}

function positive(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number > 0');
  return n;
}

/**
 * The virtual node's config: the reference build (docs/hardware.md) on the simulated plant.
 * κ and C_E here are nominal until `heliomesh agent profile` measures them on the node.
 */
export function virtualAgentConfig(o: AgentCliOptions, env: Record<string, string | undefined>): AgentConfig {
  const doc: AgentConfigInput = {
    nodeId: o.nodeId ?? 'virtual-1',
    fleet: o.fleet ?? 'default',
    group: o.group ?? 'g1',
    gateway: { url: o.gateway ?? '', username: o.username, password: o.password },
    hardware: referenceHardwareConfig('virtual'),
    ...(o.slotMs ? { slotMs: o.slotMs } : {}),
    powerModes: [
      { powerMode: 1, name: 'low', kappa: 3, costJ: 30 },
      { powerMode: 2, name: 'medium', kappa: 2, costJ: 35 },
      { powerMode: 3, name: 'high', kappa: 1, costJ: 45 },
    ],
    // SPEC.md §3's hand-found table: < 40 % → PM1, 40–60 % → PM2, ≥ 60 % → PM3.
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.4, powerMode: 2 }, { minFraction: 0.6, powerMode: 3 }],
    spool: { dir: o.spool ?? mkdtempSync(join(tmpdir(), 'heliomesh-agent-spool-')) },
  };
  return parseAgentConfig(doc, env, 'virtual agent options');
}

function logger(level: string, pretty: boolean): Logger {
  return pino({ level }, pretty ? pino.transport({ target: 'pino-pretty' }) : undefined);
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the node agent: energy ledger, power policy, MQTT link with spool, block worker')
    .option('--config <file>', 'agent config, YAML or JSON (see docs/agent.md and deploy/agent.example.yaml)')
    .option('--virtual', 'run on the virtual node (simulated sun, battery and sensors)')
    .option('--gateway <url>', 'gateway broker, mqtt://HOST:PORT (with --virtual)')
    .option('--username <u>', 'MQTT username (with --virtual; the gateway expects the node id)')
    .option('--password <p>', 'MQTT password (with --virtual; prefer HELIOMESH_GATEWAY_PASSWORD)')
    .option('--node-id <id>', 'node id (with --virtual)')
    .option('--group <g>', 'block group (with --virtual)')
    .option('--fleet <f>', 'fleet name (with --virtual)')
    .option('--time-scale <x>', 'run the virtual clock x times faster than real time', positive)
    .option('--slot-ms <ms>', 'slot length δ in virtual ms (with --virtual)', positive)
    .option('--spool <dir>', 'spool folder (with --virtual; default a new temporary folder)')
    .option('--pretty', 'human-readable logs (default when stdout is a terminal)')
    .action(async (opts: AgentCliOptions) => {
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
      agent = await Agent.start(config, { clock, log, ...(opts.virtual ? { shutdown: virtualShutdown } : {}) });
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
    });
}
