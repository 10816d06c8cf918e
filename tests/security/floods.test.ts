// Flood limits on the real gateway: oversized packets are refused from their fixed header,
// before authentication and before buffering; connects over the per-address rate are
// refused before the password check, so a guesser cannot make the gateway run scrypt
// faster than the limit allows. Sockets that never log in are capped per address and in
// total apart from the nodes' sessions, and closed at the CONNECT deadline; the HTTP API
// closes idle and slow sockets and caps its connections; a client that half-closes after
// a complete request still gets its answer.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { BrokerConfigSchema } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { nodeTopic } from '../../protocol/index.js';
import { HeldSocket } from '../fuzz/held-socket.js';
import { exchange, requestBytes, samples } from '../fuzz/http-raw.js';
import { remainingLength, sendRaw } from '../fuzz/mqtt-raw.js';
import { Field } from '../support/field.js';
import { captureLog } from '../support/log.js';
import { closedByBroker, FLEET, login, open, startTestGateway, type TestGateway } from './support.js';
import { until } from '../../ground/until.js';

let t: TestGateway;
let observer: MqttClient;
const seen: Array<{ topic: string; bytes: number }> = [];

before(async () => {
  // The default limits, as a deployment runs them.
  t = await startTestGateway({ nodes: ['node-a'] });
  observer = await open(t, t.url, { clientId: 'observer', ...t.broker.internal });
  observer.on('message', (topic, payload) => seen.push({ topic, bytes: payload.length }));
  await observer.subscribeAsync('heliomesh/#', { qos: 1 });
});

after(() => t.stop());

