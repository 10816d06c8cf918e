// Agent crash: the agent runs as its own process (`heliomesh agent --virtual`), is killed
// with SIGKILL while it spools, and the tail of its spool is left torn the way a power cut
// in the middle of a write leaves it (SIGKILL alone cannot tear one write() on Linux: the
// page cache keeps what the call wrote). Restarted on the same spool folder, it cuts the
// torn record off, sends what it had not had acknowledged, and continues the sequence:
// the subscriber sees every slot number exactly once — no gap, and nothing acknowledged
// sent again as new data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { encodeJson, nodeTopics, parseCommandReply, parseSlotRecord, parseState } from '../../protocol/index.js';
import { InProcessAedes } from '../agent/brokers.js';
import { CLI, range, tempDir, until } from './support.js';

const NODE = 'pi-crash';
/**
 * 5× real time with 1 s slots: a slot record every 200 ms, a sample every 100 ms. The kill
 * comes half a slot after a record arrived, far from the next one even on a loaded machine:
 * a record whose PUBACK is on the wire at the kill would, by QoS 1's at-least-once rule,
 * be sent again after the restart.
 */
const SPEED = 5;
const SLOT_MS = 1000;

function spawnAgent(port: number, spool: string): ChildProcess {
  return spawn(process.execPath, [CLI, 'agent', '--virtual', '--gateway', `mqtt://127.0.0.1:${port}`, '--node-id', NODE,
    '--time-scale', String(SPEED), '--slot-ms', String(SLOT_MS), '--spool', spool], { stdio: ['ignore', 'ignore', 'pipe'] });
}

test('SIGKILL while spooling, a torn spool tail, a restart: every slot number arrives exactly once', async (t) => {
  const broker = await InProcessAedes.start();
  const dir = tempDir('crash');
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const topics = nodeTopics('default', NODE);
  const slots: Array<{ seq: number; at: number }> = [];
  const replies: Buffer[] = [];
  const births: Array<{ nextSeq?: number; seqEpoch?: string }> = [];
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'crash-observer', clean: false, reconnectPeriod: 100 });
  t.after(() => obs.endAsync());
  obs.on('message', (topic, payload) => {
    if (topic === topics.slot) {
      const r = parseSlotRecord(payload);
      assert.ok(r.ok, r.ok ? '' : r.error);
      slots.push({ seq: r.value.seq, at: Date.now() });
    } else if (topic === topics.cmdReply) {
      replies.push(payload);
    } else if (topic === topics.state) {
      const r = parseState(payload);
      if (r.ok && r.value.status === 'online') births.push({ nextSeq: r.value.nextSeq, seqEpoch: r.value.seqEpoch });
    }
  });
  await obs.subscribeAsync([topics.slot, topics.cmdReply, topics.state], { qos: 1 });

  const spool = join(dir, 'spool');
  const first = spawnAgent(broker.port, spool);
  children.push(first);
  await until('ten slot records from the first process', () => slots.length >= 10, 60_000);
  // Half a slot after a record arrived: its PUBACK is back, the next record is not due, and
  // samples, events and slot records keep the spool file busy.
  const seen = slots.length;
  await until('the next record', () => slots.length > seen);
  await new Promise((r) => setTimeout(r, (SLOT_MS / SPEED) / 2));
  first.kill('SIGKILL');
  await once(first, 'exit');
  const killedAfter = slots.length;

  // What a power cut in the middle of a record leaves: its head (length 60, a checksum) and
  // a few bytes of its body.
  const torn = Buffer.alloc(8 + 20);
  torn.writeUInt32LE(60, 0);
  torn.writeUInt32LE(0xdeadbeef, 4);
  appendFileSync(join(spool, 'spool.log'), torn);

  const second = spawnAgent(broker.port, spool);
  children.push(second);
  await until('ten more slot records from the restarted process', () => slots.length >= killedAfter + 10, 60_000);
  await obs.publishAsync(topics.cmd, encodeJson({ v: 1, id: 'after-crash', op: 'ping' }), { qos: 1 });
  await until('the ping reply', () => replies.length > 0);
  const reply = parseCommandReply(replies[0]!);
  assert.ok(reply.ok && reply.value.ok, 'ping answered');
  const spoolStats = reply.value.result!.spool as { tornBytes: number; dropped: { slot: number } };
  assert.equal(spoolStats.tornBytes, torn.length, 'the torn record was detected and cut off');
  assert.equal(spoolStats.dropped.slot, 0);

  second.kill('SIGTERM');
  const [code] = await once(second, 'exit') as [number | null];
  assert.equal(code, 0, 'a clean stop on SIGTERM');
  const nextSeq = (reply.value.result!.nextSeq as number);
  const seqs = slots.map((s) => s.seq);
  const last = Math.max(...seqs);
  assert.ok(last >= nextSeq, 'the partial slot closed at the stop arrived too');
  assert.equal(seqs.length, new Set(seqs).size, `no slot number twice: ${seqs.join(',')}`);
  assert.deepEqual([...seqs].sort((a, b) => a - b), range(last + 1), 'no gap across the crash');
  // Both processes announced the same count: one epoch, and the restart's next number past what had arrived.
  assert.ok(births.length >= 2, `${births.length} births`);
  assert.match(births[0]!.seqEpoch ?? '', /^[0-9a-f]{16}$/);
  assert.ok(births.every((b) => b.seqEpoch === births[0]!.seqEpoch), JSON.stringify(births));
  assert.ok(births.some((b) => b.nextSeq! >= killedAfter), `a birth after the restart continues the count: ${JSON.stringify(births)}`);
});
