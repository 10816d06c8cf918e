// Secrets on disk: `heliomesh gateway add-node` writes the credentials file with mode 0600
// whatever the umask, stores no password, only an scrypt hash (RFC 7914) with the
// parameters recorded beside it; the gateway refuses a credentials file, or an external
// broker password file, that its group or others can read; and no password reaches the log.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { scryptSync, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { addNode, loadCredentials } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGatewayOnAnyBroker } from '../../gateway/index.js';
import { login, startTestGateway } from './support.js';

const run = promisify(execFile);
const CLI = 'dist/cli/index.js';
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-secrets-'));
});

after(() => rm(dir, { recursive: true, force: true }));

/** `heliomesh gateway add-node` under a umask that would make every new file world-writable. */
async function addNodeCli(file: string, id: string, ...extra: string[]): Promise<string> {
  const { stdout } = await run('sh', ['-c', 'umask 000 && exec node "$@"', 'sh', CLI, 'gateway', 'add-node', id, '--file', file, ...extra]);
  const password = /^password: (\S+)$/m.exec(stdout)?.[1];
  assert.ok(password, stdout);
  return password;
}

function recompute(entry: { N: number; r: number; p: number; salt: string; hash: string }, password: string): boolean {
  const expected = Buffer.from(entry.hash, 'base64');
  const actual = scryptSync(password, Buffer.from(entry.salt, 'base64'), expected.length, { N: entry.N, r: entry.r, p: entry.p, maxmem: 256 * entry.N * entry.r });
  return timingSafeEqual(actual, expected);
}

test('add-node writes a 0600 file holding only salted scrypt hashes', async () => {
  const file = join(dir, 'nodes.json');
  const pa = await addNodeCli(file, 'node-a');
  const pb = await addNodeCli(file, 'node-b');
  assert.equal(statSync(file).mode & 0o777, 0o600, 'private despite umask 000');
  const text = readFileSync(file, 'utf8');
  for (const p of [pa, pb]) {
    assert.ok(!text.includes(p), 'no plain password');
    assert.ok(!text.includes(Buffer.from(p).toString('base64')) && !text.includes(Buffer.from(p).toString('hex')), 'nor an encoding of it');
  }
  assert.ok(Buffer.from(pa, 'base64url').length >= 24, 'at least 192 random bits');

  const { nodes } = loadCredentials(file);
  for (const [id, password] of [['node-a', pa], ['node-b', pb]] as const) {
    const e = nodes[id]!;
    assert.equal(e.kdf, 'scrypt');
    // RFC 7914 §2: N a power of two; 2^14 with r = 8, p = 1 is the interactive-login cost.
    assert.ok(e.N >= 2 ** 14 && Number.isInteger(Math.log2(e.N)), `N = ${e.N}`);
    assert.equal(e.r, 8);
    assert.equal(e.p, 1);
    assert.equal(Buffer.from(e.salt, 'base64').length, 16, '128-bit salt');
    assert.equal(Buffer.from(e.hash, 'base64').length, 32, '256-bit derived key');
    // The stored hash is scrypt with exactly these parameters: recomputed independently here.
    assert.equal(recompute(e, password), true, id);
    assert.equal(recompute(e, `${password}x`), false, id);
  }
  assert.notEqual(nodes['node-a']!.salt, nodes['node-b']!.salt, 'salted per node');

  const replaced = await addNodeCli(file, 'node-a', '--replace');
  assert.equal(statSync(file).mode & 0o777, 0o600, 'still private after --replace');
  const after = loadCredentials(file).nodes['node-a']!;
  assert.equal(recompute(after, replaced), true);
  assert.equal(recompute(after, pa), false, 'the old password is revoked');
});

test('a credentials file its group or others can read is refused: by add-node, by the loader and by the gateway', async () => {
  const file = join(dir, 'loose.json');
  await addNode(file, 'node-a');
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `broker:\n  host: 127.0.0.1\n  port: 0\n  credentialsPath: ${file}\n`);
  for (const mode of [0o644, 0o640, 0o604]) {
    chmodSync(file, mode);
    assert.throws(() => loadCredentials(file), new RegExp(`mode ${mode.toString(8)}.*chmod 600`));
    await assert.rejects(addNode(file, 'node-b'), /chmod 600/);
  }
  chmodSync(file, 0o644);
  await assert.rejects(run('node', [CLI, 'gateway', '--config', config]), (err: Error & { stderr: string; code: number }) =>
    err.code !== 0 && /mode 644.*chmod 600/.test(err.stderr));
  chmodSync(file, 0o600);
  assert.deepEqual(Object.keys(loadCredentials(file).nodes), ['node-a'], 'and nothing was added while it was open');
});

test('the external broker\'s password file is refused when others can read it', async () => {
  const secret = join(dir, 'external.secret');
  writeFileSync(secret, 'hunter2-but-longer\n', { mode: 0o644 });
  chmodSync(secret, 0o644);
  const config = parseGatewayConfig({ broker: { external: { url: 'mqtt://127.0.0.1:1', username: 'gw', passwordPath: secret } } });
  await assert.rejects(startGatewayOnAnyBroker(config, { clock: new RealClock(), log: pino({ level: 'silent' }) }), /mode 644.*chmod 600.*broker\.external\.passwordPath/);
});

test('no password, right or wrong, reaches the gateway\'s log', async () => {
  const t = await startTestGateway({ nodes: ['node-a'] });
  try {
    const guess = 'a-guessed-password-for-node-a';
    const refused = await login(t, t.url, { clientId: 'node-a', username: 'node-a', password: guess });
    assert.equal(refused.connected, false);
    const ok = await login(t, t.url, { clientId: 'node-a', username: 'node-a', password: t.passwords['node-a'] });
    assert.equal(ok.connected, true);
    const logged = JSON.stringify(t.cap.records);
    assert.ok(logged.includes('MQTT login refused: wrong password'), 'the refusal is logged');
    for (const secret of [guess, t.passwords['node-a']!, t.broker.internal.password]) assert.ok(!logged.includes(secret));
  } finally {
    await t.stop();
  }
});
