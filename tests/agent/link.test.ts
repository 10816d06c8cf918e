import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { Link } from '../../agent/link.js';
import { RealClock, type Clock } from '../../ground/clock.js';
import { VirtualClock } from '../../hardware/clock.js';
import { Spool } from '../../agent/spool.js';
import {
  MAX_JSON_BYTES, PROTOCOL_VERSION, encodeJson, nodeTopics, parseCommandReply, parseSlotRecord, parseState,
  type CommandReply, type NodeProfile, type SlotRecord, type StateMessage,
} from '../../protocol/index.js';
import { Mosquitto, aedesWithFolder } from './brokers.js';
import { StallingRelay } from './stall.js';
import { until } from '../../ground/until.js';

const quiet = { info() {}, warn() {}, error() {} };
const profile: NodeProfile = {
  group: 'g1', slotMs: 60_000, capacityJ: 72_000, queueCapacity: 1,
  thresholds: { eThJ: 7200, eThUpJ: 14_400, criticalJ: 2160 },
  modes: [{ powerMode: 1, name: 'low', kappa: 3, costJ: 40 }],
  modeTable: [{ minFraction: 0, powerMode: 1 }],
};
const birth = (): StateMessage => ({ v: PROTOCOL_VERSION, status: 'online', nodeId: 'pi-01', atMs: Date.now(), profile });

function slot(seq: number): SlotRecord {
  return {
    v: PROTOCOL_VERSION, nodeId: 'pi-01', seq, slotStartMs: seq * 60_000, slotMs: 60_000, harvestJ: 1, consumedJ: 2, batteryJ: 30_000,
    batteryPct: 41.6, powerMode: 1, gamma: 1, queue: 0, charger: null, health: [], degraded: false, samples: 120,
  };
}

function makeLink(port: number, spool: Spool, onCommand = async () => undefined as Record<string, unknown> | undefined, clock: Clock = new RealClock()): Link {
  const link = new Link({
    url: `mqtt://127.0.0.1:${port}`, fleet: 't', nodeId: 'pi-01', keepaliveS: 5, reconnectMinMs: 50, reconnectMaxMs: 400,
    spool, clock, log: quiet,
  });
  link.start({ birth, onCommand });
  return link;
}

async function observer(port: number, filter: string, id: string): Promise<{ client: MqttClient; got: Array<{ topic: string; payload: Buffer; retain: boolean }> }> {
  const got: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: id, clean: false, reconnectPeriod: 50 });
  client.on('message', (topic, payload, packet) => got.push({ topic, payload, retain: packet.retain }));
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, got };
}

