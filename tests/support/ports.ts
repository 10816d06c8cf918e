// Free TCP ports for services the tests start (influxd, mosquitto). A port is chosen at
// random below the kernel's ephemeral range and probed by binding it. A port from the
// ephemeral range itself (listen on port 0) is not safe: between the probe's release and
// the service's bind, any outgoing connection of the parallel test files may be given it
// as its local port, and the service then fails with "address already in use". Ports
// below the range are never handed out that way.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Linux default when /proc does not say (net.ipv4.ip_local_port_range). */
const DEFAULT_EPHEMERAL_LOW = 32768;
/** Below this are well-known and commonly configured service ports. */
const LOWEST = 10_000;

function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return low !== undefined && Number.isInteger(low) && low > LOWEST + 1000 ? low : DEFAULT_EPHEMERAL_LOW;
  } catch {
    return DEFAULT_EPHEMERAL_LOW;
  }
}

function probe(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(null));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(addr !== null && typeof addr === 'object' ? addr.port : null));
    });
  });
}

export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await probe(LOWEST + Math.floor(Math.random() * (high - LOWEST)));
    if (port !== null) return port;
  }
  // A machine with all of them taken: the kernel's choice, with the race above.
  const port = await probe(0);
  if (port === null) throw new Error('could not find a free TCP port');
  return port;
}
