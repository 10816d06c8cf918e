// The broker's configuration, validated at the edge. File paths (credentials, TLS) are
// read by the composition root and handed in as contents.
import { z } from 'zod';

export const BrokerConfigSchema = z.object({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(1883),
  credentialsPath: z.string().min(1),
  tls: z.object({
    port: z.number().int().min(0).max(65535).default(8883),
    certPath: z.string().min(1),
    keyPath: z.string().min(1),
    /** CA bundle; with `requireClientCert`, nodes must also present a certificate it signed. */
    caPath: z.string().min(1).optional(),
    requireClientCert: z.boolean().default(false),
  }).optional(),
  /** Largest MQTT packet accepted (Remaining Length, bytes); larger ones close the client. */
  maxPacketBytes: z.number().int().positive().default(1024 * 1024),
  /** A client whose socket does not drain within this time is disconnected (aedes drainTimeout). */
  drainTimeoutMs: z.number().int().positive().default(30_000),
  /** Packets queued per client before its session is established (aedes queueLimit). */
  queueLimit: z.number().int().positive().default(42),
  connectTimeoutMs: z.number().int().positive().default(10_000),
  /** Longest keep-alive a client may ask for, in seconds (aedes keepaliveLimit). */
  keepaliveLimitS: z.number().int().positive().default(900),
  maxClients: z.number().int().positive().default(500),
  /**
   * The node ACL as MQTT filters, `{node}` standing for the node's id: where a node may
   * publish, and which filters its subscriptions must lie within.
   */
  nodeTopics: z.object({
    publish: z.array(z.string().min(1)).min(1),
    subscribe: z.array(z.string().min(1)).min(1),
  }).optional(),
  /** CONNECTs allowed per remote address per minute; more are refused before authentication. */
  connectsPerMinutePerAddress: z.number().int().positive().default(30),
});

export type BrokerConfig = z.infer<typeof BrokerConfigSchema>;
export type BrokerConfigInput = z.input<typeof BrokerConfigSchema>;
