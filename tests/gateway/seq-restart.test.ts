// A node whose count went back: it published records 5..12, rebooted with a seq file that
// still said 5 (the disk had been full), claimed nextSeq 5 in the same epoch and sent
// 5..12 again. A real gateway, a real MQTT client, a real influxd behind the store: each
// number is stored once, the repeats are counted, and the count goes on above them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { addNode } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway } from '../../gateway/index.js';
import { encodeJson, nodeTopic } from '../../protocol/index.js';
import { storedSeqs } from '../faults/support.js';
import { TestInfluxd } from '../support/influxd.js';
import { captureLog } from '../support/log.js';
import { birth, slotRecord } from '../support/protocol-messages.js';
import { until } from '../../ground/until.js';

let influxd: TestInfluxd;
let dir: string;

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-seq-restart-'));
});

after(async () => {
  await influxd.destroy();
  await rm(dir, { recursive: true, force: true });
});

const EPOCH = '5eed5eed5eed5eed';

test('a reboot that claims a lower nextSeq in the same epoch does not store the repeated numbers again', async () => {
  const credentialsPath = join(dir, 'nodes.json');
  const password = await addNode(credentialsPath, 'pi-1');
  const config = parseGatewayConfig({
    fleet: 'seq', broker: { host: '127.0.0.1', port: 0, credentialsPath },
    store: { url: `${influxd.url}/seq`, flushIntervalMs: 50 },
    http: { host: '127.0.0.1', port: 0 },
  });
  const gw = await startGateway(config, { clock: new RealClock(), log: captureLog().log });
  const clients: MqttClient[] = [];
  try {
    const boot = async (): Promise<MqttClient> => {
      const node = await connectAsync(`mqtt://127.0.0.1:${gw.broker.ports.mqtt}`, { clientId: 'pi-1', username: 'pi-1', password, reconnectPeriod: 0 });
      clients.push(node);
      const b = { ...birth('pi-1', Date.now()), nextSeq: 5, seqEpoch: EPOCH };
      await node.publishAsync(nodeTopic('seq', 'pi-1', 'state'), encodeJson(b), { qos: 1, retain: true });
      return node;
    };
    const send = async (node: MqttClient, from: number, to: number, batteryJ: number): Promise<void> => {
      for (let s = from; s <= to; s++) await node.publishAsync(nodeTopic('seq', 'pi-1', 'slot'), encodeJson(slotRecord('pi-1', s, { batteryJ })), { qos: 1 });
    };

    const first = await boot();
    await send(first, 5, 12, 50_000);
    await until('records 5..12 in the registry', () => gw.registry.get('pi-1')?.lastSeq === 12, 10_000);
    await first.endAsync();

    // The reboot: the same epoch, nextSeq 5 again, and 5..12 again with other contents, then 13.
    const second = await boot();
    await send(second, 5, 13, 40_000);
    await until('record 13 in the registry', () => gw.registry.get('pi-1')?.lastSeq === 13, 10_000);
    await until('record 13 in InfluxDB', async () => (await storedSeqs(influxd, 'seq', 'pi-1')).includes(13), 10_000);

    const seqs = await storedSeqs(influxd, 'seq', 'pi-1');
    assert.deepEqual(seqs, [5, 6, 7, 8, 9, 10, 11, 12, 13], 'each number stored once');
    assert.equal(gw.link.ignored.duplicateSlots, 8, 'the eight repeats are counted');
    assert.equal(gw.link.counters.seqRewinds, 1, 'and the birth that went back');
    assert.equal(gw.registry.get('pi-1')?.batteryJ, 40_000, 'the record after the repeats is taken');
    const metrics = await (await fetch(`http://127.0.0.1:${gw.http!.port}/metrics`)).text();
    assert.match(metrics, /^heliomesh_link_seq_rewinds_total 1$/m, 'the rewound birth is on /metrics');
  } finally {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await gw.close();
  }
});
