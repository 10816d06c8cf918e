// The brokers `heliomesh bench broker` compares, each started fresh for one run and stopped
// after it:
// - `aedes`: aedes with the options the gateway gives it (gateway/broker/config.ts defaults),
//   its default in-memory persistence, a plain TCP server on loopback, no hooks;
// - `gateway`: the gateway's own Broker (gateway/broker), i.e. the same aedes plus node
//   logins, the protocol's node ACL and the packet size guard in front of every socket;
// - `mosquitto`: Debian's /usr/sbin/mosquitto with a temporary config.
import { Aedes } from 'aedes';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { Broker, BrokerConfigSchema, makeEntry, type CredentialsFile } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { fleetFilter, nodeAclPatterns, nodeTopic } from '../../protocol/index.js';
import { runLoad, type LoadResult, type LoadSpec, type LoginOptions } from './load.js';
import { startMosquitto } from './mosquitto.js';

export const CONTENDERS = ['aedes', 'gateway', 'mosquitto'] as const;
export type Contender = (typeof CONTENDERS)[number];

export interface LoadShape {
  publishers: number;
  messagesPerPublisher: number;
  window: number;
  timeoutMs: number;
}

export interface ContenderRun {
  result: LoadResult;
  /** PUBLISH packets the broker counted from clients (gateway only): a cross-check of the load. */
  publishesIn?: number;
}

const FLEET = 'bench';
const nodeId = (i: number) => `bench-${i}`;

function spec(url: string, publishers: LoginOptions[], subscriber: LoginOptions, shape: LoadShape): LoadSpec {
  return {
    url,
    publishers,
    // The topics and the filter the agent and the gateway use for slot records.
    topics: publishers.map((p) => nodeTopic(FLEET, p.clientId, 'slot')),
    subscriber,
    filter: fleetFilter(FLEET, 'slot'),
    messagesPerPublisher: shape.messagesPerPublisher,
    window: shape.window,
    timeoutMs: shape.timeoutMs,
  };
}

const anonymous = (n: number): LoginOptions[] => Array.from({ length: n }, (_, i) => ({ clientId: nodeId(i) }));

/** Each contender's runner; node credentials for the gateway are made once (scrypt is slow on purpose). */
export async function contenders(publishers: number): Promise<Record<Contender, (shape: LoadShape) => Promise<ContenderRun>>> {
  const passwords = Array.from({ length: publishers }, (_, i) => `bench-password-${i}-${process.pid}`);
  const nodes: CredentialsFile['nodes'] = {};
  for (let i = 0; i < publishers; i++) nodes[nodeId(i)] = await makeEntry(passwords[i]!);
  const credentials: CredentialsFile = { version: 1, nodes };
  const gatewayDefaults = BrokerConfigSchema.parse({
    host: '127.0.0.1',
    port: 0,
    credentialsPath: '(in memory)',
    // Every run reconnects all clients from one address, at once; the flood limits are not under test.
    connectsPerMinutePerAddress: 10_000,
    maxPendingPerAddress: 10_000,
    maxPendingConnections: 10_000,
  });

  return {
    async aedes(shape) {
      const aedes = new Aedes({
        drainTimeout: gatewayDefaults.drainTimeoutMs,
        queueLimit: gatewayDefaults.queueLimit,
        connectTimeout: gatewayDefaults.connectTimeoutMs,
        keepaliveLimit: gatewayDefaults.keepaliveLimitS,
      });
      await aedes.listen();
      const server = createServer((socket) => aedes.handle(socket));
      try {
        const port = await new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
        });
        return { result: await runLoad(spec(`mqtt://127.0.0.1:${port}`, anonymous(shape.publishers), { clientId: 'bench-gateway' }, shape)) };
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
      }
    },

    async gateway(shape) {
      const broker = await Broker.start(gatewayDefaults, {
        clock: new RealClock(),
        log: pino({ level: 'silent' }),
        credentials,
        patterns: nodeAclPatterns(FLEET),
      });
      try {
        // Nodes log in with their own credentials; the subscriber is the gateway's internal client, as its own parts are.
        const logins = passwords.slice(0, shape.publishers).map((password, i) => ({ clientId: nodeId(i), username: nodeId(i), password }));
        const result = await runLoad(spec(`mqtt://127.0.0.1:${broker.ports.mqtt}`, logins, { clientId: 'bench-gateway', ...broker.internal }, shape));
        return { result, publishesIn: broker.stats().publishesIn };
      } finally {
        await broker.close();
      }
    },

    async mosquitto(shape) {
      const mosquitto = await startMosquitto();
      try {
        return { result: await runLoad(spec(`mqtt://127.0.0.1:${mosquitto.port}`, anonymous(shape.publishers), { clientId: 'bench-gateway' }, shape)) };
      } finally {
        await mosquitto.stop();
      }
    },
  };
}
