// MQTT over WebSocket on the gateway broker, with MQTT.js over ws://: the same logins, ACL
// and packet size limit as on TCP.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { IClientOptions, MqttClient } from 'mqtt';
import { WebSocket } from 'ws';
import { RealClock } from '../../ground/clock.js';
import { Broker, BrokerConfigSchema, addNode, loadCredentials } from '../../gateway/broker/index.js';
import { captureLog } from '../support/log.js';
import { closedByBroker, login, open } from '../security/support.js';

let dir: string;
let broker: Broker;
const passwords: Record<string, string> = {};
const clients: MqttClient[] = [];
const cap = captureLog();
let wsUrl: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-broker-ws-'));
  const credPath = join(dir, 'nodes.json');
  passwords['pi-1'] = await addNode(credPath, 'pi-1');
  passwords['pi-2'] = await addNode(credPath, 'pi-2');
  broker = await Broker.start(BrokerConfigSchema.parse({
    host: '127.0.0.1', port: 0, credentialsPath: credPath, maxPacketBytes: 4096, websocket: { port: 0 },
  }), {
    clock: new RealClock(),
    log: cap.log,
    credentials: loadCredentials(credPath),
    patterns: { publish: ['hm/node/{node}/#'], subscribe: ['hm/node/{node}/cmd'] },
  });
  wsUrl = `ws://127.0.0.1:${broker.ports.ws}/mqtt`;
});

after(async () => {
  for (const c of clients) await c.endAsync(true);
  await broker.close();
  await rm(dir, { recursive: true, force: true });
});

const connect = (url: string, opts: IClientOptions) => open({ clients }, url, opts);

async function refusedWith(url: string, opts: IClientOptions): Promise<number | undefined> {
  const r = await login({ clients }, url, opts);
  assert.equal(r.connected, false, `${String(opts.clientId)} was let in`);
  return r.connected ? undefined : r.code;
}

test('a node logs in over WebSocket and its messages reach the internal client on TCP', async () => {
  const internal = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: 'gw', ...broker.internal });
  await internal.subscribeAsync('hm/node/+/slot', { qos: 1 });
  const got = new Promise<string>((resolve) => internal.once('message', (topic, payload) => resolve(`${topic}=${payload.toString()}`)));
  const node = await connect(wsUrl, { clientId: 'pi-1', username: 'pi-1', password: passwords['pi-1'] });
  await node.publishAsync('hm/node/pi-1/slot', 'over ws', { qos: 1 });
  assert.equal(await got, 'hm/node/pi-1/slot=over ws');

  // And back: a command from the gateway reaches the node over its WebSocket.
  await node.subscribeAsync('hm/node/pi-1/cmd', { qos: 1 });
  const cmd = new Promise<string>((resolve) => node.once('message', (_t, payload) => resolve(payload.toString())));
  await internal.publishAsync('hm/node/pi-1/cmd', 'mode 2', { qos: 1 });
  assert.equal(await cmd, 'mode 2');
});

test('over WebSocket, wrong credentials are refused and the ACL holds', async () => {
  const before = broker.stats();
  assert.equal(await refusedWith(wsUrl, { clientId: 'pi-2', username: 'pi-2', password: 'guess' }), 4, 'bad username or password');
  assert.equal(await refusedWith(wsUrl, { clientId: 'pi-2' }), 4);
  assert.equal(await refusedWith(wsUrl, { clientId: 'pi-1', username: 'pi-2', password: passwords['pi-2'] }), 5, 'not authorized');
  assert.equal(broker.stats().refusedAuth - before.refusedAuth, 3);

  const node = await connect(wsUrl, { clientId: 'pi-2', username: 'pi-2', password: passwords['pi-2'] });
  await assert.rejects(node.subscribeAsync('hm/node/pi-1/cmd'), /Subscribe error/);
  assert.equal(node.connected, true, 'a refused subscription leaves the client connected');
  node.publish('hm/node/pi-1/slot', 'spoof', { qos: 1 });
  await closedByBroker(node);
  assert.equal(broker.stats().refusedAcl - before.refusedAcl, 2, 'one subscription and one publish refused');
});

test('an oversized packet over WebSocket closes the connection and is counted', async () => {
  const node = await connect(wsUrl, { clientId: 'pi-2', username: 'pi-2', password: passwords['pi-2'] });
  const before = broker.stats().refusedSize;
  node.publish('hm/node/pi-2/slot', Buffer.alloc(8192, 1), { qos: 0 });
  await closedByBroker(node);
  assert.equal(broker.stats().refusedSize - before, 1);
  const fine = await connect(wsUrl, { clientId: 'pi-2', username: 'pi-2', password: passwords['pi-2'] });
  await fine.publishAsync('hm/node/pi-2/slot', Buffer.alloc(3000, 1), { qos: 1 });

  // One WebSocket message larger than any packet allowed is refused by its announced length,
  // before ws buffers it and before any MQTT byte reaches the broker.
  const raw = new WebSocket(wsUrl, 'mqtt');
  await once(raw, 'open');
  const closedWith = once(raw, 'close');
  raw.send(Buffer.alloc(8192, 0x30));
  const [code] = (await closedWith) as [number];
  assert.equal(code, 1009, 'message too big');
  assert.equal(broker.stats().refusedSize - before, 2);
});

test('the WebSocket port answers only its path, and plain HTTP is told what to use', async () => {
  assert.equal(await refusedWith(`ws://127.0.0.1:${broker.ports.ws}/elsewhere`, { clientId: 'pi-1', username: 'pi-1', password: passwords['pi-1'] }), undefined, 'no CONNACK');
  const elsewhere = new WebSocket(`ws://127.0.0.1:${broker.ports.ws}/elsewhere`, 'mqtt');
  elsewhere.on('error', () => undefined);
  const [, response] = (await once(elsewhere, 'unexpected-response')) as [unknown, { statusCode: number }];
  assert.equal(response.statusCode, 400);
  elsewhere.terminate();
  const res = await fetch(`http://127.0.0.1:${broker.ports.ws}/mqtt`);
  assert.equal(res.status, 426);
  assert.match(await res.text(), /MQTT over WebSocket only: connect to ws:\/\/HOST:PORT\/mqtt/);
});
