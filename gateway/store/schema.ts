// The InfluxDB schema of the gateway: one measurement per kind of record. Tags are the
// dimensions a dashboard groups by (fleet, node, group, ...); fields are typed once here
// and node-influx enforces them on every point, so a field never changes type between
// points (InfluxDB 1.x refuses a point whose field type differs from the shard's).
// Conventions: energies, powers, percentages and rates are floats; counts, sequence
// numbers, quanta and modes are integers; identifiers that would explode series
// cardinality as tags (job ids) are string fields.
import { FieldType, type IPoint, type ISchemaOptions } from 'influx';

export const MEASUREMENTS = {
  nodeSlot: 'node_slot',
  nodeState: 'node_state',
  job: 'job',
  jobGroup: 'job_group',
  decision: 'scheduler_decision',
  qLim: 'q_lim',
  broker: 'broker_stats',
  sleepPlan: 'sleep_plan',
  sleepGroup: 'sleep_group',
} as const;

const NODE_TAGS = ['fleet', 'node', 'group'];

/** Field types per measurement; `docs/gateway.md` lists the same table for Grafana users. */
export const SCHEMA: Omit<ISchemaOptions, 'database'>[] = [
  {
    measurement: MEASUREMENTS.nodeSlot,
    tags: NODE_TAGS,
    fields: {
      seq: FieldType.INTEGER,
      batteryJ: FieldType.FLOAT,
      batteryPct: FieldType.FLOAT,
      harvestJ: FieldType.FLOAT,
      consumedJ: FieldType.FLOAT,
      harvestQ: FieldType.INTEGER,
      energyQ: FieldType.INTEGER,
      powerMode: FieldType.INTEGER,
      gamma: FieldType.INTEGER,
      queue: FieldType.INTEGER,
      seqGap: FieldType.INTEGER,
    },
  },
  {
    measurement: MEASUREMENTS.nodeState,
    tags: NODE_TAGS,
    fields: {
      online: FieldType.BOOLEAN,
      gamma: FieldType.INTEGER,
      powerMode: FieldType.INTEGER,
      reason: FieldType.STRING,
    },
  },
  {
    measurement: MEASUREMENTS.job,
    tags: ['fleet', 'outcome', 'model'],
    fields: {
      jobId: FieldType.STRING,
      hops: FieldType.INTEGER,
      promptTokens: FieldType.INTEGER,
      outputTokens: FieldType.INTEGER,
      latencyMs: FieldType.FLOAT,
      energyJ: FieldType.FLOAT,
      energyUncertaintyJ: FieldType.FLOAT,
      failovers: FieldType.INTEGER,
      /** Comma-separated node ids in group order (a group's replacements follow it). */
      nodes: FieldType.STRING,
      tokensPerS: FieldType.FLOAT,
      /** The gateway's head (embedding, final norm, classifier, sampling) per decode token, ms. */
      headMsPerToken: FieldType.FLOAT,
    },
  },
  {
    /** One per group of a job that decoded: where its tokens' time went, group by group. */
    measurement: MEASUREMENTS.jobGroup,
    tags: ['fleet', 'group', 'model'],
    fields: {
      jobId: FieldType.STRING,
      /** Comma-separated node ids that served the group, in order (more than one after failover). */
      nodes: FieldType.STRING,
      decodeTokens: FieldType.INTEGER,
      /** The group's hop per decode token as the generation loop timed it (frame out to output back), ms. */
      hopMsPerToken: FieldType.FLOAT,
      /** The nodes' own time per decode forward, as their reports give it, ms. */
      forwardMsPerToken: FieldType.FLOAT,
      /** The hop outside the node's forward (the links both ways, the broker, the node's handling), ms. */
      linkMsPerToken: FieldType.FLOAT,
    },
  },
  {
    measurement: MEASUREMENTS.decision,
    tags: ['fleet', 'group', 'policy', 'node'],
    fields: {
      jobId: FieldType.STRING,
      probability: FieldType.FLOAT,
      candidates: FieldType.INTEGER,
      available: FieldType.INTEGER,
    },
  },
  {
    measurement: MEASUREMENTS.qLim,
    tags: NODE_TAGS,
    fields: {
      qLim: FieldType.FLOAT,
      qEnergy: FieldType.FLOAT,
      qProc: FieldType.FLOAT,
      weight: FieldType.FLOAT,
      energyBinds: FieldType.BOOLEAN,
      solves: FieldType.INTEGER,
    },
  },
  {
    measurement: MEASUREMENTS.broker,
    tags: ['fleet'],
    fields: {
      clients: FieldType.INTEGER,
      publishesIn: FieldType.INTEGER,
      bytesIn: FieldType.INTEGER,
      refusedAuth: FieldType.INTEGER,
      refusedAcl: FieldType.INTEGER,
      refusedRate: FieldType.INTEGER,
      refusedSize: FieldType.INTEGER,
      slowDisconnects: FieldType.INTEGER,
      refusedProtocol: FieldType.INTEGER,
      refusedPending: FieldType.INTEGER,
      refusedFull: FieldType.INTEGER,
      droppedPoints: FieldType.INTEGER,
    },
  },
  {
    // One point per node sent to sleep (docs/scheduling.md "Coordinated sleep").
    measurement: MEASUREMENTS.sleepPlan,
    tags: NODE_TAGS,
    fields: {
      /** Planned wake-up, epoch ms: Grafana shows it as a time. */
      wakeAtMs: FieldType.INTEGER,
      wakeInS: FieldType.FLOAT,
      reason: FieldType.STRING,
      energyQ: FieldType.INTEGER,
    },
  },
  {
    // Per group and planning round: how many of its nodes sleep.
    measurement: MEASUREMENTS.sleepGroup,
    tags: ['fleet', 'group'],
    fields: {
      asleep: FieldType.INTEGER,
      awake: FieldType.INTEGER,
      /** Jobs expected per slot, the demand the awake nodes were chosen for. */
      arrivalsPerSlot: FieldType.FLOAT,
      /** The group's first planned wake, epoch ms; absent while none sleeps. */
      nextWakeAtMs: FieldType.INTEGER,
      /** Jobs found the whole group asleep (503 group_asleep) and no node of it has been kept awake since. */
      wakeRequested: FieldType.BOOLEAN,
    },
  },
];

/** A point as the store queues it: the timestamp is kept in ms so it survives JSON. */
export interface StorePoint {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, number | string | boolean>;
  timestampMs: number;
}

export function toInfluxPoint(p: StorePoint): IPoint {
  return { measurement: p.measurement, tags: p.tags, fields: p.fields, timestamp: p.timestampMs };
}

/** Drops undefined fields so optional values can be passed straight through. */
export function point(
  measurement: string,
  tags: Record<string, string>,
  fields: Record<string, number | string | boolean | undefined>,
  timestampMs: number,
): StorePoint {
  const defined: Record<string, number | string | boolean> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) defined[k] = v;
  return { measurement, tags, fields: defined, timestampMs };
}
