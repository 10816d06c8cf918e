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
}).refine((c) => !(c.apiKey && c.apiKeyFile), { message: 'set http.apiKey or http.apiKeyFile, not both' });

export type HttpConfig = z.infer<typeof HttpConfigSchema>;
export type HttpConfigInput = z.input<typeof HttpConfigSchema>;
