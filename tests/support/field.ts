// A small test field: a real gateway (aedes broker, registry, router) on a free port and
// G × N real agents on virtual hardware, each with its own credentials, serving the bundled
// model's block ranges (models/bundled/ already holds 3 groups). Agents and gateway meet
// only over MQTT. Each agent reaches the broker through its own TCP relay, so a test can
// cut a node off without a word (the broker keeps the session and sends no will: silence),
// kill it hard (socket dropped without DISCONNECT: the broker sends its will), stop it
// cleanly, or restart it.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig, type AgentConfig } from '../../agent/config.js';
import { addNode, type BrokerConfigInput } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { until } from '../../ground/until.js';
import { parseGatewayConfig, type GatewayConfigInput } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import { ScaledClock } from '../../hardware/clock.js';
import { bundledModelDir } from '../../models/bundled.js';
import { MANIFEST_FILE, readManifest } from '../../models/shards.js';
import { exampleDoc } from '../agent/fixtures.js';

/** A TCP relay between one agent and the broker that can go silent or drop the line. */
class Relay {
  private readonly pairs = new Set<[Socket, Socket]>();
  /** Bytes are dropped both ways while silent, and the sockets stay open. */
  silent = false;

  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(brokerPort: number): Promise<Relay> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('relay has no TCP address');
    const relay = new Relay(server, address.port);
    server.on('connection', (client) => relay.join(client, brokerPort));
    return relay;
  }

  private join(client: Socket, brokerPort: number): void {
    const broker = connect(brokerPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, broker];
    this.pairs.add(pair);
    for (const s of pair) s.setNoDelay(true);
    client.on('data', (b) => {
      if (!this.silent) broker.write(b);
    });
    broker.on('data', (b) => {
      if (!this.silent) client.write(b);
    });
    // One side gone: the other is dropped without a DISCONNECT, as a lost line would be.
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      broker.destroy();
    };
    client.on('close', drop);
    broker.on('close', drop);
    client.on('error', drop);
    broker.on('error', drop);
  }

  /** Ends every line now (no DISCONNECT reaches the broker: it sends the wills). */
  dropAll(): void {
    for (const [a, b] of [...this.pairs]) {
      a.destroy();
      b.destroy();
    }
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export type KillMode = 'silence' | 'will' | 'stop';

export class FieldNode {
  agent: Agent | undefined;

  constructor(readonly nodeId: string, readonly group: string, readonly config: AgentConfig, private readonly relay: Relay, private readonly log: Logger) {}

  get running(): boolean {
    return this.agent !== undefined && !this.relay.silent;
  }

  async start(): Promise<void> {
    if (this.agent) throw new Error(`${this.nodeId} is already running`);
    this.relay.silent = false;
    this.agent = await Agent.start(this.config, { clock: new ScaledClock(1), log: this.log.child({ node: this.nodeId }), shutdown: async () => {} });
  }

  /**
   * silence: the node's line goes quiet, the agent keeps running behind it (no will until
   * its keepalive runs out); will: the connection drops without DISCONNECT, the broker
   * publishes the will; stop: the agent leaves cleanly with its offline state.
   */
  async kill(mode: KillMode): Promise<void> {
    const agent = this.agent;
    if (!agent) return;
    if (mode === 'silence') {
      this.relay.silent = true;
      return;
    }
    this.agent = undefined;
    if (mode === 'will') {
      await agent.link.kill();
      this.relay.dropAll();
    }
    await agent.stop(`test: ${mode}`);
  }

  async restart(): Promise<void> {
    if (this.agent) {
      await this.agent.link.kill();
      await this.agent.stop('test: restart');
      this.agent = undefined;
    }
    this.relay.dropAll();
    await this.start();
  }

  /** Ends the agent whatever state it is in (after-hooks). */
  async end(): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    if (agent) {
      // A silent line would never acknowledge a goodbye: drop it first.
      if (this.relay.silent) await agent.link.kill();
      await agent.stop('field closed');
    }
    await this.relay.close();
  }
}

