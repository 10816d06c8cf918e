// The composition root: config validation, and a gateway that logs its broker's counters
// to a real influxd while a node publishes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { addNode } from '../../gateway/broker/index.js';
import { systemClock } from '../../gateway/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway } from '../../gateway/index.js';
import { PAPER_DYNAMIC_TABLE, PAPER_MODES, uniformOnGrid } from '../../gateway/scheduler/index.js';
import { TestInfluxd } from '../support/influxd.js';
import { captureLog } from '../support/log.js';

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

test('the gateway refuses to start without node topic patterns', async () => {
  const config = parseGatewayConfig({ broker: { credentialsPath: join(dir, 'none.json'), port: 0 } });
  await assert.rejects(startGateway(config, { clock: systemClock, log: captureLog().log }), /broker.nodeTopics is not set/);
});

test('a running gateway serves a node and writes broker counters to InfluxDB', async () => {
  const credentialsPath = join(dir, 'nodes.json');
  const password = await addNode(credentialsPath, 'pi-1');
  const config = parseGatewayConfig({
    fleet: 'itest',
    broker: {
      host: '127.0.0.1',
      port: 0,
      credentialsPath,
      nodeTopics: { publish: ['hm/node/{node}/#'], subscribe: ['hm/node/{node}/cmd/#'] },
    },
    store: { url: `${influxd.url}/gw`, flushIntervalMs: 50 },
    statsIntervalMs: 100,
  });
  const cap = captureLog();
  const gw = await startGateway(config, { clock: systemClock, log: cap.log });
  try {
    const seen: string[] = [];
    await gw.client.subscribeAsync('hm/#');
    gw.client.on('message', (topic) => seen.push(topic));
    const node = await connectAsync(`mqtt://127.0.0.1:${gw.broker.ports.mqtt}`, { clientId: 'pi-1', username: 'pi-1', password, reconnectPeriod: 0 });
    await node.publishAsync('hm/node/pi-1/slot', 'x', { qos: 1 });
    await node.endAsync();
    const deadline = Date.now() + 5000;
    let publishes = 0;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      const res = (await influxd.query('gw', "SELECT max(publishesIn) FROM broker_stats WHERE fleet = 'itest'")) as {
        results: Array<{ series?: Array<{ values: number[][] }> }>;
      };
      publishes = res.results[0]?.series?.[0]?.values[0]?.[1] ?? 0;
      if (publishes >= 1) break;
    }
    assert.ok(publishes >= 1, 'the node\'s publish is counted in broker_stats');
    assert.deepEqual(seen, ['hm/node/pi-1/slot'], 'the gateway\'s own client receives node messages');

    // The registry's events reach InfluxDB: a birth solves q_lim, slot records are logged.
    const now = Date.now();
    gw.registry.birth('pi-1', {
      group: 'g0', quantumJ: 1000, capacityJ: 100_000, eThJ: 10_000, eThUpJ: 15_000,
      modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, priorHarvestPmf: uniformOnGrid(0, 30),
    }, now);
    gw.registry.slot('pi-1', { seq: 1, slotStartMs: now, batteryJ: 50_000, harvestJ: 12_000, gamma: 1, powerMode: 2, queue: 0 }, now);
    gw.registry.slot('pi-1', { seq: 4, slotStartMs: now + 1, batteryJ: 51_000, harvestJ: 12_000, gamma: 1, powerMode: 2, queue: 0 }, now + 1);
    const rows = async (q: string) => ((await influxd.query('gw', q)) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> }).results[0]?.series?.[0]?.values ?? [];
    let qlim: unknown[][] = [];
    let slots: unknown[][] = [];
    const until = Date.now() + 10_000;
    while (Date.now() < until && (qlim.length === 0 || slots.length < 2)) {
      await new Promise((r) => setTimeout(r, 100));
      qlim = await rows("SELECT qLim, energyBinds FROM q_lim WHERE node = 'pi-1'");
      slots = await rows("SELECT seq, seqGap, batteryPct FROM node_slot WHERE node = 'pi-1'");
    }
    assert.equal(qlim.length, 1);
    assert.ok((qlim[0]![1] as number) > 0 && (qlim[0]![1] as number) <= 1);
    assert.deepEqual(slots.map((r) => r.slice(1)), [[1, 0, 50], [4, 2, 51]]);
    assert.ok(cap.records.some((r) => r.msg === 'slot records missing' && r.missed === 2));
  } finally {
    await gw.close();
  }
  assert.ok(cap.messages().includes('gateway stopped'));
});
