// The far end of `heliomesh bench pipeline`'s wake probe (wake-probe.ts), in its own process:
// a TCP server on loopback that sends back every byte it gets, with no protocol on top.
// Prints its port once listening, and ends when its parent does.
import { createServer } from 'node:net';

const server = createServer((socket) => {
  // As an MQTT client's socket is: no Nagle delay on small writes.
  socket.setNoDelay(true);
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('disconnect', () => server.close(() => process.exit(0)));