test('a publish over maxPacketBytes closes the node\'s connection and is never delivered; one under it is', async () => {
  const limit = BrokerConfigSchema.parse({ credentialsPath: 'unused' }).maxPacketBytes;
  const topic = nodeTopic(FLEET, 'node-a', 'telemetry');
  const creds = { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'] };
  const before = t.broker.stats();
  const a = await open(t, t.url, creds);
  a.publish(topic, Buffer.alloc(limit + 1, 7), { qos: 0 });
  await closedByBroker(a);
  assert.equal(t.broker.stats().refusedSize - before.refusedSize, 1);
  assert.ok(t.cap.records.some((r) => r.msg === 'oversized MQTT packet; connection closed' && Number(r.bytes) > limit));

  const again = await open(t, t.url, creds);
  await again.publishAsync(topic, Buffer.alloc(limit / 2, 7), { qos: 1 });
  await until('the half-limit message', () => seen.some((s) => s.topic === topic && s.bytes === limit / 2));
  assert.equal(seen.filter((s) => s.bytes > limit).length, 0);
  assert.equal(t.broker.stats().refusedSize - before.refusedSize, 1);
});

test('a packet announcing 200 MiB is refused from its header, before any login', async () => {
  const before = t.broker.stats();
  // A CONNECT fixed header announcing 200 MiB, and only a few bytes of it.
  const raw = await sendRaw(t.broker.ports.mqtt!, Buffer.concat([Buffer.from([0x10]), remainingLength(200 * 1024 * 1024), Buffer.from('\x00\x04MQTT')]), 5000);
  assert.equal(raw.closed, true, 'closed by the broker, not by the timeout');
  assert.equal(raw.received.length, 0, 'no CONNACK');
  const after = t.broker.stats();
  assert.equal(after.refusedSize - before.refusedSize, 1);
  assert.equal(after.refusedAuth, before.refusedAuth, 'it never reached the login');
  assert.equal(after.refusedProtocol, before.refusedProtocol, 'counted once, as oversized');
});

test('connects over the per-address rate are refused before the password check, until the minute has passed', async () => {
  let nowMs = 5_000_000;
  const clock = new (class extends RealClock { override now() { return nowMs; } })();
  const limit = 6;
  const g = await startTestGateway({ nodes: ['node-a'], clock, broker: { connectsPerMinutePerAddress: limit } });
  try {
    const wrong = { clientId: 'node-a', username: 'node-a', password: 'guess' };
    // The gateway's own client is connected in process, so all of 127.0.0.1's budget is ours.
    const budget = limit;
    const excess = 3;
    const codes: Array<number | undefined> = [];
    for (let i = 0; i < budget + excess; i++) {
      const r = await login(g, g.url, wrong);
      assert.equal(r.connected, false);
      codes.push(r.connected ? 0 : r.code);
    }
    assert.deepEqual(codes, [...Array<number>(budget).fill(4), ...Array<undefined>(excess).fill(undefined)], 'CONNACK 4 within the budget; closed without CONNACK beyond it');
    const s = g.broker.stats();
    assert.equal(s.refusedAuth, budget, 'scrypt ran only for the connects within the budget');
    assert.equal(s.refusedRate, excess);
    assert.ok(g.cap.records.some((r) => r.msg === 'too many MQTT connects from one address; refused' && r.remote === '127.0.0.1'));

    const right = { clientId: 'node-a', username: 'node-a', password: g.passwords['node-a'] };
    assert.equal((await login(g, g.url, right)).connected, false, 'the right password too, while the address is over its rate');
    nowMs += 60_001;
    assert.equal((await login(g, g.url, right)).connected, true, 'a minute later the node gets in');
    assert.equal(g.broker.stats().refusedRate, excess + 1);
  } finally {
    await g.stop();
  }
});

// The nodes log in from 127.0.0.1; floods come from other loopback addresses (all of
// 127.0.0.0/8 is the loopback interface on Linux), so a flood and a node are two addresses.
const floodFrom = (i: number) => `127.0.0.${2 + i}`;
const creds = (g: TestGateway, node: string) => ({ clientId: node, username: node, password: g.passwords[node] });

async function scrape(g: TestGateway): Promise<string> {
  const r = await exchange(g.gw.http!.port, requestBytes({ method: 'GET', path: '/metrics' }));
  assert.equal(r.status, 200);
  return r.body;
}

const sample = (exposition: string, name: string, labels: string) => samples(exposition, name).get(labels) ?? 0;

test('sockets that never send CONNECT cannot lock nodes out: past maxPendingPerAddress they are closed at once, a node still logs in, the rest close at the CONNECT deadline', async () => {
  const maxPendingPerAddress = 4;
  // Long enough that the node's login surely falls while the flood holds its places.
  const connectTimeoutMs = 3000;
  // A small maxClients, so that the flood is larger than the whole budget of sessions.
  const maxClients = 3;
  const g = await startTestGateway({ nodes: ['node-a'], broker: { maxClients, maxPendingPerAddress, connectTimeoutMs }, http: { host: '127.0.0.1', port: 0 } });
  const flood: HeldSocket[] = [];
  try {
    const excess = 3;
    flood.push(...await HeldSocket.openMany(maxPendingPerAddress + excess, g.broker.ports.mqtt!, floodFrom(0)));
    await until('the sockets over the address\'s cap closed', () => flood.filter((s) => s.closed).length >= excess);

    const node = await open(g, g.url, creds(g, 'node-a'));
    const loggedInAt = Date.now();
    assert.equal(flood.filter((s) => !s.closed).length, maxPendingPerAddress, 'the node logged in while the flood held every place it could');
    assert.equal(g.broker.stats().clients, 2, 'the node and the gateway\'s own client');

    await until('the waiting sockets closed at the CONNECT deadline', () => flood.every((s) => s.closed), connectTimeoutMs + 10_000);
    assert.ok(flood.every((s) => s.received.length === 0), 'closed with nothing said');
    const refused = flood.filter((s) => s.heldMs < connectTimeoutMs - 100);
    const waited = flood.filter((s) => !refused.includes(s));
    assert.equal(refused.length, excess, 'the sockets over maxPendingPerAddress were closed at once');
    assert.equal(waited.length, maxPendingPerAddress, 'the others were held until the deadline');
    // The node's own session has no CONNECT deadline: it outlives the time its socket had to log in.
    await new Promise((r) => setTimeout(r, Math.max(0, loggedInAt + connectTimeoutMs + 300 - Date.now())));
    assert.ok(node.connected, 'the node\'s session stays');

    const stats = g.broker.stats();
    assert.equal(stats.refusedPending, excess);
    assert.equal(stats.refusedProtocol, maxPendingPerAddress, 'no CONNECT in time: counted with the other protocol refusals');
    assert.equal(stats.refusedAuth, 0);
    assert.ok(g.cap.records.some((r) => r.msg === 'too many MQTT connections waiting to log in from one address; refused' && r.remote === floodFrom(0)));
    const m = await scrape(g);
    assert.equal(sample(m, 'heliomesh_broker_refused_total', 'reason="pending"'), excess);
    assert.equal(sample(m, 'heliomesh_broker_refused_total', 'reason="protocol"'), maxPendingPerAddress);
  } finally {
    for (const s of flood) s.destroy();
    await g.stop();
  }
});

test('a flood from many addresses fills maxPendingConnections: the longest-waiting socket makes room, so a node still logs in', async () => {
  const maxPendingPerAddress = 3;
  const maxPendingConnections = 6;
  const addresses = 4;
  const g = await startTestGateway({ nodes: ['node-a'], broker: { maxClients: 3, maxPendingPerAddress, maxPendingConnections, connectTimeoutMs: 5000 } });
  const flood: HeldSocket[] = [];
  try {
    for (let a = 0; a < addresses; a++) {
      // One address after the other, so the oldest are known.
      flood.push(...await HeldSocket.openMany(maxPendingPerAddress, g.broker.ports.mqtt!, floodFrom(a)));
      await until('the broker took them in', () => flood.filter((s) => s.closed).length >= Math.max(0, flood.length - maxPendingConnections));
    }
    const evicted = addresses * maxPendingPerAddress - maxPendingConnections;
    assert.deepEqual(flood.map((s) => s.closed), flood.map((_, i) => i < evicted), 'the oldest ones, and only those');

    await open(g, g.url, creds(g, 'node-a'));
    assert.equal(g.broker.stats().refusedPending, evicted + 1, 'the node\'s socket took the place of the oldest waiting one');
    assert.equal(flood.filter((s) => !s.closed).length, maxPendingConnections - 1);
    assert.ok(g.cap.records.some((r) => r.msg === 'maxPendingConnections reached: the longest-waiting connection is closed to make room'));
  } finally {
    for (const s of flood) s.destroy();
    await g.stop();
  }
});

test('node sessions are bounded by maxClients apart from sockets still logging in: one more gets CONNACK 3 until a place frees', async () => {
  const maxClients = 3;
  const nodes = ['node-a', 'node-b', 'node-c', 'node-d'];
  const g = await startTestGateway({ nodes, broker: { maxClients }, http: { host: '127.0.0.1', port: 0 } });
  try {
    const inside: MqttClient[] = [];
    for (const n of nodes.slice(0, maxClients)) inside.push(await open(g, g.url, creds(g, n)));
    const refused = await login(g, g.url, creds(g, 'node-d'));
    assert.equal(refused.connected, false);
    assert.equal(refused.connected ? 0 : refused.code, 3, 'CONNACK 3: server unavailable (MQTT 3.1.1 §3.2.2.3)');
    assert.equal(g.broker.stats().refusedFull, 1);
    // A node that already holds a session may replace it at the cap: the count does not grow.
    const again = await open(g, g.url, creds(g, 'node-a'));
    await until('the replaced session closed', () => !inside[0]!.connected);
    await inside[1]!.endAsync();
    await until('the place freed', () => g.broker.stats().clients === maxClients);
    assert.equal((await login(g, g.url, creds(g, 'node-d'))).connected, true, 'a freed place is taken');
    assert.ok(again.connected);
    assert.equal(g.broker.stats().refusedFull, 1);
    assert.equal(sample(await scrape(g), 'heliomesh_broker_refused_total', 'reason="full"'), 1);
  } finally {
    await g.stop();
  }
});

test('sockets on the TLS and WebSocket ports that never finish the handshake or upgrade are closed at the CONNECT deadline too', async () => {
  const connectTimeoutMs = 1000;
  const pki = await mkdtemp(join(tmpdir(), 'heliomesh-floods-pki-'));
  // A throw-away self-signed certificate: no handshake is ever finished with it.
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(pki, 'key.pem'), '-out', join(pki, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  const g = await startTestGateway({
    nodes: ['node-a'],
    broker: { connectTimeoutMs, tls: { port: 0, certPath: join(pki, 'cert.pem'), keyPath: join(pki, 'key.pem') }, websocket: { port: 0 } },
  });
  const idle: HeldSocket[] = [];
  try {
    idle.push(await HeldSocket.open(g.broker.ports.mqtts!, floodFrom(0)), await HeldSocket.open(g.broker.ports.ws!, floodFrom(1)));
    await until('the idle TLS and WebSocket-port sockets closed', () => idle.every((s) => s.closed), connectTimeoutMs + 8000);
    for (const s of idle) assert.ok(s.heldMs >= connectTimeoutMs - 100, `held ${s.heldMs} ms`);
    assert.equal(g.broker.stats().refusedProtocol, 2);
  } finally {
    for (const s of idle) s.destroy();
    await g.stop();
    await rm(pki, { recursive: true, force: true });
  }
});

test('HTTP: an idle socket and one trickling its head get 408 at headersTimeoutMs; a kept-alive one is closed after keepAliveTimeoutMs', async () => {
  const headersTimeoutMs = 1000;
  const keepAliveTimeoutMs = 1000;
  const g = await startTestGateway({ nodes: ['node-a'], http: { host: '127.0.0.1', port: 0, headersTimeoutMs, requestTimeoutMs: 2000, keepAliveTimeoutMs } });
  const held: HeldSocket[] = [];
  try {
    const port = g.gw.http!.port;
    const before = await scrape(g);
    const idle = await HeldSocket.open(port);
    const slow = await HeldSocket.open(port);
    slow.trickleForever(['GET /healthz HTTP/1.1\r\n', 'host: x\r\n', 'x-slow: 1\r\n'], 100);
    const kept = await HeldSocket.open(port);
    kept.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
    held.push(idle, slow, kept);
    await until('all three closed', () => held.every((s) => s.closed), 10_000);
    for (const [what, s] of [['idle', idle], ['slow', slow]] as const) {
      assert.match(s.received.toString('latin1'), /^HTTP\/1\.1 408 /, `${what}: 408 Request Timeout`);
      assert.ok(s.heldMs >= headersTimeoutMs - 100, `${what}: held ${s.heldMs} ms, not closed before headersTimeoutMs`);
    }
    const answer = kept.received.toString('latin1');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.match(answer, /\r\nkeep-alive: timeout=1\r\n/i, 'the client is told how long the connection stays');
    // Node closes a kept-alive socket 1 s after the timeout it announces, for answers in flight;
    // its own default (5 s) would hold it for 6.
    assert.ok(kept.heldMs < keepAliveTimeoutMs + 3000, `kept-alive socket held ${kept.heldMs} ms`);
    const after = await scrape(g);
    const key = 'route="unparsed",method="other",status="408"';
    assert.equal(sample(after, 'heliomesh_http_requests_total', key) - sample(before, 'heliomesh_http_requests_total', key), 2, 'each timeout counted as a 408');
  } finally {
    for (const s of held) s.destroy();
    await g.stop();
  }
});

test('HTTP: connections beyond maxConnections are closed at once, unanswered, and counted', async () => {
  const maxConnections = 4;
  const g = await startTestGateway({ nodes: ['node-a'], http: { host: '127.0.0.1', port: 0, maxConnections } });
  const held: HeldSocket[] = [];
  try {
    const port = g.gw.http!.port;
    held.push(...await HeldSocket.openMany(maxConnections, port));
    const extra = await HeldSocket.open(port);
    await until('the extra connection closed', () => extra.closed, 5000);
    assert.equal(extra.received.length, 0, 'nothing said');
    assert.ok(held.every((s) => !s.closed), 'the connections within the cap stay');
    held[0]!.destroy();
    // Once the server has seen a place free, a request is answered again; until then each try is dropped too.
    let droppedTries = 0;
    await until('a place free again', async () => {
      const r = await exchange(port, requestBytes({ method: 'GET', path: '/healthz' }));
      if (r.status === 0) droppedTries++;
      return r.status === 200;
    });
    const line = (await scrape(g)).split('\n').find((l) => l.startsWith('heliomesh_http_dropped_connections_total '));
    assert.ok(line, 'the counter is exposed');
    const dropped = Number(line.slice(line.lastIndexOf(' ') + 1));
    assert.ok(dropped >= 1 && dropped <= 1 + droppedTries, `${dropped} dropped: the extra connection, and ${droppedTries} tries before the place was seen free`);
  } finally {
    for (const s of held) s.destroy();
    await g.stop();
  }
});

test('a client that half-closes after a complete request gets its whole answer, plain and streamed, and its job completes', async () => {
  const cap = captureLog();
  const field = await Field.start({ nodesPerGroup: 1, gateway: { http: { host: '127.0.0.1', port: 0 } }, log: cap.log });
  try {
    await field.ready();
    const port = field.gateway.http!.port;
    const body = { model: field.gateway.jobs.model.id, prompt: 'The little robot', max_tokens: 8, temperature: 0, seed: 1 };
    const post = (b: object) => requestBytes({ method: 'POST', path: '/v1/completions', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
    // exchange(…, true): the request, then at once the client's FIN.
    const plain = await exchange(port, post(body), true, 60_000);
    assert.equal(plain.status, 200, plain.body);
    const answer = JSON.parse(plain.body) as { id: string; choices: Array<{ text: string; finish_reason: string }>; usage: { completion_tokens: number } };
    assert.ok(answer.choices[0]!.text.length > 0);
    assert.equal(field.gateway.jobs.job(answer.id)?.status, 'done');

    const streamed = await exchange(port, post({ ...body, stream: true }), true, 60_000);
    assert.equal(streamed.status, 200, streamed.body);
    assert.ok(streamed.body.endsWith('data: [DONE]\n\n'), `the stream ran to its end: ${streamed.body.slice(-200)}`);
    const events = streamed.body.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { id: string; choices: Array<{ text: string }> });
    assert.equal(events.map((e) => e.choices[0]!.text).join(''), answer.choices[0]!.text, 'the same text as the plain answer');
    assert.equal(field.gateway.jobs.job(events[0]!.id)?.status, 'done');
    assert.ok(!cap.records.some((r) => r.msg === 'client went away; cancelling its job'));
  } finally {
    await field.close();
  }
});
