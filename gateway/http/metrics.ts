// GET /metrics in Prometheus' text exposition format 0.0.4. prom-client is the maintained
// standard for Node (escaping, HELP/TYPE lines, label sets, content type); writing the
// format by hand would repeat it. Its own registry keeps several gateways in one process
// apart. Most values live elsewhere (the job service, registry, broker, store and link
// keep their own counters), so they are read at scrape time in `collect`; a counter whose
// total is kept elsewhere is set with reset() + inc(total). Only the HTTP counters are
// counted here, as requests happen.
import { collectDefaultMetrics, Counter, Gauge, Registry as PromRegistry } from 'prom-client';
import { nodeViews, type GatewaySources } from './views.js';

/** nginx's code for a client that closed the connection before its answer; not its fault. */
export const CLIENT_LEFT = 499;

const METHODS = new Set(['GET', 'POST', 'OPTIONS', 'HEAD', 'PUT', 'PATCH', 'DELETE']);

/** prom-client throws on a counter increment that is negative or not a number. */
const countable = (x: number | null): x is number => x !== null && Number.isFinite(x) && x >= 0;

export class ApiMetrics {
  readonly registry = new PromRegistry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly badRequests: Counter<'status'>;
  private readonly droppedConnections: Counter;

  constructor(sources: GatewaySources) {
    const registers = [this.registry];
    // Process CPU, memory and event-loop lag: what runs short first on a small gateway box.
    collectDefaultMetrics({ register: this.registry, prefix: 'heliomesh_' });

    this.requests = new Counter({ name: 'heliomesh_http_requests_total', help: 'HTTP requests answered, by route pattern, method and status (499: the client left first)', labelNames: ['route', 'method', 'status'], registers });
    this.badRequests = new Counter({ name: 'heliomesh_http_bad_requests_total', help: 'Requests refused for what the client sent (any 4xx), by status', labelNames: ['status'], registers });
    this.droppedConnections = new Counter({ name: 'heliomesh_http_dropped_connections_total', help: 'Connections closed unanswered at http.maxConnections', registers });

    const jobs = () => sources.jobs.counters();
    total('heliomesh_jobs_submitted_total', 'Jobs accepted by the router', () => jobs().submitted);
    byLabel('heliomesh_jobs_finished_total', 'Jobs finished, by outcome', 'outcome', () => {
      const c = jobs();
      return { completed: c.completed, failed: c.failed, cancelled: c.cancelled };
    });
    gauge('heliomesh_jobs_active', 'Jobs queued or running', () => jobs().active);
    total('heliomesh_job_failovers_total', 'Hops moved to another node of the same group mid-job', () => jobs().failovers);
    byLabel('heliomesh_tokens_total', 'Tokens processed, by kind', 'kind', () => {
      const c = jobs();
      return { prompt: c.promptTokens, completion: c.completionTokens };
    });
    // A gauge, not a counter: nodes report job energy net of their idle baseline, so a short
    // job can add a little less than nothing and the sum can fall.
    gauge('heliomesh_job_energy_joules', 'Sum of the energy the serving nodes reported for finished jobs (J)', () => jobs().energyJ);

    const node = (name: string, help: string, value: (v: ReturnType<typeof nodeViews>[number]) => number | null) =>
      new Gauge({
        name, help, labelNames: ['node', 'group'], registers,
        collect() {
          this.reset();
          for (const v of nodeViews(sources.registry)) {
            const x = value(v);
            if (x !== null && Number.isFinite(x)) this.set({ node: v.node, group: v.group }, x);
          }
        },
      });
    node('heliomesh_node_battery_joules', 'Battery energy from the last slot record or state report (J)', (v) => v.batteryJ);
    node('heliomesh_node_battery_percent', 'Battery energy as a percentage of the usable capacity', (v) => v.batteryPct);
    node('heliomesh_node_q_lim', 'q_lim from the node\'s solved chain (SPEC.md Eq. 5)', (v) => v.qLim);
    node('heliomesh_node_weight', 'Eq. 6 weight r_i within the node\'s group', (v) => v.weight);
    node('heliomesh_node_online', '1 while the node is online', (v) => (v.online ? 1 : 0));
    node('heliomesh_node_gamma', 'γ: 1 active, 0 in power saving', (v) => v.gamma);
    node('heliomesh_node_power_mode', 'Current power mode (PM)', (v) => v.powerMode);
    node('heliomesh_node_queue', 'Jobs the node holds', (v) => v.queue);
    node('heliomesh_node_missed_slots', 'Slot records missing from sequence gaps', (v) => v.missedSlots);
    node('heliomesh_node_last_seen_seconds', 'When the node was last heard from (Unix seconds)', (v) => v.lastSeenMs / 1000);

    gauge('heliomesh_broker_up', '1 while the gateway\'s MQTT client is connected to the broker', () => (sources.brokerUp() ? 1 : 0));
    const broker = () => sources.brokerStats();
    gauge('heliomesh_broker_clients', 'MQTT clients connected to the embedded broker', () => broker()?.clients ?? null);
    total('heliomesh_broker_publishes_total', 'PUBLISH packets received from nodes (not those of the gateway itself)', () => broker()?.publishesIn ?? null);
    total('heliomesh_broker_received_bytes_total', 'Payload bytes received from clients', () => broker()?.bytesIn ?? null);
    total('heliomesh_broker_slow_disconnects_total', 'Clients disconnected for not draining their socket', () => broker()?.slowDisconnects ?? null);
    byLabel('heliomesh_broker_refused_total', 'Connections and packets the broker refused, by reason', 'reason', () => {
      const b = broker();
      return b ? { auth: b.refusedAuth, acl: b.refusedAcl, rate: b.refusedRate, size: b.refusedSize, protocol: b.refusedProtocol, pending: b.refusedPending, full: b.refusedFull } : null;
    });

    const store = () => sources.store.stats();
    gauge('heliomesh_store_configured', '1 when InfluxDB logging is configured', () => (sources.store.configured ? 1 : 0));
    gauge('heliomesh_store_buffered_points', 'Points waiting for InfluxDB', () => store().buffered);
    gauge('heliomesh_store_outage', '1 while the last write to InfluxDB failed', () => (store().outage ? 1 : 0));
    total('heliomesh_store_written_points_total', 'Points InfluxDB acknowledged', () => store().written);
    total('heliomesh_store_dropped_points_total', 'Points dropped at the outage buffer\'s bound', () => store().dropped);
    total('heliomesh_store_refused_points_total', 'Points in batches InfluxDB refused with a 4xx', () => store().refused);

    total('heliomesh_link_messages_total', 'Node messages received on the fleet\'s topics', () => sources.linkCounters().messages);
    total('heliomesh_link_invalid_messages_total', 'Node messages refused by validation', () => sources.linkCounters().invalid);
    total('heliomesh_link_seq_rewinds_total', 'Births whose nextSeq went back within the same epoch (their repeats count as duplicate_slot)', () => sources.linkCounters().seqRewinds);
    byLabel('heliomesh_link_ignored_messages_total', 'Well-formed node messages the registry had no use for, by reason', 'reason', () => {
      const i = sources.linkIgnored?.();
      return i ? { unknown_node: i.unknownNode, duplicate_slot: i.duplicateSlots, held_dropped: i.heldDropped } : null;
    });
    // By kind and reason: an out-of-range or beyond-profile count says a node reports numbers
    // no node could measure (a broken sensor, a wrong profile, or an attack).
    new Counter({
      name: 'heliomesh_link_refused_messages_total',
      help: 'Node messages refused, by kind (state, slot, event, job-report) and reason (malformed, out-of-range, beyond-profile, other-node, chain)',
      labelNames: ['kind', 'reason'], registers,
      collect() {
        this.reset();
        for (const [kind, byReason] of Object.entries(sources.linkCounters().refused ?? {})) {
          for (const [reason, x] of Object.entries(byReason ?? {})) if (countable(x)) this.inc({ kind, reason }, x);
        }
      },
    });
    byLabel('heliomesh_job_messages_refused_total', 'Messages on job/out refused: invalid, or stale (about no live hop of a job)', 'reason', () => sources.jobMessages?.() ?? null);

    function gauge(name: string, help: string, value: () => number | null): void {
      new Gauge({
        name, help, registers,
        collect() {
          const x = value();
          this.reset();
          if (x !== null && Number.isFinite(x)) this.set(x);
        },
      });
    }
    /** A counter kept elsewhere, one total per label value. */
    function byLabel(name: string, help: string, label: string, values: () => Record<string, number> | null): void {
      new Counter({
        name, help, labelNames: [label], registers,
        collect() {
          const v = values();
          this.reset();
          for (const [key, x] of Object.entries(v ?? {})) if (countable(x)) this.inc({ [label]: key }, x);
        },
      });
    }
    function total(name: string, help: string, value: () => number | null): void {
      new Counter({
        name, help, registers,
        collect() {
          const x = value();
          this.reset();
          if (countable(x)) this.inc(x);
        },
      });
    }
  }

  request(route: string, method: string, status: number): void {
    this.requests.inc({ route, method: METHODS.has(method) ? method : 'other', status: String(status) });
    if (status >= 400 && status < 500 && status !== CLIENT_LEFT) this.badRequests.inc({ status: String(status) });
  }

  connectionDropped(): void {
    this.droppedConnections.inc();
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
