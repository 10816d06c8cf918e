// Refuses oversized MQTT packets before they are buffered. aedes' parser (mqtt-packet) reads
// a packet whole before anyone can look at it, and the Remaining Length field allows
// 256 MiB (MQTT 3.1.1 §2.2.3), so a single client could make the gateway hold that much.
// This Duplex sits between the connection (a TCP or TLS socket, or a WebSocket's byte
// stream) and aedes: it reads each fixed header's Remaining Length as the bytes stream past
// and closes the connection as soon as one exceeds the limit. The bytes themselves pass
// through untouched.
import { Socket } from 'node:net';
import { Duplex } from 'node:stream';

export class PacketTooLargeError extends Error {
  constructor(readonly remainingLength: number, readonly maxPacketBytes: number) {
    super(`MQTT packet of ${remainingLength} bytes exceeds the ${maxPacketBytes}-byte limit`);
  }
}

export class FrameGuard extends Duplex {
  // Scanner state: skipping a body, or reading a fixed header (§2.2).
  private skip = 0;
  private inHeader = false;
  private lengthValue = 0;
  private lengthShift = 0;
  /** Set once this connection was closed for an oversized packet. */
  refused = false;

  constructor(readonly socket: Duplex, readonly maxPacketBytes: number, private readonly onRefused: (err: PacketTooLargeError) => void) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => {
      const err = this.scan(chunk);
      if (err) {
        this.refused = true;
        this.onRefused(err);
        socket.destroy();
        this.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  // aedes writes each packet as several small chunks under cork() (mqtt-packet's
  // writeToStream). Forwarding them one `write` at a time sent one small TCP segment per
  // chunk, and Nagle's algorithm then held each one back for the peer's delayed ACK: the
  // broker idled at a tenth of plain aedes' rate. A socket gets the batch corked, so it
  // leaves in one writev as it would from a bare socket; a WebSocket stream gets it joined,
  // so a packet is one WebSocket message rather than one message per chunk.
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (!(this.socket instanceof Socket)) {
      this.afterWrite(this.socket.write(Buffer.concat(chunks.map((c) => c.chunk))), cb);
      return;
    }
    this.socket.cork();
    let ok = true;
    for (const { chunk } of chunks) ok = this.socket.write(chunk);
    this.socket.uncork();
    this.afterWrite(ok, cb);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.afterWrite(this.socket.write(chunk), cb);
  }

  /**
   * Acknowledges at once while the socket has room, and on its 'drain' when it has not: the
   * socket's back-pressure reaches aedes (and its drainTimeout) without waiting for every
   * chunk to reach the kernel first.
   */
  private afterWrite(socketHasRoom: boolean, cb: (err?: Error | null) => void): void {
    if (socketHasRoom) cb();
    else this.socket.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }

  private scan(chunk: Buffer): PacketTooLargeError | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i++] as number;
      if (!this.inHeader) {
        // First byte: packet type and flags; the Remaining Length follows.
        this.inHeader = true;
        this.lengthValue = 0;
        this.lengthShift = 0;
        continue;
      }
      // §2.2.3: 7 bits per byte, least significant first, high bit = more bytes follow.
      this.lengthValue += (byte & 0x7f) * 2 ** this.lengthShift;
      this.lengthShift += 7;
      if (byte & 0x80 && this.lengthShift < 28) continue;
      this.inHeader = false;
      if (this.lengthValue > this.maxPacketBytes) return new PacketTooLargeError(this.lengthValue, this.maxPacketBytes);
      this.skip = this.lengthValue;
    }
    return undefined;
  }
}
