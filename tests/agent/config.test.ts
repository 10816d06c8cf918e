import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AgentConfigError, agentConfigSchema, loadAgentConfigFile, parseAgentConfig, profileOf, thresholdsJ } from '../../agent/config.js';
import { exampleDoc } from './fixtures.js';
import { profileSchema } from '../../protocol/index.js';
import { looseObjects } from '../support/strict-schema.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../cli/index.js', import.meta.url));

test('a valid file with defaults and environment overrides', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-cfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.yaml');
  writeFileSync(path, stringify(exampleDoc()));
  const c = loadAgentConfigFile(path, { HELIOMESH_GATEWAY_PASSWORD: 's3cret', HELIOMESH_NODE_ID: 'pi-02' });
  assert.equal(c.nodeId, 'pi-02');
  assert.equal(c.gateway.password, 's3cret');
  assert.equal(c.slotMs, 60_000);
  assert.equal(c.sampleHz, 2);
  assert.deepEqual(c.shutdownCommand, ['systemctl', 'poweroff']);
  const th = thresholdsJ(c);
  assert.equal(th.eThJ, 74 * 3600 * 0.1);
  // The birth profile the config produces is valid under the protocol's own schema.
  assert.ok(profileSchema.safeParse(profileOf(c)).success);
});

test('a wrong key stops startup with its path and the reason', () => {
  const bad = (patch: (d: Record<string, unknown>) => void, env: Record<string, string> = {}): string => {
    const d = exampleDoc();
    patch(d);
    try {
      parseAgentConfig(d, env, 'agent.yaml');
    } catch (err) {
      assert.ok(err instanceof AgentConfigError);
      return err.message;
    }
    assert.fail('config was accepted');
  };
  assert.match(bad((d) => { d.nodeId = 'a/b'; }), /nodeId: .*no '\/'/);
  assert.match(bad((d) => { d.gateway = { url: 'http://x' }; }), /gateway\.url: must look like mqtt/);
  assert.match(bad((d) => { d.thresholds = { eThPct: 20, eThUpPct: 10 }; }), /thresholds\.eThUpPct: must be above eThPct/);
  assert.match(bad((d) => { d.powerModes = [{ powerMode: 1, name: 'turbo', kappa: 1, costJ: 1 }]; d.modeTable = [{ minFraction: 0, powerMode: 1 }]; }), /powerModes\[0\]\.name: "turbo" is not one of hardware\.cpu\.modes/);
  assert.match(bad((d) => { d.modeTable = [{ minFraction: 0.2, powerMode: 1 }]; }), /modeTable\[0\]\.minFraction/);
  assert.match(bad((d) => { delete d.spool; }), /spool/);
  assert.match(bad(() => {}, { HELIOMESH_GATEWAY_URL: 'ftp://x' }), /gateway\.url \(from HELIOMESH_GATEWAY_URL\)/);
  assert.match(bad((d) => { (d.hardware as { sensors: unknown[] }).sensors = []; }), /hardware\.sensors/);
  assert.throws(() => loadAgentConfigFile('/nonexistent/agent.yaml', {}), /cannot read the agent config/);
  // The gauge's alert must come while the node still runs.
  const gauge = (alertThresholdPct: number) => (d: Record<string, unknown>) => {
    const hw = d.hardware as { battery: Record<string, unknown> };
    hw.battery = { ...hw.battery, source: 'max17048', gauge: { alertThresholdPct } };
    delete hw.battery.initialSocPct;
  };
  assert.match(bad(gauge(3)), /hardware\.battery\.gauge\.alertThresholdPct: must be above thresholds\.criticalPct \(3 %\): the node shuts down there/);
  assert.equal(parseAgentConfig((() => { const d = exampleDoc(); gauge(4)(d); return d; })()).hardware.battery.gauge?.alertThresholdPct, 4);
});

