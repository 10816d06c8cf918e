// InfluxDB outage under load: a real gateway takes slot records from 9 nodes on an
// accelerated clock while a real influxd is stopped for 5 simulated minutes and started
// again. Within the buffer bound every point arrives afterwards, exactly once per node and
// sequence number; with a bound smaller than the outage's points, exactly the overflow is
// lost, oldest first, and the loss the gateway counts and logs is exactly what is missing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGatewayConfig, type GatewayConfigInput } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { ScaledClock } from '../../hardware/clock.js';
import { TestInfluxd } from '../support/influxd.js';
import { captureLog } from '../support/log.js';
import { storedSeqs, until } from '../faults/support.js';
import { LightNode, writeCredentials } from './light-nodes.js';

const FLEET = 'sun';
const NODES = Array.from({ length: 9 }, (_, i) => `pi-${i + 1}`);
/** 60× real time: the 5-minute outage lasts 5 s. */
const SPEED = 60;
/** Short slots, 12 records a second per node in real time: load on the store during the outage. */
const SLOT_MS = 5_000;
const OUTAGE_MS = 5 * 60_000;

let influxd: TestInfluxd;
let dir: string;

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-influx-outage-'));
  await writeCredentials(join(dir, 'nodes.json'), NODES);
});

after(async () => {
  await influxd.destroy();
  await rm(dir, { recursive: true, force: true });
});

