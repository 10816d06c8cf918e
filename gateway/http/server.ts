// The gateway's HTTP API on Node's own `node:http`. A dozen fixed routes, JSON in and out,
// one SSE stream: a framework would add more code to a Raspberry Pi gateway than it saves
// here. Routing, the optional bearer key, CORS, and the error shape live in this file; the
// routes' bodies live beside it. No input can crash the server: every handler runs inside
// one try/catch that answers in OpenAI's error shape and counts the refusal.
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Clock, Timer } from '../../ground/clock.js';
import { declaredLength, readJson } from './body.js';
import { serveCompletion, type CompletionDeps } from './completions.js';
import type { HttpConfig } from './config.js';
import { ApiError, internal } from './errors.js';
import { ApiMetrics, CLIENT_LEFT } from './metrics.js';
import { sendJson } from './respond.js';
import { health, nodeViews, type GatewaySources } from './views.js';

export interface HttpApiDeps {
  clock: Clock;
  log: Logger;
  /** The bearer token to require (from http.apiKey or the file http.apiKeyFile names). */
  apiKey?: string;
  /** Seeds for requests without one; random by default. */
  seed?: () => number;
}

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: string[];
}

type Handler = (x: Exchange) => Promise<void> | void;

interface Route {
  /** The pattern as it appears in the request metric's `route` label. */
  name: string;
  match: RegExp;
  methods: Partial<Record<'GET' | 'POST', Handler>>;
  /** Answered without the API key (health checks by load balancers and service managers). */
  open?: boolean;
}

