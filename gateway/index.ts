// The gateway's composition root: reads the files the configuration names (credentials,
// TLS, the model's head and tokenizer), then starts the InfluxDB store, the MQTT broker,
// the gateway's own MQTT client and the job router, and writes the broker's and the
// store's counters periodically. Nothing else in gateway/ reads files.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { selectBackend } from '../models/backend.js';
import { bundledManifestPath } from '../models/bundled.js';
import type { MatrixAllocator } from '../models/weights.js';
import { MANIFEST_FILE, readManifest, readShards } from '../models/shards.js';
import { loadTokenizer } from '../models/tokenizers/index.js';
import { encodeJson, nodeAclPatterns, nodeTopic } from '../protocol/index.js';
import { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { assertPrivateFile, Broker, connectExternal, loadCredentials, safeUrl, type EarlyMessage, type ExternalSecrets, type NodeTopicPatterns } from './broker/index.js';
import type { Clock, Timer } from '../ground/clock.js';
import { chainsHops, type GatewayConfig } from './config.js';
import { HomeAssistantDiscovery } from './homeassistant.js';
import { HttpApi, type HttpConfig } from './http/index.js';
import type { JobService } from './jobs.js';
import { NodeLink } from './link.js';
import { Outbox } from './outbox.js';
import { Registry } from './registry.js';
import { GatewayModel, Router } from './router/index.js';
import { SleepPlanner } from './sleep-planner.js';
import { NodeSolver, SolverPool } from './solver-pool.js';
import { brokerPoint, createStore, recordNodeHistory, type Store } from './store/index.js';

export interface GatewayDeps {
  clock: Clock;
  log: Logger;
  /** The service manager (systemd's sd_notify, cli/notify.ts); absent when none watches. */
  notify?: ServiceNotify;
}

/** Started, still turning (every `periodMs` of real time, from the event loop), stopping. */
export interface ServiceNotify {
  ready(): void;
  alive(): void;
  stopping(): void;
  readonly periodMs: number | undefined;
}

/** `B` is `Broker | undefined` when the gateway may be a client of an external broker (`broker.external`). */
export interface Gateway<B extends Broker | undefined = Broker> {
  /** The embedded broker, or undefined as a client of an external one. */
  broker: B;
  store: Store;
  solver: SolverPool;
  registry: Registry;
  /** The gateway's own MQTT client (full access). */
  client: MqttClient;
  /** Node messages into the registry. */
  link: NodeLink;
  /** Completions through the fleet: what the HTTP API and the status command use. */
  jobs: JobService;
  /** The same object as `jobs`, with the router's internals (scheduler service, counters). */
  router: Router;
  model: GatewayModel;
  /** The HTTP API, when `config.http` is set. */
  http: HttpApi | undefined;
  /** Coordinated sleep, when `config.sleep.enabled`. */
  sleep: SleepPlanner | undefined;
  close(): Promise<void>;
}

/**
 * The head part and tokenizer of the configured model (default: the bundled one). `path` is
 * a shard folder or its manifest.json.
 */
export function loadGatewayModel(path: string | undefined, groupNames: string[] | undefined, createdS: number): GatewayModel {
  const given = path ?? bundledManifestPath();
  const dir = basename(given) === MANIFEST_FILE ? dirname(resolve(given)) : resolve(given);
  let manifest;
  try {
    manifest = readManifest(dir);
  } catch (err) {
    throw new Error(`cannot load the model for model.manifest (${given}): ${(err as Error).message}`);
  }
  // the head's matrices are read straight into its kernel's memory: held once
  const head = (allocate: MatrixAllocator) => readShards(dir, { range: { from: 0, to: 0 }, head: true }, manifest, allocate).head!;
  const tokenizer = manifest.tokenizer ? loadTokenizer(dir, manifest.tokenizer) : undefined;
  return new GatewayModel({ name: basename(dir), manifest, head, tokenizer, groupNames, createdS });
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${(err as Error).message} (fix broker.tls.${what}Path)`);
  }
}

/** The external broker's password and CA, read from the files the config names. */
function externalSecrets(e: NonNullable<GatewayConfig['broker']['external']>): ExternalSecrets {
  const read = (path: string, setting: string, secret = false) => {
    try {
      if (secret) assertPrivateFile(path, 'the gateway\'s password for the external broker');
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read ${path}: ${(err as Error).message} (fix broker.external.${setting})`);
    }
  };
  return {
    password: e.passwordPath ? read(e.passwordPath, 'passwordPath', true).toString('utf8').trim() : e.password,
    ca: e.caPath ? read(e.caPath, 'caPath') : undefined,
  };
}

