// Writes the gateway's points to InfluxDB 1.x in batches. Points queue in a bounded
// buffer and leave it only once InfluxDB has acknowledged them, front first, so an outage
// delays points but neither loses (within the bound) nor reorders them. The database and
// its retention policy are created when missing, before the first write and again after
// an outage (a fresh influxd may have come back empty).
import { InfluxDB, type IPoolOptions } from 'influx';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../../ground/clock.js';
import { PointBuffer } from './buffer.js';
import { parseInfluxUrl, type StoreConfig } from './config.js';
import { SCHEMA, toInfluxPoint, type StorePoint } from './schema.js';

export interface StoreStats {
  /** Points waiting for InfluxDB. */
  buffered: number;
  /** Points dropped because the buffer bound was hit. */
  dropped: number;
  /** Points InfluxDB has acknowledged since start. */
  written: number;
  /** Whether the last write failed. */
  outage: boolean;
  /**
   * Points in batches InfluxDB refused with a 4xx (a field type conflict, points older
   * than the retention policy). Retrying cannot help them, so they are not requeued;
   * InfluxDB may still have kept the valid points of such a batch (a partial write).
   */
  refused: number;
}

/** What the gateway's parts write to; `NullStore` when no InfluxDB is configured. */
export interface Store {
  write(p: StorePoint): void;
  /** Sends everything queued now; resolves when done or when a write failed. */
  flush(): Promise<void>;
  stats(): StoreStats;
  close(): Promise<void>;
}

export class InfluxStore implements Store {
  private readonly influx: InfluxDB;
  private readonly database: string;
  private readonly buffer: PointBuffer;
  private timer: Timer | undefined;
  private flushing: Promise<void> | undefined;
  private schemaReady = false;
  private outage = false;
  private written = 0;
  private refused = 0;
  private droppedReported = 0;

  constructor(private readonly config: StoreConfig, private readonly deps: { clock: Clock; log: Logger }) {
    const loc = parseInfluxUrl(config.url);
    this.database = loc.database;
    // A constant back-off equal to our own retry period: the pool's default grows to 10 s,
    // which would hold points back long after InfluxDB is reachable again.
    const backoff = { getDelay: () => config.retryMs, next: () => backoff, reset: () => backoff };
    const pool: IPoolOptions = { requestTimeout: config.requestTimeoutMs, maxRetries: 0, backoff };
    this.influx = new InfluxDB({
      host: loc.host,
      port: loc.port,
      protocol: loc.protocol,
      database: loc.database,
      username: config.username,
      password: config.password,
      pool,
      schema: SCHEMA.map((s) => ({ ...s, database: loc.database })),
    });
    this.buffer = new PointBuffer(config.maxBufferedPoints, config.spoolPath);
  }

  /** Recovers a spooled buffer and starts the periodic flush. */
  start(): void {
    const { loaded, unreadable } = this.buffer.loadSpool((p) => this.fitsSchema(p));
    if (loaded > 0 || unreadable > 0) {
      this.deps.log.info({ loaded, unreadable, spoolPath: this.config.spoolPath }, 'recovered points spooled during an earlier InfluxDB outage');
    }
    this.timer = this.deps.clock.setInterval(() => void this.flush(), this.config.flushIntervalMs);
  }

  private fitsSchema(p: StorePoint): boolean {
    try {
      this.influx.parsePoint(toInfluxPoint(p), { database: this.database, precision: 'ms' });
      return true;
    } catch {
      return false;
    }
  }

