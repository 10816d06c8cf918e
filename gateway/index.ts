// The gateway's composition root: reads the files the configuration names, then starts
// the InfluxDB store, the MQTT broker and the gateway's own MQTT client, and writes the
// broker's and the store's counters periodically. Nothing else in gateway/ reads files.
import { readFileSync } from 'node:fs';
import { connectAsync, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { Broker, loadCredentials, type NodeTopicPatterns } from './broker/index.js';
import type { Clock, Timer } from './clock.js';
import type { GatewayConfig } from './config.js';
import { SolverPool } from './solver-pool.js';
import { brokerPoint, createStore, type Store } from './store/index.js';

export interface GatewayDeps {
  clock: Clock;
  log: Logger;
}

export interface Gateway {
  broker: Broker;
  store: Store;
  solver: SolverPool;
  /** The gateway's own MQTT client (full access). */
  client: MqttClient;
  close(): Promise<void>;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${(err as Error).message} (fix broker.tls.${what}Path)`);
  }
}

function nodeTopics(config: GatewayConfig): NodeTopicPatterns {
  const t = config.broker.nodeTopics;
  if (!t) throw new Error('broker.nodeTopics is not set: list the MQTT filters nodes may publish to and subscribe within, with {node} for the node id (see docs/gateway.md)');
  return t;
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
  let broker: Broker | undefined;
  try {
    broker = await Broker.start(config.broker, { clock, log: log.child({ part: 'broker' }), credentials, patterns, tls: tlsFiles });
    const client = await connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, {
      clientId: 'heliomesh-gateway',
      ...broker.internal,
      reconnectPeriod: 1000,
    });
    client.on('error', (err) => log.error({ err: err.message }, 'gateway MQTT client error'));
    const b = broker;
    const stats: Timer = clock.setInterval(() => {
      store.write(brokerPoint(config.fleet, { ...b.stats(), droppedPoints: store.stats().dropped }, clock.now()));
    }, config.statsIntervalMs);
    log.info({ fleet: config.fleet, mqtt: b.ports.mqtt, mqtts: b.ports.mqtts ?? null, influx: config.store?.url ?? null }, 'gateway started');
    return {
      broker: b,
      store,
      solver,
      client,
      async close() {
        stats.cancel();
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
