// MQTT fuzz at the gateway: more than ten thousand generated bad messages from an
// authenticated node to its own topics (malformed JSON, wrong schema, oversized, binary
// garbage, births naming another node, junk job frames and reports), publishes and
// subscriptions outside its own topics, and logins and raw bytes from clients without valid
// credentials. The gateway stays up; every bad input is refused or counted, with exact
// counts per kind; the registry holds exactly the valid nodes and their valid slots; a
// valid node keeps working afterwards.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { encodeFrame, encodeJson, nodeTopic, nodeTopics, type NodeTopicKind } from '../../protocol/index.js';
import { until } from '../faults/support.js';
import { captureLog, type Captured } from '../support/log.js';
import { Rng, badMessages, eventMessage, validBirth, validSlot } from './generator.js';
import { cheapEntry, connectPacket, publishPacket, remainingLength, sendRaw } from './mqtt-raw.js';

const FLEET = 'fuzz';
/** A well-behaved node that must keep working throughout. */
const GOOD = 'pi-a';
/** The authenticated node that sends the bad messages. */
const FUZZER = 'pi-b';
/** Authenticated, but never sends a birth. */
const UNBORN = 'pi-d';
/** Named by the fuzzer, never connected. */
const VICTIM = 'pi-c';
const PASSWORD: Record<string, string> = { [GOOD]: 'good-secret', [FUZZER]: 'fuzzer-secret', [UNBORN]: 'unborn-secret' };
const MAX_PACKET = 256 * 1024;

const BAD_JSON = 10_000;
const VALID_SLOTS = 200;
const REPEATED_SLOTS = 50;
const JOB_OUT_BAD = 600;
const JOB_OUT_STALE = 200;
const UNREAD_TOPIC_JUNK = 300;
const ACL_PUBLISHES = 60;
const ACL_SUBSCRIBES = 200;

let dir: string;
let gw: Gateway;
let cap: Captured;
let port: number;
const clients: MqttClient[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-fuzz-'));
  const credentialsPath = join(dir, 'nodes.json');
  const nodes = Object.fromEntries(Object.entries(PASSWORD).map(([id, pw]) => [id, cheapEntry(pw)]));
  await writeFile(credentialsPath, JSON.stringify({ version: 1, nodes }), { mode: 0o600 });
  cap = captureLog();
  gw = await startGateway(parseGatewayConfig({
    fleet: FLEET,
    broker: {
      host: '127.0.0.1', port: 0, credentialsPath, maxPacketBytes: MAX_PACKET, connectTimeoutMs: 400,
      // Many deliberate reconnects from one address; the rate limit has tests of its own.
      connectsPerMinutePerAddress: 100_000,
    },
    model: { backend: 'cpu' },
    // Activation frames must fit in a packet; the bundled model's are a few KiB.
    router: { maxFrameBytes: MAX_PACKET / 2 },
    http: { host: '127.0.0.1', port: 0 },
  }), { clock: new RealClock(), log: cap.log });
  port = gw.broker.ports.mqtt!;
});

after(async () => {
  for (const c of clients) await c.endAsync(true);
  await gw?.close();
  await rm(dir, { recursive: true, force: true });
});

async function connectNode(nodeId: string, over: Record<string, unknown> = {}): Promise<MqttClient> {
  const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: nodeId, username: nodeId, password: PASSWORD[nodeId], reconnectPeriod: 0, ...over });
  clients.push(c);
  return c;
}

