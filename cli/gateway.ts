// `heliomesh gateway --config FILE`: run the gateway (broker, InfluxDB store, solver pool,
// model head and job router).
// `heliomesh gateway add-node ID`: issue MQTT credentials for one node.
// Each action imports the parts it runs (the gateway pulls in TF.js for the model head), so
// that registering the commands and printing their help load only commander.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { GatewayConfig } from '../gateway/config.js';

export const DEFAULT_CREDENTIALS_FILE = 'gateway-nodes.json';

interface RunOptions {
  config?: string;
  mqttPort?: number;
  httpPort?: number;
  broker?: string;
  influx?: string;
  pretty?: boolean;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer 0-65535');
  return n;
}

/** Reads the config file; paths in it are relative to the file's own folder. */
export async function loadGatewayConfig(opts: RunOptions): Promise<GatewayConfig> {
  if (!opts.config) throw new Error('no gateway config: pass --config FILE (see docs/gateway.md for an example)');
  let text: string;
  try {
    text = await readFile(opts.config, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config ${opts.config}: ${(err as Error).message}`);
  }
  const [{ parse: parseYaml }, { parseGatewayConfig }] = await Promise.all([import('yaml'), import('../gateway/config.js')]);
  let raw: Record<string, unknown>;
  try {
    raw = (parseYaml(text) ?? {}) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${opts.config} is neither valid YAML nor JSON: ${(err as Error).message}`);
  }
  const broker = { ...((raw.broker ?? {}) as Record<string, unknown>) };
  if (opts.mqttPort !== undefined) broker.port = opts.mqttPort;
  if (opts.broker !== undefined) broker.external = { ...((broker.external ?? {}) as Record<string, unknown>), url: opts.broker };
  // The command always serves the HTTP API: `http` may be absent from the file, not off.
  const http = { ...((raw.http ?? {}) as Record<string, unknown>) };
  if (opts.httpPort !== undefined) http.port = opts.httpPort;
  const store = opts.influx ? { ...((raw.store ?? {}) as Record<string, unknown>), url: opts.influx } : raw.store;
  const config = parseGatewayConfig({ ...raw, broker, store, http }, opts.config);
  const base = dirname(resolve(opts.config));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  if (config.broker.credentialsPath) config.broker.credentialsPath = at(config.broker.credentialsPath);
  const ext = config.broker.external;
  if (ext?.passwordPath) ext.passwordPath = at(ext.passwordPath);
  if (ext?.caPath) ext.caPath = at(ext.caPath);
  if (config.broker.tls) {
    const t = config.broker.tls;
    t.certPath = at(t.certPath);
    t.keyPath = at(t.keyPath);
    if (t.caPath) t.caPath = at(t.caPath);
  }
  if (config.store?.spoolPath) config.store.spoolPath = at(config.store.spoolPath);
  if (config.http?.apiKeyFile) config.http.apiKeyFile = at(config.http.apiKeyFile);
  if (config.model.manifest) config.model.manifest = at(config.model.manifest);
  return config;
}

export function registerGateway(program: Command): void {
  const gateway = program
    .command('gateway')
    .description('run the fleet gateway: MQTT broker with node auth and ACL, job router with failover, InfluxDB logging, q_lim solver threads')
    .option('--config <file>', 'gateway config, YAML or JSON (see docs/gateway.md)')
    .option('--mqtt-port <n>', 'override broker.port', port)
    .option('--http-port <n>', 'override http.port (the HTTP API; default 8080)', port)
    .option('--broker <url>', 'run no broker: join the external one at mqtt://HOST:PORT (or mqtts://, ws://, wss://) as a client (sets broker.external.url)')
    .option('--influx <url>', 'log to InfluxDB at http://HOST:PORT/DATABASE (overrides store.url)')
    .option('--pretty', 'human-readable logs instead of JSON lines')
    .action(async (opts: RunOptions) => {
      const config = await loadGatewayConfig(opts);
      const [{ pino }, { RealClock }, { startGatewayOnAnyBroker }, { loadCredentials }, { serviceNotifier }] = await Promise.all([
        import('pino'), import('../ground/clock.js'), import('../gateway/index.js'), import('../gateway/broker/index.js'), import('./notify.js'),
      ]);
      const log = pino({ level: config.log.level }, opts.pretty ? pino.transport({ target: 'pino-pretty' }) : undefined);
      const notify = serviceNotifier(process.env, process.pid, log);
      const gw = await startGatewayOnAnyBroker(config, { clock: new RealClock(), log, ...(notify ? { notify } : {}) });
      await new Promise<void>((done) => {
        const stop = (signal: string) => {
          log.info({ signal }, 'stopping');
          gw.close().then(done, (err: Error) => {
            log.error({ err: err.message }, 'error while stopping');
            done();
          });
        };
        // After `add-node` or `remove-node`, SIGHUP loads the new credentials; only nodes
        // whose entry was removed or replaced are disconnected.
        process.on('SIGHUP', () => {
          const file = config.broker.credentialsPath;
          if (!gw.broker || !file) return void log.info('SIGHUP ignored: an external broker keeps the node credentials');
          try {
            const disconnected = gw.broker.setCredentials(loadCredentials(file));
            log.info({ file, disconnected }, 'credentials reloaded');
          } catch (err) {
            log.error({ err: (err as Error).message }, 'credentials not reloaded; the previous ones stay in use');
          }
        });
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });

  gateway
    .command('add-node')
    .description('create MQTT credentials for a node and print its password once (only a salted scrypt hash is stored)')
    .argument('<id>', 'node id: 1-63 letters, digits, _ or -; also the MQTT client id the node must use')
    .option('--file <path>', 'credentials file (created with mode 0600 when missing)', DEFAULT_CREDENTIALS_FILE)
    .option('--replace', 'issue a new password for a node that already has one')
    .action(async (id: string, opts: { file: string; replace?: boolean }) => {
      const { addNode } = await import('../gateway/broker/credentials.js');
      const password = await addNode(opts.file, id, { replace: opts.replace });
      console.log(`node ${id} added to ${opts.file}`);
      console.log(`password: ${password}`);
      console.log('Put it in the node\'s config now; it is not stored anywhere and cannot be shown again.');
    });

  gateway
    .command('remove-node')
    .description('revoke a node: delete its credentials entry (send the running gateway SIGHUP to close its session)')
    .argument('<id>', 'node id')
    .option('--file <path>', 'credentials file', DEFAULT_CREDENTIALS_FILE)
    .action(async (id: string, opts: { file: string }) => {
      const { removeNode } = await import('../gateway/broker/credentials.js');
      if (!removeNode(opts.file, id)) throw new Error(`node ${id} has no credentials in ${opts.file}; nothing to remove`);
      console.log(`node ${id} removed from ${opts.file}; send the gateway SIGHUP (systemctl reload heliomesh-gateway) to close its session`);
    });
}
