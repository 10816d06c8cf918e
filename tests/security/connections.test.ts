// Logins to the real gateway broker: every way of not being the node you claim is refused
// with the CONNACK return code MQTT 3.1.1 §3.2.2.3 gives it, counted and logged.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IClientOptions, MqttClient } from 'mqtt';
import { nodeTopic } from '../../protocol/index.js';
import { connectPacket, publishPacket, sendRaw } from '../fuzz/mqtt-raw.js';
import { FLEET, login, open, startTestGateway, type TestGateway } from './support.js';
import { until } from '../../ground/until.js';

const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

let t: TestGateway;
let observer: MqttClient;
const seen: string[] = [];

before(async () => {
  t = await startTestGateway({ nodes: ['node-a', 'node-b'] });
  observer = await open(t, t.url, { clientId: 'observer', ...t.broker.internal });
  observer.on('message', (topic, payload) => seen.push(`${topic}=${payload.toString()}`));
  await observer.subscribeAsync('heliomesh/#', { qos: 1 });
});

after(() => t.stop());

test('logins without credentials, with a wrong password, an unknown username or a borrowed client id are refused', async () => {
  const a = t.passwords['node-a']!;
  const cases: Array<{ why: string; opts: IClientOptions; code: number }> = [
    { why: 'no username or password', opts: { clientId: 'node-a' }, code: BAD_USERNAME_OR_PASSWORD },
    { why: 'username without a password', opts: { clientId: 'node-a', username: 'node-a' }, code: BAD_USERNAME_OR_PASSWORD },
    { why: 'wrong password', opts: { clientId: 'node-a', username: 'node-a', password: `${a}x` }, code: BAD_USERNAME_OR_PASSWORD },
    { why: 'another node\'s password', opts: { clientId: 'node-a', username: 'node-a', password: t.passwords['node-b'] }, code: BAD_USERNAME_OR_PASSWORD },
    { why: 'unknown username', opts: { clientId: 'node-z', username: 'node-z', password: a }, code: BAD_USERNAME_OR_PASSWORD },
    { why: 'client id other than the username', opts: { clientId: 'node-b', username: 'node-a', password: a }, code: NOT_AUTHORIZED },
    { why: 'the internal user with a guessed secret', opts: { clientId: 'x', username: '$gateway', password: a }, code: BAD_USERNAME_OR_PASSWORD },
  ];
  const before = t.broker.stats();
  for (const c of cases) {
    const r = await login(t, t.url, c.opts);
    assert.equal(r.connected, false, c.why);
    if (!r.connected) assert.equal(r.code, c.code, `${c.why}: ${r.error}`);
  }
  const after = t.broker.stats();
  assert.equal(after.refusedAuth - before.refusedAuth, cases.length);
  assert.equal(after.clients, before.clients, 'no refused client stays connected');
  assert.equal(t.cap.records.filter((r) => String(r.msg).startsWith('MQTT login refused')).length, cases.length, 'each refusal is logged');
  assert.ok(t.cap.records.some((r) => r.msg === 'MQTT login refused: client id must equal the node id node-a' && r.clientId === 'node-b'));

  const ok = await login(t, t.url, { clientId: 'node-a', username: 'node-a', password: a });
  assert.equal(ok.connected, true, 'the node\'s own login works');
});

test('packets pipelined behind a refused CONNECT are never delivered', async () => {
  const before = t.broker.stats().refusedAuth;
  const spoofTopic = nodeTopic(FLEET, 'node-b', 'slot');
  // One write: the CONNECT with a wrong password and, right behind it, a PUBLISH as node-b.
  const raw = await sendRaw(t.broker.ports.mqtt!, Buffer.concat([connectPacket('node-b', 'node-b', 'guess'), publishPacket(spoofTopic, Buffer.from('pipelined spoof'))]), 5000);
  assert.equal(raw.closed, true, 'the broker closed the connection');
  assert.deepEqual([...raw.received], [0x20, 2, 0, BAD_USERNAME_OR_PASSWORD], 'CONNACK refused, and nothing else');
  assert.equal(t.broker.stats().refusedAuth - before, 1);
  // A marker from the real node-b, published after the refusal, arrives; the spoof never does.
  const b = await open(t, t.url, { clientId: 'node-b', username: 'node-b', password: t.passwords['node-b'] });
  await b.publishAsync(spoofTopic, 'marker', { qos: 1 });
  await until('the marker', () => seen.includes(`${spoofTopic}=marker`));
  assert.equal(seen.filter((s) => s.includes('pipelined spoof')).length, 0);
});
