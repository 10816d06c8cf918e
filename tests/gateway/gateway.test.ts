// The composition root: config validation, and a gateway that logs its broker's counters
// to a real influxd while a node publishes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { addNode } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { until } from '../../ground/until.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway } from '../../gateway/index.js';
import { encodeJson, nodeTopic } from '../../protocol/index.js';
import { TestInfluxd } from '../support/influxd.js';
import { captureLog } from '../support/log.js';
import { birth, slotRecord, will } from '../support/protocol-messages.js';

let influxd: TestInfluxd;
let dir: string;

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-gateway-'));
});

after(async () => {
  await influxd.destroy();
  await rm(dir, { recursive: true, force: true });
});

test('config errors name the setting and point to the docs', () => {
  assert.throws(() => parseGatewayConfig({ broker: {} }, 'gw.yaml'), (err: Error) =>
    err.message.startsWith('gw.yaml is invalid') && err.message.includes('credentialsPath') && err.message.includes('docs/gateway.md'));
  assert.throws(() => parseGatewayConfig({ broker: { credentialsPath: 'x' }, store: { url: 'influx:8086' } }), /http:\/\/HOST:8086\/DATABASE/);
  const c = parseGatewayConfig({ broker: { credentialsPath: 'x' } });
  assert.equal(c.broker.port, 1883);
  assert.equal(c.scheduler.policy, 'foresight');
  assert.equal(c.store, undefined);
});

test('a running gateway takes node messages over MQTT into the registry and InfluxDB', async () => {
  const credentialsPath = join(dir, 'nodes.json');
  const password = await addNode(credentialsPath, 'pi-1');
  const config = parseGatewayConfig({
    fleet: 'itest',
    broker: { host: '127.0.0.1', port: 0, credentialsPath },
    store: { url: `${influxd.url}/gw`, flushIntervalMs: 50 },
    statsIntervalMs: 100,
  });
  const cap = captureLog();
  const gw = await startGateway(config, { clock: new RealClock(), log: cap.log });
  try {
    // The node's side, as the protocol has it: a retained birth, a retained will, slot records.
    const stateTopic = nodeTopic('itest', 'pi-1', 'state');
    const node = await connectAsync(`mqtt://127.0.0.1:${gw.broker.ports.mqtt}`, {
      clientId: 'pi-1', username: 'pi-1', password, reconnectPeriod: 0,
      will: { topic: stateTopic, payload: encodeJson(will('pi-1')), qos: 1, retain: true },
    });
    await node.publishAsync(stateTopic, encodeJson(birth('pi-1', Date.now())), { qos: 1, retain: true });
    await node.publishAsync(nodeTopic('itest', 'pi-1', 'slot'), encodeJson(slotRecord('pi-1', 1, { batteryJ: 50_000 })), { qos: 1 });
    await node.publishAsync(nodeTopic('itest', 'pi-1', 'slot'), encodeJson(slotRecord('pi-1', 4, { batteryJ: 51_000 })), { qos: 1 });
    await assert.rejects(node.subscribeAsync(nodeTopic('itest', 'pi-2', 'cmd')), /Subscribe error/, 'the protocol ACL is the default');

    const rows = async (q: string) => ((await influxd.query('gw', q)) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> }).results[0]?.series?.[0]?.values ?? [];
    let qlim: unknown[][] = [];
    let slots: unknown[][] = [];
    let publishes: unknown[][] = [];
    await until('the solved birth, both slot records and the broker counters in InfluxDB', async () => {
      qlim = await rows("SELECT qLim, energyBinds FROM q_lim WHERE node = 'pi-1'");
      slots = await rows("SELECT seq, seqGap, batteryPct, consumedJ FROM node_slot WHERE node = 'pi-1'");
      publishes = await rows("SELECT max(publishesIn) FROM broker_stats WHERE fleet = 'itest' AND publishesIn >= 3");
      return qlim.length > 0 && slots.length >= 2 && publishes.length > 0;
    }, 10_000, 100);
    assert.equal(qlim.length, 1, 'the birth was solved and logged');
    assert.ok((qlim[0]![1] as number) >= 0 && (qlim[0]![1] as number) <= 1);
    assert.deepEqual(slots.map((r) => r.slice(1)), [[1, 0, 50, 15_000], [4, 2, 51, 15_000]]);
    assert.ok(cap.records.some((r) => r.msg === 'slot records missing' && r.missed === 2));
    assert.equal(publishes.length, 1, 'broker counters are logged');
    assert.equal(gw.registry.get('pi-1')?.profile.group, 'g0');

    // An abrupt loss: the broker publishes the will and the registry takes the node offline.
    node.stream.destroy();
    await until('pi-1 offline', () => !gw.registry.get('pi-1')?.online, 5000);
    assert.equal(gw.registry.get('pi-1')?.online, false);
    assert.equal(gw.link.counters.invalid, 0);
  } finally {
    await gw.close();
  }
  assert.ok(cap.messages().includes('gateway stopped'));
});
