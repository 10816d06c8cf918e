// The bench's agents end with the bench, even when it dies of an uncaught error: a child left
// behind keeps reconnecting to a broker that is gone and loads every later measurement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from '../../ground/until.js';
import { alive } from '../support/process.js';

const AGENTS = fileURLToPath(new URL('../../bench/reap.js', import.meta.url));

/** Runs a script that starts `sleep 60` as a child (reaped or not), prints its pid and dies of an uncaught error. */
async function crashWithChild(dir: string, reap: boolean): Promise<{ pid: number; code: number | null }> {
  const script = join(dir, `crash-${reap}.mjs`);
  writeFileSync(script, [
    `import { spawn } from 'node:child_process';`,
    `import { reapOnExit } from ${JSON.stringify(AGENTS)};`,
    `const child = spawn('sleep', ['60'], { stdio: 'ignore' });`,
    reap ? `reapOnExit(child);` : ``,
    `console.log(child.pid);`,
    `setTimeout(() => { throw new Error('the bench crashed'); }, 50);`,
  ].join('\n'));
  const p = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
  return { pid: Number(out.trim()), code };
}

test('a child the bench started is ended when the bench dies of an uncaught error; one not reaped outlives it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-reap-'));
  const left: number[] = [];
  t.after(() => {
    for (const pid of left) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const reaped = await crashWithChild(dir, true);
  assert.notEqual(reaped.code, 0, 'the script died of its error');
  assert.ok(Number.isInteger(reaped.pid) && reaped.pid > 0, `the child's pid was printed: ${reaped.pid}`);
  left.push(reaped.pid);
  await until('the reaped child gone', () => !alive(reaped.pid), 5000, 20);

  // The control: the same crash without the hook leaves the child running.
  const orphan = await crashWithChild(dir, false);
  left.push(orphan.pid);
  assert.notEqual(orphan.code, 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(alive(orphan.pid), 'without reapOnExit the child outlives the crash');
});
