// Revoking a node: a new password (`add-node --replace`) or removal (`remove-node`), loaded
// into the running broker as SIGHUP does, closes that node's live session at once and
// refuses the old password, while the other nodes stay connected.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addNode, loadCredentials } from '../../gateway/broker/index.js';
import { freePort } from '../support/ports.js';
import { closedByBroker, login, open, spawnGateway, startTestGateway, type TestGateway } from './support.js';

const run = promisify(execFile);
let t: TestGateway;

before(async () => {
  t = await startTestGateway({ nodes: ['node-a', 'node-b', 'node-c'] });
});

after(() => t.stop());

const creds = (id: string, password = t.passwords[id]) => ({ clientId: id, username: id, password });

test('a replaced password closes the node\'s session and only the new one logs in', async () => {
  const a = await open(t, t.url, creds('node-a'));
  const b = await open(t, t.url, creds('node-b'));
  const old = t.passwords['node-a']!;
  const fresh = await addNode(t.credentialsPath, 'node-a', { replace: true });
  assert.deepEqual(t.broker.setCredentials(loadCredentials(t.credentialsPath)), ['node-a']);
  await closedByBroker(a);
  assert.equal(b.connected, true, 'the other nodes stay');
  const refused = await login(t, t.url, creds('node-a', old));
  assert.ok(!refused.connected && refused.code === 4, 'the old password is refused');
  assert.equal((await login(t, t.url, creds('node-a', fresh))).connected, true);
  assert.ok(t.cap.records.some((r) => r.msg === 'node credentials revoked or replaced; its session is closed' && r.clientId === 'node-a'));
});

test('remove-node revokes a node: its session closes on reload and it can no longer log in', async () => {
  const b = await open(t, t.url, creds('node-b'));
  const c = await open(t, t.url, creds('node-c'));
  const { stdout } = await run('node', ['dist/cli/index.js', 'gateway', 'remove-node', 'node-b', '--file', t.credentialsPath]);
  assert.match(stdout, /node node-b removed/);
  assert.deepEqual(Object.keys(loadCredentials(t.credentialsPath).nodes).sort(), ['node-a', 'node-c']);
  assert.deepEqual(t.broker.setCredentials(loadCredentials(t.credentialsPath)), ['node-b']);
  await closedByBroker(b);
  assert.equal(c.connected, true);
  const refused = await login(t, t.url, creds('node-b'));
  assert.ok(!refused.connected && refused.code === 4, 'unknown node: CONNACK 4');
  await assert.rejects(run('node', ['dist/cli/index.js', 'gateway', 'remove-node', 'node-b', '--file', t.credentialsPath]), /node node-b has no credentials/);
  assert.deepEqual(t.broker.setCredentials(loadCredentials(t.credentialsPath)), [], 'an unchanged file disconnects nobody');
  assert.equal(c.connected, true);
});

test('through the CLI: SIGHUP to a running gateway closes the session of a node removed with remove-node', async () => {
  const file = join(t.dir, 'cli-nodes.json');
  const keep = await addNode(file, 'node-k');
  const gone = await addNode(file, 'node-g');
  writeFileSync(join(t.dir, 'cli.yaml'), 'fleet: sec\nbroker:\n  host: 127.0.0.1\n  credentialsPath: cli-nodes.json\n');
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const gw = spawnGateway(['--config', join(t.dir, 'cli.yaml'), '--mqtt-port', String(mqttPort), '--http-port', String(httpPort)]);
  let stopped: Awaited<ReturnType<typeof gw.stop>>;
  try {
    await gw.logged('gateway started');
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    const k = await open(t, url, { clientId: 'node-k', username: 'node-k', password: keep });
    const g = await open(t, url, { clientId: 'node-g', username: 'node-g', password: gone });
    await run('node', ['dist/cli/index.js', 'gateway', 'remove-node', 'node-g', '--file', file]);
    gw.signal('SIGHUP');
    await closedByBroker(g);
    const reloaded = await gw.logged('credentials reloaded', 5000);
    assert.deepEqual(reloaded.disconnected, ['node-g']);
    assert.equal(k.connected, true);
    const refused = await login(t, url, { clientId: 'node-g', username: 'node-g', password: gone });
    assert.ok(!refused.connected && refused.code === 4);
  } finally {
    stopped = await gw.stop();
  }
  assert.equal(stopped.code, 0, stopped.out);
});
