// A node that computes nothing, for `heliomesh bench pipeline`'s bare chain: in its own
// process, it answers every frame on its input topic with the same bytes on its output topic
// at QoS 0, as an agent's output frame goes (to the next node's job/hop when chained, to its
// own job/out otherwise). Connection details come as JSON in argv[2]; it prints "ready" once
// subscribed, answers a 'cpu' message with its process's CPU time, and ends when its parent
// does.
import { connectAsync } from 'mqtt';

interface EchoArgs {
  url: string;
  username: string;
  password: string;
  clientId: string;
  inTopic: string;
  outTopic: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as EchoArgs;
const client = await connectAsync(args.url, { clientId: args.clientId, username: args.username, password: args.password, reconnectPeriod: 0 });
// Socket options as the agent's link leaves them (MQTT.js defaults).
client.on('message', (_topic, payload) => {
  client.publish(args.outTopic, payload, { qos: 0 });
});
await client.subscribeAsync(args.inTopic, { qos: 1 });
process.on('message', (m) => {
  if (m === 'cpu') process.send!(process.cpuUsage());
});
process.stdout.write('ready\n');
process.on('disconnect', () => void client.endAsync(true).finally(() => process.exit(0)));
