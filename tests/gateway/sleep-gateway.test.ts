// Coordinated sleep through the real embedded broker, HTTP API and influxd: three nodes of
// group g1 with working wake paths report a day without sun (the planner plans a node only
// once it has been heard in every hour of the day); the planner sends the two it
// does not need to sleep, over their cmd topics, with wake times; a node that says
// `sleeping` and drops off is not a suspect; once the whole group sleeps, a completion
// gets 503 with Retry-After until the first planned wake; the orders are in InfluxDB. Then
// a group asleep turns a job away, which requests a wake-up: the node that checks in from
// its nap stays awake and the next job is handed to it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { addNode } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { until } from '../../ground/until.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { PROTOCOL_VERSION, encodeJson, nodeTopic, parseCommand, type Command, type NodeProfile } from '../../protocol/index.js';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { dashboardSchema, interpolate, panelQueries } from '../deploy/grafana-queries.js';
import { TestInfluxd } from '../support/influxd.js';
import { captureLog } from '../support/log.js';
import { birth, paperProfile, slotRecord, will } from '../support/protocol-messages.js';

const FLEET = 'sleeptest';
const SLOT = 100_000;
let influxd: TestInfluxd;
let dir: string;

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-sleep-'));
});

after(async () => {
  await influxd.destroy();
  await rm(dir, { recursive: true, force: true });
});

interface FakeNode {
  id: string;
  client: MqttClient;
  commands: Command[];
}

async function connectNode(gw: Gateway, id: string, password: string, profile: NodeProfile): Promise<FakeNode> {
  const state = nodeTopic(FLEET, id, 'state');
  const client = await connectAsync(`mqtt://127.0.0.1:${gw.broker.ports.mqtt}`, {
    clientId: id, username: id, password, reconnectPeriod: 0,
    will: { topic: state, payload: encodeJson(will(id)), qos: 1, retain: true },
  });
  const commands: Command[] = [];
  client.on('message', (_topic, payload) => {
    const c = parseCommand(payload);
    if (c.ok) commands.push(c.value);
  });
  await client.subscribeAsync(nodeTopic(FLEET, id, 'cmd'), { qos: 1 });
  await client.publishAsync(state, encodeJson(birth(id, Date.now(), profile)), { qos: 1, retain: true });
  return { id, client, commands };
}

/** A whole day of slot records ending now, nothing harvested: every hour of the day seen, all of it dark. */
async function reportDarkDay(node: FakeNode, batteryJ: number): Promise<number> {
  const slots = 24 * 3_600_000 / SLOT;
  const start = Date.now() - slots * SLOT;
  for (let seq = 1; seq <= slots; seq++) {
    await node.client.publishAsync(nodeTopic(FLEET, node.id, 'slot'), encodeJson(slotRecord(node.id, seq, {
      slotStartMs: start + (seq - 1) * SLOT, harvestJ: 0, batteryJ, powerMode: 1, queue: 0,
    })), { qos: 1 });
  }
  return slots;
}

/** The agent's last words before it halts: `sleeping`, then its connection drops (the broker sends its will). */
async function sleepAndHalt(node: FakeNode, batteryJ: number): Promise<void> {
  await node.client.publishAsync(nodeTopic(FLEET, node.id, 'event'), encodeJson({
    v: PROTOCOL_VERSION, nodeId: node.id, atMs: Date.now(), kind: 'sleeping', batteryJ, batteryPct: batteryJ / 1000, gamma: 1, powerMode: 1, detail: 'halting until the alarm',
  }), { qos: 1 });
  node.client.stream.destroy();
}

/**
 * A gateway with coordinated sleep writing to its own `database`, and credentials for `ids`.
 * Its rounds are run by hand (everyMs an hour), so each sees every record sent before it.
 */
async function sleepGateway(database: string, ids: string[], checkInMs: number) {
  const credentialsPath = join(dir, `nodes-${database}.json`);
  const passwords = new Map<string, string>();
  for (const id of ids) passwords.set(id, await addNode(credentialsPath, id));
  const config = parseGatewayConfig({
    fleet: FLEET,
    broker: { host: '127.0.0.1', port: 0, credentialsPath },
    http: { host: '127.0.0.1', port: 0 },
    store: { url: `${influxd.url}/${database}`, flushIntervalMs: 50 },
    sleep: { enabled: true, everyMs: 3_600_000, checkInMs },
  });
  const cap = captureLog();
  const gw = await startGateway(config, { clock: new RealClock(), log: cap.log });
  return { gw, cap, passwords };
}