/** The node's stored slot sequence numbers, ascending. */
async function sortedSeqs(db: string, node: string): Promise<number[]> {
  return (await storedSeqs(influxd, db, node)).sort((a, b) => a - b);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

function fieldOf(db: string, store: Record<string, unknown>) {
  const clock = new ScaledClock(SPEED);
  const cap = captureLog();
  const config: GatewayConfigInput = {
    fleet: FLEET,
    broker: { host: '127.0.0.1', port: 0, credentialsPath: join(dir, 'nodes.json') },
    // flushIntervalMs is on the accelerated clock: 6 s simulated is 100 ms real.
    store: { url: `${influxd.url}/${db}`, flushIntervalMs: 6_000, retryMs: 200, requestTimeoutMs: 1_000, ...store },
    model: { backend: 'cpu' },
  };
  return { clock, cap, config };
}

async function startNodes(gw: Gateway, clock: ScaledClock, t: { after(fn: () => Promise<void>): void }): Promise<LightNode[]> {
  const nodes = NODES.map((id) => new LightNode(id, FLEET, SLOT_MS, clock));
  t.after(async () => {
    for (const n of nodes) await n.end();
  });
  for (const n of nodes) await n.connect(gw.broker.ports.mqtt!);
  await until('every birth', () => NODES.every((id) => gw.registry.get(id)?.online === true));
  return nodes;
}

test('InfluxDB down for 5 simulated minutes under load: every slot point arrives afterwards, once per node and seq', async (t) => {
  const { clock, cap, config } = fieldOf('outage', {});
  const gw = await startGateway(parseGatewayConfig(config), { clock, log: cap.log });
  t.after(() => gw.close());
  const nodes = await startNodes(gw, clock, t);
  for (const n of nodes) n.startSlots();
  await until('ten slots from every node in InfluxDB', async () => {
    for (const id of NODES) if ((await sortedSeqs('outage', id)).length < 10) return false;
    return true;
  });

  await influxd.stop();
  const downAt = clock.now();
  const atDown = nodes.map((n) => n.nextSeq);
  await until('the store to notice', () => gw.store.stats().outage);
  await clock.sleep(OUTAGE_MS - (clock.now() - downAt));
  const during = nodes.map((n, i) => n.nextSeq - atDown[i]!);
  assert.ok(during.every((k) => k >= 55), `each node published about 60 slot records during the outage: ${during.join(', ')}`);
  const buffered = gw.store.stats().buffered;
  assert.ok(buffered >= during.reduce((a, b) => a + b, 0), `the store holds the outage's points (${buffered})`);

  await influxd.start();
  const upAt = Date.now();
  await until('the buffer to drain', () => gw.store.stats().buffered === 0 && !gw.store.stats().outage);
  t.diagnostic(`${buffered} buffered points sent ${Date.now() - upAt} ms after influxd answered again`);
  const resumed = nodes.map((n) => n.nextSeq);
  await until('five more slots from every node', () => nodes.every((n, i) => n.nextSeq >= resumed[i]! + 5));
  for (const n of nodes) n.stopSlots();
  await until('the last records at the registry', () => nodes.every((n) => gw.registry.get(n.nodeId)?.lastSeq === n.nextSeq - 1));
  await gw.store.flush();

  for (const n of nodes) {
    assert.deepEqual(n.errors, []);
    assert.equal(gw.registry.get(n.nodeId)!.missedSlots, 0);
    assert.deepEqual(await sortedSeqs('outage', n.nodeId), range(0, n.nextSeq), `${n.nodeId}: exactly one point per seq 0..${n.nextSeq - 1}`);
  }
  const s = gw.store.stats();
  assert.equal(s.dropped, 0);
  const refusals = cap.records.filter((r) => r.msg?.startsWith('InfluxDB refused')).map((r) => JSON.stringify(r));
  assert.equal(s.refused, 0, `no point refused: ${refusals.join('\n')}`);
  assert.ok(cap.messages().includes('InfluxDB reachable again; sending buffered points'));
});

test('a buffer bound smaller than the outage: exactly the overflow is lost, oldest first, and the loss is counted and logged', async (t) => {
  const BOUND = 200;
  const BEFORE = 5;
  const DURING = OUTAGE_MS / SLOT_MS;
  const AFTER = 3;
  const { clock, cap, config } = fieldOf('bounded', { maxBufferedPoints: BOUND });
  // Only slot points may enter the buffer during the outage, so the loss has one right
  // answer: no broker counters in the window, and no re-solves (the prior stays in use).
  config.statsIntervalMs = 100_000_000;
  config.estimator = { minSlots: 1_000_000 };
  const gw = await startGateway(parseGatewayConfig(config), { clock, log: cap.log });
  t.after(() => gw.close());
  const nodes = await startNodes(gw, clock, t);
  for (let k = 0; k < BEFORE; k++) for (const n of nodes) await n.publishSlot();
  await until('the first records and solves', () => nodes.every((n) => gw.registry.get(n.nodeId)?.lastSeq === BEFORE - 1 && gw.registry.get(n.nodeId)?.solved !== undefined));
  await gw.store.flush();
  assert.equal(gw.store.stats().buffered, 0);

  await influxd.stop();
  // One record per node per slot, for the 5 simulated minutes.
  for (let k = 0; k < DURING; k++) {
    await Promise.all(nodes.map((n) => n.publishSlot()));
    await clock.sleep(SLOT_MS);
  }
  await until('every outage record at the registry', () => nodes.every((n) => gw.registry.get(n.nodeId)?.lastSeq === BEFORE + DURING - 1));
  const lost = NODES.length * DURING - BOUND;
  assert.equal(gw.store.stats().buffered, BOUND);
  assert.equal(gw.store.stats().dropped, lost);
  const reported = () => cap.records.filter((r) => r.msg?.startsWith('InfluxDB buffer bound reached')).map((r) => r.dropped);
  await until('the loss logged', () => reported().at(-1) === lost);

  await influxd.start();
  await until('the buffer to drain', () => gw.store.stats().buffered === 0 && !gw.store.stats().outage);
  for (let k = 0; k < AFTER; k++) for (const n of nodes) await n.publishSlot();
  await until('the last records', () => nodes.every((n) => gw.registry.get(n.nodeId)?.lastSeq === BEFORE + DURING + AFTER - 1));
  await gw.store.flush();

  let missing = 0;
  for (const n of nodes) {
    const seqs = await sortedSeqs('bounded', n.nodeId);
    const gone = range(0, n.nextSeq).filter((s) => !seqs.includes(s));
    missing += gone.length;
    // The oldest go first: what is missing is the start of the node's outage records.
    assert.deepEqual(gone, range(BEFORE, BEFORE + gone.length), `${n.nodeId}: lost records are the oldest of the outage`);
    assert.equal(seqs.length + gone.length, n.nextSeq, `${n.nodeId}: no duplicates`);
    // Records arrived a slot at a time across the nodes, so each lost the same slots but for the last one.
    assert.ok(gone.length === Math.floor(lost / NODES.length) || gone.length === Math.ceil(lost / NODES.length), `${n.nodeId} lost ${gone.length}`);
  }
  assert.equal(missing, lost, `exactly ${lost} slot points lost, as counted`);
  assert.equal(gw.store.stats().dropped, lost);
  assert.equal(gw.store.stats().refused, 0);
});
