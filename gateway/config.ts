// The gateway's configuration file, validated at the edge (YAML or JSON; see docs/gateway.md).
import { z } from 'zod';
import { idProblem } from '../protocol/index.js';
import { BrokerConfigSchema } from './broker/config.js';
import { EstimatorConfigSchema } from './estimator.js';
import { StoreConfigSchema } from './store/config.js';

export const GatewayConfigSchema = z.object({
  /** Tag on every InfluxDB point, so several fleets can share one database. */
  fleet: z.string().refine((f) => idProblem(f) === null, { error: (iss) => `fleet ${idProblem(String(iss.input))}` }).default('default'),
  broker: BrokerConfigSchema,
  /** Absent: the gateway runs without logging to InfluxDB. */
  store: StoreConfigSchema.optional(),
  estimator: EstimatorConfigSchema.prefault({}),
  scheduler: z.object({
    policy: z.enum(['uniform', 'long-term', 'adaptive', 'foresight']).default('foresight'),
    /** Tolerated risk ξ_lim for q^energy_lim (SPEC.md Eq. 5); the paper uses 0.01. */
    xiLim: z.number().gt(0).lt(1).default(0.01),
    solverThreads: z.number().int().min(1).max(16).default(1),
  }).prefault({}),
  registry: z.object({
    /** A node not heard from for this long is offline (a few slot lengths). */
    silenceMs: z.number().int().positive().default(300_000),
    /** Battery levels E_max of every node's chain; a node's quantum is its capacity / levels. */
    levels: z.number().int().min(10).max(2000).default(100),
    /** Harvest per slot assumed for a node until its own estimate is trusted (uniform on [loJ, hiJ]). */
    priorHarvestJ: z.object({ loJ: z.number().nonnegative(), hiJ: z.number().nonnegative() })
      .refine((p) => p.hiJ >= p.loJ, 'priorHarvestJ.hiJ must be ≥ loJ')
      .default({ loJ: 0, hiJ: 0 }),
  }).prefault({}),
  /** How often broker and store counters are written to InfluxDB. */
  statsIntervalMs: z.number().int().positive().default(10_000),
  log: z.object({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  }).prefault({}),
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
export type GatewayConfigInput = z.input<typeof GatewayConfigSchema>;

export function parseGatewayConfig(raw: unknown, source = 'gateway config'): GatewayConfig {
  const parsed = GatewayConfigSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${source} is invalid:\n${z.prettifyError(parsed.error)}\n(see docs/gateway.md for every setting)`);
  return parsed.data;
}
