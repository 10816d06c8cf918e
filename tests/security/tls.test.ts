// TLS on the real gateway broker, with a test CA made here by Debian's `openssl`: a node that
// trusts the CA connects, a client that does not trust it fails the handshake, plain MQTT
// on the TLS port gets no CONNACK, and with requireClientCert only nodes holding a
// certificate from the CA get through.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrokerConfigSchema } from '../../gateway/broker/index.js';
import { nodeTopic } from '../../protocol/index.js';
import { connectPacket, sendRaw } from '../fuzz/mqtt-raw.js';
import { FLEET, login, open, startTestGateway, type TestGateway } from './support.js';
import { until } from '../../ground/until.js';

let pki: string;
const pem = (name: string) => readFileSync(join(pki, name));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
}

/** An EC P-256 key and a certificate for `cn` signed by `ca`, with the given extensions. */
function issue(name: string, cn: string, ca: string, extensions: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(join(pki, `${name}.ext`), extensions);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '1', '-out', `${name}.crt`, '-extfile', `${name}.ext`);
}

function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-days', '1', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
}

let t: TestGateway;
let strict: TestGateway;

before(async () => {
  pki = mkdtempSync(join(tmpdir(), 'heliomesh-pki-'));
  makeCa('fleet-ca');
  makeCa('other-ca');
  issue('gateway', '127.0.0.1', 'fleet-ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue('node-a', 'node-a', 'fleet-ca', 'extendedKeyUsage=clientAuth\n');
  issue('intruder', 'node-a', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  const tls = { port: 0, certPath: join(pki, 'gateway.crt'), keyPath: join(pki, 'gateway.key') };
  t = await startTestGateway({ nodes: ['node-a'], broker: { tls, websocket: { port: 0, secure: true } } });
  strict = await startTestGateway({ nodes: ['node-a'], broker: { tls: { ...tls, caPath: join(pki, 'fleet-ca.crt'), requireClientCert: true } } });
});

after(async () => {
  await t?.stop();
  await strict?.stop();
  rmSync(pki, { recursive: true, force: true });
});

const mqtts = (g: TestGateway) => `mqtts://127.0.0.1:${g.broker.ports.mqtts}`;

test('a node that trusts the fleet CA connects over TLS and its messages arrive', async () => {
  const observer = await open(t, t.url, { clientId: 'observer', ...t.broker.internal });
  const seen: string[] = [];
  observer.on('message', (topic, payload) => seen.push(`${topic}=${payload.toString()}`));
  const topic = nodeTopic(FLEET, 'node-a', 'slot');
  await observer.subscribeAsync(topic, { qos: 1 });
  const a = await open(t, mqtts(t), { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'], ca: pem('fleet-ca.crt') });
  await a.publishAsync(topic, 'over tls', { qos: 1 });
  await until('the message', () => seen.includes(`${topic}=over tls`));
  // The same logins hold on the TLS port.
  const wrong = await login(t, mqtts(t), { clientId: 'node-a', username: 'node-a', password: 'guess', ca: pem('fleet-ca.crt') });
  assert.ok(!wrong.connected && wrong.code === 4, 'wrong password over TLS: CONNACK 4');
});

test('a client that does not trust the fleet CA fails the handshake before any MQTT is spoken', async () => {
  const before = t.broker.stats();
  const creds = { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'] };
  const untrusted = await login(t, mqtts(t), creds);
  assert.ok(!untrusted.connected);
  assert.match(untrusted.connected ? '' : untrusted.error, /self[- ]signed certificate in certificate chain|unable to (get local issuer|verify)/);
  const otherCa = await login(t, mqtts(t), { ...creds, ca: pem('other-ca.crt') });
  assert.ok(!otherCa.connected);
  assert.match(otherCa.connected ? '' : otherCa.error, /self[- ]signed certificate in certificate chain|unable to (get local issuer|verify)/);
  const after = t.broker.stats();
  assert.equal(after.refusedAuth, before.refusedAuth, 'the password was never sent');
  assert.equal(after.clients, before.clients);
});

test('plain MQTT on the TLS port gets no CONNACK', async () => {
  const before = t.broker.stats();
  const raw = await sendRaw(t.broker.ports.mqtts!, connectPacket('node-a', 'node-a', t.passwords['node-a']!), 5000);
  assert.equal(raw.closed, true, 'the broker closed the connection');
  const reply = raw.received;
  assert.notEqual(reply[0], 0x20, 'no CONNACK');
  // What comes back, if anything, is a TLS record: an alert (content type 21, §6.2 of RFC 8446).
  if (reply.length > 0) assert.equal(reply[0], 21);
  const viaClient = await login(t, `mqtt://127.0.0.1:${t.broker.ports.mqtts}`, { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'] });
  assert.ok(!viaClient.connected && viaClient.code === undefined, 'MQTT.js over plain TCP: closed without CONNACK');
  assert.equal(t.broker.stats().refusedAuth, before.refusedAuth);
  await until('handshake failures logged', () => t.cap.records.filter((r) => r.msg === 'TLS handshake failed').length >= 2);
});

test('MQTT over secure WebSocket: a node that trusts the CA connects with wss://, one that does not fails', async () => {
  const wss = `wss://127.0.0.1:${t.broker.ports.ws}/mqtt`;
  const creds = { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'] };
  const observer = await open(t, t.url, { clientId: 'observer-wss', ...t.broker.internal });
  const topic = nodeTopic(FLEET, 'node-a', 'telemetry');
  await observer.subscribeAsync(topic, { qos: 1 });
  const got = new Promise<string>((resolve) => observer.once('message', (_t, payload) => resolve(payload.toString())));
  const a = await open(t, wss, { ...creds, ca: pem('fleet-ca.crt') });
  await a.publishAsync(topic, 'over wss', { qos: 1 });
  assert.equal(await got, 'over wss');
  await a.endAsync();
  const untrusted = await login(t, wss, creds);
  assert.ok(!untrusted.connected && untrusted.code === undefined, 'no CONNACK without trusting the CA');
  const plain = await login(t, `ws://127.0.0.1:${t.broker.ports.ws}/mqtt`, creds);
  assert.ok(!plain.connected && plain.code === undefined, 'plain ws:// on the wss port: no CONNACK');
  assert.throws(() => BrokerConfigSchema.parse({ credentialsPath: 'x', websocket: { secure: true } }), /websocket\.secure uses broker\.tls/);
});

test('with requireClientCert, only a certificate from the fleet CA gets a node to the login', async () => {
  const creds = { clientId: 'node-a', username: 'node-a', password: strict.passwords['node-a'], ca: pem('fleet-ca.crt') };
  const withCert = await open(strict, mqtts(strict), { ...creds, cert: pem('node-a.crt'), key: pem('node-a.key') });
  assert.equal(withCert.connected, true);
  const before = strict.broker.stats();
  const noCert = await login(strict, mqtts(strict), creds);
  assert.ok(!noCert.connected && noCert.code === undefined, `without a client certificate: ${noCert.connected ? '' : noCert.error}`);
  const foreign = await login(strict, mqtts(strict), { ...creds, cert: pem('intruder.crt'), key: pem('intruder.key') });
  assert.ok(!foreign.connected && foreign.code === undefined, `with a certificate from another CA: ${foreign.connected ? '' : foreign.error}`);
  assert.equal(strict.broker.stats().refusedAuth, before.refusedAuth, 'neither reached the password check');
});
