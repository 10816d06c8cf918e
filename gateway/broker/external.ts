// The gateway as a client of an external broker (Mosquitto, EMQX): the path for fleets
// larger than one machine. The gateway then runs no broker of its own; the external one
// authenticates the nodes and enforces their ACL (docs/gateway.md shows a Mosquitto ACL
// equal to the embedded one), and the gateway's parts use this one connection as they use
// their internal client of the embedded broker.
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { ExternalBrokerConfig } from './config.js';

export interface ExternalSecrets {
  /** From `password`, or read by the composition root from `passwordPath`. */
  password?: string;
  /** PEM contents of `caPath`, read by the composition root. */
  ca?: Buffer;
}

/** The URL without any user:password part, for logs and errors. */
export function safeUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}

/**
 * Connects once and fails with what to check when that first attempt fails (a wrong URL or
 * password would otherwise retry silently forever); after that, MQTT.js reconnects by itself.
 */
export async function connectExternal(config: ExternalBrokerConfig, secrets: ExternalSecrets, log: Logger): Promise<MqttClient> {
  const opts: IClientOptions = {
    clientId: config.clientId,
    username: config.username,
    password: secrets.password,
    ca: secrets.ca,
    // A clean session, as on the embedded broker. A persistent one would not save the slot
    // records sent while the gateway is down: the broker hands queued messages over right
    // after CONNACK, before the registry has the births (retained, re-sent only on
    // SUBSCRIBE) it needs to take a node's reports. docs/gateway.md says what is lost.
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    protocolVersion: 4,
  };
  let client: MqttClient;
  try {
    client = await connectAsync(config.url, opts, false);
  } catch (err) {
    throw new Error(
      `cannot connect to the external broker ${safeUrl(config.url)}: ${(err as Error).message} ` +
      '(check broker.external.url, that the broker is running, and the gateway\'s username and password there)',
    );
  }
  client.on('reconnect', () => log.warn({ url: safeUrl(config.url) }, 'reconnecting to the external broker'));
  client.on('connect', () => log.info({ url: safeUrl(config.url) }, 'connected to the external broker'));
  log.info({ url: safeUrl(config.url), clientId: config.clientId }, 'connected to the external broker; no embedded broker runs');
  return client;
}
