// The real gateway (startGateway: its broker with the protocol's node ACL, its own client,
// registry and router) in a temporary folder, with node credentials made by add-node, and a
// login probe that reports the CONNACK return code.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { addNode, type Broker, type BrokerConfigInput } from '../../gateway/broker/index.js';
import { RealClock, type Clock } from '../../ground/clock.js';
import { until } from '../../ground/until.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import type { HttpConfigInput } from '../../gateway/http/index.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { captureLog, type Captured } from '../support/log.js';

export const FLEET = 'sec';

export interface TestGateway {
  gw: Gateway;
  broker: Broker;
  dir: string;
  credentialsPath: string;
  passwords: Record<string, string>;
  cap: Captured;
  url: string;
  /** Every client opened through `login` or `open`, ended by `stop`. */
  clients: MqttClient[];
  stop(): Promise<void>;
}

export async function startTestGateway(opts: {
  nodes: string[];
  broker?: Partial<BrokerConfigInput>;
  /** The HTTP API's settings; absent, the gateway serves no HTTP. */
  http?: HttpConfigInput;
  clock?: Clock;
  /** Files to put in the folder before the gateway starts (TLS material). */
  prepare?: (dir: string) => void | Promise<void>;
}): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'heliomesh-security-'));
  const credentialsPath = join(dir, 'nodes.json');
  const passwords: Record<string, string> = {};
  for (const n of opts.nodes) passwords[n] = await addNode(credentialsPath, n);
  await opts.prepare?.(dir);
  const cap = captureLog();
  const config = parseGatewayConfig({ fleet: FLEET, broker: { host: '127.0.0.1', port: 0, credentialsPath, ...opts.broker }, http: opts.http });
  let gw: Gateway;
  try {
    gw = await startGateway(config, { clock: opts.clock ?? new RealClock(), log: cap.log });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const clients: MqttClient[] = [];
  return {
    gw, broker: gw.broker, dir, credentialsPath, passwords, cap, clients,
    url: `mqtt://127.0.0.1:${gw.broker.ports.mqtt}`,
    async stop() {
      for (const c of clients) await c.endAsync(true);
      await gw.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type LoginOutcome =
  | { connected: true; client: MqttClient }
  /** `code` is the CONNACK return code (MQTT 3.1.1 §3.2.2.3). */
  | { connected: false; code: number | undefined; error: string };

/**
 * One connection attempt, no retries. A refused CONNACK gives its return code; a connection
 * closed or failed before any CONNACK gives `code: undefined` and the error.
 */
export function login(t: Pick<TestGateway, 'clients'>, url: string, opts: IClientOptions): Promise<LoginOutcome> {
  return new Promise((resolve) => {
    const client = connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    t.clients.push(client);
    client.once('connect', () => resolve({ connected: true, client }));
    client.once('error', (err: Error & { code?: unknown }) => {
      resolve({ connected: false, code: typeof err.code === 'number' ? err.code : undefined, error: err.message });
    });
    client.once('close', () => resolve({ connected: false, code: undefined, error: 'connection closed before CONNACK' }));
  });
}

/** A connected client, or a failed test saying why not. */
export async function open(t: Pick<TestGateway, 'clients'>, url: string, opts: IClientOptions): Promise<MqttClient> {
  const r = await login(t, url, opts);
  if (!r.connected) throw new Error(`${String(opts.clientId)} could not log in: ${r.error}`);
  return r.client;
}

/** Resolves once the broker has closed the client's connection. */
export async function closedByBroker(c: MqttClient): Promise<void> {
  if (!c.connected) return;
  await new Promise<void>((resolve) => c.once('close', () => resolve()));
}

export interface GatewayProcess {
  /** The first JSON log line with this `msg`, once it has been written. */
  logged(msg: string, ms?: number): Promise<Record<string, unknown>>;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then the exit code and everything the process wrote. */
  stop(): Promise<{ code: number | null; out: string }>;
}

/** `heliomesh gateway ARGS` as a user runs it, its JSON log lines collected. */
export function spawnGateway(args: string[]): GatewayProcess {
  const gw = spawn('node', ['dist/cli/index.js', 'gateway', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  gw.stdout.on('data', (b: Buffer) => (out += b.toString()));
  gw.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => gw.once('exit', (code) => r(code)));
  const find = (msg: string) => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.msg === msg);
  return {
    async logged(msg, ms = 30_000) {
      await until(`'${msg}' in the gateway's log`, () => find(msg) !== undefined || gw.exitCode !== null, ms);
      const record = find(msg);
      if (!record) throw new Error(`the gateway exited before logging '${msg}':\n${out}`);
      return record;
    },
    signal: (sig) => gw.kill(sig),
    async stop() {
      gw.kill('SIGTERM');
      return { code: await exited, out };
    },
  };
}
