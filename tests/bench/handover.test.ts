// `heliomesh bench handover`: every token of every chain passes all three node processes, on
// raw TCP and on MQTT, and the ratios come from those rounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handoverBench } from '../../bench/handover.js';

test('a short handover run sends each token through the 3 nodes on both transports and reports the ratios of its rounds', async (t) => {
  const outDir = mkdtempSync(join(tmpdir(), 'heliomesh-bench-handover-test-'));
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  const r = await handoverBench.run({ outDir, args: { rounds: '2', tokens: '5' } });
  type Chain = { msPerToken: number; cpuMsPerToken: number; framesPerNode: number[] };
  const m = r.metrics as {
    byTransport: Record<'tcp' | 'direct' | 'mqtt', { medianRatio: number; minRatio: number; maxRatio: number; medianCpuRatio: number }>;
    wake: { samples: number; backToBackMs: number; afterSleep1Ms: number; afterSleep5Ms: number; afterSpin5Ms: number };
    rounds: Array<{ inProcess: { msPerToken: number; cpuMsPerToken: number }; chains: Record<'tcp' | 'direct' | 'mqtt', Chain> }>;
  };
  assert.equal(m.rounds.length, 2);
  for (const round of m.rounds) {
    for (const transport of ['tcp', 'direct', 'mqtt'] as const) {
      const c = round.chains[transport];
      assert.deepEqual(c.framesPerNode, [5, 5, 5], `${transport}: each of the 5 tokens passed every node once`);
      assert.ok(c.msPerToken > 0 && c.cpuMsPerToken > 0, `${transport}: timed`);
    }
  }
  for (const transport of ['tcp', 'direct', 'mqtt'] as const) {
    const b = m.byTransport[transport];
    const ratios = m.rounds.map((x) => x.inProcess.msPerToken / x.chains[transport].msPerToken);
    assert.ok(b.minRatio === Math.min(...ratios) && b.maxRatio === Math.max(...ratios), `${transport}: the spread is the rounds'`);
    assert.ok(b.medianRatio >= b.minRatio && b.medianRatio <= b.maxRatio);
    assert.ok(b.medianCpuRatio > 0);
  }
  assert.match(r.summary, /raw TCP: speed ratio [\d.]+ .*raw TCP node to node \(4 hand-overs a token, not 6\): speed ratio [\d.]+ .*MQTT \(aedes \+ MQTT\.js, QoS 0\): speed ratio [\d.]+/);
  // The wake probe timed the same compute in each of its cases.
  const w = m.wake;
  assert.equal(w.samples, 100);
  for (const ms of [w.backToBackMs, w.afterSleep1Ms, w.afterSleep5Ms, w.afterSpin5Ms]) assert.ok(Number.isFinite(ms) && ms > 0, JSON.stringify(w));
  assert.match(r.summary, /one stage's compute alone: [\d.]+ ms back to back, [\d.]+ ms \(-?\d+ %\) after sleeping 1 ms/);
});

test('handover refuses a bad round or token count', async () => {
  await assert.rejects(handoverBench.run({ outDir: tmpdir(), args: { rounds: '0' } }), /--rounds must be a whole number ≥ 1, got '0'/);
  await assert.rejects(handoverBench.run({ outDir: tmpdir(), args: { tokens: 'x' } }), /--tokens must be a whole number ≥ 1, got 'x'/);
});