/**
 * The gateway's MQTT client: of the embedded broker, started here, or of the external
 * broker `broker.external` names, with no broker of its own.
 */
async function openMqtt(
  config: GatewayConfig,
  files: { external?: ExternalSecrets; credentials?: ReturnType<typeof loadCredentials>; tls?: { cert: Buffer; key: Buffer; ca?: Buffer } },
  deps: GatewayDeps,
): Promise<{ broker?: Broker; client: MqttClient; takeEarly?: () => EarlyMessage[] }> {
  const log = deps.log.child({ part: 'broker' });
  if (config.broker.external && files.external) return connectExternal(config.broker.external, files.external, log);
  if (!files.credentials) throw new Error('no node credentials loaded for the embedded broker (set broker.credentialsPath)');
  const broker = await Broker.start(config.broker, { clock: deps.clock, log, credentials: files.credentials, patterns: nodeTopics(config), tls: files.tls });
  try {
    // In process rather than over loopback TCP. Job messages take the broker's bus instead (startGatewayOnAnyBroker).
    const client = await connectInProcess(broker);
    return { broker, client };
  } catch (err) {
    await broker.close();
    throw err;
  }
}

/** The gateway's client of its embedded broker, over an in-process stream; after a drop it reconnects as over TCP. */
function connectInProcess(broker: Broker): Promise<MqttClient> {
  const client = new MqttClient(() => broker.connectInProcess(), { clientId: 'heliomesh-gateway', ...broker.internal, reconnectPeriod: 1000 });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      client.end(true);
      reject(err);
    };
    client.once('error', fail);
    client.once('connect', () => {
      client.removeListener('error', fail);
      resolve(client);
    });
  });
}

/**
 * Nagle off on the gateway client's TCP socket (an external broker's: the embedded
 * broker's client has no socket), now and after every reconnect. MQTT.js
 * leaves it on, and a hop is a PUBACK for the last output followed at once by the next
 * frame: with Nagle the frame waits for the broker's delayed ACK of the PUBACK (40 ms on
 * Linux), which measured as ~45 ms per hop on the bundled model.
 */
function noDelay(client: MqttClient): void {
  const apply = () => {
    const stream = client.stream as Partial<Socket> | undefined;
    stream?.setNoDelay?.(true);
  };
  apply();
  client.on('connect', apply);
}

