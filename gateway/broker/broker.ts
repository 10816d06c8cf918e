// The embedded MQTT broker: aedes on TCP and optionally TLS and WebSocket, with per-node authentication,
// the node ACL, connection rate limits, a budget for connections not yet logged in apart
// from the nodes' sessions, and a packet size limit. The gateway's own parts
// connect as one internal client with a secret made at start-up that exists only in memory.
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TlsOptions } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Logger } from 'pino';
import type { Clock } from '../../ground/clock.js';
import { NodeAcl, type NodeTopicPatterns } from './acl.js';
import type { BrokerConfig } from './config.js';
import { verifyPassword, type CredentialsFile } from './credentials.js';
import { FrameGuard } from './frame-guard.js';
import type { BrokerCounters, PublishTap } from './counters.js';
import { HopGrants } from './hop-grants.js';
import { inProcessPipe } from './in-process.js';
import { LocalBus } from './local-bus.js';
import { connectionKey, PendingConnections } from './pending.js';

/** The internal client's username; `$` cannot start a node id, so no node can claim it. */
export const INTERNAL_USER = '$gateway';

export interface BrokerDeps {
  clock: Clock;
  log: Logger;
  credentials: CredentialsFile;
  patterns: NodeTopicPatterns;
  /** PEM contents, read by the caller, when `config.tls` is set. */
  tls?: { cert: Buffer | string; key: Buffer | string; ca?: Buffer | string };
}

// Aedes' CONNACK codes (MQTT 3.1.1 §3.2.2.3).
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;
const SERVER_UNAVAILABLE = 3;

const RATE_LIMITED = 'connection rate limit';
/** aedes' error when its connectTimeout passes without a CONNECT (lib/client.js). */
const AEDES_CONNECT_TIMEOUT = 'connect did not arrive in time';
/** The remote address recorded for the in-process connection. */
const IN_PROCESS = 'in-process';


