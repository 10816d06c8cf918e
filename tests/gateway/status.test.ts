// `heliomesh status` as a user runs it, against a running HTTP API over a real registry:
// the table, --json, the API key, and the errors when the gateway cannot be reached.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { ago, nodesTable } from '../../cli/status.js';
import { freePort } from '../support/ports.js';
import { startApi, type ApiUnderTest } from './http-support.js';

const run = promisify(execFile);
const CLI = 'dist/cli/index.js';
const KEY = 'status-test-key-0123456789';
let open: ApiUnderTest;
let keyed: ApiUnderTest;

before(async () => {
  open = await startApi();
  keyed = await startApi({}, { apiKey: KEY });
});

after(async () => {
  await open.api.close();
  await keyed.api.close();
});

const env = { ...process.env, HELIOMESH_API_KEY: '' };

test('status prints the nodes table from a running gateway', async () => {
  const { stdout } = await run('node', [CLI, 'status', '--gateway', open.base], { env });
  const lines = stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3, stdout);
  assert.match(lines[0]!, /^node\s+group\s+online\s+battery\s+mode\s+γ\s+queue\s+q_lim\s+weight\s+last seen$/);
  assert.match(lines[1]!, /^pi-1\s+g0\s+yes\s+63\.0 %\s+60W \(PM 3\)\s+1\s+1\/2\s+0\.420\s+1\.000\s+\d+ s ago$/);
  assert.match(lines[2]!, /^pi-2\s+g1\s+no\s+0\.0 %\s+saving\s+0\s+0\/2\s+-\s+0\.000\s+\d+ s ago$/);
});

test('status --json prints the gateway\'s answer', async () => {
  const { stdout } = await run('node', [CLI, 'status', '--gateway', `${open.base}/`, '--json'], { env });
  const body = JSON.parse(stdout) as { nodes: Array<{ node: string; qLim: number | null }> };
  assert.deepEqual(body.nodes.map((n) => [n.node, n.qLim]), [['pi-1', 0.42], ['pi-2', null]]);
});

test('status sends the API key from --api-key or HELIOMESH_API_KEY, and says when one is needed', async () => {
  await assert.rejects(run('node', [CLI, 'status', '--gateway', keyed.base], { env }), (err: Error & { stderr: string; code: number }) =>
    err.code === 1 && err.stderr.includes('wants its API key') && err.stderr.includes('--api-key'));
  const flag = await run('node', [CLI, 'status', '--gateway', keyed.base, '--api-key', KEY], { env });
  assert.match(flag.stdout, /^pi-1 /m);
  const fromEnv = await run('node', [CLI, 'status', '--gateway', keyed.base], { env: { ...env, HELIOMESH_API_KEY: KEY } });
  assert.match(fromEnv.stdout, /^pi-2 /m);
});

test('status says clearly when the gateway cannot be reached or is not a gateway', async () => {
  const port = await freePort();
  await assert.rejects(run('node', [CLI, 'status', '--gateway', `http://127.0.0.1:${port}`], { env }), (err: Error & { stderr: string }) =>
    err.stderr.includes(`cannot reach the gateway at http://127.0.0.1:${port} (ECONNREFUSED)`) && err.stderr.includes('--gateway http://HOST:PORT'));
  await assert.rejects(run('node', [CLI, 'status', '--gateway', 'not a url'], { env }), /is not a URL/);
  // Something that answers, but is not a gateway.
  const bodies = ['<html>hello</html>', '{"nodes": [{"node": 3}]}'];
  const other = createServer((req, res) => res.end(bodies.shift()));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
  try {
    const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    await assert.rejects(run('node', [CLI, 'status', '--gateway', url], { env }), /did not answer with JSON/);
    await assert.rejects(run('node', [CLI, 'status', '--gateway', url], { env }), /did not answer with the gateway's node list/);
  } finally {
    other.close();
  }
});

test('the table formats ages and an empty fleet', () => {
  assert.equal(nodesTable([], 0), 'no nodes yet: none has sent its birth to this gateway');
  assert.deepEqual([ago(4_000), ago(600_000), ago(5 * 3600_000), ago(3 * 86_400_000)], ['4 s ago', '10 min ago', '5 h ago', '3 d ago']);
});
