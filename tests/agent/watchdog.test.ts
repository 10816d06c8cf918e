// The systemd service protocol (sd_notify(3)): the agent and the gateway send READY=1 once
// started, WATCHDOG=1 from their main loops at half of WATCHDOG_USEC, and STOPPING=1 when a
// stop begins. A fake notify socket in a temporary folder stands for the service manager:
// systemd-socket-activate binds the datagram socket and hands it to `cat`, which writes
// every datagram it reads to a file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/ports.js';
import { until } from '../../ground/until.js';
import { Mosquitto } from './brokers.js';
import { CLI } from '../faults/support.js';

/** A datagram socket at `<dir>/notify` whose messages are appended to `<dir>/received`. */
async function fakeNotifySocket(dir: string): Promise<{ path: string; received: () => string; stop: () => Promise<void> }> {
  const path = join(dir, 'notify');
  const out = join(dir, 'received');
  writeFileSync(out, '');
  const proc = spawn('systemd-socket-activate', ['--datagram', '-l', path, 'sh', '-c', `exec cat <&3 >> '${out}'`], { stdio: 'ignore' });
  await until('the notify socket bound', () => existsSync(path), 10_000);
  return {
    path,
    received: () => readFileSync(out, 'utf8'),
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await once(proc, 'exit');
      }
    },
  };
}

const count = (text: string, word: string) => text.split(word).length - 1;

async function watch(t: { after(fn: () => Promise<void> | void): void }, start: (env: NodeJS.ProcessEnv) => ChildProcess, startedMsg: string) {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-notify-'));
  const sock = await fakeNotifySocket(dir);
  // 1 s: a ping every 500 ms.
  const child = start({ ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '1000000' });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await sock.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await until(startedMsg, () => out.includes(startedMsg), 60_000);
  await until('READY=1', () => sock.received().includes('READY=1'), 10_000);
  const pingsAtReady = count(sock.received(), 'WATCHDOG=1');
  // Three more pings: the loop keeps sending while it runs, not just once at the start.
  await until('three more WATCHDOG=1', () => count(sock.received(), 'WATCHDOG=1') >= pingsAtReady + 3, 15_000);
  const t0 = Date.now();
  await until('one more WATCHDOG=1', () => count(sock.received(), 'WATCHDOG=1') >= pingsAtReady + 4, 15_000);
  assert.ok(Date.now() - t0 < 5000, 'pings keep coming at about half the watchdog interval');
  child.kill('SIGTERM');
  await once(child, 'exit');
  await until('STOPPING=1', () => sock.received().includes('STOPPING=1'), 10_000);
  assert.ok(sock.received().indexOf('READY=1') < sock.received().indexOf('STOPPING=1'));
}

test('the agent tells a notify socket READY=1, WATCHDOG=1 from its slot loop, STOPPING=1 at SIGTERM', async (t) => {
  const broker = await Mosquitto.start();
  t.after(() => broker.stop());
  const spool = mkdtempSync(join(tmpdir(), 'heliomesh-notify-spool-'));
  t.after(() => rmSync(spool, { recursive: true, force: true }));
  await watch(t, (env) => spawn(process.execPath, [CLI, 'agent', '--virtual', '--gateway', `mqtt://127.0.0.1:${broker.port}`, '--node-id', 'pi-wd', '--spool', spool],
    { stdio: ['ignore', 'pipe', 'pipe'], env }), 'agent started');
});

test('the gateway tells a notify socket READY=1, WATCHDOG=1 from its event loop, STOPPING=1 at SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-notify-gw-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync(process.execPath, [CLI, 'gateway', 'add-node', 'pi-wd', '--file', join(dir, 'nodes.json')]);
  writeFileSync(join(dir, 'gateway.yaml'), ['fleet: wd', 'broker:', '  host: 127.0.0.1', '  credentialsPath: nodes.json', ''].join('\n'));
  const mqttPort = await freePort();
  const httpPort = await freePort();
  await watch(t, (env) => spawn(process.execPath, [CLI, 'gateway', '--config', join(dir, 'gateway.yaml'), '--mqtt-port', String(mqttPort), '--http-port', String(httpPort)],
    { stdio: ['ignore', 'pipe', 'pipe'], env }), 'gateway started');
});
