// The agents of `heliomesh bench pipeline`: each the real node daemon (`heliomesh agent
// --config FILE`, agent/index.ts) in its own process on the reference virtual node, serving
// one block range of the bench's shard folder, logging in to the gateway with its own
// credentials.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentConfig } from '../../agent/config.js';
import { virtualAgentConfig } from '../../agent/virtual.js';
import { reapOnExit } from '../reap.js';

export interface AgentSpec {
  nodeId: string;
  password: string;
  group: string;
  firstBlock: number;
  lastBlock: number;
  /** Threads of its matmul kernel (default: every core, as an agent on a Pi runs). */
  threads?: number;
}

const CLI = fileURLToPath(new URL('../../cli/index.js', import.meta.url));

/** The config `heliomesh agent --virtual` builds (cli/agent.ts), serving `spec`'s blocks of `shardDir`. */
function agentDoc(spec: AgentSpec, fleet: string, url: string, shardDir: string, dir: string): AgentConfig {
  const base = virtualAgentConfig({ nodeId: spec.nodeId, group: spec.group, fleet, gateway: url, username: spec.nodeId, password: spec.password, spool: join(dir, 'spool') }, {});
  return {
    ...base,
    model: { shardDir, firstBlock: spec.firstBlock, lastBlock: spec.lastBlock, ...(spec.threads ? { threads: spec.threads } : {}) },
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
      // The bench's own Node flags carry over (e.g. --cpu-prof), as they do to a forked process.
      const child = spawn(process.execPath, [...process.execArgv, CLI, 'agent', '--config', configFile], { stdio: ['ignore', out, out] });
      reapOnExit(child);
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
