// Who may publish and subscribe where. A node may publish only under its own topics and
// subscribe only to its own command and job topics; the topic patterns come from the
// protocol as MQTT filters with `{node}` standing for the node's id.

export interface NodeTopicPatterns {
  /** Filters a node may publish to. */
  publish: readonly string[];
  /** Filters a node's subscriptions must lie within. */
  subscribe: readonly string[];
}

export function forNode(patterns: readonly string[], nodeId: string): string[] {
  return patterns.map((p) => p.split('{node}').join(nodeId));
}

/** MQTT 3.1.1 §4.7: does `filter` match the concrete `topic`? */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // [MQTT-4.7.2-1]: wildcards at the first level do not match topics beginning with `$`.
  if (t[0]?.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Is every topic the `requested` filter can match also matched by `allowed`? */
export function filterWithin(allowed: string, requested: string): boolean {
  const a = allowed.split('/');
  const r = requested.split('/');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true;
    if (i >= r.length) return false;
    if (r[i] === '#') return false;
    if (a[i] === '+') continue;
    if (r[i] === '+' || a[i] !== r[i]) return false;
  }
  return a.length === r.length;
}

const hasWildcard = (filter: string) => filter.includes('+') || filter.includes('#');

interface OwnFilters extends NodeTopicPatterns {
  /** The publish filters without wildcards, which match only themselves (all of the protocol's). */
  exactPublish: ReadonlySet<string>;
  wildcardPublish: readonly string[];
}

export class NodeAcl {
  // Every PUBLISH is checked, so each node's filters are made once. Only authenticated
  // node ids reach the ACL, so the cache is bounded by the credentials file.
  private readonly byNode = new Map<string, OwnFilters>();

  constructor(private readonly patterns: NodeTopicPatterns) {}

  mayPublish(nodeId: string, topic: string): boolean {
    const own = this.filters(nodeId);
    return own.exactPublish.has(topic) || own.wildcardPublish.some((f) => topicMatches(f, topic));
  }

  maySubscribe(nodeId: string, filter: string): boolean {
    return this.filters(nodeId).subscribe.some((f) => filterWithin(f, filter));
  }

  private filters(nodeId: string): OwnFilters {
    let own = this.byNode.get(nodeId);
    if (!own) {
      const publish = forNode(this.patterns.publish, nodeId);
      own = {
        publish,
        subscribe: forNode(this.patterns.subscribe, nodeId),
        exactPublish: new Set(publish.filter((f) => !hasWildcard(f))),
        wildcardPublish: publish.filter(hasWildcard),
      };
      this.byNode.set(nodeId, own);
    }
    return own;
  }
}
