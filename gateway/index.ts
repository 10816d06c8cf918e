// The gateway's composition root: reads the files the configuration names, then starts
// the InfluxDB store, the MQTT broker and the gateway's own MQTT client, and writes the
// broker's and the store's counters periodically. Nothing else in gateway/ reads files.
import { readFileSync } from 'node:fs';
import { nodeAclPatterns } from '../protocol/index.js';
import { connectAsync, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { Broker, loadCredentials, type NodeTopicPatterns } from './broker/index.js';
import type { Clock, Timer } from './clock.js';
import type { GatewayConfig } from './config.js';
import { NodeLink } from './link.js';
import { Registry } from './registry.js';
import { NodeSolver, SolverPool } from './solver-pool.js';
import { brokerPoint, createStore, qLimPoint, slotPoint, statePoint, type NodeTags, type Store } from './store/index.js';

export interface GatewayDeps {
  clock: Clock;
  log: Logger;
}

export interface Gateway {
  broker: Broker;
  store: Store;
  solver: SolverPool;
  registry: Registry;
  /** The gateway's own MQTT client (full access). */
  client: MqttClient;
  /** Node messages into the registry. */
  link: NodeLink;
  close(): Promise<void>;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${(err as Error).message} (fix broker.tls.${what}Path)`);
  }
}

/** The protocol's node ACL unless the config overrides it. */
function nodeTopics(config: GatewayConfig): NodeTopicPatterns {
  return config.broker.nodeTopics ?? nodeAclPatterns(config.fleet);
}

export async function startGateway(config: GatewayConfig, deps: GatewayDeps): Promise<Gateway> {
  const { clock, log } = deps;
  const patterns = nodeTopics(config);
  const credentials = loadCredentials(config.broker.credentialsPath);
  const tlsFiles = config.broker.tls && {
    cert: readPem(config.broker.tls.certPath, 'cert'),
    key: readPem(config.broker.tls.keyPath, 'key'),
    ca: config.broker.tls.caPath ? readPem(config.broker.tls.caPath, 'ca') : undefined,
  };

  const store = createStore(config.store, { clock, log: log.child({ part: 'store' }) });
  const solver = new SolverPool({ threads: config.scheduler.solverThreads });
  const registry = wireRegistry(config, { clock, log: log.child({ part: 'registry' }), store, solver });
  let broker: Broker | undefined;
  try {
    broker = await Broker.start(config.broker, { clock, log: log.child({ part: 'broker' }), credentials, patterns, tls: tlsFiles });
    const client = await connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, {
      clientId: 'heliomesh-gateway',
      ...broker.internal,
      reconnectPeriod: 1000,
    });
    client.on('error', (err) => log.error({ err: err.message }, 'gateway MQTT client error'));
    const link = new NodeLink(
      { fleet: config.fleet, levels: config.registry.levels, priorHarvestJ: config.registry.priorHarvestJ },
      { client, registry, clock, log: log.child({ part: 'link' }) },
    );
    await link.start();
    const b = broker;
    const silence: Timer = clock.setInterval(() => registry.checkSilence(clock.now()), Math.max(1000, config.registry.silenceMs / 4));
    const stats: Timer = clock.setInterval(() => {
      store.write(brokerPoint(config.fleet, { ...b.stats(), droppedPoints: store.stats().dropped }, clock.now()));
    }, config.statsIntervalMs);
    log.info({ fleet: config.fleet, mqtt: b.ports.mqtt, mqtts: b.ports.mqtts ?? null, influx: config.store?.url ?? null }, 'gateway started');
    return {
      broker: b,
      store,
      solver,
      registry,
      client,
      link,
      async close() {
        stats.cancel();
        silence.cancel();
        await client.endAsync();
        await b.close();
        await solver.close();
        await store.close();
        log.info('gateway stopped');
      },
    };
  } catch (err) {
    await broker?.close();
    await solver.close();
    await store.close();
    throw err;
  }
}

/** The registry, its re-solving, and its events written to the store. */
function wireRegistry(config: GatewayConfig, deps: { clock: Clock; log: Logger; store: Store; solver: SolverPool }): Registry {
  const { clock, log, store } = deps;
  const tags = (nodeId: string, group: string): NodeTags => ({ fleet: config.fleet, node: nodeId, group });
  const lastSlotMs = new Map<string, number>();
  // The callbacks below run only after `registry` exists: solves start from its births.
  const nodeSolver = new NodeSolver(
    deps.solver,
    (nodeId, params, solved) => registry.applySolved(nodeId, params, solved, clock.now()),
    (nodeId, err) => registry.solveFailed(nodeId, err),
  );
  const registry: Registry = new Registry(
    { silenceMs: config.registry.silenceMs, xiLim: config.scheduler.xiLim, estimator: config.estimator },
    nodeSolver,
    {
      online(node, online, reason, atMs) {
        log.info({ node: node.nodeId, group: node.profile.group, online, reason }, online ? 'node online' : 'node offline');
        store.write(statePoint(tags(node.nodeId, node.profile.group), { online, reason, gamma: node.gamma, powerMode: node.powerMode }, atMs));
      },
      slot(node, r, seqGap, atMs) {
        if (seqGap > 0) log.warn({ node: node.nodeId, seq: r.seq, missed: seqGap }, 'slot records missing');
        // A node's spool drains in a burst after an outage, many records in one millisecond;
        // InfluxDB keeps one point per series and time, so each node's slot points get
        // strictly increasing times, or all but the last of the burst would be overwritten.
        const timeMs = Math.max(Math.round(atMs), (lastSlotMs.get(node.nodeId) ?? -Infinity) + 1);
        lastSlotMs.set(node.nodeId, timeMs);
        store.write(slotPoint(tags(node.nodeId, node.profile.group), {
          seq: r.seq,
          batteryJ: r.batteryJ,
          batteryPct: (100 * r.batteryJ) / node.profile.capacityJ,
          harvestJ: r.harvestJ,
          consumedJ: r.consumedJ,
          energyQ: Math.floor(r.batteryJ / node.profile.quantumJ),
          powerMode: r.powerMode,
          gamma: r.gamma,
          queue: r.queue,
          seqGap,
        }, timeMs));
      },
      solved(node, s, atMs) {
        const { views, nodes } = registry.views(node.profile.group);
        const weight = views[nodes.indexOf(node)]?.weight;
        log.debug({ node: node.nodeId, qLim: s.qLim, solves: s.solves, solveMs: s.solveMs }, 'q_lim solved');
        store.write(qLimPoint(tags(node.nodeId, node.profile.group), {
          qLim: s.qLim, qEnergy: s.qEnergy, qProc: s.qProc, energyBinds: s.energyBinds, solves: s.solves, weight,
        }, atMs));
      },
      solveFailed(node, err) {
        log.error({ node: node.nodeId, err: err.message }, 'q_lim solve failed; the node keeps its previous solution');
      },
    },
  );
  return registry;
}
