// Home Assistant MQTT discovery from a running gateway: a node's birth makes the gateway
// publish retained discovery configs whose entities read the node's own topics, and every
// value the templates take from a message is a field of that message.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { addNode } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { discoveryMessages } from '../../gateway/homeassistant.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { encodeJson, nodeTopic, slotRecordSchema } from '../../protocol/index.js';
import { birth, paperProfile, slotRecord } from '../support/protocol-messages.js';
import { until } from '../../ground/until.js';

const FLEET = 'rooftop';
let dir: string;
let gw: Gateway;
const clients: MqttClient[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-ha-'));
});

after(async () => {
  for (const c of clients) await c.endAsync(true);
  await gw?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Config {
  unique_id: string;
  state_topic: string;
  value_template: string;
  availability_topic?: string;
  device: { identifiers: string[]; name: string };
  [k: string]: unknown;
}

test('the config schema: off unless set, the prefix a plain topic path', () => {
  assert.equal(parseGatewayConfig({ broker: { credentialsPath: 'x' } }).homeAssistant, undefined);
  assert.equal(parseGatewayConfig({ broker: { credentialsPath: 'x' }, homeAssistant: {} }).homeAssistant?.discoveryPrefix, 'homeassistant');
  assert.throws(() => parseGatewayConfig({ broker: { credentialsPath: 'x' }, homeAssistant: { discoveryPrefix: 'ha/#' } }), /homeAssistant\.discoveryPrefix/);
});

test('a node\'s birth publishes its device once, retained, with entities on the node\'s own topics', async () => {
  const credentialsPath = join(dir, 'nodes.json');
  const password = await addNode(credentialsPath, 'pi-07');
  gw = await startGateway(parseGatewayConfig({
    fleet: FLEET, broker: { host: '127.0.0.1', port: 0, credentialsPath }, homeAssistant: { discoveryPrefix: 'homeassistant' },
  }), { clock: new RealClock(), log: pino({ level: 'silent' }) });
  const url = `mqtt://127.0.0.1:${gw.broker.ports.mqtt}`;
  // Watching from before the node arrives: every discovery publish is counted.
  const watcher = await connectAsync(url, { clientId: 'ha-watch', ...gw.broker.internal, reconnectPeriod: 0 });
  clients.push(watcher);
  let published = 0;
  watcher.on('message', () => published++);
  await watcher.subscribeAsync('homeassistant/#', { qos: 1 });
  const node = await connectAsync(url, { clientId: 'pi-07', username: 'pi-07', password, reconnectPeriod: 0 });
  clients.push(node);
  const announce = () => node.publishAsync(nodeTopic(FLEET, 'pi-07', 'state'), encodeJson(birth('pi-07', Date.now(), paperProfile('g2'))), { qos: 1, retain: true });
  await announce();
  await until('pi-07 online', () => !!gw.registry.get('pi-07')?.online);
  // A second birth (a reconnect) does not publish the device again.
  await announce();
  await new Promise((r) => setTimeout(r, 300));

  // What Home Assistant sees when it subscribes later: the retained configs.
  const ha = await connectAsync(url, { clientId: 'ha-probe', ...gw.broker.internal, reconnectPeriod: 0 });
  clients.push(ha);
  const got: Array<{ topic: string; config: Config; retain: boolean }> = [];
  ha.on('message', (topic, payload, packet) => got.push({ topic, config: JSON.parse(payload.toString()) as Config, retain: packet.retain }));
  await ha.subscribeAsync('homeassistant/#', { qos: 1 });
  const expected = discoveryMessages({ discoveryPrefix: 'homeassistant' }, FLEET, 'pi-07', 'g2');
  await until('every discovery message', () => got.length >= expected.length, 5000);
  assert.deepEqual(got.map((g) => g.topic).sort(), expected.map((m) => m.topic).sort());
  assert.ok(got.every((g) => g.retain), 'retained');
  assert.equal(published, expected.length, 'published once for two births');
  assert.equal(new Set(got.map((g) => g.config.unique_id)).size, got.length, 'unique ids');
  assert.equal(new Set(got.map((g) => g.config.device.identifiers[0])).size, 1, 'one device per node');
  for (const g of got) assert.match(g.topic, /^homeassistant\/(sensor|binary_sensor)\/heliomesh_rooftop_pi_07_\w+\/config$/);

  // Every entity reads a topic the node publishes, and each value_json field is in the message there.
  const slot = slotRecord('pi-07', 1);
  const slotFields = Object.keys(slotRecordSchema.shape);
  for (const { config } of got) {
    const fields = [...config.value_template.matchAll(/value_json\.(\w+)/g)].map((m) => m[1]!);
    assert.ok(fields.length > 0, `${config.unique_id} reads a field`);
    if (config.state_topic === nodeTopic(FLEET, 'pi-07', 'slot')) {
      for (const f of fields) assert.ok(slotFields.includes(f) && typeof (slot as Record<string, unknown>)[f] === 'number', `${config.unique_id}: ${f} is a numeric slot record field`);
    } else {
      assert.equal(config.state_topic, nodeTopic(FLEET, 'pi-07', 'state'));
      assert.deepEqual(fields, ['status'], 'the birth and the will carry status');
    }
    if (config.availability_topic) assert.equal(config.availability_topic, nodeTopic(FLEET, 'pi-07', 'state'));
  }
  const battery = got.find((g) => g.topic.endsWith('_battery/config'))!.config;
  assert.equal(battery.device_class, 'battery');
  assert.equal(battery.unit_of_measurement, '%');
});
