// A POST body read as JSON, with the refusals a client can act on: 415 for another content
// type, 413 past the size limit (checked against Content-Length before reading, and again
// as bytes arrive, for chunked bodies), 400 for an empty body or one that is not JSON.
import type { IncomingMessage } from 'node:http';
import { ApiError } from './errors.js';

export async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(415, `the body must be JSON: send Content-Type: application/json (got ${type === '' ? 'none' : `'${type}'`})`,
      'invalid_request_error', null, 'unsupported_media_type');
  }
  const tooLarge = () => new ApiError(413, `the body is larger than ${maxBytes} bytes (http.maxBodyBytes)`,
    'invalid_request_error', null, 'body_too_large', { connection: 'close' });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  if (size === 0) throw new ApiError(400, 'the body is empty: send a JSON object', 'invalid_request_error', null, 'invalid_json');
  try {
    return JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as unknown;
  } catch (err) {
    throw new ApiError(400, `the body is not valid JSON: ${(err as Error).message}`, 'invalid_request_error', null, 'invalid_json');
  }
}
