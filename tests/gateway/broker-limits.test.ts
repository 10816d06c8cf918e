// The broker over TLS, and its protection against a subscriber that stops reading.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { RealClock } from '../../ground/clock.js';
import { Broker, BrokerConfigSchema, addNode, loadCredentials } from '../../gateway/broker/index.js';
import { captureLog } from '../support/log.js';
import { until } from '../../ground/until.js';

let dir: string;
let credPath: string;
let password: string;
let broker: Broker;
let cert: Buffer;
const cap = captureLog();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-broker-limits-'));
  credPath = join(dir, 'nodes.json');
  password = await addNode(credPath, 'pi-2');
  // A throw-away self-signed certificate for 127.0.0.1.
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'));
  const config = BrokerConfigSchema.parse({
    host: '127.0.0.1', port: 0, credentialsPath: credPath, drainTimeoutMs: 300,
    tls: { port: 0, certPath: 'unused', keyPath: 'unused' },
  });
  broker = await Broker.start(config, {
    clock: new RealClock(),
    log: cap.log,
    credentials: loadCredentials(credPath),
    patterns: { publish: ['hm/node/{node}/#'], subscribe: ['hm/node/{node}/job/#'] },
    tls: { cert, key: readFileSync(join(dir, 'key.pem')) },
  });
});

after(async () => {
  await broker.close();
  await rm(dir, { recursive: true, force: true });
});

test('nodes connect over TLS with the same credentials', async () => {
  const node = await connectAsync(`mqtts://127.0.0.1:${broker.ports.mqtts}`, {
    clientId: 'pi-2', username: 'pi-2', password, ca: cert, reconnectPeriod: 0,
  });
  await node.publishAsync('hm/node/pi-2/slot', 'over tls', { qos: 1 });
  await node.endAsync();
  await assert.rejects(connectAsync(`mqtts://127.0.0.1:${broker.ports.mqtts}`, {
    clientId: 'pi-2', username: 'pi-2', password: 'wrong', ca: cert, reconnectPeriod: 0,
  }), /Bad username or password/);
});

/** MQTT 3.1.1 string: two-byte length, then UTF-8 (§1.5.3). */
function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** A fixed header with a Remaining Length of at most 127 bytes (§2.2.3). */
function packet(type: number, body: Buffer): Buffer {
  assert.ok(body.length < 128);
  return Buffer.concat([Buffer.from([type, body.length]), body]);
}

/** The next `n` bytes from the socket, however they are split into chunks. */
function bytes(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < n) return;
      socket.off('data', onData);
      resolve(got.subarray(0, n));
    };
    socket.on('data', onData);
  });
}

test('a subscriber that stops reading is disconnected after drainTimeout', async () => {
  // A raw client, so nothing reads its socket once it is paused.
  const raw: Socket = netConnect(broker.ports.mqtt!, '127.0.0.1');
  await new Promise<void>((r) => raw.once('connect', () => r()));
  const connack = bytes(raw, 4);
  // CONNECT (§3.1): protocol "MQTT" level 4, flags username|password|clean session, keep-alive 60 s.
  raw.write(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str('pi-2'), str('pi-2'), str(password)])));
  assert.deepEqual([...(await connack)], [0x20, 2, 0, 0], 'CONNACK accepted');
  // SUBSCRIBE (§3.8): packet id 1, one filter at QoS 0.
  raw.write(packet(0x82, Buffer.concat([Buffer.from([0, 1]), str('hm/node/pi-2/job/#'), Buffer.from([0])])));
  assert.deepEqual([...(await bytes(raw, 5))], [0x90, 3, 0, 1, 0], 'SUBACK granted QoS 0');
  raw.pause();

  const internal = await connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: 'gw', ...broker.internal, reconnectPeriod: 0 });
  const chunk = Buffer.alloc(256 * 1024, 7);
  const started = Date.now();
  // Far more than the loopback socket buffers hold, so the broker's writes to the paused
  // client back up. QoS 0 publishes resolve once written, not once delivered.
  for (let i = 0; i < 40; i++) internal.publish('hm/node/pi-2/job/x', chunk, { qos: 0 });
  await until('the slow client disconnected', () => broker.stats().slowDisconnects > 0, 5000);
  assert.equal(broker.stats().slowDisconnects, 1, 'the slow client was disconnected');
  assert.ok(Date.now() - started >= 300, 'not before the drain timeout');
  assert.ok(cap.records.some((r) => String(r.msg).startsWith('slow consumer disconnected') && r.clientId === 'pi-2'));
  // The broker still delivers to everyone else.
  await internal.subscribeAsync('hm/echo');
  const echoed = new Promise<string>((r) => internal.once('message', (_t, p) => r(p.toString())));
  await internal.publishAsync('hm/echo', 'still here', { qos: 1 });
  assert.equal(await echoed, 'still here');
  await internal.endAsync();
  raw.destroy();
});
