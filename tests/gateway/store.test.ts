// The InfluxDB store against a real influxd: typed fields, database and retention policy
// creation, an outage in the middle of a run, the buffer bound, the disk spool.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealClock } from '../../ground/clock.js';
import { InfluxStore, NullStore, PointBuffer, StoreConfigSchema, slotPoint, qLimPoint, type StoreConfigInput } from '../../gateway/store/index.js';
import { TestInfluxd } from '../support/influxd.js';
import { captureLog } from '../support/log.js';
import { freePort } from '../support/ports.js';
import { until } from '../../ground/until.js';

let influxd: TestInfluxd;
let dir: string;
// Recent enough for the 30-day retention policy, whatever day the tests run.
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const tags = { fleet: 'test', node: 'pi-1', group: 'g0' };

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-store-'));
});

const opened: InfluxStore[] = [];

after(async () => {
  // Stores of a failed test were not closed; their timers would keep the runner alive.
  for (const s of opened) await s.close();
  await influxd.destroy();
  await rm(dir, { recursive: true, force: true });
});

function makeStore(over: Partial<StoreConfigInput> & { url: string }) {
  const cap = captureLog();
  const config = StoreConfigSchema.parse({ batchSize: 40, flushIntervalMs: 50, retryMs: 100, requestTimeoutMs: 2000, ...over });
  const store = new InfluxStore(config, { clock: new RealClock(), log: cap.log });
  store.start();
  opened.push(store);
  return { store, cap };
}

async function seqs(db: string): Promise<number[]> {
  const res = (await influxd.query(db, 'SELECT seq FROM node_slot')) as { results: Array<{ series?: Array<{ values: Array<[number, number]> }> }> };
  return (res.results[0]?.series?.[0]?.values ?? []).map((v) => v[1]);
}

test('points survive an InfluxDB outage in the middle of a run, in order and typed', async () => {
  const spoolPath = join(dir, 'outage.spool');
  const { store, cap } = makeStore({ url: `${influxd.url}/outage`, spoolPath });
  const slot = (i: number) => slotPoint(tags, { seq: i, batteryJ: 1234.5 + i, batteryPct: 50.25, harvestQ: i % 7 }, T0 + i * 1000);
  for (let i = 0; i < 100; i++) store.write(slot(i));
  await store.flush();
  assert.equal(store.stats().written, 100);

  await influxd.stop();
  for (let i = 100; i < 200; i++) store.write(slot(i));
  await store.flush();
  assert.equal(store.stats().outage, true);
  assert.equal(store.stats().buffered, 100);
  assert.equal(readFileSync(spoolPath, 'utf8').trim().split('\n').length, 100, 'the outage buffer is mirrored on disk');
  assert.ok(cap.messages().some((m) => m.startsWith('cannot write to InfluxDB')));

  await influxd.start();
  await until('the buffer to drain after influxd came back', () => store.stats().buffered === 0);
  await store.close();
  assert.equal(store.stats().written, 200);
  assert.equal(store.stats().dropped, 0);
  assert.equal(existsSync(spoolPath), false, 'the spool is removed once everything is sent');
  assert.deepEqual(await seqs('outage'), Array.from({ length: 200 }, (_, i) => i));

  const keys = (await influxd.query('outage', 'SHOW FIELD KEYS FROM node_slot')) as { results: Array<{ series: Array<{ values: Array<[string, string]> }> }> };
  const types = Object.fromEntries(keys.results[0]!.series[0]!.values);
  assert.deepEqual(types, { batteryJ: 'float', batteryPct: 'float', harvestQ: 'integer', seq: 'integer' });
  const rps = (await influxd.query('outage', 'SHOW RETENTION POLICIES')) as { results: Array<{ series: Array<{ values: unknown[][] }> }> };
  const rp = rps.results[0]!.series[0]!.values.find((v) => v[0] === 'heliomesh');
  assert.ok(rp, 'the retention policy was created');
  assert.equal(rp[1], '720h0m0s');
  assert.equal(rp[4], true, 'and made the default');
});

test('the buffer bound drops the oldest points and counts them', async () => {
  const { store, cap } = makeStore({ url: `${influxd.url}/bound`, maxBufferedPoints: 10 });
  store.write(slotPoint(tags, { seq: -1 }, T0 - 1000));
  await store.flush();
  await influxd.stop();
  for (let i = 0; i < 25; i++) store.write(slotPoint(tags, { seq: i }, T0 + i * 1000));
  await store.flush();
  assert.equal(store.stats().dropped, 15);
  assert.equal(store.stats().buffered, 10);
  assert.ok(cap.messages().some((m) => m.startsWith('InfluxDB buffer bound reached')));
  await influxd.start();
  await until('the bounded buffer to drain', () => store.stats().buffered === 0);
  await store.close();
  assert.deepEqual(await seqs('bound'), [-1, ...Array.from({ length: 10 }, (_, i) => 15 + i)]);
});

