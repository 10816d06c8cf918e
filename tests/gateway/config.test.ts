// The gateway's config file is strict: a misspelled key is refused with its path in the file
// and the key it was most likely meant to be, instead of starting with the default.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ConfigError, closestKey, editDistance } from '../../config-errors.js';
import { GatewayConfigSchema, chainsHops, parseGatewayConfig } from '../../gateway/config.js';
import { looseObjects } from '../support/strict-schema.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../cli/index.js', import.meta.url));
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-gateway-config-'));
});

after(() => rm(dir, { recursive: true, force: true }));

/** The message `yaml` (a gateway config file's text) is refused with. */
function refusal(yaml: string): string {
  try {
    parseGatewayConfig(parseYaml(yaml), 'gw.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return assert.fail(`accepted:\n${yaml}`);
}

const BROKER = 'broker: { credentialsPath: nodes.json }\n';

test('a misspelled scheduler section is refused, not run with the default policy', () => {
  const message = refusal(`${BROKER}schedular: { policy: uniform }\n`);
  assert.match(message, /^gw\.yaml is invalid/);
  assert.match(message, /^ {2}schedular: unknown key; did you mean scheduler\?$/m);
  // Spelled right, the same file runs the policy it names.
  assert.equal(parseGatewayConfig(parseYaml(`${BROKER}scheduler: { policy: uniform }\n`)).scheduler.policy, 'uniform');
});

test('a misspelled key inside a section is named by its path and its right spelling', () => {
  assert.match(refusal('broker: { credentialsPath: nodes.json, maxPackteBytes: 65536 }\n'),
    /^ {2}broker\.maxPackteBytes: unknown key; did you mean broker\.maxPacketBytes\?$/m);
  const cases: Array<[string, string, string]> = [
    [`${BROKER}scheduler: { xilim: 0.05 }\n`, 'scheduler.xilim', 'scheduler.xiLim'],
    [`${BROKER}registry: { priorHarvestJ: { loJ: 0, hJ: 5 } }\n`, 'registry.priorHarvestJ.hJ', 'registry.priorHarvestJ.hiJ'],
    [`${BROKER}router: { hopTimeoutMS: 1000 }\n`, 'router.hopTimeoutMS', 'router.hopTimeoutMs'],
    [`${BROKER}http: { maxBodyByte: 1024 }\n`, 'http.maxBodyByte', 'http.maxBodyBytes'],
    [`${BROKER}http: { cors: { origin: ['*'] } }\n`, 'http.cors.origin', 'http.cors.origins'],
    [`${BROKER}store: { url: 'http://influx:8086/hm', retentionPolicy: { duraton: 30d } }\n`, 'store.retentionPolicy.duraton', 'store.retentionPolicy.duration'],
    [`${BROKER}estimator: { windowSlot: 100 }\n`, 'estimator.windowSlot', 'estimator.windowSlots'],
    [`${BROKER}homeAssistant: { discoveryPrefx: ha }\n`, 'homeAssistant.discoveryPrefx', 'homeAssistant.discoveryPrefix'],
    [`${BROKER}model: { backnd: wasm }\n`, 'model.backnd', 'model.backend'],
    [`${BROKER}log: { levl: debug }\n`, 'log.levl', 'log.level'],
    ['broker: { credentialsPath: nodes.json, tls: { certPath: c, keyPath: k, requireClientCerts: true } }\n', 'broker.tls.requireClientCerts', 'broker.tls.requireClientCert'],
    ['broker: { credentialsPath: nodes.json, websocket: { pth: /mqtt } }\n', 'broker.websocket.pth', 'broker.websocket.path'],
    ['broker: { external: { url: mqtt://b:1883, clientID: gw } }\n', 'broker.external.clientID', 'broker.external.clientId'],
    ['broker: { credentialsPath: nodes.json, nodeTopics: { publish: [a], subscribe: [b], subscibe: [c] } }\n', 'broker.nodeTopics.subscibe', 'broker.nodeTopics.subscribe'],
  ];
  for (const [yaml, key, meant] of cases) {
    const message = refusal(yaml);
    assert.ok(message.includes(`  ${key}: unknown key; did you mean ${meant}?`), `${key} → ${meant}:\n${message}`);
  }
});

test('an unknown key like no known one lists the keys that may be set there', () => {
  const message = refusal(`${BROKER}log: { colour: true }\n`);
  assert.match(message, /^ {2}log\.colour: unknown key; the keys here are level$/m);
  // Several problems are listed together, each on its own line.
  const both = refusal(`${BROKER}schedular: {}\nlog: { levl: debug }\n`);
  assert.match(both, /schedular: unknown key/);
  assert.match(both, /log\.levl: unknown key; did you mean log\.level\?/);
});

test('every object of the gateway config schema is strict', () => {
  assert.deepEqual(looseObjects(GatewayConfigSchema), []);
});

test('the nearest key is found by edit distance, transpositions counting once', () => {
  assert.equal(editDistance('maxPackteBytes', 'maxPacketBytes'), 1);
  assert.equal(editDistance('schedular', 'scheduler'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(closestKey('sampelHz', ['slotMs', 'sampleHz', 'spool']), 'sampleHz');
  assert.equal(closestKey('SAMPLEHZ', ['slotMs', 'sampleHz']), 'sampleHz');
  // Too far to be a slip: no guess.
  assert.equal(closestKey('colour', ['level']), undefined);
  assert.equal(closestKey('x', []), undefined);
});

test('heliomesh gateway --config with a misspelled key exits with the key and its right spelling', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, `${BROKER}schedular:\n  policy: uniform\n`);
  await assert.rejects(run(process.execPath, [CLI, 'gateway', '--config', file], { timeout: 60_000 }), (err: Error & { code?: number; stderr: string }) => {
    assert.notEqual(err.code, 0);
    assert.ok(err.stderr.includes(`${file} is invalid`), err.stderr);
    assert.ok(err.stderr.includes('schedular: unknown key; did you mean scheduler?'), err.stderr);
    return true;
  });
  writeFileSync(file, 'broker:\n  credentialsPath: nodes.json\n  maxPackteBytes: 65536\n');
  await assert.rejects(run(process.execPath, [CLI, 'gateway', '--config', file], { timeout: 60_000 }), (err: Error & { stderr: string }) =>
    err.stderr.includes('broker.maxPackteBytes: unknown key; did you mean broker.maxPacketBytes?'));
});

test('hops are chained by default on the embedded broker, never on an external one, whose ACL cannot follow routes', () => {
  const embedded = parseGatewayConfig(parseYaml(BROKER));
  assert.equal(chainsHops(embedded), true);
  assert.equal(chainsHops(parseGatewayConfig(parseYaml(`${BROKER}router: { chainHops: false }\n`))), false);
  assert.equal(chainsHops(parseGatewayConfig(parseYaml('broker: { external: { url: mqtt://b:1883, clientId: gw } }\nrouter: { chainHops: true }\n'))), false);
});
