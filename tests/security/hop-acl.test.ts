// The ACL of chained hops on the real gateway broker: a node may publish activation frames
// on another node's job/hop only for a job it holds whose route, as the gateway's offer or
// route message named it, leads there, and only under the session the gateway opened at
// that successor. Anything else is refused and the node's connection closed, as for any
// publish outside its own topics; nothing reaches the would-be successor.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { PROTOCOL_VERSION, encodeFrame, encodeJson, nodeTopic, type JobControl } from '../../protocol/index.js';
import { until } from '../../ground/until.js';
import { closedByBroker, FLEET, open, startTestGateway, type TestGateway } from './support.js';

const JOB = 900;
const SESSION_AT_B = 71;
let t: TestGateway;
/** Has the gateway's own login: what it publishes is what the broker learns routes from. */
let gateway: MqttClient;
const seen: string[] = [];
let nextJob = JOB;

const node = (id: string) => open(t, t.url, { clientId: id, username: id, password: t.passwords[id] });
const hop = (to: string) => nodeTopic(FLEET, to, 'jobHop');
const frame = (jobId: number, sessionId: number, close = false) =>
  encodeFrame({ jobId, sessionId, step: 0, position: 0, rows: close ? 0 : 1, dim: 4, close, data: new Float32Array(close ? 0 : 4) });

async function control(to: string, msg: JobControl): Promise<void> {
  await gateway.publishAsync(nodeTopic(FLEET, to, 'jobIn'), encodeJson(msg), { qos: 1 });
}

/**
 * Publishes as `c` on `to`'s job/hop and says whether the broker let it through (the
 * gateway saw it) or refused it and closed `c`.
 */
async function tryHop(c: MqttClient, to: string, payload: Buffer): Promise<'delivered' | 'refused'> {
  const refusedBefore = t.broker.stats().refusedAcl;
  const arrivals = seen.length;
  c.publish(hop(to), payload, { qos: 1 });
  const outcome = await Promise.race([
    until(`a frame on ${hop(to)}`, () => seen.slice(arrivals).includes(hop(to)), 5000).then(() => 'delivered' as const),
    closedByBroker(c).then(() => 'refused' as const),
  ]);
  if (outcome === 'refused') assert.equal(t.broker.stats().refusedAcl - refusedBefore, 1);
  return outcome;
}

/** `from`, connected, holding `job` under `sessionId` with the route the offer names. */
async function holding(from: string, job: number, sessionId: number, next?: { nodeId: string; sessionId: number }): Promise<MqttClient> {
  const c = await node(from);
  await control(from, { v: PROTOCOL_VERSION, type: 'offer', jobId: job, sessionId, ...(next ? { next } : {}) });
  if (next) await until('the grant', () => t.broker.hops.holds(from, job));
  return c;
}

const toB = { nodeId: 'node-b', sessionId: SESSION_AT_B };

before(async () => {
  t = await startTestGateway({ nodes: ['node-a', 'node-b', 'node-c'], broker: { connectsPerMinutePerAddress: 10_000 } });
  gateway = await open(t, t.url, { clientId: 'gateway-test', ...t.broker.internal });
  gateway.on('message', (topic) => seen.push(topic));
  await gateway.subscribeAsync(`heliomesh/${FLEET}/node/+/job/hop`, { qos: 1 });
});

after(() => t.stop());

beforeEach(() => {
  nextJob++;
});

test('with no route, a node publishing on another node\'s job/hop is refused and closed', async () => {
  assert.equal(await tryHop(await holding('node-a', nextJob, 4), 'node-b', frame(nextJob, SESSION_AT_B)), 'refused');
});

