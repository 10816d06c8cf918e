// POST /v1/completions and POST /v1/chat/completions: the body becomes a job; the answer
// is OpenAI's response object, or with `stream: true` server-sent events, one `data:` line
// per chunk and a final `data: [DONE]`. Both carry `usage` and a `heliomesh` block with
// the job's energy, latency, failovers and the nodes that served it. A client that goes
// away before its answer is complete cancels its job, so no node works for nobody.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Clock } from '../../ground/clock.js';
import type { CompletionRequest, JobHandle, JobService, JobSummary } from '../jobs.js';
import { ApiError, asApiError, internal } from './errors.js';
import { ChatBodySchema, CompletionBodySchema, chatRequest, completionRequest, parseBody } from './openai.js';
import { sendJson } from './respond.js';

export interface CompletionDeps {
  jobs: JobService;
  clock: Clock;
  log: Logger;
  /** Draws a seed for requests that give none. */
  seed: () => number;
}

type Kind = 'text' | 'chat';

interface Prepared {
  request: CompletionRequest;
  stream: boolean;
}

function prepare(kind: Kind, raw: unknown, deps: CompletionDeps): Prepared {
  const { jobs } = deps;
  const check = (model: string) => {
    if (model !== jobs.model.id) {
      throw new ApiError(404, `the model '${model}' is not served here; GET /v1/models lists '${jobs.model.id}'`,
        'invalid_request_error', 'model', 'model_not_found');
    }
  };
  if (kind === 'text') {
    const body = parseBody(CompletionBodySchema, raw);
    check(body.model);
    return { request: completionRequest(body, deps.seed), stream: body.stream ?? false };
  }
  const body = parseBody(ChatBodySchema, raw);
  check(body.model);
  const request = chatRequest(body, (t) => jobs.encode(t).length, jobs.model.contextLength, deps.seed, (m) => jobs.chatIds(m));
  return { request, stream: body.stream ?? false };
}

/** What we add to every completion response. */
export function heliomeshBlock(job: JobSummary, seed: number) {
  return {
    job_id: job.id,
    energy_j: job.energyJ,
    energy_uncertainty_j: job.energyUncertaintyJ ?? null,
    latency_ms: job.latencyMs ?? null,
    failovers: job.failovers,
    served: job.served.map((s) => ({ group: s.group, nodes: [...s.nodes] })),
    seed,
  };
}

function usage(job: JobSummary) {
  return { prompt_tokens: job.promptTokens, completion_tokens: job.completionTokens, total_tokens: job.promptTokens + job.completionTokens };
}

function choice(kind: Kind, text: string, finish: JobSummary['finishReason'] | null, stream: boolean) {
  const finish_reason = finish ?? null;
  if (kind === 'text') return { index: 0, text, logprobs: null, finish_reason };
  if (stream) return { index: 0, delta: text === '' ? {} : { content: text }, logprobs: null, finish_reason };
  return { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason };
}

export async function serveCompletion(kind: Kind, raw: unknown, req: IncomingMessage, res: ServerResponse, deps: CompletionDeps): Promise<void> {
  const { request, stream } = prepare(kind, raw, deps);
  // A client that left while its body was read would never cancel the job below.
  if (res.destroyed) throw new ApiError(400, 'the client closed the connection before its job began', 'invalid_request_error', null, 'client_gone');
  let handle: JobHandle;
  try {
    handle = deps.jobs.submit(request);
  } catch (err) {
    throw asApiError(err);
  }
  // 'close' on the response: the socket is gone, or the answer was sent; only the first
  // of those leaves the job unfinished. A client that only half-closed after its request is
  // still listening (server.ts): its socket is gone only once a write to it fails.
  res.once('close', () => {
    if (!res.writableFinished) {
      deps.log.info({ job: handle.id, path: req.url }, 'client went away; cancelling its job');
      handle.cancel('the client disconnected');
    }
  });
  const head = {
    id: handle.id,
    object: kind === 'text' ? 'text_completion' : stream ? 'chat.completion.chunk' : 'chat.completion',
    created: Math.floor(deps.clock.now() / 1000),
    model: deps.jobs.model.id,
  };
  if (!stream) {
    let job: JobSummary;
    try {
      job = await handle.done;
    } catch (err) {
      throw asApiError(err);
    }
    const body = { ...head, choices: [choice(kind, job.text, job.finishReason, false)], usage: usage(job), heliomesh: heliomeshBlock(job, request.seed) };
    sendJson(res, 200, body);
    return;
  }
  await streamJob(kind, handle, head, request, res, deps);
}

/** An SSE comment this often keeps proxies from closing a stream whose job waits for a node. */
const HEARTBEAT_MS = 15_000;

async function streamJob(kind: Kind, handle: JobHandle, head: object, request: CompletionRequest, res: ServerResponse, deps: CompletionDeps): Promise<void> {
  const { log } = deps;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    // Proxies such as nginx would otherwise hold tokens back in their buffers.
    'x-accel-buffering': 'no',
  });
  const send = (data: unknown) => {
    if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  if (kind === 'chat') send({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
  // The router holds back text that may begin a stop sequence (gateway/router/text.ts), so
  // every token it reports is final and the stream never runs past the final text.
  let streamed = '';
  handle.onToken((t) => {
    if (t.text === '') return;
    streamed += t.text;
    send({ ...head, choices: [choice(kind, t.text, null, true)] });
  });
  const heartbeat = deps.clock.setInterval(() => {
    if (!res.destroyed) res.write(': waiting\n\n');
  }, HEARTBEAT_MS);
  let job: JobSummary;
  try {
    job = await handle.done;
  } catch (err) {
    heartbeat.cancel();
    // The status line has gone out; the error travels as an event, in OpenAI's shape.
    const api = asApiError(err);
    if (!(api instanceof ApiError)) log.error({ job: handle.id, err: err instanceof Error ? err.stack ?? err.message : String(err) }, 'job failed mid-stream');
    if (!res.destroyed) {
      send((api instanceof ApiError ? api : internal()).body());
      res.end();
    }
    return;
  }
  heartbeat.cancel();
  // Text the tokens did not carry (a tokenizer's last partial piece) goes with the final chunk.
  const consistent = job.text.startsWith(streamed);
  if (!consistent) log.warn({ job: job.id }, 'the streamed tokens and the job\'s final text differ');
  const rest = consistent ? job.text.slice(streamed.length) : '';
  send({ ...head, choices: [choice(kind, rest, job.finishReason, true)], usage: usage(job), heliomesh: heliomeshBlock(job, request.seed) });
  if (!res.destroyed) res.end('data: [DONE]\n\n');
}
