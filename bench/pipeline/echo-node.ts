// A node that computes nothing, for `heliomesh bench pipeline`'s MQTT round-trip probe: in
// its own process, it answers every frame on its job/in topic with the same bytes on its
// job/out topic at QoS 0, as an agent's output frame goes. Connection details come as JSON
// in argv[2]; it prints "ready" once subscribed and ends when its parent does.
import { connectAsync } from 'mqtt';

interface EchoArgs {
  url: string;
  username: string;
  password: string;
  inTopic: string;
  outTopic: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as EchoArgs;
const client = await connectAsync(args.url, { clientId: `bench-echo-${process.pid}`, username: args.username, password: args.password, reconnectPeriod: 0 });
// Socket options as the agent's link leaves them (MQTT.js defaults).
client.on('message', (_topic, payload) => {
  client.publish(args.outTopic, payload, { qos: 0 });
});
await client.subscribeAsync(args.inTopic, { qos: 1 });
process.stdout.write('ready\n');
process.on('disconnect', () => void client.endAsync(true).finally(() => process.exit(0)));
