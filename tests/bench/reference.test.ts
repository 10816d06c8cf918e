import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReferenceProcess } from '../../bench/pipeline/reference.js';

test('the in-process reference that cannot load its model fails the start instead of hanging it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-reference-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // An empty folder has no manifest: the process exits, and start() must say so.
  await assert.rejects(ReferenceProcess.start(join(dir, 'no-such-model')), /in-process reference exited \(code 1\)/);
});
