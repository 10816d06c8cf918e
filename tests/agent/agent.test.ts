import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { ScaledClock } from '../../hardware/clock.js';
import { encodeJson, fleetFilter, parseCommandReply, parseEvent, parseSlotRecord, parseState } from '../../protocol/index.js';
import { InProcessAedes } from './brokers.js';
import { exampleDoc } from './fixtures.js';

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the virtual agent on a scaled clock: retained birth, valid gapless slot records, commands, clean stop', async (t) => {
  const broker = await InProcessAedes.start();
  const dir = mkdtempSync(join(tmpdir(), 'heliomesh-agent-'));
  t.after(async () => {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const doc = exampleDoc();
  const config = parseAgentConfig({ ...doc, gateway: { url: `mqtt://127.0.0.1:${broker.port}`, reconnectMinMs: 50 }, slotMs: 10_000, sampleHz: 1, spool: { dir } });
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'observer' });
  const got: Array<{ topic: string; payload: Buffer }> = [];
  obs.on('message', (topic, payload) => got.push({ topic, payload }));
  await obs.subscribeAsync([fleetFilter('solar', 'state'), fleetFilter('solar', 'slot'), fleetFilter('solar', 'event'), fleetFilter('solar', 'cmdReply')], { qos: 1 });
  // 100× real time: a 10 s slot closes every 0.1 s.
  const agent = await Agent.start(config, { clock: new ScaledClock(100), log: pino({ level: 'silent' }), shutdown: async () => {} });
  const slots = () => got.filter((g) => g.topic.endsWith('/slot')).map((g) => parseSlotRecord(g.payload));
  await until('five slot records', () => slots().length >= 5);
  for (const s of slots()) assert.ok(s.ok, !s.ok ? s.error : '');
  const seqs = slots().map((s) => (s.ok ? s.value.seq : -1));
  assert.deepEqual(seqs.slice(0, 5), [0, 1, 2, 3, 4]);
  const birth = got.map((g) => (g.topic.endsWith('/state') ? parseState(g.payload) : null)).find((s) => s?.ok);
  assert.ok(birth?.ok && birth.value.status === 'online' && birth.value.profile.thresholds.eThJ === 74 * 3600 * 0.1);
  assert.ok(got.some((g) => g.topic.endsWith('/event') && parseEvent(g.payload).ok), 'the first mode setting is announced');

  const cmd = 'heliomesh/solar/node/pi-01/cmd';
  await obs.publishAsync(cmd, encodeJson({ v: 1, id: 't1', op: 'set-thresholds', thresholds: { eThJ: 30_000, eThUpJ: 60_000, criticalJ: 10_000 } }), { qos: 1 });
  await obs.publishAsync(cmd, encodeJson({ v: 1, id: 't2', op: 'set-thresholds', thresholds: { eThJ: 30_000, eThUpJ: 20_000, criticalJ: 10_000 } }), { qos: 1 });
  await obs.publishAsync(cmd, encodeJson({ v: 1, id: 't3', op: 'set-mode-table', modes: [{ powerMode: 1, name: 'warp', kappa: 1, costJ: 1 }], modeTable: [{ minFraction: 0, powerMode: 1 }] }), { qos: 1 });
  await until('three replies', () => got.filter((g) => g.topic.endsWith('/cmd/reply')).length >= 3);
  const replies = got.filter((g) => g.topic.endsWith('/cmd/reply')).map((g) => { const r = parseCommandReply(g.payload); assert.ok(r.ok); return r.value; });
  assert.equal(replies.find((r) => r.id === 't1')!.ok, true);
  assert.equal(replies.find((r) => r.id === 't2')!.ok, false, 'E′_th below E_th is refused by the schema');
  assert.match(replies.find((r) => r.id === 't3')!.error!, /warp/);
  assert.deepEqual(agent.policy.thresholds, { eThJ: 30_000, eThUpJ: 60_000, criticalJ: 10_000 });
  await until('re-announced birth', () => got.some((g) => { const s = g.topic.endsWith('/state') ? parseState(g.payload) : null; return !!s?.ok && s.value.status === 'online' && s.value.profile.thresholds.eThJ === 30_000; }));

  await agent.stop('test over');
  await until('offline state', () => got.some((g) => { const s = g.topic.endsWith('/state') ? parseState(g.payload) : null; return !!s?.ok && s.value.status === 'offline'; }));
  assert.equal(agent.spool.pending().length, 0, 'everything acknowledged before leaving');
  await obs.endAsync();
});
