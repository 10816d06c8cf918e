// deploy/mosquitto: the ACL lines are the protocol's node ACL, and the shipped config runs
// on Debian's mosquitto with them: node A reaches its own topics and none of B's. The same
// probe runs against the gateway's embedded broker, so the two can be compared.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { RealClock } from '../../ground/clock.js';
import { until } from '../../ground/until.js';
import { Broker, BrokerConfigSchema, addNode, loadCredentials } from '../../gateway/broker/index.js';
import { nodeAclPatterns, nodeTopic } from '../../protocol/index.js';
import { freePort } from '../support/ports.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
const FLEET = 'rooftop';
const GATEWAY_USER = 'heliomesh-gateway';

let dir: string;
const clients: MqttClient[] = [];
let mosquitto: ChildProcess | undefined;
let mosquittoPort: number;
let mosquittoStderr = '';
let embedded: Broker | undefined;
const passwords: Record<string, string> = {};

function mqtt(url: string, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolvePromise, reject) => {
    const c = mqttConnect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    clients.push(c);
    c.once('connect', () => resolvePromise(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const open = await new Promise<boolean>((r) => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (open) return;
    if (mosquitto?.exitCode !== null) throw new Error(`mosquitto exited with ${String(mosquitto?.exitCode)}: ${mosquittoStderr}`);
    if (Date.now() > end) throw new Error(`mosquitto did not open port ${port}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'heliomesh-mosq-acl-'));
  // Mosquitto started as root reads the password and ACL files after dropping to its own user.
  chmodSync(dir, 0o755);
  for (const u of ['pi-a', 'pi-b']) passwords[u] = await addNode(join(dir, 'nodes.json'), u);
  passwords[GATEWAY_USER] = 'gateway-secret';
  passwords.homeassistant = 'ha-secret';
  const pw = join(dir, 'passwd');
  for (const [i, [user, password]] of Object.entries(passwords).entries()) {
    const r = spawnSync('mosquitto_passwd', [...(i === 0 ? ['-c'] : []), '-b', pw, user, password], { encoding: 'utf8' });
    assert.equal(r.error, undefined, 'mosquitto_passwd is missing: apt-get install mosquitto');
    assert.equal(r.status, 0, r.stderr);
  }
  chmodSync(pw, 0o644);
  writeFileSync(join(dir, 'aclfile'), readFileSync(join(ROOT, 'deploy/mosquitto/aclfile')));
  chmodSync(join(dir, 'aclfile'), 0o644);
  mosquittoPort = await freePort();
  // The shipped file with this test's paths and port; nothing else changed.
  const conf = readFileSync(join(ROOT, 'deploy/mosquitto/mosquitto.conf'), 'utf8')
    .replace(/^password_file .*$/m, `password_file ${pw}`)
    .replace(/^acl_file .*$/m, `acl_file ${join(dir, 'aclfile')}`)
    .replace(/^listener 1883$/m, `listener ${mosquittoPort} 127.0.0.1`);
  assert.match(conf, new RegExp(`listener ${mosquittoPort}`));
  writeFileSync(join(dir, 'mosquitto.conf'), conf);
  mosquitto = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  mosquitto.stderr?.on('data', (b: Buffer) => { mosquittoStderr = (mosquittoStderr + b.toString()).slice(-2000); });
  const failed = once(mosquitto, 'error').then(([err]) => { throw new Error(`cannot start ${MOSQUITTO}: ${(err as Error).message} (apt-get install mosquitto)`); });
  await Promise.race([waitForPort(mosquittoPort, 5000), failed]);

  const config = BrokerConfigSchema.parse({ host: '127.0.0.1', port: 0, credentialsPath: join(dir, 'nodes.json') });
  embedded = await Broker.start(config, {
    clock: new RealClock(), log: pino({ level: 'silent' }), credentials: loadCredentials(join(dir, 'nodes.json')), patterns: nodeAclPatterns(FLEET),
  });
});

after(async () => {
  for (const c of clients) await c.endAsync(true);
  await embedded?.close();
  if (mosquitto && mosquitto.exitCode === null) {
    mosquitto.kill('SIGTERM');
    await once(mosquitto, 'exit');
  }
  rmSync(dir, { recursive: true, force: true });
});

test('the ACL file is the protocol\'s node ACL, with %u for the node id', () => {
  const lines = readFileSync(join(ROOT, 'deploy/mosquitto/aclfile'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const pattern = (access: string) => lines.filter((l) => l.startsWith(`pattern ${access} `)).map((l) => l.split(/\s+/)[2]!.replace('%u', '{node}')).sort();
  const ours = nodeAclPatterns(FLEET);
  assert.deepEqual(pattern('write'), [...ours.publish].sort());
  assert.deepEqual(pattern('read'), [...ours.subscribe].sort());
  assert.deepEqual(pattern('readwrite'), [], 'no node topic is both ways');
});

interface Probe {
  ownPublishDelivered: boolean;
  ownCommandDelivered: boolean;
  foreignCommandDelivered: boolean;
  foreignSubscribeGranted: boolean;
  foreignPublishDelivered: boolean;
  closedAfterForeignPublish: boolean;
  wrongPasswordRefused: boolean;
}

/** Node A against node B's topics, watched by a client with the gateway's full access. */
async function probe(url: string, gateway: IClientOptions): Promise<Probe> {
  const gw = await mqtt(url, gateway);
  const seenByGateway: string[] = [];
  gw.on('message', (t) => seenByGateway.push(t));
  await gw.subscribeAsync(`heliomesh/${FLEET}/node/+/slot`, { qos: 1 });
  const a = await mqtt(url, { clientId: 'pi-a', username: 'pi-a', password: passwords['pi-a'] });
  const seenByA: string[] = [];
  a.on('message', (t) => seenByA.push(t));

  const own = (kind: 'slot' | 'cmd') => nodeTopic(FLEET, 'pi-a', kind);
  const foreign = (kind: 'slot' | 'cmd') => nodeTopic(FLEET, 'pi-b', kind);
  await a.subscribeAsync(own('cmd'), { qos: 1 });
  // MQTT.js rejects a SUBACK with 0x80 (failure).
  const granted = await a.subscribeAsync(foreign('cmd'), { qos: 1 }).then((g) => g[0]?.qos !== 128, () => false);
  // B's command first, A's second: once A has its own, B's would have come before it.
  await gw.publishAsync(foreign('cmd'), '{}', { qos: 1 });
  await gw.publishAsync(own('cmd'), '{}', { qos: 1 });
  await until("A's own command", () => seenByA.includes(own('cmd')));

  await a.publishAsync(own('slot'), '{}', { qos: 1 });
  await until("A's own slot record at the gateway", () => seenByGateway.includes(own('slot')));
  let closed = false;
  a.once('close', () => { closed = true; });
  // The broker may drop the packet (Mosquitto) or the connection (the embedded broker).
  await Promise.race([a.publishAsync(foreign('slot'), '{}', { qos: 1 }).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  // A sentinel from the gateway on A's topic bounds the wait for anything A's publish caused.
  await gw.publishAsync(own('slot'), '{"sentinel":true}', { qos: 1 });
  await until("the gateway's sentinel", () => seenByGateway.filter((t) => t === own('slot')).length >= 2);
  await new Promise((r) => setTimeout(r, 200));

  let wrongPasswordRefused = false;
  await mqtt(url, { clientId: 'pi-b', username: 'pi-b', password: 'not-the-password' }).then(
    (c) => c.endAsync(true),
    () => { wrongPasswordRefused = true; },
  );
  return {
    ownPublishDelivered: seenByGateway.includes(own('slot')),
    ownCommandDelivered: seenByA.includes(own('cmd')),
    foreignCommandDelivered: seenByA.includes(foreign('cmd')),
    foreignSubscribeGranted: granted,
    foreignPublishDelivered: seenByGateway.includes(foreign('slot')),
    closedAfterForeignPublish: closed,
    wrongPasswordRefused,
  };
}

test('Debian mosquitto with the shipped config: node A reaches its own topics, never B\'s', async () => {
  const p = await probe(`mqtt://127.0.0.1:${mosquittoPort}`, { clientId: GATEWAY_USER, username: GATEWAY_USER, password: passwords[GATEWAY_USER] });
  assert.equal(p.ownPublishDelivered, true);
  assert.equal(p.ownCommandDelivered, true);
  assert.equal(p.foreignCommandDelivered, false, 'B\'s commands never reach A');
  assert.equal(p.foreignPublishDelivered, false, 'A cannot publish as B');
  assert.equal(p.wrongPasswordRefused, true);
  // Where Mosquitto 2.0 differs from the embedded broker: it grants the subscription and
  // filters each message by the read ACL, and drops a forbidden publish silently.
  assert.equal(p.foreignSubscribeGranted, true);
  assert.equal(p.closedAfterForeignPublish, false);
});

test('the embedded broker under the same probe: the same reach, refusals made visible', async () => {
  const p = await probe(`mqtt://127.0.0.1:${embedded!.ports.mqtt}`, { clientId: 'gateway-probe', ...embedded!.internal });
  assert.equal(p.ownPublishDelivered, true);
  assert.equal(p.ownCommandDelivered, true);
  assert.equal(p.foreignCommandDelivered, false);
  assert.equal(p.foreignPublishDelivered, false);
  assert.equal(p.wrongPasswordRefused, true);
  assert.equal(p.foreignSubscribeGranted, false, 'SUBACK 0x80');
  assert.equal(p.closedAfterForeignPublish, true, 'a node publishing elsewhere is disconnected');
});

test('anonymous clients and a node claiming another client id', async () => {
  await assert.rejects(mqtt(`mqtt://127.0.0.1:${mosquittoPort}`, { clientId: 'nobody' }), /Not authorized|Bad username/i);
  // use_username_as_clientid: pi-a's login is pi-a whatever client id it asks for, so it
  // cannot take over pi-b's session; what it publishes is still bound to pi-a's topics.
  const a = await mqtt(`mqtt://127.0.0.1:${mosquittoPort}`, { clientId: 'pi-b', username: 'pi-a', password: passwords['pi-a'] });
  const gw = await mqtt(`mqtt://127.0.0.1:${mosquittoPort}`, { clientId: GATEWAY_USER, username: GATEWAY_USER, password: passwords[GATEWAY_USER] });
  const seen: string[] = [];
  gw.on('message', (t) => seen.push(t));
  await gw.subscribeAsync(`heliomesh/${FLEET}/node/+/state`, { qos: 1 });
  await a.publishAsync(nodeTopic(FLEET, 'pi-b', 'state'), '{}', { qos: 1 });
  await a.publishAsync(nodeTopic(FLEET, 'pi-a', 'state'), '{}', { qos: 1 });
  await until("pi-a's own state", () => seen.includes(nodeTopic(FLEET, 'pi-a', 'state')), 3000);
  assert.deepEqual(seen, [nodeTopic(FLEET, 'pi-a', 'state')]);
});

test('Home Assistant\'s login reads the nodes\' slots and states and the gateway\'s discovery configs, and commands nothing', async () => {
  const url = `mqtt://127.0.0.1:${mosquittoPort}`;
  const gw = await mqtt(url, { clientId: GATEWAY_USER, username: GATEWAY_USER, password: passwords[GATEWAY_USER] });
  const config = 'homeassistant/sensor/heliomesh_rooftop_pi_a_battery/config';
  await gw.publishAsync(config, '{"name":"Battery"}', { qos: 1, retain: true });
  const a = await mqtt(url, { clientId: 'pi-a', username: 'pi-a', password: passwords['pi-a'] });
  const seenByA: string[] = [];
  a.on('message', (t) => seenByA.push(t));
  await a.subscribeAsync(nodeTopic(FLEET, 'pi-a', 'cmd'), { qos: 1 });
  const ha = await mqtt(url, { clientId: 'homeassistant', username: 'homeassistant', password: passwords.homeassistant });
  const seenByHa: string[] = [];
  ha.on('message', (t) => seenByHa.push(t));
  await ha.subscribeAsync([`heliomesh/${FLEET}/node/+/slot`, `heliomesh/${FLEET}/node/+/state`, 'homeassistant/#'], { qos: 1 });
  await a.publishAsync(nodeTopic(FLEET, 'pi-a', 'slot'), '{}', { qos: 1 });
  await a.publishAsync(nodeTopic(FLEET, 'pi-a', 'state'), '{}', { qos: 1 });
  await ha.publishAsync(nodeTopic(FLEET, 'pi-a', 'cmd'), '{}', { qos: 1 });
  // The gateway's command after Home Assistant's: once A has it, Home Assistant's would have come first.
  await gw.publishAsync(nodeTopic(FLEET, 'pi-a', 'cmd'), '{"from":"gateway"}', { qos: 1 });
  await until("Home Assistant's three topics and the gateway's command", () => seenByHa.length >= 3 && seenByA.length >= 1, 3000);
  assert.deepEqual(seenByHa.sort(), [config, nodeTopic(FLEET, 'pi-a', 'slot'), nodeTopic(FLEET, 'pi-a', 'state')].sort());
  assert.deepEqual(seenByA, [nodeTopic(FLEET, 'pi-a', 'cmd')], 'only the gateway\'s command reached the node');
});