test('broker stopped for a while and the agent restarted mid-spool: every slot record arrives, in one gapless sequence', async (t) => {
  const broker = await Mosquitto.start();
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-link-'));
  t.after(async () => {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const obs = await observer(broker.port, 'heliomesh/t/node/+/slot', 'observer-slots');
  let spool = Spool.open({ dir, maxBytes: 1 << 20 });
  let link = makeLink(broker.port, spool);
  t.after(() => link.kill());
  t.after(() => obs.client.endAsync());
  await until('first connect', () => link.connected);
  for (let s = 0; s < 5; s++) link.send('slot', slot(s));
  await until('first records', () => obs.got.length >= 5);

  await broker.down();
  await until('link notices the outage', () => !link.connected);
  for (let s = 5; s < 12; s++) link.send('slot', slot(s));
  assert.equal(spool.pending().length, 7, 'records spooled while the broker is away');
  // The agent process dies with records still in the spool; a new one takes over the files.
  await link.kill();
  spool.close();
  spool = Spool.open({ dir, maxBytes: 1 << 20 });
  assert.equal(spool.pending().length, 7);
  link = makeLink(broker.port, spool);
  const second = link;
  t.after(() => second.kill());
  for (let s = 12; s < 15; s++) link.send('slot', slot(s));

  await broker.up();
  await until('spool drained', () => link.connected && spool.pending().length === 0);
  await until('all records at the observer', () => new Set(obs.got.map((g) => parseSlotRecord(g.payload)).filter((r) => r.ok).map((r) => r.ok && r.value.seq)).size === 15);
  const seqs = [...new Set(obs.got.map((g) => { const r = parseSlotRecord(g.payload); assert.ok(r.ok); return r.value.seq; }))].sort((a, b) => a - b);
  assert.deepEqual(seqs, Array.from({ length: 15 }, (_, i) => i));

  // The retained birth carries the profile; a latecomer sees it.
  const late = await observer(broker.port, nodeTopics('t', 'pi-01').state, 'latecomer');
  t.after(() => late.client.endAsync());
  await until('retained state', () => late.got.length > 0);
  const st = parseState(late.got[0]!.payload);
  assert.ok(st.ok && st.value.status === 'online' && st.value.profile.group === 'g1');
  assert.ok(late.got[0]!.retain);

  // A clean goodbye leaves a retained offline state.
  await link.close('stopping');
  await until('offline state', () => late.got.some((g) => { const s = parseState(g.payload); return s.ok && s.value.status === 'offline'; }));
  spool.close();
});

test('an agent that vanishes leaves its will: a retained offline state', async (t) => {
  const { broker, dir } = await aedesWithFolder(t, 'link');
  const spool = Spool.open({ dir, maxBytes: 1 << 20 });
  const link = makeLink(broker.port, spool);
  t.after(() => link.kill());
  await until('connect', () => link.connected);
  const obs = await observer(broker.port, nodeTopics('t', 'pi-01').state, 'observer-will');
  t.after(() => obs.client.endAsync());
  await until('birth', () => obs.got.length > 0);
  await link.kill();
  await until('will', () => obs.got.some((g) => { const s = parseState(g.payload); return s.ok && s.value.status === 'offline' && s.value.reason === 'connection lost'; }));
  spool.close();
});

test('commands: malformed, oversized and unknown ones are refused and answered; valid ones run', async (t) => {
  const { broker, dir } = await aedesWithFolder(t, 'link');
  const spool = Spool.open({ dir, maxBytes: 1 << 20 });
  const ran: string[] = [];
  const link = makeLink(broker.port, spool, async () => {
    ran.push('ping');
    return { pong: true };
  });
  t.after(() => link.kill());
  await until('connect', () => link.connected);
  const topics = nodeTopics('t', 'pi-01');
  const obs = await observer(broker.port, topics.cmdReply, 'observer-cmd');
  t.after(() => obs.client.endAsync());
  await until('agent subscribed', () => (broker.aedes as unknown as { connectedClients: number }).connectedClients >= 2);
  await new Promise((r) => setTimeout(r, 100));
  await obs.client.publishAsync(topics.cmd, Buffer.from('{not json'), { qos: 1 });
  await obs.client.publishAsync(topics.cmd, encodeJson({ v: 1, id: 'big', op: 'ping', pad: 'x'.repeat(MAX_JSON_BYTES) }), { qos: 1 });
  await obs.client.publishAsync(topics.cmd, encodeJson({ v: 1, id: 'c-unknown', op: 'format-disk' }), { qos: 1 });
  await obs.client.publishAsync(topics.cmd, encodeJson({ v: 1, id: 'c-ping', op: 'ping' }), { qos: 1 });
  await until('four replies', () => obs.got.length >= 4);
  const replies = obs.got.map((g) => { const r = parseCommandReply(g.payload); assert.ok(r.ok); return r.value; });
  const byId = (id: string | null): CommandReply => replies.find((r) => r.id === id)!;
  assert.match(byId(null).error!, /not JSON/);
  assert.equal(replies.filter((r) => r.id === null).length, 2, 'too big to read an id from: answered with id null');
  assert.ok(replies.some((r) => r.id === null && /exceeds/.test(r.error!)));
  assert.equal(byId('c-unknown').ok, false);
  assert.match(byId('c-unknown').error!, /op/);
  assert.deepEqual(byId('c-ping'), { v: 1, id: 'c-ping', ok: true, result: { pong: true } });
  assert.deepEqual(ran, ['ping']);
  await link.close('done');
  spool.close();
});

test('reconnect attempts back off, doubling up to the maximum', async (t) => {
  // A server that accepts TCP and hangs up at once: every attempt fails like a broker outage.
  const attempts: number[] = [];
  const server = createServer((socket) => {
    attempts.push(Date.now());
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-link-'));
  const spool = Spool.open({ dir, maxBytes: 1 << 20 });
  t.after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    spool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const link = new Link({
    url: `mqtt://127.0.0.1:${port}`, fleet: 't', nodeId: 'pi-01', keepaliveS: 5, reconnectMinMs: 40, reconnectMaxMs: 320,
    spool, clock: new RealClock(), log: quiet,
  });
  link.start({ birth, onCommand: async () => undefined });
  await new Promise((r) => setTimeout(r, 1800));
  await link.kill();
  const gaps = attempts.slice(1).map((a, i) => a - attempts[i]!);
  // Without backoff 40 ms apart would give ~45 attempts; doubling to 320 ms gives about 8.
  assert.ok(attempts.length >= 4 && attempts.length <= 12, `${attempts.length} attempts, gaps ${gaps.join(', ')}`);
  assert.ok(gaps.at(-1)! >= 250, `the last gap ${gaps.at(-1)} ms is near the 320 ms maximum`);
  assert.ok(gaps[0]! < 200, `the first gap ${gaps[0]} ms is near the minimum`);
});

test('flush and close deadlines run on the link\'s clock: with the broker stalled they give up when the clock says, not after real time', async (t) => {
  const { broker, dir } = await aedesWithFolder(t, 'link-deadline');
  const relay = await StallingRelay.start(broker.port);
  t.after(() => relay.stop());
  const clock = new VirtualClock(0);
  const spool = Spool.open({ dir, maxBytes: 1 << 20 });
  const link = makeLink(relay.port, spool, undefined, clock);
  t.after(() => link.kill());
  await until('connect', () => link.connected);
  relay.stall();
  link.send('slot', slot(0));
  assert.equal(spool.pending().length, 1);

  const FLUSH_MS = 60_000;
  const realStart = performance.now();
  let flushed: boolean | undefined;
  const flushing = link.flush(FLUSH_MS).then((ok) => { flushed = ok; });
  await clock.advance(FLUSH_MS - 1);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(flushed, undefined, 'still waiting 1 ms before the deadline');
  await clock.advance(1);
  await flushing;
  assert.equal(flushed, false, 'the flush gave up at its deadline');
  assert.equal(spool.pending().length, 1, 'the record unacknowledged stays in the spool');

  // The offline state is never acknowledged, nor the disconnect: both deadlines pass on the clock.
  let closed = false;
  const closing = link.close('stopping', 30_000).then(() => { closed = true; });
  for (let i = 0; i < 10 && !closed; i++) {
    await clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
  }
  await closing;
  assert.equal(closed, true);
  const realMs = performance.now() - realStart;
  assert.ok(realMs < FLUSH_MS / 10, `${realMs.toFixed(0)} ms of real time for ${FLUSH_MS / 1000} s of flush deadline and a 30 s close`);
  spool.close();
});
