// The agents of `heliomesh bench pipeline`: each the real node daemon (`heliomesh agent
// --config FILE`, agent/index.ts) in its own process on the reference virtual node, serving
// one block range of the bench's shard folder, logging in to the gateway with its own
// credentials.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentConfigInput } from '../../agent/config.js';
import { referenceHardwareConfig } from '../../hardware/config.js';

export interface AgentSpec {
  nodeId: string;
  password: string;
  group: string;
  firstBlock: number;
  lastBlock: number;
}

const CLI = fileURLToPath(new URL('../../cli/index.js', import.meta.url));

/** The virtual node's config (as `heliomesh agent --virtual` builds it), serving `spec`'s blocks of `shardDir`. */
function agentDoc(spec: AgentSpec, fleet: string, url: string, shardDir: string, dir: string): AgentConfigInput {
  return {
    nodeId: spec.nodeId,
    fleet,
    group: spec.group,
    gateway: { url, username: spec.nodeId, password: spec.password },
    hardware: referenceHardwareConfig('virtual'),
    powerModes: [
      { powerMode: 1, name: 'low', kappa: 3, costJ: 30 },
      { powerMode: 2, name: 'medium', kappa: 2, costJ: 35 },
      { powerMode: 3, name: 'high', kappa: 1, costJ: 45 },
    ],
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.4, powerMode: 2 }, { minFraction: 0.6, powerMode: 3 }],
    model: { shardDir, firstBlock: spec.firstBlock, lastBlock: spec.lastBlock },
    spool: { dir: join(dir, 'spool') },
    // On the virtual node a critical battery only ends the process.
    shutdownCommand: ['true'],
    logLevel: 'warn',
  };
}

export class AgentProcess {
  private readonly exited: Promise<void>;

  private constructor(readonly nodeId: string, private readonly child: ChildProcess, readonly logFile: string) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Writes the agent's config (mode 0600: it holds the password) and starts the daemon. */
  static start(spec: AgentSpec, opts: { fleet: string; url: string; shardDir: string; dir: string }): AgentProcess {
    const dir = join(opts.dir, spec.nodeId);
    mkdirSync(dir, { recursive: true });
    const configFile = join(dir, 'agent.json');
    writeFileSync(configFile, JSON.stringify(agentDoc(spec, opts.fleet, opts.url, opts.shardDir, dir)), { mode: 0o600 });
    const logFile = join(dir, 'agent.log');
    const out = openSync(logFile, 'a');
    try {
      const child = spawn(process.execPath, [CLI, 'agent', '--config', configFile], { stdio: ['ignore', out, out] });
      return new AgentProcess(spec.nodeId, child, logFile);
    } finally {
      closeSync(out);
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM (the agent leaves cleanly), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}
