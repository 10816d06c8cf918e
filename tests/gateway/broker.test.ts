// The broker with real MQTT.js clients: logins, the ACL, flood and size limits, and the
// credentials file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import { RealClock, type Clock } from '../../ground/clock.js';
import {
  Broker, BrokerConfigSchema, addNode, filterWithin, loadCredentials, topicMatches, verifyPassword,
  type BrokerConfigInput, type NodeTopicPatterns,
} from '../../gateway/broker/index.js';
import { captureLog } from '../support/log.js';
import { until } from '../../ground/until.js';

const patterns: NodeTopicPatterns = {
  publish: ['hm/node/{node}/#'],
  subscribe: ['hm/node/{node}/cmd/#', 'hm/node/{node}/job/#'],
};

let dir: string;
let credPath: string;
const passwords: Record<string, string> = {};
let broker: Broker;
const cap = captureLog();
let url: string;
const clients: MqttClient[] = [];

async function startBroker(over: Partial<BrokerConfigInput> = {}, clock: Clock = new RealClock(), log = cap.log) {
  const config = BrokerConfigSchema.parse({ port: 0, host: '127.0.0.1', credentialsPath: credPath, maxPacketBytes: 4096, ...over });
  return Broker.start(config, { clock, log, credentials: loadCredentials(credPath), patterns });
}

/** Resolves on CONNACK 0; rejects on a refusal or when the broker just closes the socket. */
function connect(u: string, opts: { clientId: string; username?: string; password?: string }): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqttConnect(u, { ...opts, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', (err) => reject(err));
    c.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-broker-'));
  credPath = join(dir, 'nodes.json');
  passwords['pi-1'] = await addNode(credPath, 'pi-1');
  passwords['pi-2'] = await addNode(credPath, 'pi-2');
  broker = await startBroker();
  url = `mqtt://127.0.0.1:${broker.ports.mqtt}`;
});

after(async () => {
  for (const c of clients) await c.endAsync(true);
  await broker.close();
  await rm(dir, { recursive: true, force: true });
});

test('the credentials file is private, salted and refuses duplicates', async () => {
  assert.equal(statSync(credPath).mode & 0o777, 0o600);
  const file = loadCredentials(credPath);
  const a = file.nodes['pi-1']!;
  const b = file.nodes['pi-2']!;
  assert.notEqual(a.salt, b.salt);
  assert.ok(!readFileSync(credPath, 'utf8').includes(passwords['pi-1']!), 'the password itself is never stored');
  assert.equal(await verifyPassword(a, passwords['pi-1']!), true);
  assert.equal(await verifyPassword(a, passwords['pi-2']!), false);
  await assert.rejects(addNode(credPath, 'pi-1'), /already has credentials.*--replace/);
  await assert.rejects(addNode(credPath, 'bad/id'), /node id "bad\/id" is not a valid id/);
  await assert.rejects(addNode(credPath, '$gateway'), /not a valid id/, 'the internal client\'s name cannot be taken');

  const loose = join(dir, 'loose.json');
  writeFileSync(loose, readFileSync(credPath));
  chmodSync(loose, 0o644);
  assert.throws(() => loadCredentials(loose), /chmod 600/);
  const replaced = await addNode(loose.replace('loose', 'copy'), 'pi-9');
  assert.equal(typeof replaced, 'string');
  assert.throws(() => loadCredentials(join(dir, 'missing.json')), /heliomesh gateway add-node/);
});

test('nodes with the right password connect; wrong, missing or borrowed credentials are refused', async () => {
  const ok = await connect(url, { clientId: 'pi-1', username: 'pi-1', password: passwords['pi-1'] });
  assert.equal(ok.connected, true);
  const before = broker.stats().refusedAuth;
  await assert.rejects(connect(url, { clientId: 'pi-2', username: 'pi-2', password: 'guess' }), /Bad username or password/);
  await assert.rejects(connect(url, { clientId: 'pi-2' }), /Bad username or password/);
  await assert.rejects(connect(url, { clientId: 'pi-7', username: 'pi-7', password: passwords['pi-1'] }), /Bad username or password/);
  await assert.rejects(connect(url, { clientId: 'pi-1', username: 'pi-2', password: passwords['pi-2'] }), /Not authorized/);
  await assert.rejects(connect(url, { clientId: 'x', username: '$gateway', password: 'nope' }), /Bad username or password/);
  assert.equal(broker.stats().refusedAuth - before, 5);
  assert.ok(cap.records.some((r) => r.msg === 'MQTT login refused: wrong password' && r.clientId === 'pi-2'));
});

test('a node publishes under its own topics and the internal client sees everything', async () => {
  const internal = await connect(url, { clientId: 'gateway', ...broker.internal });
  await internal.subscribeAsync('#', { qos: 1 });
  const got: string[] = [];
  internal.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
  const node = await connect(url, { clientId: 'pi-2', username: 'pi-2', password: passwords['pi-2'] });
  await node.publishAsync('hm/node/pi-2/slot', 'one', { qos: 1 });
  const granted = await node.subscribeAsync(['hm/node/pi-2/cmd/#', 'hm/node/pi-2/job/+']);
  assert.deepEqual(granted.map((g) => g.qos), [0, 0]);
  for (const filter of ['hm/node/pi-1/cmd/#', '#', 'hm/node/+/cmd/#']) {
    // MQTT.js turns a SUBACK return code of 0x80 into an error.
    await assert.rejects(node.subscribeAsync(filter), /Subscribe error/, filter);
  }
  assert.equal(node.connected, true, 'a refused subscription leaves the client connected');
  const cmds: string[] = [];
  node.on('message', (topic) => cmds.push(topic));
  await internal.publishAsync('hm/node/pi-2/cmd/mode', 'x', { qos: 1 });
  await internal.publishAsync('hm/node/pi-1/cmd/mode', 'x', { qos: 1 });
  await until('three publishes and a command', () => got.length >= 3 && cmds.length >= 1, 3000);
  assert.ok(got.includes('hm/node/pi-2/slot=one'));
  assert.deepEqual(cmds, ['hm/node/pi-2/cmd/mode'], 'a node receives only its own commands');
  assert.ok(cap.records.some((r) => String(r.msg).startsWith('subscription outside') && r.clientId === 'pi-2' && r.filter === 'hm/node/pi-1/cmd/#'));
});

