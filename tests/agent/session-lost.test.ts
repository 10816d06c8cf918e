// A broker that restarts loses the node's session, and with the embedded broker the gateway
// that sent the node its jobs is gone too: the successor will neither continue nor cancel
// them. The agent must give their queue places back when it finds its session gone, not
// after sessionIdleMs (here an hour, so only that path can free them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { ScaledClock } from '../../hardware/clock.js';
import { encodeJson, parseJobReport } from '../../protocol/index.js';
import { selectBackend } from '../../models/backend.js';
import { InProcessAedes } from './brokers.js';
import { exampleDoc } from './fixtures.js';
import { until } from '../../ground/until.js';

const SHARDS = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'models', 'bundled');

async function offer(port: number, jobId: number): Promise<mqtt.MqttClient> {
  const gw = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `gateway-${jobId}` });
  const out: Buffer[] = [];
  gw.on('message', (_t, p) => out.push(p));
  await gw.subscribeAsync('heliomesh/solar/node/pi-01/job/out', { qos: 1 });
  await gw.publishAsync('heliomesh/solar/node/pi-01/job/in', encodeJson({ v: 1, type: 'offer', jobId, sessionId: 1 }), { qos: 1 });
  await until(`job ${jobId} accepted`, () => out.some((p) => { const r = parseJobReport(p); return r.ok && r.value.type === 'accepted'; }), 30_000);
  return gw;
}

test('a broker restart that lost the session frees the jobs held under it, long before their sessions idle out', async (t) => {
  await selectBackend({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-session-lost-'));
  let broker = await InProcessAedes.start();
  const port = broker.port;
  t.after(async () => {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const config = parseAgentConfig({
    ...exampleDoc(), gateway: { url: `mqtt://127.0.0.1:${port}`, reconnectMinMs: 50, reconnectMaxMs: 200 }, spool: { dir },
    model: { shardDir: SHARDS, firstBlock: 0, lastBlock: 1 }, worker: { queueCapacity: 1, sessionIdleMs: 3_600_000 },
  });
  const agent = await Agent.start(config, { clock: new ScaledClock(1), log: pino({ level: 'silent' }), shutdown: async () => {} });
  t.after(() => agent.stop('test over', false));
  await until('connected and active', () => agent.link.connected && agent.policy.acceptsJobs(), 30_000);
  const first = await offer(port, 7);
  assert.equal(agent.worker!.queue(), 1, 'the job holds the one queue place');

  await first.endAsync(true);
  await broker.stop();
  broker = await InProcessAedes.start(port);
  await until('reconnected to the restarted broker', () => agent.link.connected, 30_000);
  await until('the held job given up', () => agent.worker!.queue() === 0, 30_000);
  // The place is free for the new gateway's jobs.
  const second = await offer(port, 8);
  assert.equal(agent.worker!.queue(), 1);
  await second.endAsync(true);
});
