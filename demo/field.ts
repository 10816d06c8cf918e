// The demo's composition root: a gateway with its embedded broker (and HTTP API), and a
// field of G×N real agents on virtual hardware, each with its own credentials, battery,
// panel and sky, all on one scaled clock and talking to the gateway only over MQTT.
// Tests use it too (a short accelerated run, optionally logging to a given InfluxDB).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseAgentConfig } from '../agent/config.js';
import { ScaledClock } from '../hardware/clock.js';
import { addNode } from '../gateway/broker/index.js';
import { parseGatewayConfig, type GatewayConfig } from '../gateway/config.js';
import { startGateway, type Gateway } from '../gateway/index.js';
import type { JobService } from '../gateway/jobs.js';
import { prepareModel, type FieldModel } from './model.js';
import { FieldNode } from './node.js';
import { MODE_TABLE, planField, slotMsFor, type NodePlan } from './plan.js';

export const POLICIES = ['uniform', 'long-term', 'adaptive', 'foresight', 'greedy'] as const;
export type Policy = (typeof POLICIES)[number];
export const FLEET = 'demo';

export interface FieldOptions {
  groups: number;
  /** A model of the user's (GGUF file, checkpoint or shard folder); default: the bundled one. */
  model?: string;
  nodesPerGroup: number;
  seed: number;
  /** Wall-clock minutes per simulated day. */
  dayMinutes: number;
  policy: Policy;
  /** Broker port; 0 picks a free one. */
  mqttPort: number;
  /** HTTP API port (already checked free by the caller); undefined: no HTTP API. */
  httpPort?: number;
  /** InfluxDB as http://HOST:PORT/DATABASE; undefined: no logging to InfluxDB. */
  influxUrl?: string;
  /** Simulated time at start (ms since the epoch). */
  startMs: number;
  /** Site of the field (the sun's path). */
  latitudeDeg: number;
  longitudeDeg: number;
  log: Logger;
  /** Every battery starts here instead of at its seeded level (a test of the night). */
  initialSocPct?: number;
  /** Every battery holds this, Wh, instead of its seeded 36 or 48 Wh (FieldPlanOptions.batteryWh). */
  batteryWh?: number;
  /**
   * The gateway sends nodes to sleep through the night (default true); off, a node stays
   * on until it runs flat (a test of the critical shutdown).
   */
  coordinatedSleep?: boolean;
  /** Level of the agents' own logs (slot closes are info: nine nodes make a lot of lines). */
  agentLogLevel?: string;
}

export interface Field {
  gateway: Gateway;
  jobs: JobService;
  clock: ScaledClock;
  /** δ of every node, simulated ms. */
  slotMs: number;
  nodes: FieldNode[];
  model: FieldModel;
  ports: { mqtt: number; http?: number };
  /** Folder with the credentials file, spools and any re-split model; removed by stop(). */
  dir: string;
  credentialsPath: string;
  options: FieldOptions;
  stop(): Promise<void>;
}

const DAY_MS = 86_400_000;

/** Clock speed that runs a day in `dayMinutes` of wall time. */
export function speedFor(dayMinutes: number): number {
  return DAY_MS / (dayMinutes * 60_000);
}

function gatewayConfig(o: FieldOptions, credentialsPath: string, speed: number, model: FieldModel): GatewayConfig {
  const slotMs = slotMsFor(speed);
  return parseGatewayConfig({
    fleet: FLEET,
    // Loopback only: the demo's nodes live in this process.
    broker: { host: '127.0.0.1', port: o.mqttPort, credentialsPath },
    // A field may run on a day far from today (the tests replay 21 June); InfluxDB refuses
    // points older than a finite retention, so the demo's database keeps everything.
    store: o.influxUrl ? { url: o.influxUrl, retentionPolicy: { name: 'heliomesh', duration: 'INF' } } : undefined,
    scheduler: { policy: o.policy },
    registry: {
      // Three slots of silence, but never less than 15 s of wall time: on a loaded 2-core
      // machine the event loop can stall for seconds, and a stall is not a dead node.
      silenceMs: Math.max(3 * slotMs, 15_000 * speed),
    },
    // The router's waits are about the host (a busy event loop, MQTT round trips), not the
    // simulated Pi, so they are set in wall-clock time and scaled to the simulated clock.
    router: { hopTimeoutMs: Math.round(10_000 * speed), queueTimeoutMs: Math.round(20_000 * speed), reportTimeoutMs: Math.round(2_000 * speed) },
    // Counters once per simulated 10 minutes (several times a wall-clock minute).
    statsIntervalMs: 600_000,
    // The virtual nodes wake by their RTC (FieldNode), so the gateway may send them to sleep.
    // A node takes its drain and stop in host time to obey: the wait for its `sleeping` is
    // scaled like the router's.
    // A check-in boots a new agent, seconds of host time: 30 simulated minutes would be a few
    // wall seconds at the demo's speed, spent booting, so a nap lasts a wall minute at least.
    sleep: {
      enabled: o.coordinatedSleep ?? true, settleMs: Math.max(600_000, Math.round(20_000 * speed)),
      checkInMs: Math.max(1_800_000, Math.round(60_000 * speed)),
    },
    // The demo's API has no key, so it answers on this machine only.
    ...(o.httpPort !== undefined ? { http: { host: '127.0.0.1', port: o.httpPort } } : {}),
    ...(model.split || o.model !== undefined ? { model: { manifest: join(model.dir, 'manifest.json') } } : {}),
  }, 'demo gateway config');
}

