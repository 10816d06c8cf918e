// Errors in OpenAI's shape, `{error: {message, type, param, code}}`, so SDKs show them as
// they show OpenAI's own. Every refusal the API makes is an ApiError; anything else that
// reaches the top is a 500 whose details stay in the log.
import { JobError } from '../jobs.js';

export type ApiErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (Allow, WWW-Authenticate). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { error: { message: string; type: ApiErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A JobError as an ApiError; anything else is a bug, passed on for the log. */
export function asApiError(err: unknown): unknown {
  return err instanceof JobError ? fromJobError(err) : err;
}

/** A failed or refused job as the caller should see it: which group, and what to do. */
export function fromJobError(err: JobError): ApiError {
  switch (err.kind) {
    case 'bad-request':
      return new ApiError(400, err.message, 'invalid_request_error', null, 'invalid_request');
    case 'no-node': {
      // The router's own messages name the group already; others get it in front.
      const named = !err.group || err.message.includes(`group ${err.group}`);
      // RFC 9110 §10.2.3: a client may come back after the group's first planned wake.
      if (err.retryAfterS !== undefined) {
        return new ApiError(503, named ? err.message : `group ${err.group} is asleep: ${err.message}`, 'server_error', null, 'group_asleep',
          { 'retry-after': String(err.retryAfterS) });
      }
      return new ApiError(503, named ? err.message : `group ${err.group} has no available node: ${err.message}`,
        'server_error', null, 'no_available_node');
    }
    case 'timeout':
      return new ApiError(504, err.message, 'server_error', null, 'timeout');
    case 'cancelled':
      return new ApiError(503, `the job was cancelled: ${err.message}`, 'server_error', null, 'cancelled');
    case 'shutdown':
      return new ApiError(503, `the gateway is shutting down: ${err.message}`, 'server_error', null, 'shutdown');
    default:
      return internal();
  }
}

export function internal(): ApiError {
  return new ApiError(500, 'internal error in the gateway; its log has the details', 'server_error', null, 'internal_error');
}
