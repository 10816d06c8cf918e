// The gateway as a client of an external broker (Mosquitto, EMQX): the path for fleets
// larger than one machine. The gateway then runs no broker of its own; the external one
// authenticates the nodes and enforces their ACL (docs/gateway.md shows a Mosquitto ACL
// equal to the embedded one), and the gateway's parts use this one connection as they use
// their internal client of the embedded broker.
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
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

/** A message the broker handed over before anyone listened (queued for the persistent session). */
export type EarlyMessage = [topic: string, payload: Buffer];

export interface ExternalConnection {
  client: MqttClient;
  /**
   * The messages received before the caller attached its own listener, in arrival order.
   * Calling it stops the buffering: attach your listener first, then take these and handle
   * them before anything else, so no queued record is overtaken by a live one.
   */
  takeEarly(): EarlyMessage[];
}

/**
 * Connects once and fails with what to check when that first attempt fails (a wrong URL or
 * password would otherwise retry silently forever); after that, MQTT.js reconnects by itself.
 */
export async function connectExternal(config: ExternalBrokerConfig, secrets: ExternalSecrets, log: Logger): Promise<ExternalConnection> {
  const opts: IClientOptions = {
    clientId: config.clientId,
    username: config.username,
    password: secrets.password,
    ca: secrets.ca,
    // A persistent session under a stable client id: the broker keeps the QoS 1 slot
    // records, events and job reports published while the gateway is away and hands them
    // over right after CONNACK -- before the retained births that SUBSCRIBE brings, and
    // before the gateway's parts listen, so they are buffered here (takeEarly), and the link
    // holds a node's records until its birth (gateway/link.ts).
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    protocolVersion: 4,
    manualConnect: true,
  };
  const client = connect(config.url, opts);
  const early: EarlyMessage[] = [];
  const keep = (topic: string, payload: Buffer): void => void early.push([topic, payload]);
  client.on('message', keep);
  // Only these listeners are removed afterwards: MQTT.js keeps its own on 'close' (reconnecting).
  let onError: (err: Error) => void = () => {};
  const onClose = (): void => onError(new Error('connection closed'));
  try {
    await new Promise<void>((resolve, reject) => {
      onError = reject;
      client.once('connect', () => resolve());
      client.on('error', onError);
      client.on('close', onClose);
      client.connect();
    });
  } catch (err) {
    client.removeListener('message', keep);
    client.end(true);
    throw new Error(
      `cannot connect to the external broker ${safeUrl(config.url)}: ${(err as Error).message} ` +
      '(check broker.external.url, that the broker is running, and the gateway\'s username and password there)',
    );
  }
  client.removeListener('error', onError);
  client.removeListener('close', onClose);
  // The first attempt worked, so the settings are right: from now on, keep reconnecting.
  client.options.reconnectPeriod = 1000;
  client.on('reconnect', () => log.warn({ url: safeUrl(config.url) }, 'reconnecting to the external broker'));
  client.on('connect', () => log.info({ url: safeUrl(config.url) }, 'connected to the external broker'));
  log.info({ url: safeUrl(config.url), clientId: config.clientId }, 'connected to the external broker; no embedded broker runs');
  return {
    client,
    takeEarly() {
      client.removeListener('message', keep);
      return early.splice(0);
    },
  };
}
