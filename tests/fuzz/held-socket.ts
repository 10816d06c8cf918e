// Sockets a flood holds open: connected, then silent (or trickling bytes), read so that the
// server's close is seen, each remembering when it opened and closed and what came back.
import { createConnection, type Socket } from 'node:net';

export class HeldSocket {
  readonly socket: Socket;
  /** Wall time of the TCP connect, ms. */
  openedAt = 0;
  /** Wall time the server closed it (or reset it), ms; undefined while open. */
  closedAt: number | undefined;
  private readonly chunks: Buffer[] = [];
  private trickle: NodeJS.Timeout | undefined;

  private constructor(port: number, localAddress: string | undefined, readonly connected: Promise<void>) {
    this.socket = createConnection({ host: '127.0.0.1', port, localAddress });
    this.socket.on('data', (b: Buffer) => this.chunks.push(b));
    this.socket.on('error', () => {}); // a reset is one way of being closed
    this.socket.on('close', () => {
      this.closedAt ??= Date.now();
      clearInterval(this.trickle);
    });
  }

  /** Opens a connection from `localAddress` (any of 127.0.0.0/8 on Linux) and resolves once it is up or refused. */
  static async open(port: number, localAddress?: string): Promise<HeldSocket> {
    let up!: () => void;
    const held = new HeldSocket(port, localAddress, new Promise<void>((r) => (up = r)));
    held.socket.once('connect', () => {
      held.openedAt = Date.now();
      up();
    });
    held.socket.once('close', () => up());
    await held.connected;
    return held;
  }

  static openMany(n: number, port: number, localAddress?: string): Promise<HeldSocket[]> {
    return Promise.all(Array.from({ length: n }, () => HeldSocket.open(port, localAddress)));
  }

  get closed(): boolean {
    return this.closedAt !== undefined;
  }

  /** How long the server kept it open, ms. */
  get heldMs(): number {
    return (this.closedAt ?? Date.now()) - this.openedAt;
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  write(bytes: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Writes `parts` one by one, `everyMs` apart, then goes on writing the last one: a head that never ends. */
  trickleForever(parts: string[], everyMs: number): void {
    let i = 0;
    this.trickle = setInterval(() => this.write(parts[Math.min(i++, parts.length - 1)]!), everyMs);
  }

  destroy(): void {
    clearInterval(this.trickle);
    this.socket.destroy();
  }
}
