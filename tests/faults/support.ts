// Shared pieces of the fault tests: agents on the reference virtual node with their own
// spool folders, polling helpers, and reading a node's slot series back from InfluxDB.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig, type AgentConfig } from '../../agent/config.js';
import type { Clock } from '../../ground/clock.js';
import { exampleDoc } from '../agent/fixtures.js';
import type { TestInfluxd } from '../support/influxd.js';
import { until as waitUntil } from '../../ground/until.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BUNDLED = join(REPO, 'models', 'bundled');
export const CLI = join(REPO, 'dist', 'cli', 'index.js');

// A wait bounds only how long a failure takes to report, never how long a pass takes, so it
// is sized for the slowest machine the suite must pass on: 2 cores with a CPU hog beside the
// suite (20 s timed out there for a gateway restart at load 4-6).
export const until = (what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> => waitUntil(what, cond, ms);

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `heliomesh-${prefix}-`));
}

/** The example agent config on the reference virtual node, with `over` merged on top. */
export function agentConfig(over: Record<string, unknown> & { spool: { dir: string } }): AgentConfig {
  const doc = exampleDoc();
  return parseAgentConfig({ ...doc, ...over, gateway: { ...(doc.gateway as object), ...(over.gateway as object | undefined) } });
}

export function startAgent(config: AgentConfig, clock: Clock, shutdown: (reason: string) => Promise<void> = async () => {}): Promise<Agent> {
  return Agent.start(config, { clock, log: pino({ level: 'silent' }), shutdown });
}

/** The `seq` of every node_slot point of `node`, in time order. */
export async function storedSeqs(influxd: TestInfluxd, db: string, node: string): Promise<number[]> {
  const res = (await influxd.query(db, `SELECT seq FROM node_slot WHERE node = '${node}'`)) as {
    results: Array<{ series?: Array<{ values: Array<[number, number]> }> }>;
  };
  return (res.results[0]?.series?.[0]?.values ?? []).map((v) => v[1]);
}

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
