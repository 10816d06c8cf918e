// The two ends of an in-memory byte stream, for the gateway's own MQTT client of its
// embedded broker. Over loopback TCP every packet between the two costs a write and a read
// system call in this one process, and on a job's critical path that was two of the three
// socket writes of each hop. Node 20 has no stream.duplexPair (it came in Node 22.6), so
// this is the small part of it we need: bytes written on one end are read, in order, from
// the other on the next tick, with back-pressure; ending or closing one end ends the other
// after everything already written has been delivered, as a TCP FIN would.
import { Duplex } from 'node:stream';

class PipeEnd extends Duplex {
  peer!: PipeEnd;
  /** Our write waiting for the peer's reader to ask for more. */
  private pendingWrite: (() => void) | undefined;
  /** Our end of stream is queued for the peer. */
  private ending = false;
  /** The peer has pushed our end of stream: nothing more may be pushed to us. */
  private eof = false;

  constructor() {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    const resume = this.peer.pendingWrite;
    this.peer.pendingWrite = undefined;
    resume?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.deliver(chunk, cb);
  }

  // MQTT.js and aedes write a packet as several chunks under cork(): it crosses as one.
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.deliver(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  private deliver(chunk: Buffer, cb: () => void): void {
    process.nextTick(() => {
      // A peer that is gone drops the bytes, as a reset connection would; its close follows.
      if (this.peer.destroyed || this.peer.eof) return cb();
      if (this.peer.push(chunk)) cb();
      else this.pendingWrite = cb;
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.endPeer();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A peer write held back for our reader would otherwise never complete.
    const held = this.peer.pendingWrite;
    this.peer.pendingWrite = undefined;
    held?.();
    this.endPeer();
    cb(err);
  }

  /** End of stream for the peer, queued behind the deliveries already under way. */
  private endPeer(): void {
    if (this.ending) return;
    this.ending = true;
    process.nextTick(() => {
      if (this.peer.destroyed || this.peer.eof) return;
      this.peer.eof = true;
      this.peer.push(null);
    });
  }
}

/** Two connected ends: what one writes, the other reads. */
export function inProcessPipe(): [Duplex, Duplex] {
  const a = new PipeEnd();
  const b = new PipeEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
