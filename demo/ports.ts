// Ports for the demo's servers: a free one from the kernel, or a check that a wanted one
// can be bound, so a taken port gives a message and a fallback instead of a crash.
import { createServer } from 'node:net';

/** Binds `port` (0: any) on `host`, lets it go again and resolves with the port bound. */
function bindOnce(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().unref().once('error', reject);
    srv.listen(port, host, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error(`no address for ${host}:${port}`))));
    });
  });
}

/** Resolves false when `port` is taken on `host`. */
export function canListen(port: number, host = '0.0.0.0'): Promise<boolean> {
  return bindOnce(port, host).then(() => true, () => false);
}

/** A port the kernel considers free right now (another process could take it before use). */
export function freePort(): Promise<number> {
  return bindOnce(0, '127.0.0.1');
}