test('at night the gateway sends the spare nodes to sleep, keeps them out of the suspects, and answers a sleeping group with 503 and Retry-After', async () => {
  const ids = ['pi-a', 'pi-b', 'pi-c'];
  // Check-ins after an hour: a relief sooner than that is left as planned.
  const { gw, cap, passwords } = await sleepGateway('gw', ids, 3_600_000);
  const nodes: FakeNode[] = [];
  try {
    const g1 = gw.model.groups[0]!;
    const shard = { model: gw.model.name, firstBlock: g1.from, lastBlock: g1.to - 1 };
    const profile: NodeProfile = { ...paperProfile(g1.name), shard, idleW: 20, wake: { path: 'virtual', ok: true } };
    const batteries = [80_000, 60_000, 40_000];
    for (const id of ids) nodes.push(await connectNode(gw, id, passwords.get(id)!, profile));
    const last = await Promise.all(nodes.map((n, i) => reportDarkDay(n, batteries[i]!)));
    await until('three nodes with a day of slot records', () => ids.every((id, i) => gw.registry.get(id)?.lastSeq === last[i]), 30_000);

    const before = Date.now();
    const sent = gw.sleep!.plan();
    assert.deepEqual(sent.map((d) => d.nodeId), ['pi-b', 'pi-c'], 'pi-a, the fullest, stays awake');
    const [, b, c] = nodes as [FakeNode, FakeNode, FakeNode];
    await until('both sleep commands delivered', () => b.commands.length === 1 && c.commands.length === 1, 10_000);
    const cmdB = b.commands[0]!;
    const cmdC = c.commands[0]!;
    assert.equal(cmdB.op, 'sleep');
    assert.equal(cmdC.op, 'sleep');
    assert.equal(nodes[0]!.commands.length, 0);
    if (cmdB.op !== 'sleep' || cmdC.op !== 'sleep') return;
    // pi-a's 80 quanta last 35 slots at 2 quanta of idle draw: pi-b is woken 6 slots before.
    assert.ok(Math.abs(cmdB.wakeAtMs - (before + 29 * SLOT)) < 5_000, `pi-b relieves pi-a: ${cmdB.wakeAtMs - before} ms`);
    // No harvest foreseen at all: pi-c would sleep a day; not needed, it naps until its check-in.
    assert.ok(Math.abs(cmdC.wakeAtMs - (before + 3_600_000)) < 5_000, `pi-c checks in after an hour: ${cmdC.wakeAtMs - before} ms`);
    assert.match(cmdC.reason, /forecast covers its idle draw; checks in before/);

    // pi-b obeys: it says it sleeps and drops off. Its silence is planned, not a failure.
    await sleepAndHalt(b, 60_000);
    await until('pi-b offline', () => gw.registry.get('pi-b')?.online === false, 10_000);
    assert.ok(gw.registry.get('pi-b')!.sleep?.asleepSinceMs !== undefined);
    gw.router.scheduling.suspect('pi-b', Date.now());
    assert.equal(cap.records.some((r) => r.msg === 'node loses its standing' && r.node === 'pi-b'), false, 'pi-b is no suspect');
    const seen = gw.router.scheduling.views(g1);
    assert.deepEqual(seen.nodes.map((n, i) => [n.nodeId, seen.reasons[i]]), [['pi-a', ''], ['pi-b', 'asleep'], ['pi-c', 'asleep']], 'sent to sleep: no job for it');

    // pi-c too, and pi-a sleeps of its own accord: the whole group sleeps.
    await sleepAndHalt(c, 40_000);
    await sleepAndHalt(nodes[0]!, 80_000);
    await until('the group offline', () => ids.every((id) => gw.registry.get(id)?.online === false), 10_000);
    const res = await fetch(`http://127.0.0.1:${gw.http!.port}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: gw.model.name, prompt: 'Hi', max_tokens: 2 }),
    });
    assert.equal(res.status, 503);
    const retryAfter = Number(res.headers.get('retry-after'));
    const expected = Math.ceil((cmdB.wakeAtMs - Date.now()) / 1000);
    assert.ok(Math.abs(retryAfter - expected) <= 2, `Retry-After ${retryAfter} s, pi-b wakes in ${expected} s`);
    const body = await res.json() as { error: { message: string; code: string; type: string } };
    assert.equal(body.error.code, 'group_asleep');
    assert.match(body.error.message, new RegExp(`group ${g1.name}.*3 asleep.*${new Date(cmdB.wakeAtMs).toISOString()}`));

    // Every order, and the group's count, in InfluxDB.
    const rows = async (q: string) => ((await influxd.query('gw', q)) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> }).results[0]?.series?.[0]?.values ?? [];
    let plans: unknown[][] = [];
    let groups: unknown[][] = [];
    await until('the sleep points in InfluxDB', async () => {
      plans = await rows('SELECT node, wakeAtMs, reason FROM sleep_plan');
      groups = await rows(`SELECT asleep, awake, nextWakeAtMs FROM sleep_group WHERE "group" = '${g1.name}'`);
      return plans.length === 2 && groups.length >= 1;
    }, 10_000, 100);
    assert.deepEqual(plans.map((r) => [r[1], r[2]]), [['pi-b', cmdB.wakeAtMs], ['pi-c', cmdC.wakeAtMs]]);
    assert.deepEqual(groups[0]!.slice(1), [2, 1, cmdB.wakeAtMs]);

    // The dashboard's sleep panels, as Grafana would run them over this night.
    const dashboard = dashboardSchema.parse(JSON.parse(await readFile(resolve(import.meta.dirname, '../../../deploy/grafana/dashboards/heliomesh.json'), 'utf8')));
    const sleepPanels = panelQueries(dashboard).filter((q) => /FROM "sleep_(plan|group)"/.test(q.query));
    assert.deepEqual(sleepPanels.map((q) => q.panel), ['Nodes asleep per group', 'Planned wake per node']);
    const sel = { values: { fleet: [FLEET], group: [g1.name], node: ids }, multi: { fleet: false, group: true, node: true } };
    const frame = { fromMs: before - 60_000, toMs: Date.now() + 60_000, intervalMs: 1000 };
    const series = async (q: string) => ((await influxd.query('gw', q)) as { results: Array<{ series?: Array<{ tags?: Record<string, string>; columns: string[]; values: unknown[][] }> }> }).results[0]?.series ?? [];
    const asleep = await series(interpolate(sleepPanels[0]!.query, frame, sel));
    assert.ok(asleep[0]?.values.some((r) => r[1] === 2), `the group's two sleepers charted: ${JSON.stringify(asleep)}`);
    const table = await series(interpolate(sleepPanels[1]!.query, frame, sel));
    assert.deepEqual(table.map((t) => [t.tags?.node, t.values[0]![t.columns.indexOf('wake at')]]), [['pi-b', cmdB.wakeAtMs], ['pi-c', cmdC.wakeAtMs]]);
  } finally {
    for (const n of nodes) n.client.end(true);
    await gw.close();
  }
});

test('a job that finds its group asleep gets 503 with Retry-After and requests a wake-up: the node that checks in stays awake and takes the next job', async () => {
  const { gw, cap, passwords } = await sleepGateway('wake', ['pi-a', 'pi-b', 'pi-x', 'pi-y'], 600_000);
  const nodes: FakeNode[] = [];
  try {
    const [g1, g2, g3] = gw.model.groups as [typeof gw.model.groups[number], typeof gw.model.groups[number], typeof gw.model.groups[number]];
    const profileOf = (g: typeof g1, wakes: boolean): NodeProfile => ({
      ...paperProfile(g.name), shard: { model: gw.model.name, firstBlock: g.from, lastBlock: g.to - 1 }, idleW: 20,
      ...(wakes ? { wake: { path: 'virtual' as const, ok: true } } : {}),
    });
    // g1's two nodes can sleep and have been heard through a dark day; g2 and g3 have one node each that stays on.
    const [a, b] = [await connectNode(gw, 'pi-a', passwords.get('pi-a')!, profileOf(g1, true)), await connectNode(gw, 'pi-b', passwords.get('pi-b')!, profileOf(g1, true))];
    nodes.push(a, b);
    for (const [id, g] of [['pi-x', g2], ['pi-y', g3]] as const) {
      const n = await connectNode(gw, id, passwords.get(id)!, profileOf(g, false));
      nodes.push(n);
      await n.client.publishAsync(nodeTopic(FLEET, id, 'slot'), encodeJson(slotRecord(id, 1, { batteryJ: 80_000, powerMode: 1, queue: 0 })), { qos: 1 });
    }
    const day = await Promise.all([reportDarkDay(a, 80_000), reportDarkDay(b, 60_000)]);
    await until('the records in', () => gw.registry.get('pi-a')?.lastSeq === day[0] && gw.registry.get('pi-b')?.lastSeq === day[1] && gw.registry.get('pi-y')?.lastSeq === 1 && gw.registry.get('pi-x')?.lastSeq === 1, 30_000);

    // pi-b is not needed: it would relieve pi-a in 48 min, and naps 10 min instead.
    const before = Date.now();
    assert.deepEqual(gw.sleep!.plan().map((d) => d.nodeId), ['pi-b']);
    await until('pi-b\'s sleep command', () => b.commands.length === 1, 10_000);
    const cmd = b.commands[0]!;
    assert.ok(cmd.op === 'sleep' && Math.abs(cmd.wakeAtMs - (before + 600_000)) < 5_000, `a nap of 10 min: ${JSON.stringify(cmd)}`);
    await sleepAndHalt(b, 60_000);
    // pi-a halts of its own accord: nobody in g1 can serve.
    await sleepAndHalt(a, 80_000);
    await until('g1 offline', () => gw.registry.get('pi-a')?.online === false && gw.registry.get('pi-b')?.online === false, 10_000);

    const complete = () => fetch(`http://127.0.0.1:${gw.http!.port}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: gw.model.name, prompt: 'Hi', max_tokens: 2 }),
    });
    const refused = await complete();
    assert.equal(refused.status, 503);
    assert.equal((await refused.json() as { error: { code: string } }).error.code, 'group_asleep');
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter > 0 && retryAfter <= 600, `Retry-After ${retryAfter} s: at pi-b's check-in`);
    assert.equal(gw.router.refusedAsleep(g1.name), 1);
    assert.deepEqual(gw.sleep!.plan(), []);
    assert.ok(cap.records.some((r) => r.group === g1.name && /wake requested/.test(String(r.msg))), 'the request is logged');

    // pi-b's alarm boots it: a new connection, a birth and a slot record. It stays awake.
    const woken = await connectNode(gw, 'pi-b', passwords.get('pi-b')!, profileOf(g1, true));
    nodes.push(woken);
    const offers: unknown[] = [];
    woken.client.on('message', (topic, payload) => {
      if (topic === nodeTopic(FLEET, 'pi-b', 'jobIn') && payload[0] === 0x7b) offers.push(JSON.parse(payload.toString()));
    });
    await woken.client.subscribeAsync(nodeTopic(FLEET, 'pi-b', 'jobIn'), { qos: 1 });
    await woken.client.publishAsync(nodeTopic(FLEET, 'pi-b', 'slot'), encodeJson(slotRecord('pi-b', day[1]! + 1, {
      slotStartMs: Date.now() - SLOT, harvestJ: 0, batteryJ: 59_000, powerMode: 1, queue: 0,
    })), { qos: 1 });
    await until('pi-b back with a record', () => gw.registry.get('pi-b')?.online === true && gw.registry.get('pi-b')?.lastSeq === day[1]! + 1, 10_000);
    assert.deepEqual(gw.sleep!.plan(), [], 'pi-b is not sent back to sleep');
    assert.ok(cap.records.some((r) => r.group === g1.name && /wake request met/.test(String(r.msg))));
    assert.equal(woken.commands.length, 0);

    // The next job is handed to pi-b.
    const job = gw.jobs.submit({ prompt: 'Hi', maxTokens: 2, temperature: 0, topP: 1, seed: 1, stop: [] });
    await until('an offer on pi-b\'s job/in', () => offers.some((o) => (o as { type: string }).type === 'offer'), 10_000);
    job.cancel('the test is over');
    await job.done.catch(() => {});

    const rows = async (q: string) => ((await influxd.query('wake', q)) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> }).results[0]?.series?.[0]?.values ?? [];
    let marks: unknown[][] = [];
    await until('the rounds in InfluxDB', async () => {
      marks = await rows(`SELECT asleep, awake, wakeRequested FROM sleep_group WHERE "group" = '${g1.name}'`);
      return marks.length >= 3;
    }, 10_000, 100);
    assert.deepEqual(marks.map((r) => r.slice(1)), [[1, 1, false], [2, 0, true], [1, 1, false]], 'ordered; requested; met (pi-a still asleep)');
  } finally {
    for (const n of nodes) n.client.end(true);
    await gw.close();
  }
});