test('the offer\'s route lets node A publish to its successor B, under B\'s session and for that job only', async () => {
  const job = nextJob;
  const a = await holding('node-a', job, 5, toB);
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'delivered');
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'delivered', 'for every frame of the job');
  assert.equal(await tryHop(a, 'node-c', frame(job, SESSION_AT_B)), 'refused', 'C is not its successor');
  assert.equal(await tryHop(await holding('node-a', job, 5, toB), 'node-b', frame(job, SESSION_AT_B + 1)), 'refused', 'not the session the gateway opened at B');
  assert.equal(await tryHop(await holding('node-a', job, 5, toB), 'node-b', frame(job + 1000, SESSION_AT_B)), 'refused', 'a job it does not hold');
  assert.equal(await tryHop(await holding('node-a', job, 5, toB), 'node-a', frame(job, 5)), 'refused', 'nor its own job/hop');
  await holding('node-a', job, 5, toB);
  assert.equal(await tryHop(await node('node-c'), 'node-b', frame(job, SESSION_AT_B)), 'refused', 'C holds no route to B');
});

test('the job\'s close frame ends the grant', async () => {
  const job = nextJob;
  const a = await holding('node-a', job, 5, toB);
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'delivered');
  await gateway.publishAsync(nodeTopic(FLEET, 'node-a', 'jobIn'), frame(job, 5, true), { qos: 1 });
  await until('the grant ends', () => t.broker.hops.size === 0);
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'refused', 'after the job closed');
});

test('a route message moves the grant to the new successor; a route without next takes it away', async () => {
  const job = nextJob;
  const a = await holding('node-a', job, 6, toB);
  await control('node-a', { v: PROTOCOL_VERSION, type: 'route', jobId: job, next: { nodeId: 'node-c', sessionId: 80 } });
  assert.equal(await tryHop(a, 'node-c', frame(job, 80)), 'delivered');
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'refused', 'B was its successor before the route moved');
  const again = await holding('node-a', job, 6, toB);
  await control('node-a', { v: PROTOCOL_VERSION, type: 'route', jobId: job });
  assert.equal(t.broker.hops.size, 0);
  assert.equal(await tryHop(again, 'node-b', frame(job, SESSION_AT_B)), 'refused', 'its output goes to the gateway now');
});

test('a cancel keeps the grant until the node reports the job ended; its report or its disconnect ends it', async () => {
  const job = nextJob;
  const a = await holding('node-a', job, 7, toB);
  await control('node-a', { v: PROTOCOL_VERSION, type: 'cancel', jobId: job, reason: 'test' });
  // An output already under way when the cancel came is not a reason to close the node.
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'delivered');
  await a.publishAsync(nodeTopic(FLEET, 'node-a', 'jobOut'), encodeJson({
    v: PROTOCOL_VERSION, type: 'report', jobId: job, sessionId: 7, ok: false, error: 'cancelled: test', steps: 1, durationMs: 5, energyJ: 0, baselineW: 1, powerMode: 1,
  }), { qos: 1 });
  assert.equal(t.broker.hops.size, 0, 'its report ended the grant');
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'refused', 'after its report');

  const c = await holding('node-c', job, 8, toB);
  await c.endAsync();
  await until('C\'s grant goes with its connection', () => t.broker.hops.size === 0);
});

test('an offer and a close frame on the gateway\'s bus grant and end the route as through its client', async () => {
  const job = nextJob;
  const a = await node('node-a');
  const onBus = (payload: Buffer) =>
    new Promise<void>((resolve, reject) => t.broker.bus.publish(nodeTopic(FLEET, 'node-a', 'jobIn'), payload, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
  await onBus(encodeJson({ v: PROTOCOL_VERSION, type: 'offer', jobId: job, sessionId: 9, next: toB } satisfies JobControl));
  assert.ok(t.broker.hops.holds('node-a', job), 'the bus\'s offer taught the broker the route');
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'delivered');
  await onBus(frame(job, 9, true));
  assert.equal(t.broker.hops.holds('node-a', job), false, 'the close frame ended it');
  assert.equal(await tryHop(a, 'node-b', frame(job, SESSION_AT_B)), 'refused');
});
