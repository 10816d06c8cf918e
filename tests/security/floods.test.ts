// Flood limits on the real gateway broker: oversized packets are refused from their fixed
// header, before authentication and before buffering; connects over the per-address rate
// are refused before the password check, so a guesser cannot make the gateway run scrypt
// faster than the limit allows.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { BrokerConfigSchema } from '../../gateway/broker/index.js';
import { systemClock, type Clock } from '../../gateway/clock.js';
import { nodeTopic } from '../../protocol/index.js';
import { remainingLength, sendRaw } from '../fuzz/mqtt-raw.js';
import { closedByBroker, FLEET, login, open, startTestGateway, until, type TestGateway } from './support.js';

let t: TestGateway;
let observer: MqttClient;
const seen: Array<{ topic: string; bytes: number }> = [];

before(async () => {
  // The default limits, as a deployment runs them.
  t = await startTestGateway({ nodes: ['node-a'] });
  observer = await open(t, t.url, { clientId: 'observer', ...t.broker.internal });
  observer.on('message', (topic, payload) => seen.push({ topic, bytes: payload.length }));
  await observer.subscribeAsync('heliomesh/#', { qos: 1 });
});

after(() => t.stop());

test('a publish over maxPacketBytes closes the node\'s connection and is never delivered; one under it is', async () => {
  const limit = BrokerConfigSchema.parse({ credentialsPath: 'unused' }).maxPacketBytes;
  const topic = nodeTopic(FLEET, 'node-a', 'telemetry');
  const creds = { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'] };
  const before = t.broker.stats();
  const a = await open(t, t.url, creds);
  a.publish(topic, Buffer.alloc(limit + 1, 7), { qos: 0 });
  await closedByBroker(a);
  assert.equal(t.broker.stats().refusedSize - before.refusedSize, 1);
  assert.ok(t.cap.records.some((r) => r.msg === 'oversized MQTT packet; connection closed' && Number(r.bytes) > limit));

  const again = await open(t, t.url, creds);
  await again.publishAsync(topic, Buffer.alloc(limit / 2, 7), { qos: 1 });
  await until('the half-limit message', () => seen.some((s) => s.topic === topic && s.bytes === limit / 2));
  assert.equal(seen.filter((s) => s.bytes > limit).length, 0);
  assert.equal(t.broker.stats().refusedSize - before.refusedSize, 1);
});

test('a packet announcing 200 MiB is refused from its header, before any login', async () => {
  const before = t.broker.stats();
  // A CONNECT fixed header announcing 200 MiB, and only a few bytes of it.
  const raw = await sendRaw(t.broker.ports.mqtt!, Buffer.concat([Buffer.from([0x10]), remainingLength(200 * 1024 * 1024), Buffer.from('\x00\x04MQTT')]), 5000);
  assert.equal(raw.closed, true, 'closed by the broker, not by the timeout');
  assert.equal(raw.received.length, 0, 'no CONNACK');
  const after = t.broker.stats();
  assert.equal(after.refusedSize - before.refusedSize, 1);
  assert.equal(after.refusedAuth, before.refusedAuth, 'it never reached the login');
  assert.equal(after.refusedProtocol, before.refusedProtocol, 'counted once, as oversized');
});

test('connects over the per-address rate are refused before the password check, until the minute has passed', async () => {
  let nowMs = 5_000_000;
  const clock: Clock = { ...systemClock, now: () => nowMs };
  const limit = 6;
  const g = await startTestGateway({ nodes: ['node-a'], clock, broker: { connectsPerMinutePerAddress: limit } });
  try {
    const wrong = { clientId: 'node-a', username: 'node-a', password: 'guess' };
    // The gateway's own client is connected in process, so all of 127.0.0.1's budget is ours.
    const budget = limit;
    const excess = 3;
    const codes: Array<number | undefined> = [];
    for (let i = 0; i < budget + excess; i++) {
      const r = await login(g, g.url, wrong);
      assert.equal(r.connected, false);
      codes.push(r.connected ? 0 : r.code);
    }
    assert.deepEqual(codes, [...Array<number>(budget).fill(4), ...Array<undefined>(excess).fill(undefined)], 'CONNACK 4 within the budget; closed without CONNACK beyond it');
    const s = g.broker.stats();
    assert.equal(s.refusedAuth, budget, 'scrypt ran only for the connects within the budget');
    assert.equal(s.refusedRate, excess);
    assert.ok(g.cap.records.some((r) => r.msg === 'too many MQTT connects from one address; refused' && r.remote === '127.0.0.1'));

    const right = { clientId: 'node-a', username: 'node-a', password: g.passwords['node-a'] };
    assert.equal((await login(g, g.url, right)).connected, false, 'the right password too, while the address is over its rate');
    nowMs += 60_001;
    assert.equal((await login(g, g.url, right)).connected, true, 'a minute later the node gets in');
    assert.equal(g.broker.stats().refusedRate, excess + 1);
  } finally {
    await g.stop();
  }
});
