// A real InfluxDB 1.x for tests: a temporary folder holds a config with free ports and the
// meta/data/wal directories; `influxd -config` runs until stop(). stop() and start() can
// be called again on the same instance to simulate an outage: the data survives because
// the folders do. A missing influxd is an error, never a skip (Debian: apt install influxdb).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const INFLUXD = '/usr/bin/influxd';

export class TestInfluxd {
  private child: ChildProcess | undefined;
  private stderr = '';

  private constructor(readonly dir: string, readonly httpPort: number, readonly rpcPort: number) {}

  /** `auth`: HTTP authentication on, with no users until a test creates one. */
  static async create(opts: { auth?: boolean } = {}): Promise<TestInfluxd> {
    const dir = await mkdtemp(join(tmpdir(), 'heliomesh-influxd-'));
    const srv = new TestInfluxd(dir, await freePort(), await freePort());
    // Only the settings that must differ from the defaults: ports, folders, and quiet logs.
    const config = [
      'reporting-disabled = true',
      `bind-address = "127.0.0.1:${srv.rpcPort}"`,
      '[meta]',
      `  dir = "${join(dir, 'meta')}"`,
      '  logging-enabled = false',
      '[data]',
      `  dir = "${join(dir, 'data')}"`,
      `  wal-dir = "${join(dir, 'wal')}"`,
      '  query-log-enabled = false',
      '[monitor]',
      '  store-enabled = false',
      '[http]',
      `  bind-address = "127.0.0.1:${srv.httpPort}"`,
      '  log-enabled = false',
      `  auth-enabled = ${opts.auth ? 'true' : 'false'}`,
      '[continuous_queries]',
      '  enabled = false',
      '',
    ].join('\n');
    await writeFile(join(dir, 'influxdb.conf'), config);
    return srv;
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  async start(timeoutMs = 15_000): Promise<void> {
    if (this.child) throw new Error('influxd is already running');
    this.stderr = '';
    const child = spawn(INFLUXD, ['-config', join(this.dir, 'influxdb.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr?.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-4000);
    });
    let spawnError: Error | undefined;
    child.once('error', (err) => {
      spawnError = err;
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (spawnError) {
        this.child = undefined;
        throw new Error(`could not start ${INFLUXD} (${spawnError.message}); install it with: apt install influxdb`);
      }
      if (child.exitCode !== null) {
        this.child = undefined;
        throw new Error(`influxd exited with code ${child.exitCode}: ${this.stderr}`);
      }
      try {
        const res = await fetch(`${this.url}/ping`);
        if (res.status === 204) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`influxd did not answer /ping within ${timeoutMs} ms: ${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Runs an InfluxQL query over HTTP and returns the parsed JSON. */
  async query(db: string, q: string, auth?: { u: string; p: string }): Promise<unknown> {
    const creds = auth ? `&u=${encodeURIComponent(auth.u)}&p=${encodeURIComponent(auth.p)}` : '';
    const res = await fetch(`${this.url}/query?db=${encodeURIComponent(db)}&q=${encodeURIComponent(q)}&epoch=ms${creds}`, { method: 'POST' });
    if (!res.ok) throw new Error(`query failed with ${res.status}: ${await res.text()}`);
    return res.json();
  }

  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