  write(given: StorePoint): void {
    // Line protocol at ms precision takes whole numbers only ("bad timestamp" refuses the
    // whole batch), and an accelerated clock (ScaledClock) reads fractions of a ms.
    const p = Number.isInteger(given.timestampMs) ? given : { ...given, timestampMs: Math.round(given.timestampMs) };
    // Checks the point against the schema now, so a malformed point fails at its writer
    // instead of blocking the queue later.
    this.influx.parsePoint(toInfluxPoint(p), { database: this.database, precision: 'ms' });
    this.buffer.push(p);
    if (this.buffer.length >= this.config.batchSize) void this.flush();
  }

  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  stats(): StoreStats {
    return { buffered: this.buffer.length, dropped: this.buffer.dropped, written: this.written, outage: this.outage, refused: this.refused };
  }

  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await this.flush();
    if (this.buffer.length > 0) {
      this.deps.log.warn({ buffered: this.buffer.length, spoolPath: this.config.spoolPath ?? null },
        this.config.spoolPath ? 'closing with points unsent; they stay in the spool file for the next start'
          : 'closing with points unsent and no spool file configured; they are lost');
    }
  }

  private async drain(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.peek(this.config.batchSize);
      try {
        if (!this.schemaReady) await this.ensureSchema();
      } catch (err) {
        // Whatever the cause (unreachable, wrong credentials), the points wait.
        this.onFailure(err);
        return;
      }
      try {
        await this.influx.writePoints(batch.map(toInfluxPoint), {
          precision: 'ms',
          retentionPolicy: this.config.retentionPolicy.name,
        });
      } catch (err) {
        if (!refusedByInflux(err)) {
          this.onFailure(err);
          return;
        }
        this.refused += batch.length;
        this.deps.log.error({ err: err.message, points: batch.length, first: batch[0] },
          'InfluxDB refused a batch of points; they are not retried (check field types and the retention policy duration)');
        this.buffer.commit(batch.length);
        continue;
      }
      this.buffer.commit(batch.length);
      this.written += batch.length;
      if (this.outage) {
        this.outage = false;
        this.deps.log.info({ buffered: this.buffer.length, dropped: this.buffer.dropped }, 'InfluxDB reachable again; sending buffered points');
      }
    }
    this.buffer.syncSpool();
  }

  private onFailure(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (!this.outage) {
      this.outage = true;
      // The database may come back empty (a new influxd), so check it again next time.
      this.schemaReady = false;
      this.deps.log.warn({ err: message, url: this.config.url, bound: this.config.maxBufferedPoints },
        'cannot write to InfluxDB; buffering points until it answers (check that influxd runs, and the url, username and password)');
    }
    this.buffer.startSpooling();
    if (this.buffer.dropped > this.droppedReported) {
      this.deps.log.warn({ dropped: this.buffer.dropped, bound: this.config.maxBufferedPoints },
        'InfluxDB buffer bound reached; dropping the oldest points (raise maxBufferedPoints or restore InfluxDB)');
      this.droppedReported = this.buffer.dropped;
    }
  }

  private async ensureSchema(): Promise<void> {
    const names = await this.influx.getDatabaseNames();
    if (!names.includes(this.database)) {
      await this.influx.createDatabase(this.database);
      this.deps.log.info({ database: this.database }, 'created InfluxDB database');
    }
    const rp = this.config.retentionPolicy;
    const policies = await this.influx.showRetentionPolicies(this.database);
    if (!policies.some((p) => p.name === rp.name)) {
      await this.influx.createRetentionPolicy(rp.name, { database: this.database, duration: rp.duration, replication: 1, isDefault: true });
      this.deps.log.info({ database: this.database, retentionPolicy: rp.name, duration: rp.duration }, 'created InfluxDB retention policy');
    }
    this.schemaReady = true;
  }
}

/** The store without InfluxDB: the gateway runs, and says once that it does not log. */
export class NullStore implements Store {
  constructor(log: Logger) {
    log.info('InfluxDB is not configured; the gateway is not logging metrics (set store.url or pass --influx http://HOST:8086/DB)');
  }

  write(_p: StorePoint): void {}

  async flush(): Promise<void> {}

  stats(): StoreStats {
    return { buffered: 0, dropped: 0, written: 0, outage: false, refused: 0 };
  }

  async close(): Promise<void> {}
}

/**
 * A 4xx answer about the points themselves: InfluxDB is up and said no. 401 and 403 are
 * about our credentials, not the points, so those points wait like in an outage.
 */
function refusedByInflux(err: unknown): err is Error {
  const status = (err as { res?: { statusCode?: number } } | null)?.res?.statusCode;
  return err instanceof Error && typeof status === 'number' && status >= 400 && status < 500 && status !== 401 && status !== 403;
}
