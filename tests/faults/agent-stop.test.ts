// Stopping is bounded. The agent runs as its own process (`heliomesh agent --virtual`);
// SIGTERM must end it within its stated flush deadline plus a margin, whatever the broker
// does, and no slot closes on the slot timer once the stop has begun.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import mqtt from 'mqtt';
import { nodeTopics, parseSlotRecord, parseState } from '../../protocol/index.js';
import { Mosquitto } from '../agent/brokers.js';
import { StallingRelay } from '../agent/stall.js';
import { CLI, tempDir, until } from './support.js';

interface LogLine { msg: string; level: number; seq?: number; at: number }

/** The agent CLI on the virtual node, its JSON log lines collected as they come. */
function spawnAgent(port: number, nodeId: string, extra: string[]): { child: ChildProcess; lines: LogLine[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, 'agent', '--virtual', '--gateway', `mqtt://127.0.0.1:${port}`, '--node-id', nodeId, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  let rest = '';
  child.stdout!.on('data', (b: Buffer) => {
    const parts = (rest + b.toString()).split('\n');
    rest = parts.pop()!;
    for (const p of parts) {
      try {
        const j = JSON.parse(p) as LogLine;
        lines.push({ ...j, at: Date.now() });
      } catch { /* a line that is not JSON is not a log line */ }
    }
  });
  child.stderr!.resume();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, lines, exited };
}

const has = (lines: LogLine[], msg: string) => lines.some((l) => l.msg === msg);

/** Under CPU load a process needs time to get scheduled and to unwind; not part of the deadline. */
const MARGIN_MS = 6000;

test('a broker that stops answering: SIGTERM ends the agent within the flush deadline, "agent stopped" logged', async (t) => {
  const broker = await Mosquitto.start();
  const relay = await StallingRelay.start(broker.port);
  const dir = tempDir('stop-stall');
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await relay.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const FLUSH_MS = 1500;
  const a = spawnAgent(relay.port, 'pi-stall', ['--time-scale', '20', '--slot-ms', '2000', '--spool', dir, '--stop-flush-ms', String(FLUSH_MS)]);
  children.push(a.child);
  await until('the agent connected', () => has(a.lines, 'connected to the gateway broker'), 60_000);
  relay.stall();
  // Slot records keep being spooled while nothing is acknowledged: the flush has work it cannot finish.
  const seqAtStall = a.lines.filter((l) => l.msg === 'slot closed').length;
  await until('a slot record spooled after the stall', () => a.lines.filter((l) => l.msg === 'slot closed').length > seqAtStall);
  const sentAt = Date.now();
  a.child.kill('SIGTERM');
  const code = await Promise.race([a.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), FLUSH_MS + MARGIN_MS + 10_000))]);
  const tookMs = Date.now() - sentAt;
  t.diagnostic(`exited ${tookMs} ms after SIGTERM`);
  assert.notEqual(code, 'hung', `the agent was still running ${tookMs} ms after SIGTERM; last log: ${a.lines.slice(-3).map((l) => l.msg).join(' | ')}`);
  assert.equal(code, 0, 'a clean exit');
  assert.ok(tookMs < FLUSH_MS + MARGIN_MS, `exited ${tookMs} ms after SIGTERM (deadline ${FLUSH_MS} ms + ${MARGIN_MS} ms margin)`);
  assert.ok(has(a.lines, 'agent stopped'), 'logs "agent stopped"');
  assert.ok(a.lines.some((l) => l.msg.startsWith('spool not empty at stop')), 'says the unacknowledged records stay on disk');
});

test('--time-scale 120 on a plain Mosquitto: after SIGTERM no slot closes on the timer, and the retained offline state is there', async (t) => {
  const broker = await Mosquitto.start();
  const dir = tempDir('stop-scaled');
  const NODE = 'pi-fast';
  const topics = nodeTopics('default', NODE);
  const children: ChildProcess[] = [];
  const obs = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'stop-observer', reconnectPeriod: 100 });
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await obs.endAsync(true);
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const slots: number[] = [];
  obs.on('message', (topic, payload) => {
    if (topic !== topics.slot) return;
    const r = parseSlotRecord(payload);
    if (r.ok) slots.push(r.value.seq);
  });
  await obs.subscribeAsync(topics.slot, { qos: 1 });
  // 120× real time with the default 60 s slot: a slot every half second, a sample every 4 ms.
  // The stop's budget runs on the node's clock too: 120 s of it are 1 s of real time.
  const a = spawnAgent(broker.port, NODE, ['--time-scale', '120', '--spool', dir, '--stop-flush-ms', '120000']);
  children.push(a.child);
  await until('three slot records at the broker', () => slots.length >= 3, 60_000);
  a.child.kill('SIGTERM');
  const code = await Promise.race([a.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000 + MARGIN_MS))]);
  assert.equal(code, 0, 'a clean exit');
  const stopAt = a.lines.findIndex((l) => l.msg === 'stopping');
  assert.ok(stopAt >= 0);
  // The one slot closed after "stopping" is the partial slot the stop itself closes, and it is the last.
  const after = a.lines.slice(stopAt).filter((l) => l.msg === 'slot closed');
  const closed = a.lines.filter((l) => l.msg === 'slot closed').map((l) => l.seq!);
  assert.ok(after.length <= 1, `${after.length} slots closed after SIGTERM (seq ${after.map((l) => l.seq).join(', ')}); only the partial one may be`);
  await until('every logged slot record at the broker', () => slots.length >= closed.length);
  assert.deepEqual([...new Set(slots)].sort((x, y) => x - y), closed, 'what was logged is what arrived, and nothing more');

  const late = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'late-observer' });
  t.after(() => late.endAsync(true));
  const retained: Buffer[] = [];
  late.on('message', (topic, payload, packet) => {
    if (topic === topics.state && packet.retain) retained.push(payload);
  });
  await late.subscribeAsync(topics.state, { qos: 1 });
  await until('the retained state', () => retained.length > 0);
  const s = parseState(retained.at(-1)!);
  assert.ok(s.ok && s.value.status === 'offline', `retained: ${retained.at(-1)!.toString()}`);
  assert.ok(s.ok && s.value.status === 'offline' && s.value.reason === 'stopped by SIGTERM', 'the clean goodbye, not the will');
});
