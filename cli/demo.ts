// `heliomesh demo` (= `npm start`): the virtual solar field in one process — gateway with
// its broker and HTTP API, G×N agents on virtual hardware, a load generator and a live
// terminal view; optionally logging to InfluxDB. Ctrl-C stops it all; twice forces.
// The field lives in cli/demo-run.ts, imported when the demo starts.
import { Command } from 'commander';
import { POLICIES } from '../gateway/scheduler/index.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the virtual solar field: gateway, broker, HTTP API and G×N agents on simulated panels and batteries, with load and a live view')
    .option('--policy <name>', `scheduling policy: ${Object.keys(POLICIES).join(', ')}`, 'foresight')
    .option('--day-minutes <m>', 'wall-clock minutes per simulated day', '10')
    .option('--load <jobs>', 'background completions per minute (Poisson); 0 for none', '12')
    .option('--nodes <GxN>', 'groups × nodes per group', '3x3')
    .option('--no-ui', 'plain JSON log lines instead of the live view')
    .option('--duration <seconds>', 'stop after this many seconds')
    .option('--http-port <n>', 'HTTP API port (OpenAI-compatible)', '8080')
    .option('--mqtt-port <n>', 'MQTT broker port (0: a free one)', '0')
    .option('--influx <url>', 'log to InfluxDB at http://HOST:PORT/DATABASE (default: a private influxd when one is installed)')
    .option('--no-influx', 'no InfluxDB, not even the private one (a long measured run spares the cores)')
    .option('--seed <n>', 'seed for the field (panels, batteries, weather) and the load', '1')
    .option('--max-tokens <n>', 'tokens per background completion', '48')
    .option('--model <path>', 'serve this model instead of the bundled one: a GGUF file, checkpoint or shard folder')
    .option('--no-sleep', 'no coordinated sleep: every node stays on until its battery runs flat')
    .option('--battery-wh <wh>', 'every node\'s battery holds this many Wh (default: the seeded 36 or 48 Wh packs)')
    .option('--start <time>', 'simulated start, an ISO time such as 2026-12-02T07:45:00Z (default: the last 04:00 solar time)')
    .option('--hours <h>', 'stop once this many simulated hours have passed since the start')
    .option('--summary <file.json>', 'at the end, write the run\'s figures (flat batteries, sleeps, jobs, energy) to this file and print them')
    .option('--measure-from-hours <h>', 'with --summary: also give the figures from this many simulated hours after the start to the end')
    .action(async (raw: Record<string, unknown>) => {
      await (await import('./demo-run.js')).demoCommand(raw);
    });
}