async function closed(c: MqttClient): Promise<void> {
  if (!c.connected) return;
  await new Promise<void>((resolve) => c.once('close', () => resolve()));
}

test('publishing outside its own topics closes the node\'s connection', async () => {
  const node = await connect(url, { clientId: 'pi-1', username: 'pi-1', password: passwords['pi-1'] });
  const before = broker.stats().refusedAcl;
  node.publish('hm/node/pi-2/slot', 'spoof', { qos: 1 });
  await closed(node);
  assert.equal(broker.stats().refusedAcl - before, 1);
  assert.ok(cap.records.some((r) => String(r.msg).startsWith('publish outside') && r.clientId === 'pi-1' && r.topic === 'hm/node/pi-2/slot'));
});

test('a tap sees each authorized publish, the internal client\'s too, and holds it as long as it answers', async (t) => {
  const seen: string[] = [];
  broker.tap((topic, payload) => {
    seen.push(`${topic}=${payload.toString()}`);
    return payload.toString() === 'held' ? 300 : 0;
  });
  t.after(() => broker.tap(undefined));
  const internal = await connect(url, { clientId: 'gateway-tap', ...broker.internal });
  await internal.subscribeAsync('hm/node/pi-1/#', { qos: 0 });
  const arrived = new Map<string, number>();
  internal.on('message', (_topic, payload) => arrived.set(payload.toString(), performance.now()));
  const node = await connect(url, { clientId: 'pi-1', username: 'pi-1', password: passwords['pi-1'] });
  const latency = async (payload: string): Promise<number> => {
    const t0 = performance.now();
    node.publish('hm/node/pi-1/job/out', payload, { qos: 0 });
    const deadline = Date.now() + 5000;
    while (!arrived.has(payload) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.ok(arrived.has(payload), `${payload} was delivered`);
    return arrived.get(payload)! - t0;
  };
  const passed = await latency('passed');
  const held = await latency('held');
  // A timer may fire up to the event loop's cached time early.
  assert.ok(held >= 290, `held ${held.toFixed(1)} ms at the broker`);
  assert.ok(held > passed, `held ${held.toFixed(1)} ms, passed ${passed.toFixed(1)} ms`);
  await internal.publishAsync('hm/node/pi-1/job/in', 'frame', { qos: 1 });
  node.publish('hm/node/pi-2/slot', 'spoof', { qos: 1 });
  await closed(node);
  assert.deepEqual(seen, ['hm/node/pi-1/job/out=passed', 'hm/node/pi-1/job/out=held', 'hm/node/pi-1/job/in=frame'], 'once each; a refused publish never reaches the tap');
});

test('an oversized packet closes the connection before it is buffered', async () => {
  const node = await connect(url, { clientId: 'pi-1', username: 'pi-1', password: passwords['pi-1'] });
  const before = broker.stats().refusedSize;
  node.publish('hm/node/pi-1/slot', Buffer.alloc(8192, 1), { qos: 0 });
  await closed(node);
  assert.equal(broker.stats().refusedSize - before, 1);
  const fine = await connect(url, { clientId: 'pi-1', username: 'pi-1', password: passwords['pi-1'] });
  await fine.publishAsync('hm/node/pi-1/slot', Buffer.alloc(2048, 1), { qos: 1 });
});

test('connects beyond the per-address rate are refused until the minute has passed', async () => {
  let nowMs = 1_000_000;
  const clock = new (class extends RealClock { override now() { return nowMs; } })();
  const limited = await startBroker({ connectsPerMinutePerAddress: 2 }, clock);
  const u = `mqtt://127.0.0.1:${limited.ports.mqtt}`;
  try {
    const creds = { clientId: 'pi-2', username: 'pi-2', password: passwords['pi-2'] };
    (await connect(u, creds)).end(true);
    (await connect(u, creds)).end(true);
    await assert.rejects(connect(u, creds), /closed before CONNACK/);
    assert.equal(limited.stats().refusedRate, 1);
    nowMs += 60_001;
    const again = await connect(u, creds);
    assert.equal(again.connected, true);
    again.end(true);
  } finally {
    await limited.close();
  }
});

test('a port already in use is reported with what to do', async () => {
  await assert.rejects(startBroker({ port: broker.ports.mqtt }), /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*choose another port/);
});

test('topic filters: matching and containment follow MQTT 3.1.1 §4.7', () => {
  assert.equal(topicMatches('a/+/c', 'a/b/c'), true);
  assert.equal(topicMatches('a/#', 'a'), true);
  assert.equal(topicMatches('a/+', 'a/b/c'), false);
  assert.equal(topicMatches('#', '$SYS/x'), false);
  assert.equal(filterWithin('a/n1/#', 'a/n1/cmd/+'), true);
  assert.equal(filterWithin('a/n1/cmd/#', 'a/n1/#'), false);
  assert.equal(filterWithin('a/+/x', 'a/+/x'), true);
  assert.equal(filterWithin('a/n1/x', 'a/+/x'), false);
  assert.equal(filterWithin('a/+/x', 'a/n/x/y'), false);
});
