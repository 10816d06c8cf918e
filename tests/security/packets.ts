// Hand-made MQTT 3.1.1 packets, for what a well-behaved client library would never send:
// pipelined packets after a refused CONNECT, announced lengths far over the limit.
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';

/** MQTT 3.1.1 §1.5.3: a two-byte length, then UTF-8. */
export function mqttString(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

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

export function packet(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(body.length), body]);
}

/** CONNECT (§3.1): protocol "MQTT" level 4, clean session, keep-alive 60 s, optional username and password. */
export function connectPacket(clientId: string, username?: string, password?: string): Buffer {
  const flags = 0x02 | (username !== undefined ? 0x80 : 0) | (password !== undefined ? 0x40 : 0);
  const parts = [mqttString('MQTT'), Buffer.from([4, flags, 0, 60]), mqttString(clientId)];
  if (username !== undefined) parts.push(mqttString(username));
  if (password !== undefined) parts.push(mqttString(password));
  return packet(0x10, Buffer.concat(parts));
}

/** PUBLISH at QoS 0 (§3.3): no packet id. */
export function publishPacket(topic: string, payload: Buffer | string): Buffer {
  return packet(0x30, Buffer.concat([mqttString(topic), Buffer.from(payload)]));
}

export interface RawConnection {
  socket: Socket;
  /** Every byte the broker sent, until it closed the connection. */
  received(): Buffer;
  closed: Promise<void>;
}

export async function rawConnect(port: number): Promise<RawConnection> {
  const socket = netConnect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => undefined);
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
}