const JobsQuery = z.object({
  limit: z.coerce.number({ error: 'limit must be an integer in [1, 1000]' }).int().min(1).max(1000).default(20),
});

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class HttpApi {
  readonly metrics: ApiMetrics;
  private readonly server: Server;
  private readonly routes: Route[];
  private readonly keyDigest: Buffer | undefined;
  private readonly completion: CompletionDeps;
  private boundPort = 0;
  /** Responses not yet finished or abandoned. */
  private readonly inFlight = new Set<ServerResponse>();
  private closed: Promise<void> | undefined;

  private constructor(private readonly config: HttpConfig, private readonly sources: GatewaySources, private readonly deps: HttpApiDeps) {
    this.metrics = new ApiMetrics(sources);
    this.keyDigest = deps.apiKey === undefined ? undefined : digest(deps.apiKey);
    this.completion = { jobs: sources.jobs, clock: deps.clock, log: deps.log, seed: deps.seed ?? (() => randomInt(0, 2 ** 31)) };
    this.routes = this.table();
    this.server = createServer({
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      keepAliveTimeout: config.keepAliveTimeoutMs,
      // Node checks the two request timeouts on this period (30 s by default, which let a
      // slow client stay half a minute past them): four checks per headersTimeoutMs close
      // a slow client within a quarter of its timeout past it.
      connectionsCheckingInterval: Math.max(1, Math.floor(config.headersTimeoutMs / 4)),
    }, (req, res) => void this.handle(req, res));
    this.server.maxConnections = config.maxConnections;
    this.server.on('drop', () => this.metrics.connectionDropped());
    // HTTP/1.1 frames a request by its length, never by the connection's end: a client that
    // half-closes (sends its FIN) after a complete request is done sending, not gone, and
    // gets its answer; the connection ends after it. Node's default instead ends our side
    // at once, so the answer had nowhere to go and the job was cancelled. A client that is
    // really gone shows as the response's 'close' before it finished (a write meets its reset).
    Object.assign(this.server, { httpAllowHalfOpen: true });
    // `Expect: 100-continue` (curl sends it for bodies over 1 KiB): a body declared too large
    // is refused before the client sends it, and the connection closed, since the client
    // may then either send nothing or send it anyway.
    this.server.on('checkContinue', (req, res) => {
      if ((declaredLength(req) ?? 0) > config.maxBodyBytes) res.shouldKeepAlive = false;
      else res.writeContinue();
      void this.handle(req, res);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Unparseable HTTP never reaches a route; it still counts as a bad request. So does a
      // head or request not complete within headersTimeoutMs or requestTimeoutMs (408).
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      this.metrics.request('unparsed', 'other', status);
      if (socket.writable) socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\n\r\n`);
      else socket.destroy();
    });
  }

  static async start(config: HttpConfig, sources: GatewaySources, deps: HttpApiDeps): Promise<HttpApi> {
    const api = new HttpApi(config, sources, deps);
    await new Promise<void>((resolve, reject) => {
      api.server.once('error', (err) => reject(new Error(`cannot listen for HTTP on ${config.host}:${config.port}: ${err.message} (choose another http.port or --http-port)`)));
      api.server.listen(config.port, config.host, () => resolve());
    });
    const addr = api.server.address();
    api.boundPort = typeof addr === 'object' && addr ? addr.port : config.port;
    deps.log.info({ host: config.host, port: api.boundPort, apiKey: api.keyDigest !== undefined }, 'HTTP API listening');
    return api;
  }

  /** The port actually bound (useful when configured as 0). */
  get port(): number {
    return this.boundPort;
  }

  /**
   * Stops taking connections. Requests in flight go on, so that a gateway shutting down can
   * answer them (a 503, or an error event on a stream) before `close` ends the connections.
   */
  stopAccepting(): void {
    this.closed ??= new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Stops listening, waits up to `graceMs` of the clock's time for the answers in flight to
   * go out, then ends every connection; a stream still open then cancels its job.
   */
  async close(graceMs = 2_000): Promise<void> {
    this.stopAccepting();
    const answered = [...this.inFlight].map((res) => new Promise<void>((resolve) => res.once('close', () => resolve())));
    let grace: Timer | undefined;
    await Promise.race([Promise.all(answered), new Promise<void>((resolve) => (grace = this.deps.clock.setTimeout(resolve, graceMs)))]);
    grace?.cancel();
    this.server.closeAllConnections();
    await this.closed;
  }

  private table(): Route[] {
    const { sources, completion } = this;
    const post = (kind: 'text' | 'chat'): Handler => async (x) => serveCompletion(kind, await readJson(x.req, this.config.maxBodyBytes), x.req, x.res, completion);
    const model = () => {
      const m = sources.jobs.model;
      return { id: m.id, object: 'model', created: m.createdS, owned_by: 'heliomesh', context_length: m.contextLength, vocab_size: m.vocabSize };
    };
    return [
      { name: '/v1/completions', match: /^\/v1\/completions$/, methods: { POST: post('text') } },
      { name: '/v1/chat/completions', match: /^\/v1\/chat\/completions$/, methods: { POST: post('chat') } },
      { name: '/v1/models', match: /^\/v1\/models$/, methods: { GET: (x) => sendJson(x.res, 200, { object: 'list', data: [model()] }) } },
      {
        name: '/v1/models/:id', match: /^\/v1\/models\/([^/]+)$/, methods: {
          GET: (x) => {
            if (x.params[0] !== sources.jobs.model.id) throw new ApiError(404, `no model '${x.params[0]}' here; GET /v1/models lists the one served`, 'invalid_request_error', 'model', 'model_not_found');
            sendJson(x.res, 200, model());
          },
        },
      },
      { name: '/api/nodes', match: /^\/api\/nodes$/, methods: { GET: (x) => sendJson(x.res, 200, { nowMs: this.deps.clock.now(), nodes: nodeViews(sources.registry) }) } },
      {
        name: '/api/jobs', match: /^\/api\/jobs$/, methods: {
          GET: (x) => {
            const q = JobsQuery.safeParse(Object.fromEntries(x.url.searchParams));
            if (!q.success) throw new ApiError(400, `limit: ${q.error.issues[0]!.message}`, 'invalid_request_error', 'limit', 'invalid_value');
            sendJson(x.res, 200, { jobs: sources.jobs.recent(q.data.limit) });
          },
        },
      },
      {
        name: '/api/jobs/:id', match: /^\/api\/jobs\/([^/]+)$/, methods: {
          GET: (x) => {
            const job = sources.jobs.job(x.params[0]!);
            if (!job) throw new ApiError(404, `no job '${x.params[0]}': GET /api/jobs lists the recent ones`, 'not_found_error', 'id', 'job_not_found');
            sendJson(x.res, 200, job);
          },
        },
      },
      { name: '/api/scheduler', match: /^\/api\/scheduler$/, methods: { GET: (x) => sendJson(x.res, 200, sources.jobs.scheduler()) } },
      {
        name: '/healthz', match: /^\/healthz$/, open: true, methods: {
          GET: (x) => {
            const h = health(sources, this.deps.clock.now());
            sendJson(x.res, h.status, h.body);
          },
        },
      },
      {
        name: '/metrics', match: /^\/metrics$/, methods: {
          GET: async (x) => {
            const m = await this.metrics.exposition();
            x.res.writeHead(200, { 'content-type': m.contentType }).end(m.body);
          },
        },
      },
    ];
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let routeName = 'unmatched';
    this.inFlight.add(res);
    res.once('close', () => {
      this.inFlight.delete(res);
      this.metrics.request(routeName, method, res.headersSent ? res.statusCode : CLIENT_LEFT);
    });
    try {
      this.cors(req, res);
      const url = new URL(req.url ?? '/', 'http://gateway');
      let params: string[] = [];
      const route = this.routes.find((r) => {
        const m = r.match.exec(url.pathname);
        if (m) params = m.slice(1);
        return m !== null;
      });
      if (!route) throw new ApiError(404, `no route ${method} ${url.pathname}: see docs/gateway.md, HTTP API`, 'not_found_error', null, 'unknown_route');
      routeName = route.name;
      const allowed = Object.keys(route.methods).join(', ');
      if (method === 'OPTIONS' && this.config.cors) {
        res.writeHead(204, { 'access-control-allow-methods': `${allowed}, OPTIONS`, 'access-control-allow-headers': 'authorization, content-type', 'access-control-max-age': '600' }).end();
        return;
      }
      if (!route.open) this.authorize(req);
      const handler = route.methods[method as 'GET' | 'POST'];
      if (!handler) throw new ApiError(405, `${route.name} takes ${allowed}, not ${method}`, 'invalid_request_error', null, 'method_not_allowed', { allow: allowed });
      params = params.map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          throw new ApiError(400, `the path segment '${p}' is not valid percent-encoding`, 'invalid_request_error', null, 'invalid_path');
        }
      });
      await handler({ req, res, url, params });
    } catch (err) {
      this.fail(req, res, err);
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const api = err instanceof ApiError ? err : internal();
    if (res.destroyed && err instanceof ApiError) {
      // The client left first (its job was cancelled): nobody to answer, nothing went wrong here.
      this.deps.log.debug({ path: req.url, err: api.message }, 'HTTP client gone before its answer');
      return;
    }
    if (api.status >= 500) this.deps.log.error({ path: req.url, status: api.status, err: err instanceof Error ? err.stack ?? err.message : String(err) }, 'HTTP request failed');
    else this.deps.log.debug({ path: req.url, status: api.status, err: api.message }, 'HTTP request refused');
    if (res.destroyed) return;
    if (res.headersSent) {
      res.end();
      return;
    }
    sendJson(res, api.status, api.body(), api.headers);
  }

  /** Bearer token check over equal-length SHA-256 digests, so timing reveals neither the key nor its length. */
  private authorize(req: IncomingMessage): void {
    if (!this.keyDigest) return;
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const challenge = { 'www-authenticate': 'Bearer realm="heliomesh"' };
    if (!m) throw new ApiError(401, 'an API key is required: send Authorization: Bearer <key>', 'authentication_error', null, 'missing_api_key', challenge);
    if (!timingSafeEqual(digest(m[1]!), this.keyDigest)) throw new ApiError(401, 'the API key is wrong', 'authentication_error', null, 'invalid_api_key', challenge);
  }

  private cors(req: IncomingMessage, res: ServerResponse): void {
    const origins = this.config.cors?.origins;
    const origin = req.headers.origin;
    if (!origins || !origin) return;
    if (origins.includes('*')) res.setHeader('access-control-allow-origin', '*');
    else if (origins.includes(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
    }
  }
}
