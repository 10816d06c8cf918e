// Raw MQTT 3.1.1 bytes for the fuzz tests: what a broken or hostile client can put on the
// wire that a well-behaved client library would never send (a PUBLISH before CONNECT, a
// CONNECT followed at once by a PUBLISH, a Remaining Length beyond the broker's limit).
import { createConnection } from 'node:net';
import { scryptSync, randomBytes } from 'node:crypto';
import type { CredentialEntry } from '../../gateway/broker/index.js';

/** §2.2.3: 7 bits per byte, least significant first, high bit = more bytes follow. */
export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** §1.5.3: a UTF-8 string with a two-byte length prefix. */
function utf8(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/** §3.3: PUBLISH at QoS 0 (no packet identifier). */
export function publishPacket(topic: string, payload: Buffer): Buffer {
  const body = Buffer.concat([utf8(topic), payload]);
  return Buffer.concat([Buffer.from([0x30]), remainingLength(body.length), body]);
}

/** §3.1: CONNECT, protocol level 4, clean session, with username and password. */
export function connectPacket(clientId: string, username: string, password: string, keepaliveS = 60): Buffer {
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(keepaliveS);
  // Flags: username (0x80), password (0x40), clean session (0x02).
  const variable = Buffer.concat([utf8('MQTT'), Buffer.from([4, 0xc2]), keepalive]);
  const body = Buffer.concat([variable, utf8(clientId), utf8(username), utf8(password)]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

export interface RawOutcome {
  /** Whether the broker closed the connection before the timeout. */
  closed: boolean;
  /** Bytes the broker sent back. */
  received: Buffer;
}

/** Writes `bytes` (nothing when empty) and waits until the broker closes the socket or `timeoutMs`. */
export function sendRaw(port: number, bytes: Buffer, timeoutMs: number): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = createConnection({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, received: Buffer.concat(chunks) });
    }, timeoutMs);
    socket.on('connect', () => {
      if (bytes.length > 0) socket.write(bytes);
    });
    socket.on('data', (b: Buffer) => chunks.push(b));
    socket.on('error', () => {}); // a reset is one way of being closed
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received: Buffer.concat(chunks) });
    });
  });
}

/**
 * A credentials entry with scrypt at N = 1024 (the file format's minimum): thousands of
 * connects stay affordable in a fuzz run. The default cost is the security tests' concern.
 */
export function cheapEntry(password: string): CredentialEntry {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N: 1024, r: 8, p: 1 });
  return { kdf: 'scrypt', N: 1024, r: 8, p: 1, salt: salt.toString('base64'), hash: hash.toString('base64') };
}
