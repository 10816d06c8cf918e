// `heliomesh agent --config FILE`: run the node agent on a Pi.
// `heliomesh agent --virtual --gateway mqtt://HOST:PORT`: run it on the virtual node.
// The agent, its drivers and the block worker (TF.js) are in cli/agent-run.ts, imported
// when a command runs, so that registering the commands and printing their help load none.
import { Command, InvalidArgumentError, Option } from 'commander';
import type { AgentCliOptions, ProfileOptions } from './agent-run.js';

function positive(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number > 0');
  return n;
}

export function registerAgent(program: Command): void {
  const agentCmd = program
    .command('agent')
    .description('run the node agent: energy ledger, power policy, MQTT link with spool, block worker')
    .option('--config <file>', 'agent config, YAML or JSON (see docs/agent.md and deploy/agent.example.yaml)')
    .option('--virtual', 'run on the virtual node (simulated sun, battery and sensors)')
    .option('--gateway <url>', 'gateway broker, mqtt://HOST:PORT (with --virtual)')
    .option('--username <u>', 'MQTT username (with --virtual; the gateway expects the node id)')
    .option('--password <p>', 'MQTT password (with --virtual; prefer HELIOMESH_GATEWAY_PASSWORD)')
    .option('--node-id <id>', 'node id (with --virtual)')
    .option('--group <g>', 'block group (with --virtual); gN serves the N-th block range of the model')
    .option('--blocks <from-to>', 'blocks to serve, inclusive (with --virtual; default: those of --group)')
    .option('--model <dir>', 'shard folder (with --virtual; default: the bundled model)')
    .option('--fleet <f>', 'fleet name (with --virtual)')
    .option('--time-scale <x>', 'run the virtual clock x times faster than real time', positive)
    .option('--slot-ms <ms>', 'slot length δ in virtual ms (with --virtual)', positive)
    .option('--spool <dir>', 'spool folder (with --virtual; default a new temporary folder)')
    .option('--stop-flush-ms <ms>', 'how long a stop may wait on the broker, in ms of the node\'s clock (with --virtual; default 10000)', positive)
    .addOption(new Option('--battery-source <source>', 'where the battery level comes from (with --virtual): the battery INA219\'s estimate, or a MAX17048 fuel gauge on the cell')
      .choices(['ina219', 'max17048']))
    .option('--pretty', 'human-readable logs (default when stdout is a terminal)')
    .action(async (opts: AgentCliOptions) => {
      await (await import('./agent-run.js')).runAgent(opts);
    });

  agentCmd
    .command('profile')
    .description('time and meter N standard jobs in each power mode and write the power-mode table (κ at δ, C_E in J)')
    .option('--config <file>', 'agent config (its hardware, model, powerModes and slotMs)')
    .option('--virtual', 'profile on the virtual node with the bundled model')
    .option('--jobs <n>', 'jobs per power mode', positive, 5)
    .option('--idle-ms <ms>', 'idle time measured per mode for the baseline', positive, 5000)
    .option('--out <file>', 'write the powerModes YAML here (default: print it)')
    .action(async (_: unknown, cmd: Command) => {
      // --config and --virtual are also the parent's options; commander gives them to it.
      const opts = cmd.optsWithGlobals<ProfileOptions>();
      await (await import('./agent-run.js')).profileAgent(opts);
    });
}
