// A refused password is not the end: the agent keeps trying with capped exponential
// backoff, logs every refusal as an error that says what to fix, shows the state in ping,
// and connects as soon as the broker accepts its credential, without a restart. Mosquitto
// with a password file stands for the gateway's broker; SIGHUP reloads the file, as
// `heliomesh gateway add-node --replace` and a reload do on the gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { RealClock } from '../../ground/clock.js';
import { freePort } from '../support/ports.js';
import { until } from '../../ground/until.js';
import { MOSQUITTO } from './brokers.js';
import { exampleDoc } from './fixtures.js';

const PASSWD = '/usr/bin/mosquitto_passwd';

test('a wrong password: refusals logged as errors at growing intervals up to the cap, then the fixed credential connects without a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-auth-'));
  const port = await freePort();
  const passwords = join(dir, 'passwords');
  execFileSync(PASSWD, ['-b', '-c', passwords, 'pi-01', 'the-right-one']);
  writeFileSync(join(dir, 'mosquitto.conf'), [
    `listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${passwords}`, `user ${userInfo().username}`, 'log_dest none', '',
  ].join('\n'));
  const broker = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  const lines: Array<{ level: number; msg: string; at: number; [k: string]: unknown }> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push({ ...JSON.parse(s), at: Date.now() }) });
  const MIN_MS = 300;
  const MAX_MS = 2400;
  const config = parseAgentConfig({
    ...exampleDoc(), slotMs: 60_000,
    gateway: { url: `mqtt://127.0.0.1:${port}`, username: 'pi-01', password: 'wrong', reconnectMinMs: MIN_MS, reconnectMaxMs: MAX_MS },
    spool: { dir: join(dir, 'spool') },
  });
  const agent = await Agent.start(config, { clock: new RealClock(), log, shutdown: async () => {} });
  t.after(async () => {
    await agent.stop('test over');
    broker.kill('SIGTERM');
    await once(broker, 'exit');
    rmSync(dir, { recursive: true, force: true });
  });
  const refusals = () => lines.filter((l) => l.level === 50 && /refused the credentials/.test(l.msg));
  await until('six refusals', () => refusals().length >= 6, 30_000);
  const r = refusals();
  assert.match(r[0]!.msg, /Check the password in agent\.yaml.*add-node pi-01 --replace/, 'says what to do');
  const gaps = r.slice(1).map((l, i) => l.at - r[i]!.at);
  t.diagnostic(`gaps between refusals: ${gaps.join(', ')} ms`);
  // 300, 600, 1200, then 2400 ms, the cap, and no more: the waits grow, none far past the cap.
  assert.ok(gaps[1]! > gaps[0]! && gaps[2]! > gaps[1]!, `the waits grow: ${gaps.join(', ')} ms`);
  assert.ok(gaps[2]! >= 0.9 * 4 * MIN_MS, `the third wait is about four times the first: ${gaps.join(', ')} ms`);
  assert.ok(gaps.at(-1)! >= 0.9 * MAX_MS && gaps.at(-1)! < MAX_MS + 2000, `capped at ${MAX_MS} ms: ${gaps.join(', ')} ms`);
  const refused = (await agent.command({ v: 1, id: 'p1', op: 'ping' }, async () => {}))!.connection as { state: string; attempts: number; lastError: string; retryMs: number };
  assert.equal(refused.state, 'refused-auth');
  assert.ok(refused.attempts >= 6, `attempts ${refused.attempts}`);
  assert.match(refused.lastError, /Bad username or password|Not authorized/);
  assert.equal(refused.retryMs, MAX_MS);

  // The credential is fixed at the broker; the agent, untouched, gets in at its next try.
  execFileSync(PASSWD, ['-b', passwords, 'pi-01', 'wrong']);
  broker.kill('SIGHUP');
  await until('connected', () => agent.link.connected, MAX_MS + 10_000);
  const ok = (await agent.command({ v: 1, id: 'p2', op: 'ping' }, async () => {}))!.connection as { state: string; attempts: number; lastError: string | null };
  assert.equal(ok.state, 'connected');
  assert.ok(lines.some((l) => l.msg === 'connected to the gateway broker'));
});
