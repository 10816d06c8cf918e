// Ports for the demo's servers: a free one from the kernel, or a check that a wanted one
// can be bound, so a taken port gives a message and a fallback instead of a crash.
import { createServer } from 'node:net';

/** Binds `port` on `host` and lets it go; resolves false when it is taken. */
export function canListen(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A port the kernel considers free right now (another process could take it before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port from the kernel'))));
    });
  });
}
