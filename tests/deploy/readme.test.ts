// The README's prerequisites are what `.ci/run` installs: someone who follows the README on
// a fresh Debian machine has every service and tool the suite starts. `.ci/run` is the
// source, since CI proves it is enough: each `command -v X || need+=(package)` line there
// names a package the README's apt-get line must name too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

// Compiled to dist/tests/deploy/, so the repository root is three levels up.
const REPO = resolve(import.meta.dirname, '../../..');

function ciPackages(): string[] {
  const ci = readFileSync(resolve(REPO, '.ci/run'), 'utf8');
  const found = [...ci.matchAll(/command -v \S+ .*\|\| need\+=\(([^)]+)\)/g)].flatMap((m) => m[1]!.trim().split(/\s+/));
  assert.ok(found.length >= 3, `.ci/run's package checks were read: ${found.join(', ')}`);
  return found;
}

test("the README's apt-get line names every Debian package .ci/run installs for the suite", () => {
  const readme = readFileSync(resolve(REPO, 'README.md'), 'utf8');
  const line = /apt-get install ([^`\n]+)/.exec(readme);
  assert.ok(line, 'the README has an apt-get install line for the suite');
  const listed = new Set(line[1]!.trim().split(/\s+/).filter((w) => !w.startsWith('-')));
  const missing = ciPackages().filter((p) => !listed.has(p));
  assert.deepEqual(missing, [], `README apt-get line "${line[0]}" lacks ${missing.join(', ')}`);
});
