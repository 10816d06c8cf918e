// MQTT topic names shared by the agent and the gateway, and the ACL facts the gateway's
// broker enforces. Every node topic lives under heliomesh/<fleet>/node/<nodeId>/...
// Ids are single topic levels: no '/', and no MQTT wildcards '+' '#' (MQTT 3.1.1 §4.7.1),
// which would turn a publish topic into an invalid one or a subscription into a wider one.

export const TOPIC_ROOT = 'heliomesh';

/** The leaf topics under a node, by direction. */
export const NODE_TOPICS = {
  /** Retained birth (online + profile) and will (offline). node → gateway. */
  state: 'state',
  /** One slot record per slot δ. node → gateway. */
  slot: 'slot',
  /** Power-policy transitions. node → gateway. */
  event: 'event',
  /** Faster sensor samples (optional). node → gateway. */
  telemetry: 'telemetry',
  /** Commands. gateway → node. */
  cmd: 'cmd',
  /** Command replies. node → gateway. */
  cmdReply: 'cmd/reply',
  /** Activation frames and job control. gateway → node. */
  jobIn: 'job/in',
  /** Output frames and job reports. node → gateway. */
  jobOut: 'job/out',
  /**
   * Activation frames from the node before it on a job's route. node → node: only the
   * predecessor the gateway's offer or route message named may publish here (jobHopGrant).
   */
  jobHop: 'job/hop',
} as const;

export type NodeTopicKind = keyof typeof NODE_TOPICS;

// The gateway's broker uses the node id as MQTT client id and username: 1–63 characters,
// starting with a letter or digit.
const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** Why `id` cannot be a fleet or node id, or null if it can. */
export function idProblem(id: string): string | null {
  if (ID.test(id)) return null;
  return `"${id}" is not a valid id: use 1–63 letters, digits, '_' or '-', starting with a letter or digit (no '/', '+', '#', '.' or spaces)`;
}

function checkId(what: string, id: string): void {
  const problem = idProblem(id);
  if (problem) throw new Error(`${what} ${problem}`);
}

export function nodePrefix(fleet: string, nodeId: string): string {
  checkId('fleet', fleet);
  checkId('node id', nodeId);
  return `${TOPIC_ROOT}/${fleet}/node/${nodeId}`;
}

export function nodeTopic(fleet: string, nodeId: string, kind: NodeTopicKind): string {
  return `${nodePrefix(fleet, nodeId)}/${NODE_TOPICS[kind]}`;
}

/** All of one node's topics by kind. */
export function nodeTopics(fleet: string, nodeId: string): Record<NodeTopicKind, string> {
  const out = {} as Record<NodeTopicKind, string>;
  for (const k of Object.keys(NODE_TOPICS) as NodeTopicKind[]) out[k] = nodeTopic(fleet, nodeId, k);
  return out;
}

export interface ParsedTopic {
  fleet: string;
  nodeId: string;
  kind: NodeTopicKind;
}

const BY_LEAF = new Map<string, NodeTopicKind>(
  (Object.entries(NODE_TOPICS) as Array<[NodeTopicKind, string]>).map(([k, leaf]) => [leaf, k]),
);

/** The fleet, node and kind of a concrete node topic, or null if it is not one. */
export function parseNodeTopic(topic: string): ParsedTopic | null {
  const parts = topic.split('/');
  if (parts.length < 5 || parts[0] !== TOPIC_ROOT || parts[2] !== 'node') return null;
  const fleet = parts[1]!;
  const nodeId = parts[3]!;
  if (idProblem(fleet) || idProblem(nodeId)) return null;
  const kind = BY_LEAF.get(parts.slice(4).join('/'));
  return kind ? { fleet, nodeId, kind } : null;
}

/** Subscription filter for one kind over every node of a fleet (gateway side). */
export function fleetFilter(fleet: string, kind: NodeTopicKind): string {
  checkId('fleet', fleet);
  return `${TOPIC_ROOT}/${fleet}/node/+/${NODE_TOPICS[kind]}`;
}

/** Kinds a node publishes, and kinds it subscribes to; everything else is the gateway's. */
export const NODE_PUBLISHES: readonly NodeTopicKind[] = ['state', 'slot', 'event', 'telemetry', 'cmdReply', 'jobOut'];
export const NODE_SUBSCRIBES: readonly NodeTopicKind[] = ['cmd', 'jobIn', 'jobHop'];

/**
 * The node ACL as MQTT filters with `{node}` for the authenticated node's id: a node may
 * publish only to its own outbound topics and subscribe only to its own inbound ones.
 * This is the shape the gateway broker's `nodeTopics` setting takes.
 */
export function nodeAclPatterns(fleet: string): { publish: string[]; subscribe: string[] } {
  checkId('fleet', fleet);
  const base = `${TOPIC_ROOT}/${fleet}/node/{node}`;
  return {
    publish: NODE_PUBLISHES.map((k) => `${base}/${NODE_TOPICS[k]}`),
    subscribe: NODE_SUBSCRIBES.map((k) => `${base}/${NODE_TOPICS[k]}`),
  };
}
