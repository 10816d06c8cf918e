// `heliomesh gateway add-node` and `heliomesh gateway --config` as a user runs them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connectAsync } from 'mqtt';
import { freePort } from '../support/ports.js';
import { until } from '../../ground/until.js';

const run = promisify(execFile);
const CLI = 'dist/cli/index.js';
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-gateway-cli-'));
});

after(() => rm(dir, { recursive: true, force: true }));

test('add-node prints the password once and a running gateway accepts it', async () => {
  const { stdout } = await run('node', [CLI, 'gateway', 'add-node', 'pi-7', '--file', join(dir, 'nodes.json')]);
  const password = /^password: (\S+)$/m.exec(stdout)?.[1];
  assert.ok(password, stdout);
  assert.equal(statSync(join(dir, 'nodes.json')).mode & 0o777, 0o600);
  await assert.rejects(run('node', [CLI, 'gateway', 'add-node', 'pi-7', '--file', join(dir, 'nodes.json')]), /--replace/);

  const port = await freePort();
  // Paths in the config are relative to the config file's folder.
  writeFileSync(join(dir, 'gateway.yaml'), [
    'fleet: cli',
    'broker:',
    '  host: 127.0.0.1',
    '  credentialsPath: nodes.json',
    '  nodeTopics:',
    "    publish: ['hm/node/{node}/#']",
    "    subscribe: ['hm/node/{node}/cmd/#']",
    '',
  ].join('\n'));
  // The command always serves the HTTP API; a free port keeps it off the default 8080.
  const httpPort = await freePort();
  const gw = spawn('node', [CLI, 'gateway', '--config', join(dir, 'gateway.yaml'), '--mqtt-port', String(port), '--http-port', String(httpPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  gw.stdout.on('data', (b: Buffer) => (out += b.toString()));
  gw.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => gw.once('exit', (code) => r(code)));
  try {
    await until('gateway started', () => {
      if (gw.exitCode !== null) throw new Error(`the gateway exited with ${gw.exitCode}`);
      return out.includes('gateway started');
    }, 10_000, 50).catch((err: Error) => assert.fail(`gateway did not start (${err.message}):\n${out}`));
    assert.ok(out.includes('not logging metrics'), 'says once that InfluxDB is not configured');
    const node = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'pi-7', username: 'pi-7', password, reconnectPeriod: 0 });
    await node.endAsync();
  } finally {
    gw.kill('SIGTERM');
  }
  assert.equal(await exited, 0, out);
  assert.ok(out.includes('gateway stopped'));
});

test('a config error tells the user what to fix', async () => {
  writeFileSync(join(dir, 'bad.yaml'), 'broker:\n  port: 1883\n');
  await assert.rejects(run('node', [CLI, 'gateway', '--config', join(dir, 'bad.yaml')]), (err: Error & { stderr: string }) =>
    err.stderr.includes('credentialsPath') && err.stderr.includes('docs/gateway.md'));
  await assert.rejects(run('node', [CLI, 'gateway']), /pass --config FILE/);
});
