// Debian's Mosquitto with logins and an ACL, the way docs/gateway.md tells a deployment with
// an external broker to configure it: a password file made with mosquitto_passwd, client id
// forced to the username, and the protocol's node ACL written as Mosquitto `pattern` lines.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { nodeAclPatterns } from '../../protocol/index.js';
import { MOSQUITTO } from '../agent/brokers.js';
import { freePort } from '../support/ports.js';

export const MOSQUITTO_PASSWD = process.env.MOSQUITTO_PASSWD_BIN ?? '/usr/bin/mosquitto_passwd';

/** The protocol's node ACL for Mosquitto: `{node}` becomes `%u`, the logged-in username. */
export function mosquittoNodeAcl(fleet: string, gatewayUser: string): string {
  const acl = nodeAclPatterns(fleet);
  return [
    ...acl.publish.map((f) => `pattern write ${f.replace('{node}', '%u')}`),
    ...acl.subscribe.map((f) => `pattern read ${f.replace('{node}', '%u')}`),
    `user ${gatewayUser}`,
    'topic readwrite heliomesh/#',
    '',
  ].join('\n');
}

export class SecuredMosquitto {
  private constructor(readonly port: number, readonly dir: string, private readonly proc: ChildProcess) {}

  static async start(opts: { users: Record<string, string>; acl: string }): Promise<SecuredMosquitto> {
    const dir = mkdtempSync(join(tmpdir(), 'heliomesh-mosq-secured-'));
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, '', { mode: 0o600 });
    for (const [user, password] of Object.entries(opts.users)) {
      const r = spawnSync(MOSQUITTO_PASSWD, ['-b', passwd, user, password], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${MOSQUITTO_PASSWD} failed (${r.error?.message ?? r.stderr}); install Debian's mosquitto`);
    }
    writeFileSync(join(dir, 'acl'), opts.acl);
    const port = await freePort();
    writeFileSync(join(dir, 'mosquitto.conf'), [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      `password_file ${passwd}`,
      `acl_file ${join(dir, 'acl')}`,
      // A node cannot take over another node's session or will.
      'use_username_as_clientid true',
      // Run as root, mosquitto would drop to the `mosquitto` user, which cannot read this
      // private temporary folder; as anyone else, the setting is ignored.
      `user ${userInfo().username}`,
      'persistence false',
      'log_dest none',
      '',
    ].join('\n'));
    const proc = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
    const started = new SecuredMosquitto(port, dir, proc);
    const failed = new Promise<never>((_, reject) => proc.once('error', (err) => reject(new Error(`cannot start ${MOSQUITTO}: ${err.message} (install Debian's mosquitto)`))));
    try {
      await Promise.race([started.accepting(Date.now() + 5000), failed]);
    } catch (err) {
      await started.stop();
      throw err;
    }
    return started;
  }

  private async accepting(deadlineMs: number): Promise<void> {
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const c = createConnection({ port: this.port, host: '127.0.0.1' });
        c.once('connect', () => {
          c.destroy();
          resolve(true);
        });
        c.once('error', () => resolve(false));
      });
      if (ok) return;
      if (this.proc.exitCode !== null || Date.now() > deadlineMs) throw new Error(`mosquitto did not open port ${this.port}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  }

  async stop(): Promise<void> {
    if (this.proc.pid !== undefined && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      await once(this.proc, 'exit');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
