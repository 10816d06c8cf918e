// OpenAI's completion and chat-completion request bodies, validated with zod and turned
// into the router's CompletionRequest; and the chat template for models without one.
// Unknown fields are ignored, as SDKs send many; fields whose non-default values would
// change the answer in ways this gateway cannot honour are refused by name.
import { z } from 'zod';
import type { CompletionRequest } from '../jobs.js';
import { ApiError } from './errors.js';

/** The sampler's seed is 32 bits (SplitMix32 in models/head.ts). */
const MAX_SEED = 0xffff_ffff;

const stopSchema = z.union([
  z.string().min(1, 'a stop sequence must not be empty'),
  z.array(z.string().min(1, 'a stop sequence must not be empty')).max(4, 'at most 4 stop sequences'),
], { error: 'stop must be a string or an array of up to 4 strings' }).nullish();

/** Fields shared by both endpoints, with OpenAI's defaults applied later. */
const samplingFields = {
  model: z.string({ error: 'model is required: the id GET /v1/models lists' }).min(1, 'model must not be empty'),
  temperature: z.number({ error: 'temperature must be a number in [0, 2]' }).min(0).max(2).nullish(),
  top_p: z.number({ error: 'top_p must be a number in (0, 1]' }).gt(0).max(1).nullish(),
  seed: z.int({ error: `seed must be an integer in [0, ${MAX_SEED}]` }).min(0).max(MAX_SEED).nullish(),
  stop: stopSchema,
  stream: z.boolean({ error: 'stream must be true or false' }).nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  n: z.int({ error: 'n must be an integer' }).nullish()
    .refine((n) => n == null || n === 1, 'only n = 1 is supported: send one request per completion'),
  user: z.string().optional(),
};

const maxTokens = (field: string) => z.int({ error: `${field} must be a positive integer` }).min(1).nullish();

export const CompletionBodySchema = z.object({
  ...samplingFields,
  prompt: z.union([
    z.string(),
    z.array(z.string()).length(1),
    z.array(z.int().min(0)).min(1),
  ], { error: 'prompt must be a string, a one-element array of strings, or an array of token ids (one prompt per request)' }),
  max_tokens: maxTokens('max_tokens'),
  echo: z.boolean().nullish().refine((e) => !e, 'echo is not supported'),
  best_of: z.int().nullish().refine((b) => b == null || b === 1, 'only best_of = 1 is supported'),
  logprobs: z.unknown().optional().refine((l) => l == null || l === 0 || l === false, 'logprobs are not supported'),
  suffix: z.string().nullish().refine((s) => !s, 'suffix (insertion) is not supported'),
});

const contentPart = z.object({ type: z.literal('text', 'only text content parts are supported'), text: z.string() });

export const ChatBodySchema = z.object({
  ...samplingFields,
  messages: z.array(z.object({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool'], 'role must be system, developer, user, assistant or tool'),
    content: z.union([z.string(), z.array(contentPart)], { error: 'content must be a string or an array of text parts' }).nullable(),
    name: z.string().optional(),
  }), { error: 'messages must be an array of {role, content}' }).min(1, 'messages must hold at least one message'),
  max_tokens: maxTokens('max_tokens'),
  max_completion_tokens: maxTokens('max_completion_tokens'),
  logprobs: z.boolean().nullish().refine((l) => !l, 'logprobs are not supported'),
  tools: z.array(z.unknown()).nullish().refine((t) => !t || t.length === 0, 'tools are not supported'),
});

export type CompletionBody = z.infer<typeof CompletionBodySchema>;
export type ChatBody = z.infer<typeof ChatBodySchema>;
export type ChatMessage = ChatBody['messages'][number];

/** Parses a body or throws a 400 naming the first offending field. */
export function parseBody<T>(schema: z.ZodType<T>, raw: unknown): T {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ApiError(400, 'the body must be a JSON object', 'invalid_request_error', null, 'invalid_body');
  }
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  throw new ApiError(400, param ? `${param}: ${issue.message}` : issue.message, 'invalid_request_error', param, 'invalid_value');
}

/** Generation ends at the next turn of the user: the line `user:` after the reply. */
export const CHAT_TURN_STOP = '\nuser:';

/**
 * The chat template for a model trained without one (the bundled character-level model):
 * every message on its own line as `role: content`, then `assistant:` for the model to
 * continue. For example [{system: "Be brief."}, {user: "Hello"}] becomes
 * "system: Be brief.\nuser: Hello\nassistant:". The reply ends at CHAT_TURN_STOP.
 */
export function chatPrompt(messages: ChatMessage[]): string {
  return messages.map((m) => `${m.role}: ${messageText(m.content)}\n`).join('') + 'assistant:';
}

function messageText(c: ChatMessage['content']): string {
  return c === null ? '' : typeof c === 'string' ? c : c.map((p) => p.text).join('');
}

function stops(stop: string | string[] | null | undefined): string[] {
  return stop == null ? [] : typeof stop === 'string' ? [stop] : stop;
}

function sampling(body: CompletionBody | ChatBody, seed: () => number): Pick<CompletionRequest, 'temperature' | 'topP' | 'seed'> {
  // OpenAI's defaults: temperature 1, top_p 1. Without a seed one is drawn, and the
  // response reports it so the completion can be reproduced.
  return { temperature: body.temperature ?? 1, topP: body.top_p ?? 1, seed: body.seed ?? seed() };
}

/** OpenAI's default for max_tokens on /v1/completions. */
export const DEFAULT_COMPLETION_TOKENS = 16;

export function completionRequest(body: CompletionBody, seed: () => number): CompletionRequest {
  const p = body.prompt;
  const prompt = typeof p === 'string' ? p : typeof p[0] === 'string' ? p[0] : { ids: p as number[] };
  return { prompt, maxTokens: body.max_tokens ?? DEFAULT_COMPLETION_TOKENS, stop: stops(body.stop), ...sampling(body, seed) };
}

/**
 * Without a limit a chat reply may fill the rest of the context, as OpenAI's "inf" does;
 * `promptTokens` counts the templated prompt with the model's tokenizer.
 */
export function chatRequest(body: ChatBody, promptTokens: (text: string) => number, contextLength: number, seed: () => number,
  templated?: (messages: { role: string; content: string }[]) => number[] | undefined): CompletionRequest {
  // A model with its own chat template (GGUF tokenizer.chat_template) gets it, and stops at
  // its own turn-end tokens; the `role: content` form is for models that have none.
  const ids = templated?.(body.messages.map((m) => ({ role: m.role, content: messageText(m.content) })));
  if (ids) {
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? Math.max(1, contextLength - ids.length);
    return { prompt: { ids }, maxTokens, stop: stops(body.stop), ...sampling(body, seed) };
  }
  const prompt = chatPrompt(body.messages);
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? Math.max(1, contextLength - promptTokens(prompt));
  return { prompt, maxTokens, stop: [...stops(body.stop), CHAT_TURN_STOP], ...sampling(body, seed) };
}
