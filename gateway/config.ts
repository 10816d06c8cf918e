// The gateway's configuration file, validated at the edge (YAML or JSON; see docs/gateway.md).
import { z } from 'zod';
import { parseConfig } from '../config-errors.js';
import { MAX_FRAME_BYTES, idProblem } from '../protocol/index.js';
import { BrokerConfigSchema } from './broker/config.js';
import { EstimatorConfigSchema } from './estimator.js';
import { HomeAssistantConfigSchema } from './homeassistant.js';
import { HttpConfigSchema } from './http/config.js';
import { SleepPlannerConfigSchema } from './sleep-planner.js';
import { StoreConfigSchema } from './store/config.js';

export const GatewayConfigSchema = z.strictObject({
  /** Tag on every InfluxDB point, so several fleets can share one database. */
  fleet: z.string().refine((f) => idProblem(f) === null, { error: (iss) => `fleet ${idProblem(String(iss.input))}` }).default('default'),
  broker: BrokerConfigSchema,
  /** Absent: the gateway runs without logging to InfluxDB. */
  store: StoreConfigSchema.optional(),
  /**
   * The HTTP API (OpenAI-compatible completions, /api, /metrics). `heliomesh gateway` always
   * serves it (port 8080 unless set); a gateway started in code serves it only when set.
   */
  http: HttpConfigSchema.optional(),
  estimator: EstimatorConfigSchema.prefault({}),
  scheduler: z.strictObject({
    policy: z.enum(['uniform', 'long-term', 'adaptive', 'foresight', 'greedy']).default('foresight'),
    /** Tolerated risk ξ_lim for q^energy_lim (SPEC.md Eq. 5); the paper uses 0.01. */
    xiLim: z.number().gt(0).lt(1).default(0.01),
    solverThreads: z.number().int().min(1).max(16).default(1),
  }).prefault({}),
  registry: z.strictObject({
    /** A node not heard from for this long is offline (a few slot lengths). */
    silenceMs: z.number().int().positive().default(300_000),
    /** Battery levels E_max of every node's chain; a node's quantum is its capacity / levels. */
    levels: z.number().int().min(10).max(2000).default(100),
    /** Harvest per slot assumed for a node until its own estimate is trusted (uniform on [loJ, hiJ]). */
    priorHarvestJ: z.strictObject({ loJ: z.number().nonnegative(), hiJ: z.number().nonnegative() })
      .refine((p) => p.hiJ >= p.loJ, 'priorHarvestJ.hiJ must be ≥ loJ')
      .default({ loJ: 0, hiJ: 0 }),
  }).prefault({}),
  /**
   * The gateway's part of the model: the head (embedding, final norm, classifier) and the
   * tokenizer from a shard manifest. Absent `manifest`: the bundled model.
   */
  model: z.strictObject({
    manifest: z.string().min(1).optional(),
    /** Group names, one per block range of the manifest in order; default g1, g2, ... */
    groups: z.array(z.string().refine((g) => idProblem(g) === null, { error: (iss) => `group ${idProblem(String(iss.input))}` })).min(1).optional(),
    /** TF.js backend for the head: auto, tensorflow, wasm or cpu. */
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  }).prefault({}),
  router: z.strictObject({
    /** How long one hop (an offer's answer, or a frame's output) may take before failover. */
    hopTimeoutMs: z.number().int().positive().default(15_000),
    /** How long a job may wait for a busy group's node to free a queue place. */
    queueTimeoutMs: z.number().int().nonnegative().default(60_000),
    /** How long the end of a job waits for the nodes' energy reports. */
    reportTimeoutMs: z.number().int().nonnegative().default(2_000),
    /** Activation frames: f32 keeps the text bit-identical to in-process generation; f16 halves the bytes. */
    frameDtype: z.enum(['f32', 'f16']).default('f32'),
    /**
     * Largest activation frame; a longer prompt or replay goes in several. It must fit the
     * broker's packet limit with the topic: the default leaves 47 KiB of broker.maxPacketBytes' 1 MiB.
     */
    maxFrameBytes: z.number().int().min(1024).max(MAX_FRAME_BYTES).default(1_000_000),
    /**
     * Chained hops: each group's node sends its output straight to the next group's node
     * (docs/gateway.md "Chained hops"). Needs the embedded broker, whose ACL follows the
     * routes; on an external broker the hops go through the gateway whatever this says.
     */
    chainHops: z.boolean().default(true),
    /** Seeds the scheduler's picks, so a run can be repeated. */
    seed: z.number().int().nonnegative().default(1),
    /** Finished jobs kept for `GET /api/jobs/:id`. */
    keepJobs: z.number().int().min(1).default(1000),
  }).prefault({}),
  /** Coordinated sleep (docs/gateway.md "sleep"): which nodes of each group sleep through the night. Off by default. */
  sleep: SleepPlannerConfigSchema,
  /** Home Assistant MQTT discovery (docs/monitoring.md); absent: off. */
  homeAssistant: HomeAssistantConfigSchema.optional(),
  /** How often broker and store counters are written to InfluxDB. */
  statsIntervalMs: z.number().int().positive().default(10_000),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  }).prefault({}),
}).superRefine((c, ctx) => {
  // The gateway's own client is held to the embedded broker's packet limit too; 1 KiB covers
  // the MQTT header and the job/in topic (at most ~170 bytes with 63-character ids).
  if (!c.broker.external && c.router.maxFrameBytes + 1024 > c.broker.maxPacketBytes) {
    ctx.addIssue({
      code: 'custom', path: ['router', 'maxFrameBytes'],
      message: `${c.router.maxFrameBytes} does not fit broker.maxPacketBytes ${c.broker.maxPacketBytes} with 1024 bytes for the MQTT header and topic; lower it or raise broker.maxPacketBytes`,
    });
  }
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;

/** Whether the router chains hops: asked for, and on the embedded broker, the one whose ACL follows the routes. */
export function chainsHops(config: Pick<GatewayConfig, 'broker' | 'router'>): boolean {
  return config.router.chainHops && !config.broker.external;
}

/** Validates a parsed file; every object is strict, so a misspelled key is refused by name. */
export function parseGatewayConfig(raw: unknown, source = 'gateway config'): GatewayConfig {
  return parseConfig(GatewayConfigSchema, raw, source, { seeAlso: 'see docs/gateway.md for every setting' });
}