/** Publishes in order with at most `window` QoS 1 messages in flight. */
async function publishAll(c: MqttClient, msgs: Array<{ topic: string; payload: Buffer }>, opts: IClientPublishOptions = { qos: 1 }, window = 100): Promise<void> {
  const inFlight = new Set<Promise<unknown>>();
  for (const m of msgs) {
    const p = c.publishAsync(m.topic, m.payload, opts).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

const logged = (msg: string) => cap.records.filter((r) => r.msg === msg).length;

test('ten thousand bad messages from an authenticated node: each refused and counted, the registry holds only valid state', async () => {
  const good = await connectNode(GOOD);
  const goodTopics = nodeTopics(FLEET, GOOD);
  await good.publishAsync(goodTopics.state, validBirth(GOOD), { qos: 1, retain: true });
  await publishAll(good, [0, 1, 2, 3, 4].map((seq) => ({ topic: goodTopics.slot, payload: validSlot(GOOD, seq) })));
  await until('the good node in the registry', () => gw.registry.get(GOOD)?.lastSeq === 4);

  const rng = new Rng(20261201);
  const own = nodeTopics(FLEET, FUZZER);
  const bad = badMessages(BAD_JSON, { self: FUZZER, others: [GOOD, VICTIM, UNBORN, 'pi-zz'] }, rng);
  // The stream: a birth, then the bad messages with the valid slot records spread through
  // them in order, and repeats of valid records some time after their first copy.
  const stream: Array<{ topic: string; payload: Buffer }> = bad.map((m) => ({ topic: own[m.kind], payload: m.payload }));
  const validAt = Array.from({ length: VALID_SLOTS }, () => rng.int(0, stream.length)).sort((a, b) => a - b);
  for (let seq = VALID_SLOTS - 1; seq >= 0; seq--) stream.splice(validAt[seq]!, 0, { topic: own.slot, payload: validSlot(FUZZER, seq) });
  const repeats = Array.from({ length: REPEATED_SLOTS }, (_, i) => ({ topic: own.slot, payload: validSlot(FUZZER, i * 2) }));
  stream.push(...rng.shuffle(repeats));
  stream.unshift({ topic: own.state, payload: validBirth(FUZZER) });

  // Topics the gateway does not read into the registry: the broker takes and counts them.
  for (let i = 0; i < UNREAD_TOPIC_JUNK; i++) stream.push({ topic: own[rng.pick(['telemetry', 'cmdReply'] as const)], payload: rng.bytes(rng.int(1, 4096)) });
  // job/out: garbage, broken frames and JSON for the router to refuse; valid frames and
  // reports for jobs that do not exist, for it to count as stale.
  for (let i = 0; i < JOB_OUT_BAD; i++) stream.push({ topic: own.jobOut, payload: badJobOut(rng) });
  for (let i = 0; i < JOB_OUT_STALE; i++) stream.push({ topic: own.jobOut, payload: staleJobOut(rng) });

  // aedes counts a publish after it has delivered it, so under load the registry can hold
  // the good node's records before the broker has counted them: wait for its six.
  await until('the broker to count the good node\'s birth and records', () => gw.broker.stats().publishesIn >= 6);
  const before = { link: { ...gw.link.counters }, ignored: { ...gw.link.ignored }, broker: gw.broker.stats(), router: { ...gw.router.stats } };
  const fuzzer = await connectNode(FUZZER);
  await publishAll(fuzzer, stream);
  const readByLink = 1 + BAD_JSON + VALID_SLOTS + REPEATED_SLOTS + JOB_OUT_BAD + JOB_OUT_STALE;
  await until('the link to see every message', () => gw.link.counters.messages - before.link.messages >= readByLink);
  await new Promise((r) => setTimeout(r, 200));

  assert.equal(gw.broker.stats().publishesIn - before.broker.publishesIn, stream.length, 'every publish on its own topics was taken by the broker');
  assert.equal(gw.link.counters.messages - before.link.messages, readByLink);
  assert.equal(gw.link.counters.invalid - before.link.invalid, BAD_JSON, 'each bad state, slot or event message refused once');
  assert.equal(logged('node message refused'), BAD_JSON, 'and logged once');
  assert.equal(gw.link.ignored.duplicateSlots - before.ignored.duplicateSlots, REPEATED_SLOTS);
  assert.equal(gw.router.stats.invalid - before.router.invalid, JOB_OUT_BAD, 'each bad job/out message refused by the router');
  assert.equal(gw.router.stats.stale - before.router.stale, JOB_OUT_STALE, 'valid job/out messages for no job counted as stale');
  assert.equal(gw.broker.stats().refusedAcl, before.broker.refusedAcl, 'no publish on its own topics was an ACL refusal');
  assert.ok(fuzzer.connected, 'bad payloads on its own topics do not cost the node its connection');

  // Nothing partial: exactly the two born nodes, the fuzzer's valid records and nothing else.
  assert.deepEqual(gw.registry.all().map((n) => n.nodeId).sort(), [GOOD, FUZZER]);
  const f = gw.registry.get(FUZZER)!;
  assert.equal(f.lastSeq, VALID_SLOTS - 1);
  assert.equal(f.missedSlots, 0);
  assert.equal(f.batteryJ, 40_000 + VALID_SLOTS - 1);
  assert.equal(f.profile.group, 'g1');
  assert.equal(f.online, true);
  const g = gw.registry.get(GOOD)!;
  assert.equal(g.lastSeq, 4, 'slot records naming the good node did not reach it');
  assert.equal(g.batteryJ, 40_004);
  assert.equal(g.online, true);
});

/** Garbage, frames that fail their checks, and JSON that is not a job report. */
function badJobOut(rng: Rng): Buffer {
  const frame = encodeFrame({ jobId: rng.int(0, 1000), sessionId: rng.int(0, 1000), step: 0, position: 0, rows: 1, dim: 4, data: [1, 2, 3, 4] });
  switch (rng.int(0, 6)) {
    case 0: return rng.bytes(rng.int(1, 2048));
    case 1: return frame.subarray(0, rng.int(4, frame.length - 1)); // truncated
    case 2: { const b = Buffer.from(frame); b[rng.int(36, b.length - 1)]! ^= 0xff; return b; } // data flipped: CRC fails
    case 3: { const b = Buffer.from(frame); b.writeUInt8(9, 4); return b; } // unknown version
    case 4: return Buffer.concat([frame, Buffer.alloc(rng.int(1, 64))]); // padded
    case 5: return encodeJson({ v: 1, type: rng.pick(['accepted', 'refused', 'report', 'bogus']), jobId: -1 });
    default: return encodeJson({ v: 1, type: 'report', jobId: 1, sessionId: 1, ok: true, steps: 1, durationMs: 1, energyJ: 1, baselineW: 1, powerMode: 1, pad: 'x'.repeat(17_000) });
  }
}

/** Well-formed frames and reports for job numbers the gateway never issued. */
function staleJobOut(rng: Rng): Buffer {
  const jobId = rng.int(1_000_000, 2_000_000);
  if (rng.next() < 0.5) return encodeFrame({ jobId, sessionId: rng.int(0, 1000), step: rng.int(0, 10), position: 0, rows: 1, dim: 2, data: [0.5, -0.5] });
  return encodeJson({ v: 1, type: rng.pick(['accepted', 'refused', 'handed-back'] as const), jobId, reason: 'fuzz' });
}

test('publishes outside its own topics close the client; refused subscriptions leave it connected; each counted', async () => {
  const rng = new Rng(7);
  const before = gw.broker.stats();
  const foreignKinds: NodeTopicKind[] = ['state', 'slot', 'event', 'telemetry', 'cmdReply', 'jobOut', 'cmd', 'jobIn'];
  const forbidden = (): string => {
    switch (rng.int(0, 5)) {
      case 0: return nodeTopic(FLEET, rng.pick([GOOD, VICTIM]), rng.pick(foreignKinds)); // another node's
      case 1: return nodeTopic(FLEET, FUZZER, rng.pick(['cmd', 'jobIn'] as const)); // its own inbound topics
      case 2: return `heliomesh/${FLEET}/node/${FUZZER}/${rng.pick(['slots', 'job', 'job/out/x', 'state/', 'x'])}`;
      case 3: return nodeTopic('other', FUZZER, 'slot');
      case 4: return rng.pick(['$SYS/broker/clients', 'heliomesh', 'a/b/c', `heliomesh/${FLEET}/gateway`]);
      default: return `heliomesh/${FLEET}/node/${VICTIM}/state`;
    }
  };
  for (let i = 0; i < ACL_PUBLISHES; i++) {
    const c = await connectNode(FUZZER);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const payload = rng.next() < 0.5 ? validBirth(FUZZER) : validSlot(GOOD, 1000 + i);
    c.publish(forbidden(), payload, { qos: rng.pick([0, 1] as const) });
    await closed;
    await c.endAsync(true);
  }
  assert.equal(gw.broker.stats().refusedAcl - before.refusedAcl, ACL_PUBLISHES);
  assert.equal(gw.broker.stats().publishesIn, before.publishesIn, 'no refused publish was taken');

  const c = await connectNode(FUZZER);
  const filters = (): string => {
    switch (rng.int(0, 4)) {
      case 0: return nodeTopic(FLEET, rng.pick([GOOD, VICTIM, UNBORN]), rng.pick(foreignKinds));
      case 1: return rng.pick(['#', '+/#', `heliomesh/${FLEET}/#`, `heliomesh/${FLEET}/node/+/cmd`, `heliomesh/+/node/${FUZZER}/cmd`, '$SYS/#']);
      case 2: return `heliomesh/${FLEET}/node/${FUZZER}/${rng.pick(['state', 'slot', 'job/out', '#', '+', 'cmd/reply'])}`;
      case 3: return `heliomesh/${FLEET}/node/${FUZZER}/${rng.pick(['cmd', 'job/in'])}/#`;
      default: return `heliomesh/${FLEET}/node/+/+`;
    }
  };
  for (let i = 0; i < ACL_SUBSCRIBES; i++) {
    await assert.rejects(c.subscribeAsync(filters(), { qos: 1 }), /Subscribe error/);
  }
  // Its own inbound topics are allowed, and not counted.
  await c.subscribeAsync([nodeTopic(FLEET, FUZZER, 'cmd'), nodeTopic(FLEET, FUZZER, 'jobIn')], { qos: 1 });
  assert.ok(c.connected);
  assert.equal(gw.broker.stats().refusedAcl - before.refusedAcl, ACL_PUBLISHES + ACL_SUBSCRIBES);
  await c.endAsync();
  assert.deepEqual(gw.registry.all().map((n) => n.nodeId).sort(), [GOOD, FUZZER], 'no refused publish reached the registry');
  assert.equal(gw.registry.get(GOOD)!.lastSeq, 4);
});

test('a node without a birth: its slot records are held for a birth, its events and will counted as from an unknown node; nothing comes in', async () => {
  const before = { ...gw.link.ignored };
  const c = await connectNode(UNBORN);
  const t = nodeTopics(FLEET, UNBORN);
  const msgs = [
    ...Array.from({ length: 20 }, (_, i) => ({ topic: t.slot, payload: validSlot(UNBORN, i) })),
    ...Array.from({ length: 10 }, () => ({ topic: t.event, payload: encodeJson(eventMessage(UNBORN)) })),
    { topic: t.state, payload: encodeJson({ v: 1, status: 'offline', nodeId: UNBORN, reason: 'test' }) },
  ];
  await publishAll(c, msgs);
  // A broker may hand over a node's queued records before its retained birth (gateway/link.ts).
  await until('the reports counted', () => gw.link.ignored.unknownNode - before.unknownNode >= 11 && gw.link.heldFor(UNBORN) >= 20);
  assert.equal(gw.link.ignored.unknownNode - before.unknownNode, 11);
  assert.equal(gw.link.heldFor(UNBORN), 20);
  assert.equal(gw.registry.get(UNBORN), undefined);
  await c.endAsync();
});

test('clients without valid credentials are refused before anything they send is taken', async () => {
  const before = { broker: gw.broker.stats(), link: { ...gw.link.counters } };
  const url = `mqtt://127.0.0.1:${port}`;
  const attempts: Array<{ opts: Record<string, unknown>; code: number }> = [];
  for (let i = 0; i < 20; i++) {
    attempts.push({ opts: { clientId: `anon-${i}` }, code: 4 }); // no username or password
    attempts.push({ opts: { clientId: FUZZER, username: FUZZER, password: `guess-${i}` }, code: 4 });
    attempts.push({ opts: { clientId: `pi-x${i}`, username: `pi-x${i}`, password: 'x' }, code: 4 }); // unknown node
    attempts.push({ opts: { clientId: GOOD, username: FUZZER, password: PASSWORD[FUZZER] }, code: 5 }); // another node's client id
  }
  for (const a of attempts) {
    await assert.rejects(connectAsync(url, { ...a.opts, reconnectPeriod: 0, connectTimeout: 5000 }), (err: Error & { code?: number }) => err.code === a.code);
  }
  // A CONNECT with a wrong password and a PUBLISH right behind it in the same segment.
  for (let i = 0; i < 20; i++) {
    const bytes = Buffer.concat([connectPacket(FUZZER, FUZZER, `wrong-${i}`), publishPacket(nodeTopic(FLEET, FUZZER, 'state'), validBirth(FUZZER, 'g9'))]);
    const out = await sendRaw(port, bytes, 5000);
    assert.ok(out.closed, 'closed after the refused CONNECT');
    assert.deepEqual([...out.received], [0x20, 2, 0, 4], 'CONNACK 4, bad username or password, and nothing else');
  }
  const stats = gw.broker.stats();
  assert.equal(stats.refusedAuth - before.broker.refusedAuth, attempts.length + 20);
  assert.equal(stats.publishesIn, before.broker.publishesIn, 'nothing published');
  assert.equal(gw.link.counters.messages, before.link.messages);
  assert.equal(gw.registry.get(FUZZER)!.profile.group, 'g1', 'the birth behind the refused CONNECT never arrived');
});

test('raw bytes that are not a session: closed before any of it is taken', async () => {
  const before = { broker: gw.broker.stats(), link: { ...gw.link.counters } };
  const rng = new Rng(99);
  const outcomes: boolean[] = [];
  const N = 20;
  for (let i = 0; i < N; i++) {
    // [MQTT-3.1.0-1]: the first packet must be CONNECT.
    outcomes.push((await sendRaw(port, publishPacket(nodeTopic(FLEET, FUZZER, 'state'), validBirth(FUZZER, 'g8')), 5000)).closed);
    // A reserved packet type (0) with a body of junk (a well-formed length, so the size
    // guard passes it and the MQTT parser is what refuses it).
    const junk = rng.bytes(rng.int(1, 300));
    outcomes.push((await sendRaw(port, Buffer.concat([Buffer.from([0x00]), remainingLength(junk.length), junk]), 5000)).closed);
    // A PUBLISH announcing more than the packet limit: refused from its fixed header alone.
    outcomes.push((await sendRaw(port, Buffer.concat([Buffer.from([0x30]), remainingLength(MAX_PACKET + rng.int(1, 200 * 1024 * 1024))]), 5000)).closed);
  }
  // Silence: a connection that never sends CONNECT is closed after connectTimeoutMs.
  for (let i = 0; i < 3; i++) outcomes.push((await sendRaw(port, Buffer.alloc(0), 5000)).closed);
  assert.ok(outcomes.every(Boolean), 'every such connection closed by the gateway');
  const stats = gw.broker.stats();
  assert.equal(stats.refusedSize - before.broker.refusedSize, N, 'oversized announcements counted');
  assert.equal(stats.refusedProtocol - before.broker.refusedProtocol, 2 * N + 3, 'no CONNECT first, a reserved packet type, or no CONNECT in time: each counted once');
  assert.equal(stats.publishesIn, before.broker.publishesIn);
  assert.equal(gw.link.counters.messages, before.link.messages);
  assert.equal(gw.registry.get(FUZZER)!.profile.group, 'g1');
});

test('after the fuzz the gateway serves a valid node as before', async () => {
  const good = clients.find((c) => (c.options.clientId === GOOD))!;
  assert.ok(good.connected, 'the good node kept its connection throughout');
  assert.ok(gw.client.connected, 'the gateway\'s own client is still connected');
  const t = nodeTopics(FLEET, GOOD);
  await publishAll(good, [5, 6, 7, 8, 9].map((seq) => ({ topic: t.slot, payload: validSlot(GOOD, seq) })));
  await good.publishAsync(t.event, encodeJson(eventMessage(GOOD, { kind: 'power-saving-enter', gamma: 0, powerMode: 0, batteryJ: 9_000, batteryPct: 9 })), { qos: 1 });
  await until('the new records', () => gw.registry.get(GOOD)?.batteryJ === 9_000);
  const g = gw.registry.get(GOOD)!;
  assert.equal(g.lastSeq, 9);
  assert.equal(g.missedSlots, 0);
  assert.equal(g.gamma, 0);
  // A fresh node can still log in and be born.
  const again = await connectNode(UNBORN);
  await again.publishAsync(nodeTopic(FLEET, UNBORN, 'state'), validBirth(UNBORN, 'g2'), { qos: 1 });
  await until('the late birth', () => gw.registry.get(UNBORN)?.online === true);
  assert.deepEqual(gw.registry.all().map((n) => n.nodeId).sort(), [GOOD, FUZZER, UNBORN]);
});

test('/metrics exposes every refusal and ignored message the fuzz caused', async () => {
  const text = await (await fetch(`http://127.0.0.1:${gw.http!.port}/metrics`)).text();
  const value = (name: string, labels = '') => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    assert.ok(line, `${name}${labels} is exposed`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const b = gw.broker.stats();
  assert.equal(value('heliomesh_link_invalid_messages_total'), gw.link.counters.invalid);
  assert.equal(value('heliomesh_link_invalid_messages_total'), BAD_JSON);
  assert.equal(value('heliomesh_link_ignored_messages_total', '{reason="unknown_node"}'), gw.link.ignored.unknownNode);
  assert.equal(value('heliomesh_link_ignored_messages_total', '{reason="duplicate_slot"}'), REPEATED_SLOTS);
  assert.equal(value('heliomesh_job_messages_refused_total', '{reason="invalid"}'), JOB_OUT_BAD);
  assert.equal(value('heliomesh_job_messages_refused_total', '{reason="stale"}'), JOB_OUT_STALE);
  for (const [reason, n] of [['auth', b.refusedAuth], ['acl', b.refusedAcl], ['size', b.refusedSize], ['protocol', b.refusedProtocol]] as const) {
    assert.equal(value('heliomesh_broker_refused_total', `{reason="${reason}"}`), n, reason);
  }
  assert.equal(b.refusedAcl, ACL_PUBLISHES + ACL_SUBSCRIBES);
});
