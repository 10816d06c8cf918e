// One node process of `heliomesh bench handover`: takes each frame, computes its stage, and
// passes the frame on, over raw TCP (to the hub, which relays it) or over MQTT (published to
// the next node's input topic, the last node's to the way out). Asked on its IPC channel, it
// answers its CPU time and its frame count.
import { connect } from 'node:net';
import mqtt from 'mqtt';
import { frameSplitter, inputTopic, matvec, OUT_TOPIC, STAGE_ROWS, weights, type NodeCount, type Transport } from './chain.js';

const [transport, portText, indexText] = process.argv.slice(2) as [Transport, string, string];
const port = Number(portText);
const index = Number(indexText);
const w = weights(STAGE_ROWS, 1 + index);
let frames = 0;
let sink = 0;

process.on('message', () => {
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
