// `heliomesh model generate` end to end, as a user runs it: the built CLI on stories260K.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CLI = 'dist/cli/index.js';
const STORIES260K = '../shared/models/stories260K.bin';

test('greedy ids are the same with 1 and 3 in-process stages; errors say what to do', async () => {
  const args = (groups: number) => [CLI, 'model', 'generate', '--model', STORIES260K, '--prompt-ids', '1',
    '--temperature', '0', '--max-tokens', '64', '--ids', '--groups', String(groups)];
  const [one, three] = await Promise.all([
    run('node', args(1)),
    run('node', args(3)),
    assert.rejects(run('node', [CLI, 'model', 'generate', '--model', STORIES260K, '--prompt', 'Once upon a time']),
      (err: { stderr: string }) => /has no tokenizer.*use --prompt-ids/.test(err.stderr)),
  ]);
  const ids = one.stdout.trim().split(',').map(Number);
  assert.equal(ids.length, 64);
  assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 512));
  assert.equal(three.stdout, one.stdout);
  // the backend choice is logged (on stderr, which keeps stdout for the output)
  assert.match(one.stderr, /TF.js backend: wasm/);
});
