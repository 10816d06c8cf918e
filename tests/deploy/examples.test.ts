// The deployment kit's files read by the programs that will read them: the example configs
// by the agent's and the gateway's own loaders, the systemd units by systemd-analyze, the
// Telegraf snippet by a TOML parser and against the slot record's schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FieldType } from 'influx';
import { parse as parseToml } from 'smol-toml';
import { loadAgentConfigFile } from '../../agent/config.js';
import { loadGatewayConfig } from '../../cli/gateway.js';
import { SCHEMA } from '../../gateway/store/schema.js';
import { NODE_TOPICS, TOPIC_ROOT, slotRecordSchema } from '../../protocol/index.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const DEPLOY = join(ROOT, 'deploy');

test('the node examples validate with the agent\'s loader and describe the builds they name', () => {
  const bq = loadAgentConfigFile(join(DEPLOY, 'examples/node-pi-bq25895.yaml'), {});
  assert.equal(bq.hardware.kind, 'real');
  assert.equal(bq.hardware.charger.kind, 'bq25895');
  assert.deepEqual(bq.hardware.sensors.map((s) => s.role).sort(), ['battery', 'solar'], 'two INA219s');
  assert.equal(bq.gateway.username, bq.nodeId, 'the broker requires username = node id');
  const mcp = loadAgentConfigFile(join(DEPLOY, 'examples/node-mcp73871.yaml'), {});
  assert.equal(mcp.hardware.charger.kind, 'mcp73871');
  assert.equal(mcp.gateway.username, mcp.nodeId);
  // The password comes from the environment in a real install, and overrides apply.
  const withSecret = loadAgentConfigFile(join(DEPLOY, 'examples/node-mcp73871.yaml'), { HELIOMESH_GATEWAY_PASSWORD: 'from-env' });
  assert.equal(withSecret.gateway.password, 'from-env');
});

test('the TLS gateway example validates with the gateway\'s loader and matches the node examples', async () => {
  const path = join(DEPLOY, 'examples/gateway-tls.yaml');
  const gw = await loadGatewayConfig({ config: path });
  assert.ok(gw.broker.tls, 'TLS is configured');
  assert.equal(gw.broker.tls.certPath, join(DEPLOY, 'examples/tls/gateway.crt'), 'relative paths are taken from the file\'s folder');
  assert.ok(gw.store, 'InfluxDB logging is configured');
  assert.match(gw.store.url, /\/heliomesh$/, 'the database the Grafana datasource defaults to');
  assert.equal(gw.http?.apiKeyFile, join(DEPLOY, 'examples/api-key'), 'the HTTP API with its key in a private file');
  const bq = loadAgentConfigFile(join(DEPLOY, 'examples/node-pi-bq25895.yaml'), {});
  assert.equal(bq.fleet, gw.fleet);
  assert.equal(bq.gateway.url, `mqtts://gateway.local:${gw.broker.tls.port}`, 'the node uses the gateway\'s TLS port');
  const mcp = loadAgentConfigFile(join(DEPLOY, 'examples/node-mcp73871.yaml'), {});
  assert.equal(mcp.gateway.url, `mqtt://gateway.local:${gw.broker.port}`);
  const acl = readFileSync(join(DEPLOY, 'mosquitto/aclfile'), 'utf8');
  assert.match(acl, new RegExp(`^pattern write ${TOPIC_ROOT}/${gw.fleet}/node/%u/slot$`, 'm'), 'the Mosquitto ACL is written for the same fleet');
});

test('systemd-analyze verify accepts both units', () => {
  for (const unit of ['heliomesh-agent.service', 'heliomesh-gateway.service']) {
    const r = spawnSync('systemd-analyze', ['verify', join(DEPLOY, 'systemd', unit)], { encoding: 'utf8' });
    assert.equal(r.error, undefined, 'systemd-analyze is missing (Debian: systemd)');
    // Unknown or misplaced keys are warnings on stderr with exit 0: none is accepted.
    assert.equal(r.stderr.trim(), '', `${unit}: ${r.stderr}`);
    assert.equal(r.status, 0);
  }
});