test('a spool file carries the buffer across a gateway restart', async () => {
  const spoolPath = join(dir, 'restart.spool');
  const deadUrl = `http://127.0.0.1:${await freePort()}/restart`;
  const first = makeStore({ url: deadUrl, spoolPath });
  for (let i = 0; i < 5; i++) first.store.write(qLimPoint(tags, { qLim: 0.1 * i, qEnergy: 0.5, qProc: 0.1 * i, energyBinds: false, solves: i }, T0 + i));
  first.store.write(slotPoint(tags, { seq: 7 }, T0 + 10));
  await first.store.flush();
  await first.store.close();
  assert.ok(first.cap.messages().some((m) => m.includes('they stay in the spool file')));

  // A point that does not fit the schema would be refused forever; it is skipped on load.
  appendFileSync(spoolPath, JSON.stringify({ measurement: 'node_slot', tags, fields: { seq: 'x' }, timestampMs: T0 }) + '\n');
  const second = makeStore({ url: `${influxd.url}/restart`, spoolPath });
  assert.equal(second.store.stats().buffered, 6);
  assert.ok(second.cap.records.some((r) => r.loaded === 6 && r.unreadable === 1));
  await second.store.flush();
  await second.store.close();
  assert.equal(second.store.stats().written, 6);
  const res = (await influxd.query('restart', 'SELECT count(qLim) FROM q_lim')) as { results: Array<{ series: Array<{ values: number[][] }> }> };
  assert.equal(res.results[0]!.series[0]!.values[0]![1], 5);
  assert.deepEqual(await seqs('restart'), [7]);
});

test('a point that does not fit the schema fails at its writer', () => {
  const { store } = makeStore({ url: `${influxd.url}/bad` });
  assert.throws(() => store.write({ measurement: 'node_slot', tags, fields: { seq: 'seven' }, timestampMs: T0 }), /Expected numeric value/);
  assert.throws(() => store.write({ measurement: 'node_slot', tags, fields: { volts: 1 }, timestampMs: T0 }), /Extraneous fields/);
  return store.close();
});

test('a batch InfluxDB refuses is counted and does not block the queue', async () => {
  const { store, cap } = makeStore({ url: `${influxd.url}/refuse`, retentionPolicy: { duration: '1h' } });
  store.write(slotPoint(tags, { seq: 1 }, Date.now() - 3 * 3_600_000));
  await store.flush();
  store.write(slotPoint(tags, { seq: 2 }, Date.now()));
  await store.flush();
  await store.close();
  assert.equal(store.stats().refused, 1);
  assert.equal(store.stats().written, 1);
  assert.ok(cap.messages().some((m) => m.startsWith('InfluxDB refused a batch')));
  assert.deepEqual(await seqs('refuse'), [2]);
});

test('points wait, not vanish, while InfluxDB refuses our credentials', async () => {
  const secured = await TestInfluxd.create({ auth: true });
  await secured.start();
  try {
    const { store } = makeStore({ url: `${secured.url}/auth`, username: 'heliomesh', password: 'sunny-day' });
    store.write(slotPoint(tags, { seq: 1 }, T0));
    await store.flush();
    assert.equal(store.stats().outage, true);
    assert.equal(store.stats().refused, 0);
    assert.equal(store.stats().buffered, 1);
    // The operator creates the user; the store sends what it kept.
    await secured.query('', "CREATE USER heliomesh WITH PASSWORD 'sunny-day' WITH ALL PRIVILEGES");
    await until('the points to be sent once the user exists', () => store.stats().buffered === 0);
    await store.close();
    const res = (await secured.query('auth', 'SELECT seq FROM node_slot', { u: 'heliomesh', p: 'sunny-day' })) as { results: Array<{ series: Array<{ values: number[][] }> }> };
    assert.deepEqual(res.results[0]!.series[0]!.values.map((v) => v[1]), [1]);
  } finally {
    await secured.destroy();
  }
});

test('without InfluxDB the gateway says once that it is not logging', async () => {
  const cap = captureLog();
  const store = new NullStore(cap.log);
  store.write(slotPoint(tags, { seq: 1 }, T0));
  store.write(slotPoint(tags, { seq: 2 }, T0));
  await store.close();
  assert.equal(cap.messages().filter((m) => m.includes('not logging')).length, 1);
});

test('PointBuffer keeps order, bounds itself and recovers its spool', () => {
  const spoolPath = join(dir, 'unit.spool');
  const b = new PointBuffer(3, spoolPath);
  b.startSpooling();
  for (let i = 0; i < 5; i++) b.push(slotPoint(tags, { seq: i }, T0 + i));
  assert.equal(b.dropped, 2);
  b.syncSpool();
  const again = new PointBuffer(3, spoolPath);
  appendFileSync(spoolPath, '{"measurement":"node_slot","tags":{},"fields":{"seq":[1]},"timestampMs":1}\n{"measurement":"node_sl');
  assert.deepEqual(again.loadSpool(), { loaded: 3, unreadable: 2 }, 'a malformed point and a torn last line are skipped');
  assert.deepEqual(again.peek(10).map((p) => p.fields.seq), [2, 3, 4]);
  again.commit(3);
  assert.equal(existsSync(spoolPath), false);
  assert.throws(() => new PointBuffer(0), /positive integer/);
});
