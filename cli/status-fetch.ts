// `heliomesh status`'s request: GET /api/nodes of a running gateway, its answer checked.
import { z } from 'zod';

const TIMEOUT_MS = 10_000;

// The gateway's answer is external input like any other: checked before it is printed.
const NodesSchema = z.object({
  /** The gateway's clock, which `lastSeenMs` is on (a demo's runs faster than the wall's). */
  nowMs: z.number().optional(),
  nodes: z.array(z.object({
    node: z.string(),
    group: z.string(),
    online: z.boolean(),
    lastSeenMs: z.number(),
    batteryPct: z.number(),
    gamma: z.union([z.literal(0), z.literal(1)]),
    powerMode: z.number(),
    mode: z.string().nullable(),
    queue: z.number(),
    queueCapacity: z.number(),
    qLim: z.number().nullable(),
    weight: z.number(),
  })),
});

export type StatusNode = z.infer<typeof NodesSchema>['nodes'][number];

/** GET /api/nodes, with errors that say what to do. */
export async function fetchNodes(gateway: string, apiKey: string | undefined): Promise<{ raw: unknown; nodes: StatusNode[]; nowMs: number }> {
  let url: URL;
  try {
    // Relative to the given URL, so a gateway behind a reverse proxy's path prefix works too.
    url = new URL('api/nodes', gateway.endsWith('/') ? gateway : `${gateway}/`);
  } catch {
    throw new Error(`--gateway ${gateway} is not a URL: pass http://HOST:PORT`);
  }
  let res: Response;
  try {
    res = await fetch(url, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS / 1000} s` : e.cause?.code ?? e.cause?.message ?? e.message;
    throw new Error(`cannot reach the gateway at ${url.origin} (${why}): is 'heliomesh gateway' running with its HTTP API there? Pass --gateway http://HOST:PORT (http.port in its config, default 8080)`);
  }
  const text = await res.text();
  if (res.status === 401) {
    throw new Error(`the gateway at ${url.origin} wants its API key: pass --api-key KEY or set HELIOMESH_API_KEY (http.apiKey or http.apiKeyFile in its config)`);
  }
  if (!res.ok) {
    let message = text.slice(0, 200);
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
    } catch {
      // not JSON: the text itself is the best description
    }
    throw new Error(`the gateway at ${url.origin} answered ${res.status}: ${message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${url.href} did not answer with JSON: is that a Heliomesh gateway?`);
  }
  const parsed = NodesSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${url.href} did not answer with the gateway's node list (${z.prettifyError(parsed.error).split('\n')[0]}): are the gateway and this command the same version?`);
  return { raw, nodes: parsed.data.nodes, nowMs: parsed.data.nowMs ?? Date.now() };
}
