// Compiles the matmul kernel (matmul.as, AssemblyScript) to dist/models/kernels/matmul.wasm,
// next to the compiled runtime that loads it. `npm run build` runs this before tsc; it
// needs only the `assemblyscript` devDependency. Skips the work when the .wasm is newer
// than its source and this script (pass --force to rebuild, --wat to also write the text).
import asc from 'assemblyscript/asc';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'matmul.as');
const outDir = join(here, '..', '..', 'dist', 'models', 'kernels');
const outFile = join(outDir, 'matmul.wasm');
const args = process.argv.slice(2);

function mtime(path) {
  return statSync(path).mtimeMs;
}

if (!args.includes('--force') && existsSync(outFile)
    && mtime(outFile) > Math.max(mtime(source), mtime(fileURLToPath(import.meta.url)))) {
  process.exit(0);
}

const options = [
  'matmul.ts',
  '--outFile', 'matmul.wasm',
  ...(args.includes('--wat') ? ['--textFile', 'matmul.wat'] : []),
  '--runtime', 'stub', // no allocator, no GC: the runtime lays out memory itself
  '--enable', 'simd',
  '--enable', 'threads',
  '--importMemory',
  '--sharedMemory',
  '--maximumMemory', '65536', // 4 GiB, the wasm32 limit
  '--optimizeLevel', '3',
  '--shrinkLevel', '0',
  '--noAssert',
];

const outputs = {};
let messages = '';
const { error } = await asc.main(options, {
  // The source is matmul.as (so that tsc and eslint leave it alone); the compiler sees it as matmul.ts.
  readFile: (name) => (name === 'matmul.ts' ? readFileSync(source, 'utf8') : null),
  writeFile: (name, contents) => { outputs[name] = contents; },
  listFiles: () => [],
  stdout: { write: (text) => { messages += text; return true; } },
  stderr: { write: (text) => { messages += text; return true; } },
});
if (error) {
  process.stderr.write(`${messages}\nbuilding ${source} failed: ${error.message}\n`);
  process.exit(1);
}
if (messages.trim()) process.stderr.write(messages);
mkdirSync(outDir, { recursive: true });
for (const [name, contents] of Object.entries(outputs)) writeFileSync(join(outDir, name), contents);
process.stderr.write(`built ${outFile}\n`);
