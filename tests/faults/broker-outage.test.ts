// Broker outage: nine agents keep sampling on an accelerated clock while the gateway — its
// embedded broker, registry and InfluxDB store — is down for ten simulated minutes. When it
// is back, every node's slot sequence must be complete: no gap at the gateway's registry,
// and in InfluxDB exactly one node_slot point per sequence number, none missing, none twice.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Agent } from '../../agent/index.js';
import { addNode } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig, type GatewayConfig } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { ScaledClock } from '../../hardware/clock.js';
import { TestInfluxd } from '../support/influxd.js';
import { freePort } from '../support/ports.js';
import { agentConfig, range, startAgent, storedSeqs, tempDir, until } from './support.js';

const NODES = Array.from({ length: 9 }, (_, i) => `pi-0${i + 1}`);
/** 120× real time: a 60 s slot closes every 0.5 s, the 10-minute outage lasts 5 s. */
const SPEED = 120;
const OUTAGE_MS = 10 * 60_000;

let influxd: TestInfluxd;
let dir: string;

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  dir = tempDir('outage');
});

after(async () => {
  await influxd.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('the gateway down for 10 simulated minutes while 9 nodes sample: every slot sequence complete, in the registry and in InfluxDB', async (t) => {
  const credentialsPath = join(dir, 'nodes.json');
  const passwords = new Map<string, string>();
  for (const n of NODES) passwords.set(n, await addNode(credentialsPath, n));
  const port = await freePort();
  const config: GatewayConfig = parseGatewayConfig({
    fleet: 'solar',
    broker: { host: '127.0.0.1', port, credentialsPath },
    store: { url: `${influxd.url}/outage`, flushIntervalMs: 100, retryMs: 200 },
    statsIntervalMs: 60_000,
  });
  const log = pino({ level: 'silent' });
  let gw: Gateway | undefined = await startGateway(config, { clock: new RealClock(), log });
  t.after(() => gw?.close());

  const clock = new ScaledClock(SPEED);
  const agents: Agent[] = [];
  t.after(async () => {
    for (const a of agents) await a.stop('test over', false);
  });
  for (const nodeId of NODES) {
    agents.push(await startAgent(agentConfig({
      nodeId,
      // The backoff and the stop's budget run on the node's clock: scaled to 0.1–0.4 s and 1 s of wall time.
      gateway: { url: `mqtt://127.0.0.1:${port}`, username: nodeId, password: passwords.get(nodeId), reconnectMinMs: 100 * SPEED, reconnectMaxMs: 400 * SPEED },
      slotMs: 60_000, sampleHz: 0.2, spool: { dir: join(dir, nodeId) }, stopFlushMs: 120_000,
    }), clock));
  }
  const first = gw;
  await until('three slots from every node at the first gateway', () => NODES.every((n) => (first.registry.get(n)?.lastSeq ?? -1) >= 2));

  // The gateway goes down: broker, registry and store with it.
  await gw.close();
  gw = undefined;
  const beforeOutage = NODES.map((n) => first.registry.get(n)!);
  const downAt = clock.now();
  await until('the agents notice', () => agents.every((a) => !a.link.connected));
  await clock.sleep(OUTAGE_MS - (clock.now() - downAt));
  const spooled = agents.map((a) => a.spool.pending().filter((e) => e.cls === 'slot').length);
  // About ten each (one per simulated minute); fewer when a loaded machine delays the timers.
  assert.ok(spooled.every((n) => n >= 1), `each node spooled slot records while the gateway was away: ${spooled.join(', ')}`);

  gw = await startGateway(config, { clock: new RealClock(), log });
  const second = gw;
  await until('every spool drained into the new gateway', () => agents.every((a) => a.link.connected && a.spool.pending().length === 0), 30_000);
  // Two more slots each after the recovery, then a clean stop that closes the partial slot.
  const resumeAt = agents.map((a) => a.ledger.nextSeq);
  await until('two more slots from every node', () => agents.every((a, i) => a.ledger.nextSeq >= resumeAt[i]! + 2));
  for (const a of agents) await a.stop('test over');
  await until('the last records at the registry', () => agents.every((a) => second.registry.get(a.config.nodeId)?.lastSeq === a.ledger.nextSeq - 1));
  await second.store.flush();

  for (const [i, a] of agents.entries()) {
    const nodeId = a.config.nodeId;
    const n = a.ledger.nextSeq;
    assert.equal(beforeOutage[i]!.missedSlots, 0, `${nodeId}: no gap before the outage`);
    const node = second.registry.get(nodeId)!;
    assert.equal(node.missedSlots, 0, `${nodeId}: no gap after the outage`);
    assert.equal(node.lastSeq, n - 1);
    assert.equal(a.spool.stats().dropped.slot, 0);
    const seqs = await storedSeqs(influxd, 'outage', nodeId);
    assert.deepEqual([...seqs].sort((x, y) => x - y), range(n), `${nodeId}: exactly one point per seq 0..${n - 1} in InfluxDB`);
  }
  assert.equal(second.store.stats().dropped, 0);
  assert.equal(second.store.stats().refused, 0);
});