test('the units run the installed CLI as the user prepare-pi.sh creates, the agent with I2C and GPIO access', () => {
  const unit = (name: string) => readFileSync(join(DEPLOY, 'systemd', name), 'utf8');
  const key = (text: string, k: string) => [...text.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
  const script = readFileSync(join(DEPLOY, 'prepare-pi.sh'), 'utf8');
  const agent = unit('heliomesh-agent.service');
  const gateway = unit('heliomesh-gateway.service');
  for (const text of [agent, gateway]) {
    const [user] = key(text, 'User');
    assert.ok(user && script.includes(user), `User=${String(user)} is the service user prepare-pi.sh creates`);
    assert.deepEqual(key(text, 'Restart'), ['on-failure']);
    assert.match(key(text, 'ExecStart')[0]!, /^\/usr\/bin\/node \/opt\/heliomesh\/dist\/cli\/index\.js /);
  }
  assert.ok(existsSync(join(ROOT, 'dist/cli/index.js')), 'the CLI the units start is the package\'s bin');
  const groups = key(agent, 'SupplementaryGroups').join(' ').split(/\s+/);
  assert.ok(groups.includes('i2c') && groups.includes('gpio'), 'the agent reaches /dev/i2c-1 and /sys/class/gpio');
  assert.match(key(gateway, 'ExecStart')[0]!, / gateway --config \/etc\/heliomesh\/gateway\.yaml$/);
  assert.deepEqual(key(gateway, 'ExecReload'), ['/bin/kill -HUP $MAINPID'], 'reload re-reads the credentials (SIGHUP)');
  // V8 needs writable executable memory; this hardening option would make Node abort.
  assert.ok(!/^MemoryDenyWriteExecute=(yes|true)/m.test(gateway + agent));
});

test('the Telegraf snippet parses as TOML and reads the slot topic into the slot record\'s fields, typed as the gateway types them', () => {
  const conf = parseToml(readFileSync(join(DEPLOY, 'telegraf/heliomesh.conf'), 'utf8')) as {
    inputs: { mqtt_consumer: Array<{ topics: string[]; qos: number; data_format: string; topic_parsing: Array<{ topic: string; tags: string }>; json_v2: Array<{ measurement_name: string; timestamp_path: string; field: Array<{ path: string; type: string }> }> }> };
    outputs: { influxdb: Array<{ database: string; namepass: string[] }> };
  };
  const [input] = conf.inputs.mqtt_consumer;
  assert.ok(input);
  const slotTopic = `${TOPIC_ROOT}/+/node/+/${NODE_TOPICS.slot}`;
  assert.deepEqual(input.topics, [slotTopic]);
  assert.equal(input.qos, 1);
  assert.equal(input.data_format, 'json_v2');
  assert.equal(input.topic_parsing[0]?.topic, slotTopic);
  assert.equal(input.topic_parsing[0]?.tags, '_/fleet/_/node/_', 'fleet and node from the topic levels');
  const json = input.json_v2[0]!;
  const record = slotRecordSchema.shape as Record<string, unknown>;
  assert.ok(json.timestamp_path in record);
  const gatewayTypes = SCHEMA.find((m) => m.measurement === 'node_slot')!.fields as Record<string, FieldType>;
  const influxType: Record<string, FieldType> = { int: FieldType.INTEGER, float: FieldType.FLOAT, bool: FieldType.BOOLEAN, string: FieldType.STRING };
  for (const f of json.field) {
    assert.ok(f.path in record, `${f.path} is a slot record field`);
    const expected = gatewayTypes[f.path];
    assert.ok(f.type in influxType, `${f.path}: ${f.type} is a json_v2 type`);
    if (expected !== undefined) assert.equal(influxType[f.type], expected, `${f.path} has the gateway's type`);
  }
  const [out] = conf.outputs.influxdb;
  assert.deepEqual(out?.namepass, [json.measurement_name], 'only this snippet\'s measurement goes to the Heliomesh database');
});