test('deploy/agent.example.yaml is a valid agent config', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const c = loadAgentConfigFile(join(root, 'deploy', 'agent.example.yaml'), { HELIOMESH_GATEWAY_PASSWORD: 'x' });
  assert.equal(c.hardware.kind, 'real');
  assert.equal(c.powerModes.length, 3);
});

/** The message the example config is refused with after `patch`. */
function refusal(patch: (d: Record<string, unknown>) => void): string {
  const d = exampleDoc();
  patch(d);
  try {
    parseAgentConfig(d, {}, 'agent.yaml');
  } catch (err) {
    assert.ok(err instanceof AgentConfigError, String(err));
    return err.message;
  }
  return assert.fail('config was accepted');
}

test('a misspelled key is refused by its path and its right spelling, not left at the default', () => {
  assert.match(refusal((d) => { d.sampelHz = 10; }), /^ {2}sampelHz: unknown key; did you mean sampleHz\?$/m);
  const cases: Array<[(d: Record<string, unknown>) => void, string, string]> = [
    [(d) => { d.slotMS = 30_000; }, 'slotMS', 'slotMs'],
    [(d) => { d.gateway = { url: 'mqtt://g:1883', keepAliveS: 60 }; }, 'gateway.keepAliveS', 'gateway.keepaliveS'],
    [(d) => { d.gateway = { url: 'mqtt://g:1883', tls: { rejectUnauthorised: false } }; }, 'gateway.tls.rejectUnauthorised', 'gateway.tls.rejectUnauthorized'],
    [(d) => { d.thresholds = { eThPct: 10, eThUpPct: 20, criticalPCT: 3 }; }, 'thresholds.criticalPCT', 'thresholds.criticalPct'],
    [(d) => { d.worker = { queueCapacty: 2 }; }, 'worker.queueCapacty', 'worker.queueCapacity'],
    [(d) => { d.spool = { dir: '/var/spool', maxByte: 65536 }; }, 'spool.maxByte', 'spool.maxBytes'],
    [(d) => { d.model = { shardDir: '/m', firstBlock: 0, lastBlock: 1, thread: 2 }; }, 'model.thread', 'model.threads'],
    [(d) => { (d.powerModes as Array<Record<string, unknown>>)[1]!.kapa = 1; }, 'powerModes[1].kapa', 'powerModes[1].kappa'],
    [(d) => { (d.modeTable as Array<Record<string, unknown>>)[0]!.minFracton = 0; }, 'modeTable[0].minFracton', 'modeTable[0].minFraction'],
    [(d) => { (d.hardware as { battery: Record<string, unknown> }).battery.capacityWH = 10; }, 'hardware.battery.capacityWH', 'hardware.battery.capacityWh'],
    [(d) => { (d.hardware as { sensors: Array<Record<string, unknown>> }).sensors[0]!.shuntOhm = 0.1; }, 'hardware.sensors[0].shuntOhm', 'hardware.sensors[0].shuntOhms'],
    [(d) => { (d.hardware as { battery: Record<string, unknown> }).battery.gauge = { alertThresholdPC: 5 }; }, 'hardware.battery.gauge.alertThresholdPC', 'hardware.battery.gauge.alertThresholdPct'],
  ];
  for (const [patch, key, meant] of cases) {
    const message = refusal(patch);
    assert.ok(message.includes(`  ${key}: unknown key; did you mean ${meant}?`), `${key} → ${meant}:\n${message}`);
  }
});

test('every object of the agent config schema is strict', () => {
  assert.deepEqual(looseObjects(agentConfigSchema), []);
});

test('heliomesh agent --config with a misspelled key exits with the file, the key and its right spelling', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-cfg-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, stringify({ ...exampleDoc(), sampelHz: 10 }));
  await assert.rejects(run(process.execPath, [CLI, 'agent', '--config', file], { timeout: 60_000 }), (err: Error & { code?: number; stderr: string }) => {
    assert.notEqual(err.code, 0);
    assert.ok(err.stderr.includes(`${file} is invalid`), err.stderr);
    assert.ok(err.stderr.includes('sampelHz: unknown key; did you mean sampleHz?'), err.stderr);
    return true;
  });
});

