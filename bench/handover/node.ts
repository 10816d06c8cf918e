// One node process of `heliomesh bench handover`: takes each frame, computes its stage, and
// passes the frame on, over raw TCP (to the hub, which relays it, or, 'direct', straight to
// the next node's own socket) or over MQTT (published to the next node's input topic, the
// last node's to the way out). Asked on its IPC channel, it answers its CPU time and its
// frame count.
import { connect, createServer, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { frameSplitter, inputTopic, matvec, OUT_TOPIC, STAGE_ROWS, weights, type DirectLink, type NodeCount, type Transport } from './chain.js';

const [transport, portText, indexText] = process.argv.slice(2) as [Transport, string, string];
const port = Number(portText);
const index = Number(indexText);
const w = weights(STAGE_ROWS, 1 + index);
let frames = 0;
let sink = 0;

/** 'direct': where this node's output goes, once the hub says. */
let out: Socket | undefined;

process.on('message', (m: unknown) => {
  if (typeof m === 'object' && m !== null && 'next' in m) {
    out = connect((m as DirectLink).next, '127.0.0.1', () => {
      out!.setNoDelay(true);
      process.send!('linked');
    });
    return;
  }
  const cpu = process.cpuUsage();
  process.send!({ cpuUs: cpu.user + cpu.system, frames } satisfies NodeCount);
});
process.on('disconnect', () => process.exit(0));

if (transport === 'tcp') {
  const socket = connect(port, '127.0.0.1', () => {
    socket.setNoDelay(true);
    process.send!('ready');
  });
  socket.on('data', frameSplitter((frame) => {
    sink += matvec(w);
    frames++;
    socket.write(frame);
  }));
} else if (transport === 'direct') {
  // Its input comes on its own socket (from the node before it, or the hub for the first).
  const server = createServer((input) => {
    input.setNoDelay(true);
    input.on('data', frameSplitter((frame) => {
      sink += matvec(w);
      frames++;
      out!.write(frame);
    }));
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
} else {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: `handover-n${index}`, reconnectPeriod: 0 });
  client.on('connect', () => client.subscribe(inputTopic(index), { qos: 1 }, () => process.send!('ready')));
  client.on('message', (_topic, payload) => {
    sink += matvec(w);
    frames++;
    client.publish(index < 2 ? inputTopic(index + 1) : OUT_TOPIC, payload, { qos: 0 });
  });
}
process.on('exit', () => void sink);
