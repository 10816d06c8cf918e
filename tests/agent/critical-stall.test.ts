// The critical-battery shutdown never waits on the network: with the broker wedged (every
// connection open, nothing answered), the shutdown action still runs within the short
// last-words deadline. A Pi left waiting here drains its battery to deep discharge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent } from '../../agent/index.js';
import { parseAgentConfig } from '../../agent/config.js';
import { ScaledClock } from '../../hardware/clock.js';
import { aedesWithFolder } from './brokers.js';
import { exampleDoc } from './fixtures.js';
import { StallingRelay } from './stall.js';
import { until } from '../../ground/until.js';

const NIGHT = Date.parse('2026-06-21T23:00:00Z');

test('critical battery with the broker stalled: the shutdown action runs within the last-words deadline', async (t) => {
  const { broker, dir } = await aedesWithFolder(t, 'crit-stall');
  const relay = await StallingRelay.start(broker.port);
  t.after(() => relay.stop());
  const doc = exampleDoc() as { hardware: { battery: object; virtual: object } };
  const hardware = {
    ...doc.hardware,
    battery: { ...doc.hardware.battery, initialSocPct: 30 },
    virtual: { ...doc.hardware.virtual, startTime: new Date(NIGHT).toISOString(), initialSocPct: 30 },
  };
  const CRITICAL_FLUSH_MS = 1000;
  const config = parseAgentConfig({
    ...doc, hardware, slotMs: 5000, sampleHz: 2, criticalFlushMs: CRITICAL_FLUSH_MS,
    gateway: { url: `mqtt://127.0.0.1:${relay.port}`, reconnectMinMs: 50 }, spool: { dir },
  });
  const shutdowns: Array<{ reason: string; at: number }> = [];
  const agent = await Agent.start(config, {
    clock: new ScaledClock(10, NIGHT), log: pino({ level: 'silent' }),
    shutdown: async (reason) => { shutdowns.push({ reason, at: Date.now() }); },
  });
  t.after(() => agent.stop('test over'));
  await until('connected', () => agent.link.connected, 15_000);
  await until('a slot record acknowledged', () => agent.ledger.nextSeq > 0 && agent.spool.pending().length === 0, 15_000);
  relay.stall();
  // The level the node is at becomes critical: the next sample crosses it.
  const level = agent.ledger.latest()!;
  const stalledAt = Date.now();
  agent.policy.setThresholds({ criticalJ: level.energyJ * 1.05, eThJ: level.energyJ * 1.1, eThUpJ: level.energyJ * 1.2 });
  await until('the shutdown action', () => shutdowns.length > 0, 30_000);
  const tookMs = shutdowns[0]!.at - stalledAt;
  t.diagnostic(`shutdown action ${tookMs} ms after the thresholds moved`);
  assert.equal(shutdowns[0]!.reason, 'critical battery');
  // One sample period (0.05 s real at 10×) to notice, the deadline, and a margin for a loaded machine.
  assert.ok(tookMs < CRITICAL_FLUSH_MS + 4000, `shutdown ran ${tookMs} ms after the level went critical (deadline ${CRITICAL_FLUSH_MS} ms)`);
  assert.equal(agent.stopped, true);
  assert.ok(agent.spool.stats().entries > 0, 'the unacknowledged critical event stays in the spool for the next start');
});
