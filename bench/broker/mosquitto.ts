// Debian's Mosquitto, started for one run on a free loopback port with a temporary config.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../../ground/until.js';

export const MOSQUITTO = '/usr/sbin/mosquitto';

export interface RunningMosquitto {
  port: number;
  stop(): Promise<void>;
}

/** A port the kernel just handed out on 127.0.0.1; another process could take it before Mosquitto binds it, and then its start-up error says so. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no address for a probe socket'))));
    });
  });
}

export function mosquittoVersion(): string {
  if (!existsSync(MOSQUITTO)) return 'missing';
  const out = spawnSync(MOSQUITTO, ['-h'], { encoding: 'utf8' }).stdout ?? '';
  return /mosquitto version (\S+)/.exec(out)?.[1] ?? 'unknown';
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startMosquitto(): Promise<RunningMosquitto> {
  if (!existsSync(MOSQUITTO)) {
    throw new Error(`${MOSQUITTO} not found: install Debian's broker with 'apt-get install mosquitto' (the bench starts its own copy; the packaged service may stay stopped)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'heliomesh-bench-mosquitto-'));
  const port = await freeLoopbackPort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    // The default of 1000 queued QoS 1 messages per client would drop messages the
    // subscriber has not taken yet; aedes queues without a limit, so neither drops here.
    'max_queued_messages 0',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n'));
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const cleanup = async () => {
    if (!exited) child.kill('SIGTERM');
    await exit;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await until(`mosquitto on 127.0.0.1:${port}`, async () => {
      if (exited) throw new Error('mosquitto exited');
      return accepts(port);
    }, 5000);
  } catch (err) {
    await cleanup();
    throw new Error(`mosquitto did not start on 127.0.0.1:${port}: ${stderr.trim() || 'no output'}`, { cause: err });
  }
  return { port, stop: cleanup };
}
