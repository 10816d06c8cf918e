// Free TCP ports for services the tests start: ask the kernel for an ephemeral port, then
// release it. Another process could take it in between; on a test machine that is rare,
// and the service's own start-up error then says so.
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not read the address of a probe socket'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}
