// The embedded broker's bus, with a real node client: what the gateway publishes on it
// reaches the node in order, held behind a tapped publish as the broker holds a client's;
// what nodes publish reaches its subscribers; once the broker closes, publishes fail and
// the outbox's waits end.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import { RealClock } from '../../ground/clock.js';
import { until } from '../../ground/until.js';
import { Broker, BrokerConfigSchema, addNode, loadCredentials, type NodeTopicPatterns } from '../../gateway/broker/index.js';
import { Outbox } from '../../gateway/outbox.js';
import { captureLog } from '../support/log.js';

const patterns: NodeTopicPatterns = { publish: ['hm/node/{node}/#'], subscribe: ['hm/node/{node}/job/#'] };
let dir: string;
let credPath: string;
let password: string;
const cap = captureLog();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-bus-'));
  credPath = join(dir, 'nodes.json');
  password = await addNode(credPath, 'pi-1');
});

after(() => rm(dir, { recursive: true, force: true }));

async function start(): Promise<{ broker: Broker; node: MqttClient }> {
  const config = BrokerConfigSchema.parse({ port: 0, host: '127.0.0.1', credentialsPath: credPath });
  const broker = await Broker.start(config, { clock: new RealClock(), log: cap.log, credentials: loadCredentials(credPath), patterns });
  const node = mqttConnect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: 'pi-1', username: 'pi-1', password, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    node.once('connect', () => resolve());
    node.once('error', reject);
  });
  return { broker, node };
}

const publish = (broker: Broker, topic: string, payload: string, qos: 0 | 1 = 0) =>
  new Promise<void>((resolve, reject) => broker.bus.publish(topic, Buffer.from(payload), { qos }, (err) => (err ? reject(err) : resolve())));

test('the bus delivers in order; a publish the tap holds holds those behind it, and the tap sees each once', async (t) => {
  const { broker, node } = await start();
  t.after(async () => {
    await node.endAsync(true);
    await broker.close();
  });
  await node.subscribeAsync('hm/node/pi-1/job/in', { qos: 1 });
  const got: Array<{ payload: string; atMs: number }> = [];
  node.on('message', (_topic, payload) => got.push({ payload: payload.toString(), atMs: performance.now() }));
  const tapped: string[] = [];
  broker.tap((_topic, payload) => {
    tapped.push(payload.toString());
    return payload.toString() === 'held' ? 200 : 0;
  });
  const t0 = performance.now();
  const sent = ['first', 'held', 'behind-1', 'behind-2'].map((p, i) => publish(broker, 'hm/node/pi-1/job/in', p, i === 3 ? 1 : 0));
  await Promise.all(sent);
  await until('four messages at the node', () => got.length === 4, 5000);
  assert.deepEqual(got.map((g) => g.payload), ['first', 'held', 'behind-1', 'behind-2']);
  // A timer may fire up to the event loop's cached time early.
  assert.ok(got[2]!.atMs - t0 >= 190, `the one behind the held publish came after ${(got[2]!.atMs - t0).toFixed(1)} ms`);
  assert.deepEqual(tapped, ['first', 'held', 'behind-1', 'behind-2']);
});

test('a subscriber on the bus hears what a node publishes, and nothing else', async (t) => {
  const { broker, node } = await start();
  t.after(async () => {
    await node.endAsync(true);
    await broker.close();
  });
  const heard: string[] = [];
  await broker.bus.subscribe(['hm/node/+/job/out'], (topic, payload) => heard.push(`${topic}=${payload.toString()}`));
  await node.publishAsync('hm/node/pi-1/job/out', 'frame', { qos: 0 });
  await node.publishAsync('hm/node/pi-1/job/out', 'report', { qos: 1 });
  await node.publishAsync('hm/node/pi-1/slot', 'record', { qos: 1 });
  await until('two job messages', () => heard.length >= 2, 5000);
  assert.deepEqual(heard, ['hm/node/pi-1/job/out=frame', 'hm/node/pi-1/job/out=report']);
  assert.equal(broker.stats().publishesIn, 3, 'the node\'s publishes are counted as ever');
});

test('once the broker closes, a publish on the bus fails and an outbox wait on it ends', async () => {
  const { broker, node } = await start();
  await node.endAsync(true);
  const clock = new RealClock();
  const outbox = new Outbox(broker.bus, clock);
  broker.tap(() => 10_000);
  const errors: string[] = [];
  outbox.publish('hm/node/pi-1/job/in', 'held until the close', { qos: 1 }, (err) => errors.push(err.message));
  assert.equal(outbox.pending, 1);
  const waited = outbox.acknowledged(20_000);
  await broker.close();
  assert.equal(await waited, false, 'the wait ends with the broker, not at its timeout');
  assert.deepEqual(errors, ['the embedded broker is closed']);
  assert.equal(broker.bus.connected, false);
  await assert.rejects(publish(broker, 'hm/node/pi-1/job/in', 'late'), /closed/);
});
