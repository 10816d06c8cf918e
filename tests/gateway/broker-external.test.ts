// The gateway as a client of an external broker: Debian's Mosquitto with logins and the
// protocol's node ACL (tests/security/mosquitto.ts), a virtual agent logged in to it, and the
// gateway started with broker.external. The gateway runs no broker and still learns the
// node's birth and slot records.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway, startGatewayOnAnyBroker, type Gateway } from '../../gateway/index.js';
import type { Broker } from '../../gateway/broker/index.js';
import { ScaledClock } from '../../hardware/clock.js';
import { encodeJson, nodeTopic } from '../../protocol/index.js';
import { exampleDoc } from '../agent/fixtures.js';
import { freePort } from '../support/ports.js';
import { captureLog } from '../support/log.js';
import { birth } from '../support/protocol-messages.js';
import { mosquittoNodeAcl, SecuredMosquitto } from '../security/mosquitto.js';
import { spawnGateway } from '../security/support.js';
import { until } from '../../ground/until.js';

const GATEWAY_USER = 'heliomesh-gateway';
let dir: string;
let mosquitto: SecuredMosquitto;
const secret = { gateway: randomBytes(18).toString('base64url'), node: randomBytes(18).toString('base64url') };
let passwordPath: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-external-'));
  passwordPath = join(dir, 'gateway.secret');
  await writeFile(passwordPath, `${secret.gateway}\n`, { mode: 0o600 });
  mosquitto = await SecuredMosquitto.start({
    users: { [GATEWAY_USER]: secret.gateway, 'pi-01': secret.node },
    acl: mosquittoNodeAcl('solar', GATEWAY_USER),
  });
});

after(async () => {
  await mosquitto.stop();
  await rm(dir, { recursive: true, force: true });
});

function externalConfig(over: Record<string, unknown> = {}) {
  return parseGatewayConfig({
    fleet: 'solar',
    broker: { external: { url: `mqtt://127.0.0.1:${mosquitto.port}`, username: GATEWAY_USER, passwordPath, ...over } },
  });
}

/** The virtual agent pi-01 logged in to Mosquitto, a 10 s slot every 0.1 s. */
function startAgent(spool: string): Promise<Agent> {
  return Agent.start(parseAgentConfig({
    ...exampleDoc(),
    gateway: { url: `mqtt://127.0.0.1:${mosquitto.port}`, username: 'pi-01', password: secret.node, reconnectMinMs: 50 },
    slotMs: 10_000, sampleHz: 1, spool: { dir: join(dir, spool) },
  }), { clock: new ScaledClock(100), log: pino({ level: 'silent' }), shutdown: async () => {} });
}

test('with broker.external the gateway runs no broker and registers a virtual agent\'s birth and slot records from Mosquitto', async (t) => {
  const cap = captureLog();
  const gw: Gateway<Broker | undefined> = await startGatewayOnAnyBroker(externalConfig(), { clock: new RealClock(), log: cap.log });
  t.after(() => gw.close());
  assert.equal(gw.broker, undefined, 'no embedded broker');
  assert.ok(cap.records.some((r) => r.msg === 'gateway started' && r.mqtt === null && r.externalBroker === `mqtt://127.0.0.1:${mosquitto.port}`));

  const agent = await startAgent('spool');
  t.after(() => agent.stop('test over'));

  await until('the birth and three slot records in the registry', () => (gw.registry.get('pi-01')?.lastSeq ?? -1) >= 2, 20_000);
  const node = gw.registry.get('pi-01')!;
  assert.equal(node.online, true);
  assert.equal(node.profile.group, 'g1');
  assert.equal(node.missedSlots, 0, 'slot records arrive gapless through Mosquitto');
  assert.equal(gw.link.counters.invalid, 0);

  await agent.stop('test over');
  await until('the will or offline state', () => gw.registry.get('pi-01')?.online === false, 20_000);
});