/** The HTTP API's bearer key, from the config or the private file it names. */
function apiKey(http: HttpConfig): string | undefined {
  if (!http.apiKeyFile) return http.apiKey;
  let key: string;
  try {
    assertPrivateFile(http.apiKeyFile, 'the HTTP API key');
    key = readFileSync(http.apiKeyFile, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read the HTTP API key: ${(err as Error).message} (fix http.apiKeyFile)`);
  }
  if (key.length < 16) throw new Error(`${http.apiKeyFile} holds no API key of at least 16 characters (fix http.apiKeyFile)`);
  return key;
}

/** The protocol's node ACL unless the config overrides it. */
function nodeTopics(config: GatewayConfig): NodeTopicPatterns {
  return config.broker.nodeTopics ?? nodeAclPatterns(config.fleet);
}

/** Starts the gateway with its embedded broker; `startGatewayOnAnyBroker` also takes `broker.external`. */
export async function startGateway(config: GatewayConfig, deps: GatewayDeps): Promise<Gateway> {
  if (config.broker.external) throw new Error('broker.external is set: this gateway has no embedded broker (start it with startGatewayOnAnyBroker)');
  const gw = await startGatewayOnAnyBroker(config, deps);
  if (hasBroker(gw)) return gw;
  await gw.close();
  throw new Error('the embedded broker did not start');
}

function hasBroker(gw: Gateway<Broker | undefined>): gw is Gateway {
  return gw.broker !== undefined;
}

/** The broker's files the config names: the external broker's secrets, or the node credentials and TLS of the embedded one. */
function brokerFiles(config: GatewayConfig): { external?: ExternalSecrets; credentials?: ReturnType<typeof loadCredentials>; tls?: { cert: Buffer; key: Buffer; ca?: Buffer } } {
  if (config.broker.external) return { external: externalSecrets(config.broker.external) };
  const tls = config.broker.tls;
  return {
    // The schema requires credentialsPath unless the broker is external.
    credentials: config.broker.credentialsPath ? loadCredentials(config.broker.credentialsPath) : undefined,
    tls: tls && { cert: readPem(tls.certPath, 'cert'), key: readPem(tls.keyPath, 'key'), ca: tls.caPath ? readPem(tls.caPath, 'ca') : undefined },
  };
}

/** The registry, with the node solver's answers applied to it. */
function nodeRegistry(config: GatewayConfig, solver: SolverPool, clock: Clock): Registry {
  const nodeSolver = new NodeSolver(solver);
  const registry = new Registry({ silenceMs: config.registry.silenceMs, xiLim: config.scheduler.xiLim, estimator: config.estimator }, nodeSolver);
  nodeSolver.on('solved', (nodeId, params, solved) => registry.applySolved(nodeId, params, solved, clock.now()));
  nodeSolver.on('failed', (nodeId, err) => registry.solveFailed(nodeId, err));
  return registry;
}

/** Starts the gateway with its embedded broker, or as a client of the external broker `broker.external` names. */
export async function startGatewayOnAnyBroker(config: GatewayConfig, deps: GatewayDeps): Promise<Gateway<Broker | undefined>> {
  const { clock, log } = deps;
  const files = brokerFiles(config);
  const backend = await selectBackend({ backend: config.model.backend });
  log.info({ backend: backend.name, detail: backend.detail }, 'TF.js backend selected for the model head');
  const model = loadGatewayModel(config.model.manifest, config.model.groups, Math.floor(clock.now() / 1000));
  log.info({ model: model.name, groups: model.groups.map((g) => `${g.name}:${g.from}-${g.to - 1}`), tokenizer: model.tokenizer?.kind ?? null }, 'model head loaded');

  const store = createStore(config.store, { clock, log: log.child({ part: 'store' }) });
  const solver = new SolverPool({ threads: config.scheduler.solverThreads });
  const registry = nodeRegistry(config, solver, clock);
  recordNodeHistory(registry, { fleet: config.fleet, store, log: log.child({ part: 'registry' }) });
  let broker: Broker | undefined;
  let router: Router | undefined;
  try {
    const mqtt = await openMqtt(config, files, deps);
    broker = mqtt.broker;
    const client = mqtt.client;
    client.on('error', (err) => log.error({ err: err.message }, 'gateway MQTT client error'));
    noDelay(client);
    const outbox = new Outbox(client, clock);
    // The job messages: on the embedded broker's bus, not through the client (broker/local-bus.ts).
    const jobOutbox = broker ? new Outbox(broker.bus, clock) : outbox;
    const r = new Router(
      { fleet: config.fleet, policy: config.scheduler.policy, ...config.router, chainHops: chainsHops(config) },
      {
        model, registry, store, clock, log: log.child({ part: 'router' }),
        publish: (topic, payload, qos) => jobOutbox.publish(topic, payload, { qos }, (err) => log.warn({ topic, err: err.message }, 'job message not published')),
      },
    );
    router = r;
    // A will or silence fails the hops waiting on the node at once (no hop timeout to sit out).
    registry.on('down', (node, reason) => r.nodeDown(node.nodeId, reason));
    if (config.homeAssistant) {
      const discovery = new HomeAssistantDiscovery({ ...config.homeAssistant, fleet: config.fleet }, {
        // Retained, so Home Assistant finds every node's device when it (re)starts.
        publish: (m) => outbox.publish(m.topic, m.payload, { qos: 1, retain: true }, (err) => log.warn({ topic: m.topic, err: err.message }, 'Home Assistant discovery not published')),
        log: log.child({ part: 'homeassistant' }),
      });
      registry.on('up', (node) => discovery.announce(node.nodeId, node.profile.group));
    }
    const link = new NodeLink(
      { fleet: config.fleet, levels: config.registry.levels, priorHarvestJ: config.registry.priorHarvestJ },
      { client, registry, clock, log: log.child({ part: 'link' }), jobs: r, ...(broker ? { jobBus: broker.bus } : {}) },
    );
    await link.start(mqtt.takeEarly);
    const b = broker;
    let http: HttpApi | undefined;
    try {
      http = config.http && await HttpApi.start(config.http, {
        jobs: r,
        registry,
        brokerUp: () => client.connected,
        brokerStats: () => b?.stats(),
        store: { configured: config.store !== undefined, stats: () => store.stats() },
        linkCounters: () => link.counters,
        linkIgnored: () => link.ignored,
        jobMessages: () => r.stats,
      }, { clock, log: log.child({ part: 'http' }), apiKey: apiKey(config.http) });
    } catch (err) {
      await client.endAsync();
      throw err;
    }
    const sleep = config.sleep.enabled ? new SleepPlanner(config.sleep, {
      fleet: config.fleet, registry, clock, log: log.child({ part: 'sleep' }), store,
      submitted: () => r.counters().submitted,
      refusedAsleep: (group) => r.refusedAsleep(group),
      inHand: (nodeId) => r.scheduling.inHand(nodeId),
      command: (nodeId, command) => outbox.publish(nodeTopic(config.fleet, nodeId, 'cmd'), encodeJson(command), { qos: 1 },
        (err) => log.warn({ node: nodeId, op: command.op, err: err.message }, 'command not published')),
    }) : undefined;
    sleep?.start();
    // A node that says it sleeps may leave jobs waiting on it: they look again.
    registry.on('sleep', () => r.wake());
    const silence: Timer = clock.setInterval(() => registry.checkSilence(clock.now()), Math.max(1000, config.registry.silenceMs / 4));
    // An external broker keeps its own counters ($SYS); broker_stats are the embedded one's.
    const stats: Timer = clock.setInterval(() => {
      if (b) store.write(brokerPoint(config.fleet, { ...b.stats(), droppedPoints: store.stats().dropped }, clock.now()));
    }, config.statsIntervalMs);
    log.info({
      fleet: config.fleet, http: http?.port ?? null, mqtt: b?.ports.mqtt ?? null, mqtts: b?.ports.mqtts ?? null, ws: b?.ports.ws ?? null,
      externalBroker: config.broker.external ? safeUrl(config.broker.external.url) : null, influx: config.store?.url ?? null,
    }, 'gateway started');
    const notify = deps.notify;
    notify?.ready();
    // Real time, whatever the clock: the watchdog counts seconds of the service manager's.
    // A timer on the event loop stops firing when the loop is blocked, and then systemd restarts us.
    const watchdog = notify?.periodMs ? setInterval(() => notify.alive(), notify.periodMs) : undefined;
    return {
      broker: b,
      store,
      solver,
      registry,
      client,
      link,
      jobs: r,
      router: r,
      model,
      http,
      sleep,
      async close() {
        clearInterval(watchdog);
        notify?.stopping();
        stats.cancel();
        silence.cancel();
        sleep?.stop();
        // No new requests; the router's shutdown then fails the jobs in flight, and their
        // HTTP callers get that answer (503 'shutdown') before the API ends the connections.
        http?.stopAccepting();
        await r.close();
        // The router's cancels (QoS 1) must be through the broker before it stops, or every
        // node that served a job keeps its queue place until its session idles out.
        await Promise.all([outbox.acknowledged(2_000), jobOutbox.acknowledged(2_000)]);
        await http?.close();
        model.dispose();
        // The embedded broker closes first: a node's record it acknowledged after our own
        // client had left would be acknowledged and lost. What it has already passed to the
        // client is in the client's socket and still read before the forced end.
        if (b) {
          await b.close();
          await client.endAsync(true);
        } else {
          await client.endAsync();
        }
        await solver.close();
        await store.close();
        log.info('gateway stopped');
      },
    };
  } catch (err) {
    await router?.close();
    model.dispose();
    await broker?.close();
    await solver.close();
    await store.close();
    throw err;
  }
}
