import { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { benches } from '../bench/index.js';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`run a benchmark and write its JSON result (${Object.keys(benches).join(', ') || 'none registered'})`)
    .argument('<name>', 'which benchmark')
    .option('--out <dir>', 'folder for the JSON result', 'results/bench')
    .option('--model <path>', 'checkpoint or manifest, for benchmarks that run a model')
    .action(async (name: string, opts: { out: string; model?: string }) => {
      const bench = benches[name];
      if (!bench) {
        throw new Error(`unknown benchmark '${name}'; choose one of: ${Object.keys(benches).join(', ')}`);
      }
      const result = await bench.run({ outDir: opts.out, args: { model: opts.model } });
      const machine = {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        platform: `${process.platform}/${process.arch}`,
      };
      mkdirSync(opts.out, { recursive: true });
      const file = join(opts.out, `${name}.json`);
      writeFileSync(file, JSON.stringify({ bench: name, date: new Date().toISOString(), machine, summary: result.summary, metrics: result.metrics }, null, 2) + '\n');
      console.log(result.summary);
      console.log(`(written to ${file})`);
    });
}
