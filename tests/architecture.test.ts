// Enforces the layout rules of shared/DESIGN.md over the whole import graph: which folder
// may import which, a ground floor that imports nothing, no import cycles, and a scheduler
// without I/O. ESLint checks single
// imports; a cycle or a transitive reach needs the whole graph, which is small enough to
// read here with one regular expression rather than pull in a dependency-graph tool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const folders = ['ground', 'protocol', 'hardware', 'models', 'agent', 'gateway', 'sim', 'demo', 'bench', 'cli'];
// What each folder may import besides the ground floor, which every folder may import and
// which itself imports nothing of ours. The benchmarks sit below the command line: `cli`
// runs them, so they must not reach back up into it.
const layout: Record<string, string[]> = {
  ground: [],
  protocol: [],
  hardware: [],
  models: [],
  agent: ['protocol', 'hardware', 'models'],
  gateway: ['protocol', 'models'],
  sim: ['gateway/scheduler'],
  demo: ['protocol', 'hardware', 'models', 'agent', 'gateway'],
  bench: folders.filter((f) => f !== 'cli'),
  cli: folders,
};
const allowed: Record<string, string[]> = Object.fromEntries(
  Object.entries(layout).map(([folder, deps]) => [folder, folder === 'ground' ? deps : ['ground', ...deps]]),
);

function sources(dir: string): string[] {
  let out: string[] = [];
  let names: string[];
  try { names = readdirSync(dir); } catch { return out; }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(sources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const importRe = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(importRe)) specs.push((m[1] ?? m[2]) as string);
  return specs;
}

const files = folders.flatMap((f) => sources(join(root, f)));
const graph = new Map<string, string[]>();
for (const file of files) {
  const deps = importsOf(file)
    .filter((s) => s.startsWith('.'))
    .map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
  graph.set(file, deps);
}
const rel = (p: string) => relative(root, p).split(sep).join('/');

/** Every file `start` reaches through relative imports, itself included. */
function reach(start: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...start];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    todo.push(...(graph.get(file) ?? []));
  }
  return seen;
}

test('every folder imports only what the layout allows', () => {
  const violations: string[] = [];
  for (const [file, deps] of graph) {
    const from = rel(file).split('/')[0] as string;
    for (const dep of deps) {
      const target = rel(dep);
      const to = target.split('/')[0] as string;
      if (to === from || !folders.includes(to)) continue;
      if (!allowed[from]!.some((a) => target === a || target.startsWith(a + '/'))) {
        violations.push(`${rel(file)} -> ${target}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test('the import graph has no cycles', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (node: string, path: string[]) => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'open') {
      cycles.push([...path.slice(path.indexOf(node)), node].map(rel).join(' -> '));
      return;
    }
    state.set(node, 'open');
    for (const dep of graph.get(node) ?? []) visit(dep, [...path, node]);
    state.set(node, 'done');
  };
  for (const node of graph.keys()) visit(node, []);
  assert.deepEqual(cycles, []);
});

test('the scheduler is pure: no I/O modules, no clock', () => {
  const offenders: string[] = [];
  for (const file of files.filter((f) => rel(f).startsWith('gateway/scheduler/'))) {
    const text = readFileSync(file, 'utf8');
    for (const spec of importsOf(file)) {
      if (!spec.startsWith('.')) offenders.push(`${rel(file)} imports ${spec}`);
    }
    if (/\bDate\.now\(|new Date\(|performance\.now\(|process\./.test(text)) offenders.push(`${rel(file)} reads the clock or process`);
  }
  assert.deepEqual(offenders, []);
});

test('the ground floor holds the shared basics and imports nothing: no other folder, no I/O module', () => {
  const ground = files.filter((f) => rel(f).startsWith('ground/'));
  for (const basic of ['clock', 'random', 'log', 'until']) assert.ok(ground.map(rel).includes(`ground/${basic}.ts`), `ground/${basic}.ts`);
  const offenders: string[] = [];
  for (const file of ground) {
    for (const spec of importsOf(file)) {
      const target = spec.startsWith('.') ? rel(resolve(dirname(file), spec)) : spec;
      if (!target.startsWith('ground/')) offenders.push(`${rel(file)} imports ${target}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('the benchmarks do not reach back up into the command line', () => {
  const up = [...reach(files.filter((f) => rel(f).startsWith('bench/')))].map(rel).filter((f) => f.startsWith('cli/'));
  assert.deepEqual(up, []);
});

test('the scheduler reaches no schema library and no I/O, not even through the protocol rules it shares', () => {
  const scheduler = files.filter((f) => rel(f).startsWith('gateway/scheduler/'));
  const reached = [...reach(scheduler)];
  assert.ok(reached.map(rel).includes('protocol/rules.ts'), 'PM(E) comes from the protocol');
  const offenders = reached.flatMap((file) => importsOf(file).filter((s) => !s.startsWith('.')).map((s) => `${rel(file)} imports ${s}`));
  assert.deepEqual(offenders, []);
});
