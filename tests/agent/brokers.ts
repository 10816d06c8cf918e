// Real brokers for the agent tests: Debian's mosquitto on a free port with a temporary
// config, and an in-process aedes. A missing mosquitto fails the test that needs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { freePort } from '../support/ports.js';

export const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';


async function waitForPort(port: number, deadlineMs: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ port, host: '127.0.0.1' });
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadlineMs) throw new Error(`broker did not open port ${port}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

/** Mosquitto with persistence in a temporary folder, so sessions survive a stop and start. */
export class Mosquitto {
  private proc: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'heliomesh-mosq-'));
  private constructor(readonly port: number) {
    writeFileSync(join(this.dir, 'mosquitto.conf'), [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${this.dir}/`,
      // Started as root, mosquitto switches to the user "mosquitto", which cannot write this
      // root-owned folder, and persistence then fails silently. Run as whoever started it.
      `user ${userInfo().username}`,
      'log_dest none',
      '',
    ].join('\n'));
  }

  static async start(): Promise<Mosquitto> {
    const m = new Mosquitto(await freePort());
    await m.up();
    return m;
  }

  async up(): Promise<void> {
    const proc = spawn(MOSQUITTO, ['-c', join(this.dir, 'mosquitto.conf')], { stdio: 'ignore' });
    this.proc = proc;
    const failed = new Promise<never>((_, reject) => proc.once('error', (err) => reject(new Error(`cannot start ${MOSQUITTO}: ${err.message} (install Debian's mosquitto)`))));
    await Promise.race([waitForPort(this.port, Date.now() + 5000), failed]);
  }

  /** SIGTERM: mosquitto writes its persistence file and exits. */
  async down(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    p.kill('SIGTERM');
    await once(p, 'exit');
    this.proc = undefined;
  }

  async stop(): Promise<void> {
    await this.down();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class InProcessAedes {
  private constructor(readonly aedes: Aedes, readonly server: Server, readonly port: number) {}

  /** On `port` (default any free one): the same port again is a broker that restarted and lost every session. */
  static async start(port = 0): Promise<InProcessAedes> {
    const aedes = new Aedes();
    await aedes.listen();
    const server = createServer((socket) => aedes.handle(socket));
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    return new InProcessAedes(aedes, server, (server.address() as { port: number }).port);
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    await new Promise<void>((r) => this.aedes.close(() => r()));
    await closed;
  }
}

/** An in-process aedes and a temporary folder, both gone when the test ends. */
export async function aedesWithFolder(t: { after(fn: () => Promise<void>): void }, prefix: string): Promise<{ broker: InProcessAedes; dir: string }> {
  const broker = await InProcessAedes.start();
  const dir = mkdtempSync(join(tmpdir(), `heliomesh-${prefix}-`));
  t.after(async () => {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { broker, dir };
}