function agentConfig(plan: NodePlan, o: { url: string; password: string; spoolDir: string; rtcRoot: string; model: FieldModel; level: string; speed: number; slotMs: number }) {
  const range = o.model.ranges[plan.groupIndex]!;
  return parseAgentConfig({
    nodeId: plan.nodeId,
    fleet: FLEET,
    group: plan.group,
    // The link's backoff and the stop's deadlines run on the node's clock; they wait on a
    // broker that answers in host time, so they are scaled to last as long in wall time
    // (within the config's bounds, which at a day a minute leave the last words 21 ms).
    gateway: { url: o.url, username: plan.nodeId, password: o.password, reconnectMinMs: Math.round(500 * o.speed), reconnectMaxMs: Math.round(5000 * o.speed) },
    stopFlushMs: Math.min(120_000, Math.round(10_000 * o.speed)),
    criticalFlushMs: Math.min(30_000, Math.round(2_000 * o.speed)),
    hardware: plan.hardware,
    slotMs: o.slotMs,
    powerModes: plan.powerModes,
    modeTable: MODE_TABLE,
    model: { shardDir: o.model.dir, firstBlock: range.from, lastBlock: range.to - 1 },
    // Two samples a slot besides the one that closes it (every 50 s of simulated time at
    // δ = 100 s, the plant holding an operating point for 10 s), and at most three a
    // wall-clock second: enough for the ledger's trapezoid, and few enough that the reads
    // (slow under inference load, see plan.ts) never queue up behind each other.
    sampleHz: Math.min(2 / (o.slotMs / 1000), 3 / o.speed),
    spool: { dir: o.spoolDir },
    // The RTC's folder outlives the agent, so the node's power board sees the alarm after the halt.
    wake: { path: 'virtual', sysfsRoot: o.rtcRoot },
    // A session between two tokens idles for host time, not Pi time: 30 s of wall clock.
    worker: { queueCapacity: 1, sessionIdleMs: Math.round(30_000 * o.speed) },
    logLevel: o.level,
  }, {}, `demo node ${plan.nodeId}`);
}

/** Resolves once the gateway has every node's birth, so a first request finds them all. */
async function allOnline(gateway: Gateway, ids: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A node the planner has already sent to sleep is accounted for: it is born again at its alarm.
    const missing = ids.filter((id) => {
      const n = gateway.registry.get(id);
      return !(n?.online || n?.sleep);
    });
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`nodes ${missing.join(', ')} did not come online at the gateway within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startField(o: FieldOptions): Promise<Field> {
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-demo-'));
  const speed = speedFor(o.dayMinutes);
  const clock = new ScaledClock(speed, o.startMs);
  const log = o.log;
  const nodes: FieldNode[] = [];
  let gateway: Gateway | undefined;
  const cleanup = async (reason: string) => {
    // Agents first, so their last slots and offline states reach the broker.
    await Promise.all(nodes.map((n) => n.stop(reason).catch((err: Error) => log.error({ node: n.nodeId, err: err.message }, 'agent did not stop cleanly'))));
    await gateway?.close().catch((err: Error) => log.error({ err: err.message }, 'gateway did not stop cleanly'));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const model = prepareModel(o.groups, dir, o.model);
    const slotMs = slotMsFor(speed);
    const plans = planField({ slotMs, groups: o.groups, nodesPerGroup: o.nodesPerGroup, seed: o.seed, latitudeDeg: o.latitudeDeg, longitudeDeg: o.longitudeDeg, initialSocPct: o.initialSocPct, batteryWh: o.batteryWh });
    // Each node its own password, known only to this process; the broker holds their hashes
    // and refuses everyone else, as on a real site.
    const credentialsPath = join(dir, 'credentials.json');
    const passwords = new Map<string, string>();
    for (const p of plans) passwords.set(p.nodeId, await addNode(credentialsPath, p.nodeId));
    gateway = await startGateway(gatewayConfig(o, credentialsPath, speed, model), { clock, log: log.child({ part: 'gateway' }) });
    const mqtt = gateway.broker.ports.mqtt!;
    for (const plan of plans) {
      const config = agentConfig(plan, {
        url: `mqtt://127.0.0.1:${mqtt}`, password: passwords.get(plan.nodeId)!, spoolDir: join(dir, 'spool', plan.nodeId), rtcRoot: join(dir, 'rtc', plan.nodeId), model, level: o.agentLogLevel ?? 'warn', speed, slotMs,
      });
      const node = new FieldNode(plan, config, clock, log.child({ node: plan.nodeId }, { level: config.logLevel }));
      nodes.push(node);
      await node.start();
    }
    // Seven agents each load TF.js and a shard: on two busy cores that takes a while.
    await allOnline(gateway, nodes.map((n) => n.nodeId), 90_000);
    log.info({ nodes: nodes.length, groups: o.groups, speed, slotMs, dir, mqtt, http: gateway.http?.port ?? null, influx: o.influxUrl ?? null, model: model.dir }, 'field started');
    const jobs = gateway.jobs;
    let stopping: Promise<void> | undefined;
    return {
      gateway, jobs, clock, slotMs, nodes, model, dir, credentialsPath, options: o,
      ports: { mqtt, ...(gateway.http ? { http: gateway.http.port } : {}) },
      stop: () => (stopping ??= cleanup('demo stopped')),
    };
  } catch (err) {
    await cleanup('demo failed to start');
    throw err;
  }
}