export interface FieldOptions {
  /** Nodes per group (default 3). The groups are the model's block ranges. */
  nodesPerGroup?: number;
  /** The shard folder the gateway and every agent load (default: the bundled model, 3 groups). */
  shardDir?: string;
  fleet?: string;
  queueCapacity?: number;
  /** Merged over the field's gateway config (broker and fleet are the field's). */
  gateway?: Omit<GatewayConfigInput, 'broker' | 'fleet'>;
  /** Broker limits merged under the field's host, port and credentials (e.g. a higher connect rate for many restarts). */
  broker?: Omit<BrokerConfigInput, 'host' | 'port' | 'credentialsPath'>;
  log?: Logger;
}

export class Field {
  private constructor(readonly gateway: Gateway, readonly nodes: FieldNode[], private readonly dir: string) {}

  static async start(opts: FieldOptions = {}): Promise<Field> {
    const fleet = opts.fleet ?? 'field';
    const perGroup = opts.nodesPerGroup ?? 3;
    const log = opts.log ?? pino({ level: 'silent' });
    const dir = await mkdtemp(join(tmpdir(), 'heliomesh-field-'));
    const shardDir = opts.shardDir ?? bundledModelDir();
    const blocks = readManifest(shardDir).blocks;
    const credentialsPath = join(dir, 'nodes.json');
    const specs: Array<{ nodeId: string; group: string; from: number; to: number; password: string }> = [];
    for (const [g, b] of blocks.entries()) {
      for (let i = 1; i <= perGroup; i++) {
        const nodeId = `g${g + 1}-n${i}`;
        specs.push({ nodeId, group: `g${g + 1}`, from: b.from, to: b.to, password: await addNode(credentialsPath, nodeId) });
      }
    }
    let gateway: Gateway | undefined;
    const nodes: FieldNode[] = [];
    try {
      gateway = await startGateway(parseGatewayConfig({
        ...opts.gateway,
        ...(opts.shardDir ? { model: { ...opts.gateway?.model, manifest: join(shardDir, MANIFEST_FILE) } } : {}),
        fleet,
        broker: { ...opts.broker, host: '127.0.0.1', port: 0, credentialsPath },
      }), { clock: new RealClock(), log: log.child({ part: 'gateway' }) });
      const brokerPort = gateway.broker.ports.mqtt;
      if (brokerPort === undefined) throw new Error('the field\'s gateway broker has no plain MQTT port');
      for (const s of specs) {
        const relay = await Relay.start(brokerPort);
        const config = parseAgentConfig({
          ...exampleDoc(),
          nodeId: s.nodeId, fleet, group: s.group,
          gateway: { url: `mqtt://127.0.0.1:${relay.port}`, username: s.nodeId, password: s.password, reconnectMinMs: 100, reconnectMaxMs: 1000 },
          model: { shardDir, firstBlock: s.from, lastBlock: s.to - 1 },
          worker: { queueCapacity: opts.queueCapacity ?? 1, sessionIdleMs: 60_000 },
          spool: { dir: join(dir, s.nodeId) },
          shutdownCommand: ['true'],
        });
        nodes.push(new FieldNode(s.nodeId, s.group, config, relay, log));
      }
      await Promise.all(nodes.map((n) => n.start()));
    } catch (err) {
      await Promise.allSettled(nodes.map((n) => n.end()));
      await gateway?.close();
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return new Field(gateway, nodes, dir);
  }

  node(nodeId: string): FieldNode {
    const n = this.nodes.find((x) => x.nodeId === nodeId);
    if (!n) throw new Error(`no node ${nodeId} in the field`);
    return n;
  }

  group(name: string): FieldNode[] {
    return this.nodes.filter((n) => n.group === name);
  }

  /** Waits until the gateway sees every running node online, active and solved. */
  async ready(timeoutMs = 20_000): Promise<void> {
    await until('every node online, active and solved', () => this.nodes.every((n) => {
      if (!n.running) return true;
      const s = this.gateway.registry.get(n.nodeId);
      return !!s && s.online && s.gamma === 1 && s.solved !== undefined;
    }), timeoutMs);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.end()));
    await this.gateway.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

