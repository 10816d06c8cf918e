// The InfluxDB store: schema, bounded outage buffer, batched writer.
import type { Logger } from 'pino';
import type { Clock } from '../../ground/clock.js';
import { StoreConfigSchema, type StoreConfigInput } from './config.js';
import { InfluxStore, NullStore, type Store } from './influx-store.js';

export * from './config.js';
export * from './schema.js';
export * from './records.js';
export { InfluxStore, NullStore, type Store, type StoreStats } from './influx-store.js';
export { PointBuffer } from './buffer.js';

/** An InfluxStore when `config` is given (started), else a NullStore. */
export function createStore(config: StoreConfigInput | undefined, deps: { clock: Clock; log: Logger }): Store {
  if (!config) return new NullStore(deps.log);
  const store = new InfluxStore(StoreConfigSchema.parse(config), deps);
  store.start();
  return store;
}
export { recordNodeHistory } from './nodes.js';
