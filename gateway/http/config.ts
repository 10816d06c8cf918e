// The HTTP API's configuration (`http:` in the gateway config), validated at the edge.
// `apiKeyFile` is read by the composition root, like every other file the config names.
import { z } from 'zod';

export const HttpConfigSchema = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(8080),
  /** Bearer token every route but /healthz requires. Prefer `apiKeyFile` outside tests. */
  apiKey: z.string().min(16, 'http.apiKey must be at least 16 characters').optional(),
  /** A file holding the API key (surrounding whitespace ignored). */
  apiKeyFile: z.string().min(1).optional(),
  /** Largest request body accepted; larger ones get 413. */
  maxBodyBytes: z.number().int().positive().default(1024 * 1024),
  /** Browser origins allowed to call the API ('*' for any); absent: no CORS headers. */
  cors: z.strictObject({ origins: z.array(z.string().min(1)).min(1) }).optional(),
  /**
   * A request's head must have arrived this long after the connection opened (on a
   * kept-alive one, after the next request's first byte), or it gets 408 and the connection
   * is closed. A head is at most 16 KiB (Node's limit): under 3 s even at 50 kbit/s.
   */
  headersTimeoutMs: z.number().int().positive().default(10_000),
  /** The whole request, body included (at most maxBodyBytes), must have arrived by then: 1 MiB in 30 s is 280 kbit/s. */
  requestTimeoutMs: z.number().int().positive().default(30_000),
  /**
   * An idle kept-alive connection is closed this long after its last answer (Node's default;
   * clients are told it in `Keep-Alive: timeout=`, and Node allows 1 s more for a request
   * already on its way).
   */
  keepAliveTimeoutMs: z.number().int().positive().default(5_000),
  /**
   * Open connections at most; more are closed at once, unanswered. Each costs a file
   * descriptor and socket buffers: with the broker's sessions and pending connections (500
   * each by default) the gateway stays far inside the service's LimitNOFILE of 65536.
   */
  maxConnections: z.number().int().positive().default(1000),
}).refine((c) => !(c.apiKey && c.apiKeyFile), { message: 'set http.apiKey or http.apiKeyFile, not both' })
  .refine((c) => c.headersTimeoutMs <= c.requestTimeoutMs, { message: 'http.headersTimeoutMs must not exceed http.requestTimeoutMs: the head is part of the request', path: ['headersTimeoutMs'] });

export type HttpConfig = z.infer<typeof HttpConfigSchema>;
export type HttpConfigInput = z.input<typeof HttpConfigSchema>;
