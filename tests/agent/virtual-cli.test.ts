// `heliomesh agent --virtual`: the block range a virtual node serves follows its group (gN
// serves the N-th range of the model's manifest) or --blocks, so every group of the bundled
// model can be served from the command line alone; --battery-source max17048 puts a UPS
// HAT's fuel gauge on the virtual cell and takes the battery level from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { virtualAgentConfig } from '../../agent/virtual.js';
import { until } from '../../ground/until.js';
import { encodeJson, nodeTopics, parseCommandReply, parseSlotRecord, type SlotRecord } from '../../protocol/index.js';
import { InProcessAedes } from './brokers.js';
import { bundledModelDir } from '../../models/bundled.js';
import { readManifest } from '../../models/shards.js';

const base = { gateway: 'mqtt://localhost:1883' };

test('--group gN serves the N-th block range of the bundled model, --blocks any range', () => {
  const ranges = readManifest(bundledModelDir()).blocks.map((b) => [b.from, b.to - 1]);
  assert.ok(ranges.length >= 3, 'the bundled model has at least three groups');
  ranges.forEach(([from, to], i) => {
    const { model } = virtualAgentConfig({ ...base, group: `g${i + 1}` }, {});
    assert.deepEqual([model!.firstBlock, model!.lastBlock], [from, to], `g${i + 1}`);
  });
  assert.deepEqual(virtualAgentConfig(base, {}).model!.firstBlock, ranges[0]![0], 'g1 by default');
  const { model } = virtualAgentConfig({ ...base, group: 'edge', blocks: '1-3' }, {});
  assert.deepEqual([model!.firstBlock, model!.lastBlock], [1, 3]);
});

test('a group with no block range, or bad --blocks, is refused with what to pass instead', () => {
  assert.throws(() => virtualAgentConfig({ ...base, group: 'g9' }, {}), /group 'g9' names no block range .*its groups are g1 \(blocks 0-1\).*--blocks FROM-TO/);
  assert.throws(() => virtualAgentConfig({ ...base, group: 'edge' }, {}), /group 'edge' names no block range/);
  assert.throws(() => virtualAgentConfig({ ...base, blocks: '3-1' }, {}), /--blocks must be FROM-TO with FROM ≤ TO/);
  assert.throws(() => virtualAgentConfig({ ...base, blocks: '0-99' }, {}), /the model has blocks 0-4/);
});

test('--battery-source max17048: the virtual node carries the gauge, and the agent reports its level end to end', async (t) => {
  assert.deepEqual(virtualAgentConfig({ ...base, batterySource: 'max17048' }, {}).hardware.battery.gauge, { address: 0x36, alertThresholdPct: 4 });
  assert.equal(virtualAgentConfig(base, {}).hardware.battery.source, 'ina219');
  const broker = await InProcessAedes.start();
  const spool = mkdtempSync(join(tmpdir(), 'heliomesh-gauge-cli-'));
  const cli = fileURLToPath(new URL('../../cli/index.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'agent', '--virtual', '--gateway', `mqtt://127.0.0.1:${broker.port}`, '--node-id', 'hat-1',
    '--battery-source', 'max17048', '--time-scale', '20', '--slot-ms', '2000', '--spool', spool], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await broker.stop();
    rmSync(spool, { recursive: true, force: true });
  });
  const topics = nodeTopics('default', 'hat-1');
  const slots: SlotRecord[] = [];
  const replies: Buffer[] = [];
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'gauge-cli-observer' });
  t.after(() => obs.endAsync());
  obs.on('message', (topic, payload) => {
    if (topic === topics.cmdReply) replies.push(payload);
    const r = topic === topics.slot ? parseSlotRecord(payload) : undefined;
    if (r?.ok) slots.push(r.value);
  });
  await obs.subscribeAsync([topics.slot, topics.cmdReply], { qos: 1 });
  await until('three slot records', () => slots.length >= 3 || child.exitCode !== null, 60_000);
  assert.ok(slots.length >= 3, `the agent exited (${child.exitCode}): ${stderr}`);
  for (const s of slots) {
    assert.equal(s.degraded, false, s.health.join(', '));
    assert.ok(s.batteryJ > 0 && s.batteryPct > 0, `slot ${s.seq}: ${s.batteryJ} J`);
  }
  await obs.publishAsync(topics.cmd, encodeJson({ v: 1, id: 'g1', op: 'ping' }), { qos: 1 });
  await until('the ping reply', () => replies.length > 0, 60_000);
  const reply = parseCommandReply(replies[0]!);
  assert.ok(reply.ok && reply.value.ok, JSON.stringify(reply));
  const battery = (reply.value.result as { battery: { source: string; gauge: { address: number; socPct: number } } }).battery;
  assert.equal(battery.source, 'max17048');
  assert.equal(battery.gauge.address, 0x36);
  // The slot records' level is the gauge's SOC (the reference node starts at 60 %).
  assert.ok(Math.abs(battery.gauge.socPct - slots.at(-1)!.batteryPct) < 1, `gauge ${battery.gauge.socPct} %, slot ${slots.at(-1)!.batteryPct} %`);
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit') as [number | null];
  assert.equal(code, 0, stderr);
});
