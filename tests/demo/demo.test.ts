// `heliomesh demo` as a user runs it, in a child process on free ports: it comes up, a
// completion sent as the README says returns text and its energy with its uncertainty, the broker refuses
// made-up credentials, and SIGINT ends everything with exit code 0 — no child process
// left behind, no temporary folder (spools, credentials) left on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { freePort } from '../support/ports.js';
import { until } from '../../ground/until.js';
import { alive } from '../support/process.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cli = join(root, 'dist', 'cli', 'index.js');

interface LogLine { msg?: string; dir?: string; pid?: number; [k: string]: unknown }

/** Pids whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of /proc/PID/stat is the parent pid; the command name (field 2) may hold spaces.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

test('heliomesh demo: starts, serves a completion with its energy over HTTP, refuses strangers on MQTT, stops cleanly on SIGINT', { timeout: 180_000 }, async (t) => {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [cli, 'demo', '--no-ui', '--duration', '20', '--day-minutes', '1', '--http-port', String(httpPort), '--mqtt-port', String(mqttPort)], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: LogLine[] = [];
  let stderr = '';
  let buffered = '';
  child.stdout.on('data', (b: Buffer) => {
    buffered += b.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const find = (msg: string) => lines.find((l) => l.msg === msg);

  await until('the demo running', () => {
    if (child.exitCode !== null) throw new Error(`the demo exited with ${child.exitCode} before it was ready`);
    return find('demo running') !== undefined;
  }, 90_000, 100).catch((err: Error) => assert.fail(`${err.message}: ${stderr}`));
  const field = find('field started');
  assert.ok(field?.dir && existsSync(field.dir), 'the field\'s temporary folder exists while it runs');
  assert.equal(field.http, httpPort);
  assert.match(String(find('demo running')!.try), new RegExp(`^curl -s http://localhost:${httpPort}/v1/completions `), 'plain logs say how to send a prompt');

  // The README's request, with fetch.
  const res = await fetch(`http://localhost:${httpPort}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'bundled', prompt: 'The state of the Union is', max_tokens: 16 }),
  });
  const body = await res.json() as { choices?: Array<{ text?: string }>; heliomesh?: { energy_j?: number; energy_uncertainty_j?: number | null; served?: unknown[] } };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(typeof body.choices?.[0]?.text, 'string');
  assert.ok(body.choices![0]!.text!.length > 0, 'the completion has text');
  // The energy is never negative and carries its uncertainty (tests/demo/energy.test.ts checks the sums per node).
  const { energy_j: energyJ, energy_uncertainty_j: uncertaintyJ } = body.heliomesh ?? {};
  assert.ok(typeof energyJ === 'number' && energyJ >= 0, `energy_j ${energyJ}`);
  assert.ok(typeof uncertaintyJ === 'number' && Number.isFinite(uncertaintyJ) && uncertaintyJ > 0, `energy_uncertainty_j ${uncertaintyJ}`);
  assert.equal(body.heliomesh!.served?.length, 3, 'one serving node per group');

  // Only the demo nodes' own credentials get in: a known node id with a made-up password,
  // and an unknown name, are both refused.
  for (const [username, password] of [['g1-n1', 'made-up-password'], ['intruder', 'secret']] as const) {
    await assert.rejects(
      mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: username, username, password, reconnectPeriod: 0, connectTimeout: 10_000 }),
      /Not authorized|Bad username or password/,
      `${username} must be refused`,
    );
  }

  const children = childrenOf(child.pid!);
  const influxd = find('private influxd started');
  if (influxd?.pid) assert.ok(children.includes(influxd.pid), 'the private influxd is the demo\'s child');
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 0, `exit code 0 after SIGINT: ${stderr}`);
  assert.ok(find('demo stopped'), 'the stop completed');
  for (const pid of children) assert.equal(alive(pid), false, `child process ${pid} is gone`);
  assert.equal(existsSync(field.dir), false, 'spools, credentials and any split model are removed');
});