test('slot records a node publishes while the gateway is away are kept by Mosquitto and taken after its return, none missing', async (t) => {
  const agent = await startAgent('spool-away');
  t.after(() => agent.stop('test over'));
  const first = await startGatewayOnAnyBroker(externalConfig(), { clock: new RealClock(), log: pino({ level: 'silent' }) });
  let firstOpen = true;
  t.after(() => (firstOpen ? first.close() : undefined));
  await until('three slot records at the first gateway', () => (first.registry.get('pi-01')?.lastSeq ?? -1) >= 2, 20_000);
  await first.close();
  firstOpen = false;
  const lastSeen = first.registry.get('pi-01')!.lastSeq!;

  // A 10 s slot every 0.1 s: about ten records are published while no gateway listens.
  await new Promise((r) => setTimeout(r, 1000));
  const publishedAway = agent.ledger.nextSeq - 1;
  assert.ok(publishedAway >= lastSeen + 5, `records ${lastSeen + 1}..${publishedAway} published while the gateway was away`);
  assert.equal(agent.spool.pending().length <= 1, true, 'Mosquitto acknowledged them: the agent spooled nothing');

  const cap = captureLog();
  const second = await startGatewayOnAnyBroker(externalConfig(), { clock: new RealClock(), log: cap.log });
  t.after(() => second.close());
  await until('the second gateway past the records sent while it was away', () => (second.registry.get('pi-01')?.lastSeq ?? -1) >= publishedAway + 2, 20_000);
  const held = cap.records.filter((r) => r.msg === 'slot record held until the node\'s birth').map((r) => r.seq as number);
  assert.equal(held[0], lastSeen + 1, 'the first record after the first gateway closed was kept for the second');
  assert.deepEqual(held, held.map((_, i) => lastSeen + 1 + i), 'held in order, one each');
  assert.ok(held.length >= publishedAway - lastSeen, `held ${held.length}`);
  assert.equal(second.registry.get('pi-01')!.missedSlots, 0, 'no gap from the first record after the outage on');
  assert.equal(second.link.ignored.heldDropped, 0);
});

test('Mosquitto with the documented ACL drops a node\'s publish on another node\'s topic without closing it', async (t) => {
  const gw = await startGatewayOnAnyBroker(externalConfig(), { clock: new RealClock(), log: pino({ level: 'silent' }) });
  t.after(() => gw.close());
  const node = await connectAsync(`mqtt://127.0.0.1:${mosquitto.port}`, { clientId: 'pi-01', username: 'pi-01', password: secret.node, reconnectPeriod: 0 });
  t.after(() => node.endAsync());
  const invalid = gw.link.counters.invalid;
  await node.publishAsync(nodeTopic('solar', 'pi-02', 'state'), encodeJson(birth('pi-02', Date.now())), { qos: 1 });
  assert.equal(node.connected, true, 'acknowledged and still connected: Mosquitto drops silently');
  // Published after the spoof on the same connection, so it arrives after it would have.
  await node.publishAsync(nodeTopic('solar', 'pi-01', 'state'), encodeJson(birth('pi-01', Date.now())), { qos: 1 });
  await until('pi-01\'s own birth', () => gw.registry.get('pi-01')?.online === true, 20_000);
  assert.equal(gw.registry.get('pi-02'), undefined);
  assert.equal(gw.link.counters.invalid, invalid);
  // Leave no retained birth behind for the next test.
  await node.publishAsync(nodeTopic('solar', 'pi-01', 'state'), '', { qos: 1, retain: true });
});

test('heliomesh gateway --broker URL joins the external broker, with paths relative to the config file', async () => {
  const httpPort = await freePort();
  // No credentialsPath: the embedded broker is not started, so none is needed.
  writeFileSync(join(dir, 'external.yaml'), `fleet: solar\nbroker:\n  external:\n    url: mqtt://192.0.2.1:1\n    username: ${GATEWAY_USER}\n    passwordPath: gateway.secret\n`);
  const url = `mqtt://127.0.0.1:${mosquitto.port}`;
  const gw = spawnGateway(['--config', join(dir, 'external.yaml'), '--broker', url, '--http-port', String(httpPort)]);
  let stopped: Awaited<ReturnType<typeof gw.stop>>;
  try {
    const started = await gw.logged('gateway started');
    assert.equal(started.externalBroker, url, '--broker overrides broker.external.url');
    assert.equal(started.mqtt, null, 'no embedded broker');
  } finally {
    stopped = await gw.stop();
  }
  assert.equal(stopped.code, 0, stopped.out);
});

test('a wrong password or an unreachable external broker stops the gateway with what to check', async () => {
  const wrong = join(dir, 'wrong.secret');
  await writeFile(wrong, 'not-the-password\n', { mode: 0o600 });
  const log = pino({ level: 'silent' });
  await assert.rejects(startGatewayOnAnyBroker(externalConfig({ passwordPath: wrong }), { clock: new RealClock(), log }),
    /cannot connect to the external broker mqtt:\/\/127\.0\.0\.1:\d+: .*(Not authorized|Bad username or password).*check broker\.external\.url/);
  await assert.rejects(startGatewayOnAnyBroker(externalConfig({ url: 'mqtt://127.0.0.1:1', passwordPath }), { clock: new RealClock(), log }),
    /cannot connect to the external broker mqtt:\/\/127\.0\.0\.1:1: /);
  await assert.rejects(startGateway(externalConfig(), { clock: new RealClock(), log }), /broker\.external is set.*startGatewayOnAnyBroker/);
  assert.throws(() => externalConfig({ password: 'x' }), /set password or passwordPath, not both/);
  assert.throws(() => parseGatewayConfig({ broker: { external: { url: 'http://x' } } }), /use mqtt:\/\/HOST:PORT/);
});
