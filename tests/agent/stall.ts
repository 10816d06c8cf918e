// A broker that stops answering, as a SIGSTOPped or wedged one does: a TCP relay in front
// of a real broker that, once stalled, keeps every connection open and accepts new ones but
// passes nothing on in either direction. The kernel keeps ACKing the agent's segments, so
// the agent sees a live socket with no PUBACK ever coming back.
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class StallingRelay {
  private stalled = false;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(brokerPort: number): Promise<StallingRelay> {
    const ref: { relay?: StallingRelay } = {};
    const server = createServer((client) => ref.relay!.accept(client, brokerPort));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    ref.relay = new StallingRelay(server, (server.address() as { port: number }).port);
    return ref.relay;
  }

  private accept(client: Socket, brokerPort: number): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => {});
    if (this.stalled) return; // accepted, never answered
    const upstream = createConnection({ port: brokerPort, host: '127.0.0.1' });
    this.sockets.add(upstream);
    upstream.on('close', () => {
      this.sockets.delete(upstream);
      if (!this.stalled) client.destroy();
    });
    upstream.on('error', () => {});
    client.on('close', () => {
      if (!this.stalled) upstream.destroy();
    });
    client.on('data', (b) => {
      if (!this.stalled) upstream.write(b);
    });
    upstream.on('data', (b) => {
      if (!this.stalled) client.write(b);
    });
  }

  /** From now on nothing passes, and nothing is closed. */
  stall(): void {
    this.stalled = true;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
