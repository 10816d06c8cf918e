// The broker's configuration, validated at the edge. File paths (credentials, TLS) are
// read by the composition root and handed in as contents.
import { z } from 'zod';

/**
 * An external broker (Mosquitto, EMQX) the gateway joins as a client instead of running its
 * own; that broker then authenticates the nodes and enforces their ACL.
 */
export const ExternalBrokerSchema = z.strictObject({
  url: z.string().refine((u) => /^(mqtts?|wss?):\/\/[^/]/.test(u), 'use mqtt://HOST:PORT, mqtts://HOST:PORT, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH'),
  /** The gateway's client id at the external broker. */
  clientId: z.string().min(1).max(64).default('heliomesh-gateway'),
  username: z.string().min(1).optional(),
  /** Prefer `passwordPath`, so the secret stays out of the config file. */
  password: z.string().min(1).optional(),
  passwordPath: z.string().min(1).optional(),
  /** CA bundle that signed the external broker's certificate (mqtts://, wss://). */
  caPath: z.string().min(1).optional(),
}).refine((e) => !(e.password && e.passwordPath), { message: 'set password or passwordPath, not both', path: ['passwordPath'] });

export type ExternalBrokerConfig = z.infer<typeof ExternalBrokerSchema>;

export const BrokerConfigSchema = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(1883),
  /** Required for the embedded broker; unused with `external`. */
  credentialsPath: z.string().min(1).optional(),
  tls: z.strictObject({
    port: z.number().int().min(0).max(65535).default(8883),
    certPath: z.string().min(1),
    keyPath: z.string().min(1),
    /** CA bundle; with `requireClientCert`, nodes must also present a certificate it signed. */
    caPath: z.string().min(1).optional(),
    requireClientCert: z.boolean().default(false),
  }).optional(),
  /** MQTT over WebSocket (MQTT 3.1.1 §6) on its own port, behind the same logins, ACL and limits. */
  websocket: z.strictObject({
    port: z.number().int().min(0).max(65535).default(8083),
    path: z.string().startsWith('/').default('/mqtt'),
    /** wss:// with broker.tls's certificate, key and client-certificate rule (requires broker.tls). */
    secure: z.boolean().default(false),
  }).optional(),
  /** Join this broker as a client instead of running one (`heliomesh gateway --broker URL`). */
  external: ExternalBrokerSchema.optional(),
  /** Largest MQTT packet accepted (Remaining Length, bytes); larger ones close the client. */
  maxPacketBytes: z.number().int().positive().default(1024 * 1024),
  /** A client whose socket does not drain within this time is disconnected (aedes drainTimeout). */
  drainTimeoutMs: z.number().int().positive().default(30_000),
  /** Packets queued per client before its session is established (aedes queueLimit). */
  queueLimit: z.number().int().positive().default(42),
  /**
   * A connection's CONNECT must have arrived this long after its TCP accept (a TLS handshake
   * and a WebSocket upgrade included), or it is closed. A node sends CONNECT one round trip
   * after the accept (two or three with TLS): 5 s is several round trips of a poor cellular
   * link, and short enough that a flood of silent sockets holds each place briefly.
   */
  connectTimeoutMs: z.number().int().positive().default(5_000),
  /** Longest keep-alive a client may ask for, in seconds (aedes keepaliveLimit). */
  keepaliveLimitS: z.number().int().positive().default(900),
  /**
   * Node sessions at once (the gateway's own client not counted); one more login gets
   * CONNACK 3, server unavailable. Connections still logging in do not count here.
   */
  maxClients: z.number().int().positive().default(500),
  /**
   * Connections not yet logged in (from the TCP accept until the CONNECT is authenticated),
   * over all addresses. When full, the one waiting longest is closed to make room: a node
   * sends its CONNECT at once, a flood's sockets wait. The default lets a full broker's
   * nodes all reconnect at once, as they do after the gateway restarts.
   */
  maxPendingConnections: z.number().int().positive().default(500),
  /**
   * Connections not yet logged in from one address; more are closed at once. The default
   * is connectsPerMinutePerAddress' default: an address cannot log more in within a minute.
   */
  maxPendingPerAddress: z.number().int().positive().default(30),
  /**
   * The node ACL as MQTT filters, `{node}` standing for the node's id: where a node may
   * publish, and which filters its subscriptions must lie within.
   */
  nodeTopics: z.strictObject({
    publish: z.array(z.string().min(1)).min(1),
    subscribe: z.array(z.string().min(1)).min(1),
  }).optional(),
  /** CONNECTs allowed per remote address per minute; more are refused before authentication. */
  connectsPerMinutePerAddress: z.number().int().positive().default(30),
}).superRefine((b, ctx) => {
  if (!b.external && !b.credentialsPath) {
    ctx.addIssue({ code: 'custom', path: ['credentialsPath'], message: 'credentialsPath is required for the embedded broker (create the file with heliomesh gateway add-node), unless broker.external is set' });
  }
  if (b.websocket?.secure && !b.tls) {
    ctx.addIssue({ code: 'custom', path: ['websocket', 'secure'], message: 'websocket.secure uses broker.tls\'s certificate and key: configure broker.tls too' });
  }
});

export type BrokerConfig = z.infer<typeof BrokerConfigSchema>;
export type BrokerConfigInput = z.input<typeof BrokerConfigSchema>;
