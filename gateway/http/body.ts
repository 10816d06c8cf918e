// A POST body read as JSON, with the refusals a client can act on: 415 for another content
// type, 413 past the size limit (checked against Content-Length before reading, and again
// as bytes arrive, for chunked bodies), 400 for an empty body or one that is not JSON.
//
// A body refused for its size is still read to its end and thrown away, not cut off:
// closing a socket the client is still writing to makes its kernel answer with a reset,
// which can discard our 413 before the client reads it. Node's request timeout bounds how
// long such a drain may last.
import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.js';

export function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `the body is larger than ${maxBytes} bytes (http.maxBodyBytes)`, 'invalid_request_error', null, 'body_too_large');
}

/** Content-Length, when the request declares one. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const n = Number(req.headers['content-length']);
  return req.headers['content-length'] !== undefined && Number.isFinite(n) ? n : undefined;
}

export function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    return Promise.reject(new ApiError(415, `the body must be JSON: send Content-Type: application/json (got ${type === '' ? 'none' : `'${type}'`})`,
      'invalid_request_error', null, 'unsupported_media_type'));
  }
  if ((declaredLength(req) ?? 0) > maxBytes) return Promise.reject(tooLarge(maxBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > maxBytes) {
        refused = true;
        chunks.length = 0;
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (refused) return;
      if (size === 0) return reject(new ApiError(400, 'the body is empty: send a JSON object', 'invalid_request_error', null, 'invalid_json'));
      try {
        resolve(JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as unknown);
      } catch (err) {
        reject(new ApiError(400, `the body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', null, 'invalid_json'));
      }
    });
    // The client went away mid-body: nobody is left to answer.
    req.on('close', () => {
      if (!req.complete) reject(new ApiError(400, 'the client closed the connection before sending the whole body', 'invalid_request_error', null, 'incomplete_body'));
    });
  });
}
