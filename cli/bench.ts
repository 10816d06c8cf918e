// `heliomesh bench NAME`: runs one benchmark of bench/index.ts and writes its JSON result.
import { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { benches } from '../bench/index.js';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`run a benchmark and write its JSON result (${Object.keys(benches).join(', ') || 'none registered'})`)
    .argument('<name>', 'which benchmark')
    .option('--out <dir>', 'folder for the JSON result', 'results/bench')
    .option('--model <path>', 'checkpoint or manifest, for benchmarks that run a model (pipeline: stories15M or bundled)')
    .option('--nodes <n>', 'gateway: virtual nodes')
    .option('--jobs-per-s <rate>', 'gateway: mean job arrivals per second (Poisson)')
    .option('--seconds <s>', 'gateway: length of the measured window')
    .option('--tokens <n>', 'gateway, pipeline: tokens generated per job; model --shape: decode tokens per round (default 64); handover: tokens per round (default 50)')
    .option('--shape <names>', 'model: random-weight real shapes, comma-separated; pipeline: one of them: tinyllama, smollm2-360m, llama3.2-1b, qwen2.5-0.5b')
    .option('--quant <types>', 'model --shape: weight types, comma-separated; pipeline --shape: one of them: f32, q8_0, q4_0 (default q4_0)')
    .option('--stages <n>', 'model --shape: pipeline stages, one process each (default 3)')
    .option('--threads <n>', 'model: matmul kernel threads per stage and head (default: every core)')
    .option('--rounds <n>', 'model --shape: measured rounds, each with a C round after it (default 2); startup: runs of each command (default 5); pipeline: rounds (default 5); handover: rounds (default 21)')
    .option('--warmup-rounds <n>', 'pipeline: unmeasured rounds of each path before the measured ones, while the JIT settles (default 8)')
    .option('--c-bar <on|off>', 'model --shape: run the C f32 bar (default on)')
    .option('--backend <name>', 'model: TF.js backend, auto|tensorflow|wasm|cpu (default: HELIOMESH_BACKEND or auto)')
    .option('--agent-threads <n>', 'pipeline: matmul kernel threads of each agent (default: every core; the in-process run keeps every core)')
    .option('--link-delay-ms <ms>', 'pipeline: the delay of one link: each activation frame is held this long at the broker for every link it travels (default 0)')
    .option('--star', 'pipeline: every hop through the gateway, as before hops were chained node to node')
    .action(async (name: string, opts: { out: string; model?: string; nodes?: string; jobsPerS?: string; seconds?: string; tokens?: string;
      shape?: string; quant?: string; stages?: string; threads?: string; rounds?: string; warmupRounds?: string; cBar?: string; backend?: string; agentThreads?: string; linkDelayMs?: string; star?: boolean }) => {
      const load = benches[name];
      if (!load) {
        throw new Error(`unknown benchmark '${name}'; choose one of: ${Object.keys(benches).join(', ')}`);
      }
      const bench = await load();
      // The machine is shared: its load during the run says how far to trust the numbers.
      const loadAtStart = loadavg();
      const { out, star, ...rest } = opts;
      const args: Record<string, string | undefined> = { ...rest, ...(star ? { star: 'true' } : {}) };
      const result = await bench.run({ outDir: out, args });
      const machine = {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        platform: `${process.platform}/${process.arch}`,
        loadAverage: { atStart: loadAtStart, atEnd: loadavg() },
      };
      mkdirSync(opts.out, { recursive: true });
      const file = join(opts.out, `${name}.json`);
      writeFileSync(file, JSON.stringify({ bench: name, date: new Date().toISOString(), machine, summary: result.summary, metrics: result.metrics }, null, 2) + '\n');
      console.log(result.summary);
      console.log(`(written to ${file})`);
    });
}
