// Raw HTTP/1.1 over a socket for the HTTP fuzz test: requests a well-behaved client would
// never send (broken request lines and headers, bodies shorter than they say, a client that
// closes half-way), and a reader that returns whatever the server answered.
import { createConnection } from 'node:net';

export interface RawResponse {
  /** 0 when the server sent no status line. */
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawRequestOptions {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Content-Length to declare; default the body's length (none without a body). */
  contentLength?: number | string | null;
  /** Half-close the socket after writing (a client that gives up mid-request). */
  endEarly?: boolean;
}

/** The bytes of one request; `Connection: close` so the answer ends with the socket. */
export function requestBytes(o: RawRequestOptions): Buffer {
  const body = o.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(o.body) ? o.body : Buffer.from(o.body, 'utf8');
  const headers: Record<string, string> = { host: '127.0.0.1', connection: 'close', ...o.headers };
  const length = o.contentLength === undefined ? (o.body === undefined ? null : body.length) : o.contentLength;
  if (length !== null) headers['content-length'] = String(length);
  const head = `${o.method} ${o.path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Writes `bytes`, optionally half-closes, and reads until the server closes (or `timeoutMs`). */
export function exchange(port: number, bytes: Buffer, endEarly = false, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = createConnection({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('connect', () => {
      socket.write(bytes);
      if (endEarly) socket.end();
    });
    socket.on('data', (b: Buffer) => chunks.push(b));
    socket.on('error', () => {}); // a reset after the answer is still an answer
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseResponse(Buffer.concat(chunks)));
    });
  });
}

function parseResponse(raw: Buffer): RawResponse {
  const text = raw.toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine, ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = end < 0 ? '' : text.slice(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = unchunk(body);
  return { status, headers, body };
}

function unchunk(s: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const eol = s.indexOf('\r\n', i);
    if (eol < 0) return out;
    const size = parseInt(s.slice(i, eol), 16);
    if (!(size > 0)) return out;
    out += s.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
}

/** The value of every `name{labels} value` sample of a Prometheus text exposition, keyed by its label text. */
export function samples(exposition: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    out.set(line.slice(name.length + 1, close), Number(line.slice(close + 1).trim()));
  }
  return out;
}
