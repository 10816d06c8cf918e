// What the broker counts of its clients, and the tap a benchmark may put on its publishes:
// the shapes the gateway's views and the bench read, apart from the broker that fills them.

export interface BrokerCounters {
  clients: number;
  publishesIn: number;
  bytesIn: number;
  refusedAuth: number;
  refusedAcl: number;
  /** CONNECTs over the per-address rate limit. */
  refusedRate: number;
  /** Packets over the size limit. */
  refusedSize: number;
  /** Clients disconnected because their socket did not drain within drainTimeoutMs. */
  slowDisconnects: number;
  /**
   * Connections closed before a session began: bytes that are not MQTT, a first packet
   * other than CONNECT [MQTT-3.1.0-1], or no CONNECT within connectTimeoutMs.
   */
  refusedProtocol: number;
  /**
   * Connections not yet logged in that were closed for the pending budget: over
   * maxPendingPerAddress (at once), or the longest-waiting one at maxPendingConnections.
   */
  refusedPending: number;
  /** Logins refused because maxClients node sessions were open. */
  refusedFull: number;
}

/**
 * Sees every PUBLISH a client sends, once it is authorized and before it is routed: a
 * benchmark's count of what crosses the broker. The number returned holds the message back
 * that many ms before it is routed, as a slower link would (0: at once). The gateway itself
 * never taps its broker.
 */
export type PublishTap = (topic: string, payload: Buffer) => number;
