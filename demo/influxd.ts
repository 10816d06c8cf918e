// A private InfluxDB 1.x for the demo when the machine has one installed and the user
// named none: `influxd -config` in a temporary folder on free loopback ports, stopped
// (and its folder removed) with the demo.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './ports.js';

export const DEMO_DATABASE = 'heliomesh';

/** The influxd binary on PATH, or Debian's /usr/bin/influxd; undefined when there is none. */
export function findInfluxd(path = process.env.PATH ?? ''): string | undefined {
  const candidates = [...path.split(delimiter).filter(Boolean).map((d) => join(d, 'influxd')), '/usr/bin/influxd'];
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not there or not executable: try the next one
    }
  }
  return undefined;
}

export class DemoInfluxd {
  private stderrTail = '';

  private constructor(private readonly child: ChildProcess, private readonly dir: string, readonly httpPort: number) {
    child.stderr?.on('data', (b: Buffer) => {
      this.stderrTail = (this.stderrTail + b.toString()).slice(-2000);
    });
  }

  /** The store URL, database included. */
  get url(): string {
    return `http://127.0.0.1:${this.httpPort}/${DEMO_DATABASE}`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  static async start(binary: string, timeoutMs = 20_000): Promise<DemoInfluxd> {
    const dir = mkdtempSync(join(tmpdir(), 'heliomesh-demo-influxd-'));
    const [httpPort, rpcPort] = [await freePort(), await freePort()];
    // Only what must differ from the packaged defaults: loopback ports, folders in the
    // temporary folder, no usage reporting and quiet logs.
    writeFileSync(join(dir, 'influxdb.conf'), [
      'reporting-disabled = true',
      `bind-address = "127.0.0.1:${rpcPort}"`,
      '[meta]', `  dir = "${join(dir, 'meta')}"`, '  logging-enabled = false',
      '[data]', `  dir = "${join(dir, 'data')}"`, `  wal-dir = "${join(dir, 'wal')}"`, '  query-log-enabled = false',
      '[monitor]', '  store-enabled = false',
      '[http]', `  bind-address = "127.0.0.1:${httpPort}"`, '  log-enabled = false',
      '',
    ].join('\n'));
    const child = spawn(binary, ['-config', join(dir, 'influxdb.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const srv = new DemoInfluxd(child, dir, httpPort);
    let spawnError: Error | undefined;
    child.once('error', (err) => { spawnError = err; });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const failure = spawnError?.message ?? (child.exitCode !== null ? `exited with code ${child.exitCode}: ${srv.stderrTail.trim()}` : undefined);
      if (failure || Date.now() > deadline) {
        await srv.stop();
        throw new Error(`${binary} did not start (${failure ?? `no answer on /ping within ${timeoutMs} ms`})`);
      }
      try {
        if ((await fetch(`http://127.0.0.1:${httpPort}/ping`)).status === 204) return srv;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** For a process that is exiting now (a crash, a forced exit): SIGKILL and the folder, synchronously. */
  killNow(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGTERM, SIGKILL after 5 s, then the folder goes. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