function authError(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export class Broker {
  readonly internal: { username: string; password: string };
  private readonly aedes: Aedes;
  private readonly acl: NodeAcl;
  /** Node-to-node job/hop publishes the gateway's routes allow. */
  readonly hops = new HopGrants();
  private readonly servers: Server[] = [];
  private readonly addressOf = new WeakMap<object, string>();
  private readonly connects = new Map<string, number[]>();
  private readonly internalSecret: Buffer;
  private readonly internalClients = new WeakSet<Client>();
  private readonly slowClients = new WeakSet<Client>();
  /** Connected node sessions by node id (never the internal client), for revocation. */
  private readonly nodeClients = new Map<string, Client>();
  /** Authenticated node sessions (never the internal client), counted against maxClients. */
  private readonly sessions = new Set<Client>();
  /** Connection key (connectionKey) of each stream handed to aedes from a socket. */
  private readonly keyOf = new WeakMap<object, string>();
  private readonly pending: PendingConnections;
  private counters: BrokerCounters = { clients: 0, publishesIn: 0, bytesIn: 0, refusedAuth: 0, refusedAcl: 0, refusedRate: 0, refusedSize: 0, slowDisconnects: 0, refusedProtocol: 0, refusedPending: 0, refusedFull: 0 };
  /** Ports actually bound (useful when configured as 0). */
  readonly ports: { mqtt?: number; mqtts?: number; ws?: number } = {};
  private webSockets: WebSocketServer | undefined;
  private publishTap: PublishTap | undefined;
  /** The gateway's job traffic, handed to aedes without a client (local-bus.ts). */
  readonly bus: LocalBus;

  private constructor(private readonly config: BrokerConfig, private readonly deps: BrokerDeps) {
    this.internalSecret = randomBytes(32);
    this.internal = { username: INTERNAL_USER, password: this.internalSecret.toString('base64url') };
    this.acl = new NodeAcl(deps.patterns);
    this.pending = new PendingConnections(
      { connectTimeoutMs: config.connectTimeoutMs, perAddress: config.maxPendingPerAddress, total: config.maxPendingConnections },
      { clock: deps.clock, log: deps.log },
      (why) => {
        if (why === 'timeout') this.counters.refusedProtocol++;
        else this.counters.refusedPending++;
      },
    );
    this.aedes = new Aedes({
      drainTimeout: config.drainTimeoutMs,
      queueLimit: config.queueLimit,
      connectTimeout: config.connectTimeoutMs,
      keepaliveLimit: config.keepaliveLimitS,
      maxClientsIdLength: 64,
      preConnect: (client, _packet, done) => {
        const key = this.keyOf.get(client.conn);
        if (key !== undefined) this.pending.connectArrived(key);
        // aedes closes the connection only when refused with an error; `false` alone leaves it hanging.
        if (this.admit(client)) done(null, true);
        else done(new Error(RATE_LIMITED), false);
      },
      authenticate: (client, username, password, done) => void this.authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => {
        const refused = this.authorizePublish(client, packet.topic, packet.payload);
        const holdMs = refused || !this.publishTap ? 0 : this.publishTap(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
        if (holdMs > 0) this.deps.clock.setTimeout(() => done(null), holdMs);
        else done(refused);
      },
      authorizeSubscribe: (client, sub, done) => done(null, this.authorizeSubscribe(client, sub.topic) ? sub : null),
    });
    this.bus = new LocalBus({ aedes: this.aedes, hops: this.hops, clock: deps.clock, tap: () => this.publishTap });
    this.aedes.on('client', (client) => {
      if (!this.internalClients.has(client)) this.nodeClients.set(client.id, client);
    });
    this.aedes.on('clientDisconnect', (client) => {
      if (this.nodeClients.get(client.id) === client) {
        this.nodeClients.delete(client.id);
        this.hops.forget(client.id);
      }
    });
    this.aedes.on('publish', (packet, client) => {
      // What the nodes sent: the gateway's own publishes (cancels, commands, its state) go
      // through this broker too, but were not received from anyone.
      if (this.isInternal(client)) return;
      this.counters.publishesIn++;
      this.counters.bytesIn += packet.payload.length;
    });
    this.aedes.on('clientError', (client, err) => {
      // aedes fails every write pending on a slow client with its own error; report the client once.
      if (err.message === 'drain timeout') {
        if (this.slowClients.has(client)) return;
        this.slowClients.add(client);
        this.counters.slowDisconnects++;
        deps.log.warn({ clientId: client.id, drainTimeoutMs: config.drainTimeoutMs }, 'slow consumer disconnected: its socket did not drain in time');
        return;
      }
      deps.log.debug({ clientId: client.id, err: err.message }, 'mqtt client error');
    });
    this.aedes.on('connectionError', (client, err) => {
      // The rate limit's refusal arrives here too, and is counted as refusedRate. aedes' own
      // connect timer starts after the pending deadline (at the hand-over, after any TLS
      // handshake), so that deadline has closed and counted the connection already.
      if (err.message === AEDES_CONNECT_TIMEOUT) return;
      if (err.message !== RATE_LIMITED) this.counters.refusedProtocol++;
      deps.log.info({ clientId: client.id, err: err.message }, 'mqtt connection refused');
    });
  }

  static async start(config: BrokerConfig, deps: BrokerDeps): Promise<Broker> {
    if (config.tls && !deps.tls) throw new Error('broker.tls is configured but no certificate and key were loaded');
    const broker = new Broker(config, deps);
    await broker.aedes.listen();
    try {
      await broker.listenAll();
    } catch (err) {
      await broker.close();
      throw err;
    }
    deps.log.info({ ports: broker.ports, nodes: Object.keys(deps.credentials.nodes).length }, 'MQTT broker listening');
    return broker;
  }

  private async listenAll(): Promise<void> {
    const { config, deps } = this;
    const plain = createServer((socket) => {
      if (this.pending.accept(socket)) this.handleSocket(socket);
    });
    this.ports.mqtt = await this.listen(plain, config.port);
    if (config.tls && deps.tls) {
      const secure = createTlsServer(this.tlsOptions(), (socket) => this.handleSocket(socket));
      this.countPending(secure);
      this.logHandshakeFailures(secure);
      this.ports.mqtts = await this.listen(secure, config.tls.port);
    }
    if (config.websocket) await this.listenWebSocket(config.websocket);
  }

  /** MQTT over WebSocket (MQTT 3.1.1 §6): the WebSocket's bytes go through the same guard, logins and ACL. */
  /** The TLS port's options: the configured certificate, and client certificates when required. */
  private tlsOptions(): TlsOptions {
    const { tls } = this.deps;
    const required = this.config.tls?.requireClientCert ?? false;
    return { cert: tls?.cert, key: tls?.key, ca: tls?.ca, requestCert: required, rejectUnauthorized: required };
  }

  /**
   * TLS and WebSocket connections enter the pending budget at their TCP accept, before the
   * handshake or upgrade, so those steps run inside the CONNECT deadline too. This listener
   * goes first: a refused socket is closed before TLS or HTTP starts on it.
   */
  private countPending(server: Server): void {
    server.prependListener('connection', (socket: Socket) => void this.pending.accept(socket));
  }

  private logHandshakeFailures(server: TlsServer): void {
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      // A connection closed mid-handshake (by its peer, or by the pending budget or deadline,
      // which count and log it themselves) is no failed handshake: a flood would log each.
      const level = err.code === 'ECONNRESET' ? 'debug' : 'info';
      this.deps.log[level]({ remote: socket.remoteAddress, err: err.message }, 'TLS handshake failed');
    });
  }

  private async listenWebSocket(ws: NonNullable<BrokerConfig['websocket']>): Promise<void> {
    const scheme = ws.secure ? 'wss' : 'ws';
    const onRequest = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end(`this port speaks MQTT over WebSocket only: connect to ${scheme}://HOST:PORT${ws.path}\n`);
    };
    let http;
    if (ws.secure) {
      http = createHttpsServer(this.tlsOptions(), onRequest);
      this.logHandshakeFailures(http);
    } else {
      http = createHttpServer(onRequest);
    }
    this.countPending(http);
    this.webSockets = new WebSocketServer({
      server: http,
      path: ws.path,
      // ws reads a whole message before handing it on; this bounds it by the announced
      // length, before buffering. A message holds at most one packet of maxPacketBytes
      // plus its fixed header (1 type byte and up to 4 length bytes, §2.2).
      maxPayload: this.config.maxPacketBytes + 5,
    });
    this.webSockets.on('connection', (socket, req) => {
      const guard = this.handle(createWebSocketStream(socket), req.socket.remoteAddress ?? 'unknown', connectionKey(req.socket));
      socket.on('error', (err: Error & { code?: string }) => {
        // A packet the guard already refused by its header may still arrive as a message too large.
        if (err.code !== 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || guard.refused) return;
        this.counters.refusedSize++;
        this.deps.log.warn({ remote: req.socket.remoteAddress, limit: this.config.maxPacketBytes }, 'oversized WebSocket message; connection closed');
      });
    });
    this.ports.ws = await this.listen(http, ws.port);
  }

  /** Installs (or, with undefined, removes) the tap every authorized PUBLISH passes. */
  tap(tap: PublishTap | undefined): void {
    this.publishTap = tap;
  }

  stats(): BrokerCounters {
    return { ...this.counters, clients: this.aedes.connectedClients };
  }

  /**
   * Replaces the credentials (after `add-node` or `remove-node`). Nodes whose entry is
   * unchanged stay connected; a node whose entry was removed or given a new password is
   * disconnected at once, so revoking a password also ends the session it opened.
   * Returns the ids of the nodes disconnected.
   */
  setCredentials(credentials: CredentialsFile): string[] {
    const before = this.deps.credentials.nodes;
    this.deps.credentials = credentials;
    const revoked = Object.keys(before).filter((id) => credentials.nodes[id]?.hash !== before[id]!.hash);
    const disconnected: string[] = [];
    for (const id of revoked) {
      const client = this.nodeClients.get(id);
      if (!client) continue;
      disconnected.push(id);
      this.deps.log.warn({ clientId: id }, 'node credentials revoked or replaced; its session is closed');
      client.close();
    }
    return disconnected;
  }

  async close(): Promise<void> {
    // Stop accepting first; a server's close completes only once its connections have
    // ended, which closing aedes (it disconnects every client) and closing the connections
    // not yet handed to aedes (in a TLS handshake or before the WebSocket upgrade) bring about.
    const listening = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.webSockets?.close();
    this.pending.closeAll();
    this.bus.closed();
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await listening;
  }

  // No maxConnections on the listeners: it would count the connections still logging in
  // against the nodes' sessions, which is how a flood of silent sockets locked nodes out.
  // The pending budget and maxClients bound the two apart.
  private listen(server: Server, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot listen on ${this.config.host}:${port}: ${err.message} (is another broker running? choose another port)`)));
      server.listen(port, this.config.host, () => {
        this.servers.push(server);
        const addr = server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  /**
   * The stream for an MQTT client in this process (the gateway's own): it speaks MQTT to
   * aedes like any connection, and logs in with the internal secret like any client, but
   * its bytes never leave the process. It is trusted, so it skips the packet-size guard.
   */
  connectInProcess(): Duplex {
    const [client, broker] = inProcessPipe();
    this.addressOf.set(broker, IN_PROCESS);
    this.aedes.handle(broker);
    return client;
  }

  private handleSocket(socket: Socket): void {
    // Job frames travel hop by hop for every generated token: a frame's last partial TCP
    // segment must not wait on Nagle's algorithm for the previous segment's ACK.
    socket.setNoDelay(true);
    this.handle(socket, socket.remoteAddress ?? 'unknown', connectionKey(socket));
  }

  private handle(socket: Duplex, remote: string, key: string): FrameGuard {
    const guarded = new FrameGuard(socket, this.config.maxPacketBytes, (err) => {
      this.counters.refusedSize++;
      this.deps.log.warn({ remote, bytes: err.remainingLength, limit: err.maxPacketBytes }, 'oversized MQTT packet; connection closed');
    });
    this.addressOf.set(guarded, remote);
    this.keyOf.set(guarded, key);
    this.aedes.handle(guarded);
    return guarded;
  }

  /** Connection rate limit per remote address, over a sliding minute of the injected clock. */
  private admit(client: Client): boolean {
    const remote = this.addressOf.get(client.conn) ?? 'unknown';
    // The in-process stream is this gateway's own client: no one outside can open it.
    if (remote === IN_PROCESS) return true;
    const now = this.deps.clock.now();
    const recent = (this.connects.get(remote) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= this.config.connectsPerMinutePerAddress) {
      this.counters.refusedRate++;
      this.deps.log.warn({ remote, clientId: client.id, limit: this.config.connectsPerMinutePerAddress }, 'too many MQTT connects from one address; refused');
      this.connects.set(remote, recent);
      return false;
    }
    recent.push(now);
    this.connects.set(remote, recent);
    // Bound the table against a sweep of spoofed-looking addresses: forgetting everyone at
    // once only lets each address start a fresh minute.
    if (this.connects.size > 10_000) this.connects.clear();
    return true;
  }

  private async authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): Promise<void> {
    const refuse = (why: string, code = BAD_USERNAME_OR_PASSWORD) => {
      this.counters.refusedAuth++;
      this.deps.log.warn({ clientId: client.id, username, remote: this.addressOf.get(client.conn) }, `MQTT login refused: ${why}`);
      done(authError(why, code), false);
    };
    if (username === undefined || password === undefined) return refuse('no username or password');
    if (username === INTERNAL_USER) {
      const given = Buffer.from(password.toString(), 'base64url');
      if (given.length !== this.internalSecret.length || !timingSafeEqual(given, this.internalSecret)) return refuse('wrong internal secret');
      this.internalClients.add(client);
      this.settlePending(client);
      return done(null, true);
    }
    const entry = this.deps.credentials.nodes[username];
    if (!entry) return refuse('unknown node');
    // The client id is the node id, so a node cannot take over another node's session.
    if (client.id !== username) return refuse(`client id must equal the node id ${username}`, NOT_AUTHORIZED);
    let ok: boolean;
    try {
      ok = await verifyPassword(entry, password.toString('utf8'));
    } catch (err) {
      this.deps.log.error({ clientId: client.id, err: (err as Error).message }, 'password check failed');
      return done(authError('password check failed', SERVER_UNAVAILABLE), false);
    }
    if (!ok) return refuse('wrong password');
    // A node replacing its own session (aedes closes the old one) does not add to the count.
    if (this.sessions.size >= this.config.maxClients && !this.nodeClients.has(username)) {
      this.counters.refusedFull++;
      this.deps.log.warn({ clientId: client.id, limit: this.config.maxClients }, 'MQTT login refused: maxClients node sessions are open');
      return done(authError('server full', SERVER_UNAVAILABLE), false);
    }
    this.settlePending(client);
    // A connection gone during the password check never becomes a session to count.
    if (!client.conn.destroyed) {
      this.sessions.add(client);
      client.conn.once('close', () => this.sessions.delete(client));
    }
    done(null, true);
  }

  private settlePending(client: Client): void {
    const key = this.keyOf.get(client.conn);
    if (key !== undefined) this.pending.settle(key);
  }

  /** `null` is the broker itself (wills, $SYS). */
  private isInternal(client: Client | null): boolean {
    return client === null || this.internalClients.has(client);
  }

  /** An error here makes aedes close the client: a node publishing elsewhere is broken or hostile. */
  private authorizePublish(client: Client | null, topic: string, payload: Buffer | string): Error | null {
    if (this.isInternal(client) || client === null) {
      if (client !== null && typeof payload !== 'string') this.hops.fromGateway(topic, payload);
      return null;
    }
    const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    if (size > this.config.maxPacketBytes) {
      this.counters.refusedSize++;
      this.deps.log.warn({ clientId: client.id, topic, bytes: size }, 'oversized publish refused; client closed');
      return new Error('payload too large');
    }
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const own = !topic.startsWith('$') && this.acl.mayPublish(client.id, topic);
    if (own) this.hops.fromNode(client.id, topic, bytes);
    if (!own && !this.hops.mayHop(client.id, topic, bytes)) {
      this.counters.refusedAcl++;
      this.deps.log.warn({ clientId: client.id, topic }, 'publish outside the node\'s own topics refused; client closed');
      return new Error(`node ${client.id} may not publish to ${topic}`);
    }
    return null;
  }

  /** A refused subscription gets SUBACK 0x80 (MQTT 3.1.1 §3.9.3) and the client stays. */
  private authorizeSubscribe(client: Client, filter: string): boolean {
    if (this.isInternal(client)) return true;
    if (this.acl.maySubscribe(client.id, filter)) return true;
    this.counters.refusedAcl++;
    this.deps.log.warn({ clientId: client.id, filter }, 'subscription outside the node\'s command and job topics refused');
    return false;
  }
}