test('a slot the gateway would refuse in a birth is refused by the agent config already, and so is a demo day that needs one', async () => {
  // protocol/bounds.ts: δ is 1 s to 1 h; a birth outside it is refused at the gateway.
  assert.throws(() => parseAgentConfig({ ...exampleDoc(), slotMs: 3_600_001 }, {}), (err: Error) => err instanceof AgentConfigError && /slotMs/.test(err.message));
  assert.throws(() => parseAgentConfig({ ...exampleDoc(), slotMs: 999 }, {}), (err: Error) => err instanceof AgentConfigError && /slotMs/.test(err.message));
  assert.equal(parseAgentConfig({ ...exampleDoc(), slotMs: 3_600_000 }, {}).slotMs, 3_600_000);
  // A day of 6 s of wall time needs slots of 1 h 40 min (demo/plan.ts slotMsFor).
  const r = await run(process.execPath, [CLI, 'demo', '--no-ui', '--day-minutes', '0.1', '--duration', '1']).then(() => undefined, (err: { code: number; stderr: string }) => err);
  assert.ok(r, 'the demo refused the day');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /dayMinutes/);
  assert.match(r.stderr, /slots longer than 1 h/);
});

test('the wake path: none by default, with the halt command and the drain bound; a Witty Pi 4 must boot above its shutdown voltage', () => {
  const c = parseAgentConfig(exampleDoc(), {});
  assert.deepEqual(c.wake, { path: 'none' });
  assert.deepEqual(c.haltCommand, ['systemctl', 'poweroff']);
  assert.equal(c.sleepDrainMs, 60_000);
  const witty = parseAgentConfig({ ...exampleDoc(), wake: { path: 'witty-pi-4', shutdownV: 3.3, recoveryV: 3.7 }, haltCommand: ['halt', '-p'] }, {});
  assert.deepEqual(witty.wake, { path: 'witty-pi-4', address: 0x08, shutdownV: 3.3, recoveryV: 3.7 });
  assert.deepEqual(witty.haltCommand, ['halt', '-p']);
  for (const recoveryV of [3.3, 3.1]) {
    assert.throws(() => parseAgentConfig({ ...exampleDoc(), wake: { path: 'witty-pi-4', shutdownV: 3.3, recoveryV } }, {}),
      (err: Error) => err instanceof AgentConfigError && /wake\.recoveryV: the boot \(recovery\) voltage [\d.]+ V must be above the shutdown voltage 3\.3 V/.test(err.message));
  }
  assert.deepEqual(parseAgentConfig({ ...exampleDoc(), wake: { path: 'rtc-wakealarm' } }, {}).wake, { path: 'rtc-wakealarm', sysfsRoot: '/sys/class/rtc', device: 'rtc0' });
  const real = { ...exampleDoc(), hardware: { ...(exampleDoc().hardware as object), kind: 'real' } };
  assert.throws(() => parseAgentConfig({ ...real, wake: { path: 'virtual' } }, {}), (err: Error) => err instanceof AgentConfigError && /wake\.path: the virtual RTC wakes only a virtual node/.test(err.message));
  assert.throws(() => parseAgentConfig({ ...exampleDoc(), wake: { path: 'witty-pi-4', recoveryVolts: 3.7 } }, {}), (err: Error) => /wake\.recoveryVolts: unknown key/.test(err.message));
});

test('the profile carries the idle draw and the wake path when the node has them', () => {
  const c = parseAgentConfig(exampleDoc(), {});
  const p = profileOf(c, undefined, undefined, undefined, undefined, { idleW: 2.71, wake: { path: 'virtual', ok: true } });
  assert.equal(p.idleW, 2.71);
  assert.deepEqual(p.wake, { path: 'virtual', ok: true });
  assert.ok(profileSchema.safeParse(p).success);
  assert.equal('idleW' in profileOf(c), false);
});
