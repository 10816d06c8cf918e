// The in-process stream the gateway's own client uses for its embedded broker: bytes in
// order with back-pressure, end of stream only after what was written, and a real MQTT
// session over it that logs in, exchanges messages with a TCP node, and comes back after
// a drop.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, MqttClient } from 'mqtt';
import { RealClock } from '../../ground/clock.js';
import { Broker, BrokerConfigSchema, addNode, loadCredentials } from '../../gateway/broker/index.js';
import { inProcessPipe } from '../../gateway/broker/in-process.js';
import { captureLog } from '../support/log.js';
import { until } from '../../ground/until.js';

test('bytes cross in order both ways, a slow reader holds the writer back, and nothing is lost', async () => {
  const [a, b] = inProcessPipe();
  const chunks = 400;
  const size = 64 * 1024;
  let sent = 0;
  let blocked = 0;
  const writer = (async () => {
    for (let i = 0; i < chunks; i++) {
      if (!a.write(Buffer.alloc(size, i % 251))) {
        blocked++;
        await once(a, 'drain');
      }
      sent++;
    }
    a.end();
  })();
  // The reader starts late: the writer must have stopped at the high-water marks, not buffered 25 MiB.
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(sent < chunks, `the writer was held back (sent ${sent} of ${chunks} before anyone read)`);
  const got: Buffer[] = [];
  for await (const c of b) got.push(c as Buffer);
  await writer;
  assert.ok(blocked > 0);
  const all = Buffer.concat(got);
  assert.equal(all.length, chunks * size);
  for (let i = 0; i < chunks; i++) assert.equal(all[i * size], i % 251, `chunk ${i} in its place`);

  // The other way, with one end destroyed right after writing: what was written still arrives, then the end.
  const [c, d] = inProcessPipe();
  c.write(Buffer.from('last words'));
  c.destroy();
  const heard: Buffer[] = [];
  for await (const x of d) heard.push(x as Buffer);
  assert.equal(Buffer.concat(heard).toString(), 'last words');
  assert.ok(d.readableEnded, 'the reader saw the end of the stream');
});

let dir: string;
let broker: Broker;
let password: string;
const cap = captureLog();
const clients: MqttClient[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-inprocess-'));
  const credPath = join(dir, 'nodes.json');
  password = await addNode(credPath, 'pi-1');
  const config = BrokerConfigSchema.parse({ port: 0, host: '127.0.0.1', credentialsPath: credPath });
  broker = await Broker.start(config, {
    clock: new RealClock(), log: cap.log, credentials: loadCredentials(credPath),
    patterns: { publish: ['hm/node/{node}/#'], subscribe: ['hm/node/{node}/cmd/#'] },
  });
});

after(async () => {
  for (const c of clients) await c.endAsync(true);
  await broker.close();
  await rm(dir, { recursive: true, force: true });
});

/** The next `name` event of an MQTT client, with its arguments. */
function next(c: MqttClient, name: 'connect' | 'error'): Promise<unknown[]> {
  return new Promise((resolve) => c.once(name, (...args: unknown[]) => resolve(args)));
}

function inProcessClient(pass: string): MqttClient {
  const c = new MqttClient(() => broker.connectInProcess(), { clientId: 'gw', username: broker.internal.username, password: pass, reconnectPeriod: 100 });
  clients.push(c);
  return c;
}

test('an in-process client logs in with the internal secret only, talks to a TCP node both ways, and resubscribes after a drop', async () => {
  const wrong = inProcessClient('not-the-secret');
  const [err] = (await next(wrong, 'error')) as [Error];
  assert.match(err.message, /Bad username or password/i);
  await wrong.endAsync(true);

  const gw = inProcessClient(broker.internal.password);
  await next(gw, 'connect');
  const heard: string[] = [];
  gw.on('message', (topic, payload) => heard.push(`${topic} ${payload.toString()}`));
  await gw.subscribeAsync('hm/node/+/slot', { qos: 1 });
  const node = await connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: 'pi-1', username: 'pi-1', password, reconnectPeriod: 0 });
  clients.push(node);
  const cmds: string[] = [];
  node.on('message', (_t, p) => cmds.push(p.toString()));
  await node.subscribeAsync('hm/node/pi-1/cmd/#', { qos: 1 });

  await node.publishAsync('hm/node/pi-1/slot', 'seq 1', { qos: 1 });
  await gw.publishAsync('hm/node/pi-1/cmd/x', 'ping', { qos: 1 });
  await until('both messages', () => heard.length === 1 && cmds.length === 1);
  assert.deepEqual(heard, ['hm/node/pi-1/slot seq 1']);
  assert.deepEqual(cmds, ['ping']);

  // The connection drops (as the broker would drop a stalled client): the client comes back on its own.
  const reconnected = next(gw, 'connect');
  gw.stream.destroy();
  await reconnected;
  await node.publishAsync('hm/node/pi-1/slot', 'seq 2', { qos: 1 });
  await until('the message after the reconnect', () => heard.length === 2);
  assert.equal(heard[1], 'hm/node/pi-1/slot seq 2');
  assert.ok(!cap.records.some((r) => r.msg === 'too many MQTT connects from one address; refused'), 'in-process connects are not rate limited');
});
