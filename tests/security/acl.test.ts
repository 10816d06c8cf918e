// The ACL matrix on the real gateway broker, generated from the protocol's topic table
// (NODE_TOPICS), so a topic added there is covered here without editing this file: node A
// can neither publish on nor subscribe to any of node B's topics, wildcards that reach past
// its own inbound topics are refused, and on its own topics it may do exactly what
// NODE_PUBLISHES and NODE_SUBSCRIBES say. Every refusal is counted exactly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import {
  encodeJson, NODE_PUBLISHES, NODE_SUBSCRIBES, NODE_TOPICS, nodeTopic, type NodeTopicKind,
} from '../../protocol/index.js';
import { birth, slotRecord } from '../support/protocol-messages.js';
import { closedByBroker, FLEET, open, startTestGateway, type TestGateway } from './support.js';
import { until } from '../../ground/until.js';

const KINDS = Object.keys(NODE_TOPICS) as NodeTopicKind[];
let t: TestGateway;
let observer: MqttClient;
const seen: string[] = [];

const nodeA = () => open(t, t.url, { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'] });
const nodeB = () => open(t, t.url, { clientId: 'node-b', username: 'node-b', password: t.passwords['node-b'] });

before(async () => {
  // A refused publish closes the client, so this file reconnects node A dozens of times from
  // one address; the per-address connect limit has its own test (floods.test.ts).
  t = await startTestGateway({ nodes: ['node-a', 'node-b'], broker: { connectsPerMinutePerAddress: 10_000 } });
  observer = await open(t, t.url, { clientId: 'observer', ...t.broker.internal });
  observer.on('message', (topic, payload) => seen.push(`${topic}=${payload.toString()}`));
  await observer.subscribeAsync('#', { qos: 1 });
});

after(() => t.stop());

/** Publishes a marker as node B on its own slot topic and waits for the observer to see it: whatever was published before it has arrived by then. */
async function flush(marker: string): Promise<void> {
  const b = await nodeB();
  const topic = nodeTopic(FLEET, 'node-b', 'slot');
  await b.publishAsync(topic, marker, { qos: 1 });
  await until(marker, () => seen.includes(`${topic}=${marker}`));
  await b.endAsync();
}

test('every topic kind has one direction: node to gateway, or gateway to node', () => {
  for (const k of KINDS) {
    assert.equal(Number(NODE_PUBLISHES.includes(k)) + Number(NODE_SUBSCRIBES.includes(k)), 1, `${k} (${NODE_TOPICS[k]}) must be in exactly one of NODE_PUBLISHES and NODE_SUBSCRIBES`);
  }
});

test('node A publishing on any of node B\'s topics is refused and closed, and nothing arrives', async () => {
  const before = t.broker.stats().refusedAcl;
  for (const k of KINDS) {
    const a = await nodeA();
    a.publish(nodeTopic(FLEET, 'node-b', k), `spoof ${k}`, { qos: 1 });
    await closedByBroker(a);
  }
  assert.equal(t.broker.stats().refusedAcl - before, KINDS.length);
  await flush('after publish matrix');
  assert.deepEqual(seen.filter((s) => s.includes('spoof')), []);
  for (const k of KINDS) {
    assert.ok(t.cap.records.some((r) => String(r.msg).startsWith('publish outside') && r.clientId === 'node-a' && r.topic === nodeTopic(FLEET, 'node-b', k)), k);
  }
});

test('node A subscribing to any of node B\'s topics is refused (SUBACK 0x80) and receives none of B\'s commands or job frames', async () => {
  const a = await nodeA();
  const got: string[] = [];
  a.on('message', (topic) => got.push(topic));
  const before = t.broker.stats().refusedAcl;
  for (const k of KINDS) {
    // MQTT.js turns a SUBACK return code of 0x80 into an error.
    await assert.rejects(a.subscribeAsync(nodeTopic(FLEET, 'node-b', k), { qos: 1 }), /Subscribe error/, k);
  }
  assert.equal(t.broker.stats().refusedAcl - before, KINDS.length);
  assert.equal(a.connected, true, 'a refused subscription leaves the client connected');

  const b = await nodeB();
  const toB: string[] = [];
  b.on('message', (topic) => toB.push(topic));
  await b.subscribeAsync(NODE_SUBSCRIBES.map((k) => nodeTopic(FLEET, 'node-b', k)), { qos: 1 });
  for (const k of NODE_SUBSCRIBES) await observer.publishAsync(nodeTopic(FLEET, 'node-b', k), `for b ${k}`, { qos: 1 });
  await until('node B\'s own messages', () => toB.length === NODE_SUBSCRIBES.length);
  // Also through A's own subscription: a message for A, sent after B's, arrives only once B's have been routed.
  await a.subscribeAsync(nodeTopic(FLEET, 'node-a', 'cmd'), { qos: 1 });
  await observer.publishAsync(nodeTopic(FLEET, 'node-a', 'cmd'), 'for a', { qos: 1 });
  await until('node A\'s own command', () => got.length > 0);
  assert.deepEqual(got, [nodeTopic(FLEET, 'node-a', 'cmd')]);
});

test('wildcard subscriptions reaching beyond node A\'s own inbound topics are refused', async () => {
  const a = await nodeA();
  const mine = `heliomesh/${FLEET}/node/node-a`;
  const filters = [
    '#', '+/#', '$SYS/#', 'heliomesh/#', 'heliomesh/+/node/#', `heliomesh/${FLEET}/#`, `heliomesh/${FLEET}/node/#`,
    ...KINDS.map((k) => `heliomesh/${FLEET}/node/+/${NODE_TOPICS[k]}`),
    `heliomesh/+/node/node-a/${NODE_TOPICS.cmd}`, `+/${FLEET}/node/node-a/${NODE_TOPICS.cmd}`,
    `${mine}/#`, `${mine}/+`, `${mine}/job/+`, `${mine}/job/#`, `${mine}/cmd/#`,
  ];
  const before = t.broker.stats().refusedAcl;
  for (const f of filters) await assert.rejects(a.subscribeAsync(f), /Subscribe error/, f);
  assert.equal(t.broker.stats().refusedAcl - before, filters.length);
  assert.equal(a.connected, true);
});

test('on its own topics node A publishes exactly NODE_PUBLISHES and subscribes exactly NODE_SUBSCRIBES', async () => {
  const before = t.broker.stats().refusedAcl;
  for (const k of KINDS) {
    const a = await nodeA();
    const topic = nodeTopic(FLEET, 'node-a', k);
    if (NODE_PUBLISHES.includes(k)) {
      await a.publishAsync(topic, `own ${k}`, { qos: 1 });
      await until(`own ${k}`, () => seen.includes(`${topic}=own ${k}`));
      await a.endAsync();
    } else {
      // A node must not forge its own commands or job frames either: those are the gateway's.
      a.publish(topic, `forged ${k}`, { qos: 1 });
      await closedByBroker(a);
    }
  }
  const a = await nodeA();
  for (const k of KINDS) {
    const filter = nodeTopic(FLEET, 'node-a', k);
    if (NODE_SUBSCRIBES.includes(k)) assert.deepEqual((await a.subscribeAsync(filter, { qos: 1 })).map((g) => g.qos), [1], k);
    else await assert.rejects(a.subscribeAsync(filter), /Subscribe error/, k);
  }
  const refusals = KINDS.filter((k) => !NODE_PUBLISHES.includes(k)).length + KINDS.filter((k) => !NODE_SUBSCRIBES.includes(k)).length;
  assert.equal(t.broker.stats().refusedAcl - before, refusals);
  await flush('after own matrix');
  assert.deepEqual(seen.filter((s) => s.includes('forged')), []);
});

test('on its own topics node A cannot speak for node B: a payload naming B is refused by the gateway', async () => {
  const a = await nodeA();
  const invalid = t.gw.link.counters.invalid;
  await a.publishAsync(nodeTopic(FLEET, 'node-a', 'state'), encodeJson(birth('node-b', Date.now())), { qos: 1 });
  await a.publishAsync(nodeTopic(FLEET, 'node-a', 'slot'), encodeJson(slotRecord('node-b', 1)), { qos: 1 });
  await until('both refused', () => t.gw.link.counters.invalid - invalid === 2);
  assert.equal(t.gw.registry.get('node-b'), undefined);
  assert.equal(t.gw.registry.get('node-a'), undefined, 'nor does A become known from a birth that is not its own');
});
