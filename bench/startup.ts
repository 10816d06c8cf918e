// `heliomesh bench startup`: the CPU time (user + system) of CLI commands that need no
// model — help texts and `status` — against the goal of 0.5 s each. CPU time, not wall
// time, because it is what a busy Pi (or a loaded shared machine) cannot hide: under load
// the wall time stretches, the work does not. Each command runs in its own process, which
// reports its own getrusage total as it exits; the median of the rounds is the result.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench } from './types.js';
import { median } from './median.js';

const CLI = fileURLToPath(new URL('../cli/index.js', import.meta.url));
const GOAL_CPU_S = 0.5;
/** Odd, so the median is one measured run. */
const DEFAULT_ROUNDS = 5;

/**
 * `status` is pointed at a port nothing listens on (port 1, tcpmux, is privileged and unused
 * on a Pi), so it measures the command's own start and its error path, not a gateway.
 */
const COMMANDS: string[][] = [
  ['--help'],
  ['status', '--help'],
  ['gateway', '--help'],
  ['gateway', 'add-node', '--help'],
  ['agent', '--help'],
  ['hw', 'read', '--help'],
  ['model', 'generate', '--help'],
  ['bench', '--help'],
  ['status', '--gateway', 'http://127.0.0.1:1'],
];

/** Preloaded into each run: writes the process's CPU total when it exits, however it exits. */
const REPORTER = `import { writeFileSync } from 'node:fs';
process.on('exit', () => {
  const u = process.cpuUsage();
  writeFileSync(process.env.HELIOMESH_CPU_REPORT, JSON.stringify({ userUs: u.user, systemUs: u.system }));
});
`;

interface Run { command: string; round: number; cpuS: number; userS: number; systemS: number; exitCode: number | null }

function runOnce(args: string[], reporter: string, report: string): Promise<{ userUs: number; systemUs: number; exitCode: number | null }> {
  rmSync(report, { force: true });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(reporter).href, CLI, ...args], {
      stdio: 'ignore',
      env: { ...process.env, HELIOMESH_CPU_REPORT: report, HELIOMESH_API_KEY: '' },
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      try {
        resolve({ ...(JSON.parse(readFileSync(report, 'utf8')) as { userUs: number; systemUs: number }), exitCode: code });
      } catch (err) {
        reject(new Error(`heliomesh ${args.join(' ')} left no CPU report (exit ${code}): ${(err as Error).message}`));
      }
    });
  });
}

export const startupBench: Bench = {
  description: `CPU time of help texts and status, per command (goal < ${GOAL_CPU_S} s)`,
  async run(opts) {
    const rounds = opts.args.rounds ? Number(opts.args.rounds) : DEFAULT_ROUNDS;
    if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got '${opts.args.rounds}'`);
    const dir = mkdtempSync(join(tmpdir(), 'heliomesh-bench-startup-'));
    const reporter = join(dir, 'cpu-report.mjs');
    writeFileSync(reporter, REPORTER);
    const loadAtStart = loadavg()[0]!;
    const runs: Run[] = [];
    try {
      // Rounds rotate over the commands, so a burst of load on the machine touches all alike.
      for (let round = 0; round < rounds; round++) {
        for (const args of COMMANDS) {
          const r = await runOnce(args, reporter, join(dir, 'report.json'));
          runs.push({ command: args.join(' '), round, userS: r.userUs / 1e6, systemS: r.systemUs / 1e6, cpuS: (r.userUs + r.systemUs) / 1e6, exitCode: r.exitCode });
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const perCommand = COMMANDS.map((args) => {
      const command = args.join(' ');
      const cpu = runs.filter((r) => r.command === command).map((r) => r.cpuS);
      return { command, medianCpuS: median(cpu), maxCpuS: Math.max(...cpu), meetsGoal: median(cpu) < GOAL_CPU_S };
    });
    const worst = perCommand.reduce((a, b) => (b.medianCpuS > a.medianCpuS ? b : a));
    const lines = perCommand.map((c) => `  ${c.medianCpuS.toFixed(3)} s  heliomesh ${c.command}`);
    return {
      summary: `startup: median CPU per command over ${rounds} round(s), goal < ${GOAL_CPU_S} s; worst ${worst.medianCpuS.toFixed(3)} s (heliomesh ${worst.command}), ` +
        `${perCommand.filter((c) => c.meetsGoal).length}/${perCommand.length} within the goal (load average ${loadAtStart.toFixed(1)} at start)\n${lines.join('\n')}`,
      metrics: { goalCpuS: GOAL_CPU_S, rounds, perCommand, runs, loadAverageAtStart: loadAtStart },
    };
  },
};
