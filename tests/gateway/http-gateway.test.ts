// The HTTP API as the gateway runs it: `heliomesh gateway --http-port` with its key in
// http.apiKeyFile, read by `heliomesh status`; a key file others can read is refused; and
// /healthz follows the broker: 503 while Debian's Mosquitto (the external broker) is down,
// 200 again once the gateway has reconnected.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addNode } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway, startGatewayOnAnyBroker } from '../../gateway/index.js';
import { Mosquitto } from '../agent/brokers.js';
import { until } from '../../ground/until.js';
import { captureLog } from '../support/log.js';
import { freePort } from '../support/ports.js';

const run = promisify(execFile);
const CLI = 'dist/cli/index.js';
const KEY = 'gateway-http-key-5f1c2a9e';
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-http-gateway-'));
  await addNode(join(dir, 'nodes.json'), 'pi-1');
  await writeFile(join(dir, 'api.key'), `${KEY}\n`, { mode: 0o600 });
});

after(() => rm(dir, { recursive: true, force: true }));

const env = { ...process.env, HELIOMESH_API_KEY: '' };

test('heliomesh gateway --http-port serves the API with the key from http.apiKeyFile; status reads it', async () => {
  // Relative paths in the config, the key file's included, are relative to the config's folder.
  await writeFile(join(dir, 'gateway.yaml'), [
    'fleet: httptest',
    'broker: { host: 127.0.0.1, credentialsPath: nodes.json }',
    'http: { host: 127.0.0.1, apiKeyFile: api.key }',
    '',
  ].join('\n'));
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const gw = spawn('node', [CLI, 'gateway', '--config', join(dir, 'gateway.yaml'), '--mqtt-port', String(mqttPort), '--http-port', String(httpPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  gw.stdout.on('data', (b: Buffer) => (out += b.toString()));
  gw.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => gw.once('exit', (code) => r(code)));
  const base = `http://127.0.0.1:${httpPort}`;
  try {
    await until('the gateway starts', () => out.includes('gateway started') || gw.exitCode !== null, 60_000);
    assert.ok(out.includes(`"http":${httpPort}`), out);
    assert.equal((await fetch(`${base}/api/nodes`)).status, 401);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const models = await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(models.status, 200);
    const { stdout } = await run('node', [CLI, 'status', '--gateway', base, '--api-key', KEY], { env });
    assert.equal(stdout.trim(), 'no nodes yet: none has sent its birth to this gateway');
    await assert.rejects(run('node', [CLI, 'status', '--gateway', base], { env }), /wants its API key/);
    // No node serves any group: a completion fails at once with the group named.
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: 'bundled', prompt: 'Hi', max_tokens: 2 }),
    });
    assert.equal(res.status, 503);
    const body = await res.json() as { error: { message: string; code: string } };
    assert.equal(body.error.code, 'no_available_node');
    assert.match(body.error.message, /group g1/);
  } finally {
    gw.kill('SIGTERM');
  }
  assert.equal(await exited, 0, out);
});

test('a key file that others can read stops the gateway with what to do', async () => {
  await writeFile(join(dir, 'open.key'), `${KEY}\n`);
  await chmod(join(dir, 'open.key'), 0o644);
  const config = parseGatewayConfig({
    broker: { host: '127.0.0.1', port: 0, credentialsPath: join(dir, 'nodes.json') },
    http: { host: '127.0.0.1', port: 0, apiKeyFile: join(dir, 'open.key') },
  });
  await assert.rejects(startGateway(config, { clock: new RealClock(), log: captureLog().log }), /chmod 600 .*open\.key.*http\.apiKeyFile/);
  assert.throws(() => parseGatewayConfig({ broker: { credentialsPath: 'x' }, http: { apiKey: 'short' } }), /at least 16 characters/);
});

test('/healthz is 503 while the external broker is down and 200 once the gateway is back', async () => {
  const mosquitto = await Mosquitto.start();
  const gw = await startGatewayOnAnyBroker(parseGatewayConfig({
    fleet: 'health',
    broker: { external: { url: `mqtt://127.0.0.1:${mosquitto.port}` } },
    http: { host: '127.0.0.1', port: 0 },
  }), { clock: new RealClock(), log: captureLog().log });
  const health = async () => {
    const res = await fetch(`http://127.0.0.1:${gw.http!.port}/healthz`);
    return { status: res.status, body: await res.json() as { status: string; broker: { up: boolean } } };
  };
  try {
    assert.deepEqual((await health()).status, 200);
    await mosquitto.down();
    let h = await health();
    await until('health to say 503', async () => (h = await health()).status === 503, 20_000, 50);
    assert.equal(h.status, 503);
    assert.deepEqual([h.body.status, h.body.broker.up], ['broker down', false]);
    await mosquitto.up();
    await until('the gateway reconnects', () => gw.client.connected, 20_000);
    h = await health();
    assert.equal(h.status, 200);
    assert.equal(h.body.broker.up, true);
  } finally {
    await gw.close();
    await mosquitto.stop();
  }
});
