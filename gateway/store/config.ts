// The store's configuration, validated at the edge. The InfluxDB location is one URL,
// http(s)://HOST:PORT/DATABASE, the form the CLI's --influx flag takes too.
import { z } from 'zod';

export const StoreConfigSchema = z.strictObject({
  url: z.string().refine((u) => {
    try {
      const parsed = new URL(u);
      return (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.pathname.length > 1;
    } catch {
      return false;
    }
  }, 'InfluxDB url must look like http://HOST:8086/DATABASE'),
  username: z.string().optional(),
  password: z.string().optional(),
  /** Retention policy created (as the default) when missing. */
  retentionPolicy: z.strictObject({
    name: z.string().min(1).default('heliomesh'),
    /** An InfluxQL duration: 30d, 52w, INF. */
    duration: z.string().regex(/^(INF|\d+[hdw])$/, 'retention duration must be INF or a number with h, d or w (e.g. 30d)').default('30d'),
  }).prefault({}),
  batchSize: z.number().int().positive().default(500),
  flushIntervalMs: z.number().int().positive().default(1000),
  /** How long to wait before trying again after a failed write. */
  retryMs: z.number().int().positive().default(2000),
  requestTimeoutMs: z.number().int().positive().default(5000),
  /** The bound of the outage buffer, in points. */
  maxBufferedPoints: z.number().int().positive().default(100_000),
  /** Optional JSON-lines file that keeps the outage buffer across gateway restarts. */
  spoolPath: z.string().optional(),
});

export type StoreConfig = z.infer<typeof StoreConfigSchema>;
export type StoreConfigInput = z.input<typeof StoreConfigSchema>;

export interface InfluxLocation {
  protocol: 'http' | 'https';
  host: string;
  port: number;
  database: string;
}

export function parseInfluxUrl(url: string): InfluxLocation {
  const u = new URL(url);
  const protocol = u.protocol === 'https:' ? 'https' : 'http';
  return {
    protocol,
    host: u.hostname,
    port: u.port ? Number(u.port) : 8086,
    database: decodeURIComponent(u.pathname.slice(1).replace(/\/+$/, '')),
  };
}
