import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { AgentConfigError, loadAgentConfigFile, parseAgentConfig, profileOf, thresholdsJ } from '../../agent/config.js';
import { exampleDoc } from './fixtures.js';
import { profileSchema } from '../../protocol/index.js';

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
  assert.match(bad((d) => { d.powerModes = [{ powerMode: 1, name: 'turbo', kappa: 1, costJ: 1 }]; d.modeTable = [{ minFraction: 0, powerMode: 1 }]; }), /powerModes\.0\.name: "turbo" is not one of hardware\.cpu\.modes/);
  assert.match(bad((d) => { d.modeTable = [{ minFraction: 0.2, powerMode: 1 }]; }), /modeTable\.0\.minFraction/);
  assert.match(bad((d) => { delete d.spool; }), /spool/);
  assert.match(bad(() => {}, { HELIOMESH_GATEWAY_URL: 'ftp://x' }), /gateway\.url \(from HELIOMESH_GATEWAY_URL\)/);
  assert.match(bad((d) => { (d.hardware as { sensors: unknown[] }).sensors = []; }), /hardware\.sensors/);
  assert.throws(() => loadAgentConfigFile('/nonexistent/agent.yaml', {}), /cannot read the agent config/);
});

test('deploy/agent.example.yaml is a valid agent config', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const c = loadAgentConfigFile(join(root, 'deploy', 'agent.example.yaml'), { HELIOMESH_GATEWAY_PASSWORD: 'x' });
  assert.equal(c.hardware.kind, 'real');
  assert.equal(c.powerModes.length, 3);
});
