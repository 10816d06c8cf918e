// Commands that need no model start without TF.js: registering the verbs and printing help
// load commander and light modules only, and each action imports what it runs. Checked by
// the modules a run resolves, not by its time (CPU time is `heliomesh bench startup`'s).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../cli/index.js', import.meta.url));
let dir: string;
let preload: string;

/**
 * Registers a resolve hook (node:module register, which runs in the loader thread) that
 * appends every URL it resolves to $LOADED_LOG. Appending synchronously there means every
 * module the CLI got is on file before it could run, however the process exits.
 */
const PRELOAD = `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
let file;
export function initialize(data) { file = data.file; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(file, r.url + '\\\\n');
  return r;
}
\`), { data: { file: process.env.LOADED_LOG } });
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-cli-startup-'));
  preload = join(dir, 'record-loads.mjs');
  writeFileSync(preload, PRELOAD);
});

after(() => rm(dir, { recursive: true, force: true }));

async function loadedBy(args: string[]): Promise<{ stdout: string; urls: string[] }> {
  const log = join(dir, 'loaded.txt');
  rmSync(log, { force: true });
  const { stdout } = await run(process.execPath, ['--import', pathToFileURL(preload).href, CLI, ...args], {
    env: { ...process.env, LOADED_LOG: log },
    timeout: 60_000,
  });
  return { stdout, urls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

/** @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm (and tfjs-node, when installed). */
const HEAVY = '/node_modules/@tensorflow/';

const HELP_COMMANDS = [
  ['--help'],
  ['status', '--help'],
  ['gateway', '--help'],
  ['gateway', 'add-node', '--help'],
  ['agent', '--help'],
  ['agent', 'profile', '--help'],
  ['hw', 'read', '--help'],
  ['model', 'generate', '--help'],
  ['model', 'split', '--help'],
  ['sim', '--help'],
  ['demo', '--help'],
  ['bench', '--help'],
];

for (const args of HELP_COMMANDS) {
  test(`heliomesh ${args.join(' ')} loads neither TF.js nor its wasm backend`, async () => {
    const { stdout, urls } = await loadedBy(args);
    assert.match(stdout, /^Usage: heliomesh/m, 'the command printed its help');
    // The hook saw the run: commander itself is among what it resolved.
    assert.ok(urls.some((u) => u.includes('/node_modules/commander/')), `the hook recorded commander (${urls.length} URLs)`);
    assert.deepEqual(urls.filter((u) => u.includes(HEAVY)), []);
  });
}

test('the recorder sees TF.js when a command does load it', async () => {
  // `model generate` on a missing file fails, but only after its action imported the
  // model code, which imports TF.js: the same hook must see that.
  const log = join(dir, 'loaded-generate.txt');
  await run(process.execPath, ['--import', pathToFileURL(preload).href, CLI, 'model', 'generate', '--model', join(dir, 'no-such-model.bin'), '--max-tokens', '1'], {
    env: { ...process.env, LOADED_LOG: log },
    timeout: 60_000,
  }).catch(() => undefined);
  const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  assert.ok(urls.some((u) => u.includes('/node_modules/@tensorflow/tfjs/')), 'model generate imports TF.js, and the hook records it');
});
