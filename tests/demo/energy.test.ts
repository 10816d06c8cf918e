// Per-job energy over a demo run (docs/agent.md "Per-job energy"): at the 1440×
// (a one-minute day), with short jobs (stop at a space or a full stop) beside 48-token
// ones and several at once, every job's reported energy is ≥ 0 with a finite uncertainty,
// and per node the jobs' energies sum to what that node's ledger metered above its idle
// draw while it held jobs, within the sum of their stated uncertainties; the gateway's
// job energies add up to what the nodes reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { startField } from '../../demo/field.js';
import { defaultStartMs } from '../../demo/plan.js';
import type { JobSummary } from '../../gateway/jobs.js';

const site = { latitudeDeg: 40.4, longitudeDeg: -3.7 };
// 04:00 solar time on 21 June.
const dawn = defaultStartMs(Date.UTC(2026, 5, 21, 12), site.longitudeDeg);

test('over a demo run, per node, the jobs\' energies sum to the ledger\'s metered energy above idle while it held jobs, within their uncertainty', { timeout: 240_000 }, async (t) => {
  const field = await startField({
    groups: 3, nodesPerGroup: 2, seed: 1, dayMinutes: 1, policy: 'foresight', mqttPort: 0, startMs: dawn, ...site,
    // Every node keeps its worker through the run: none is sent to sleep at dawn.
    initialSocPct: 70, coordinatedSleep: false, log: pino({ level: 'silent' }),
  });
  t.after(() => field.stop());
  const prompts = ['The state of the Union is', 'Once upon a time', 'The little robot', 'The moon'];
  const summaries: JobSummary[] = [];
  // Three rounds of four concurrent jobs: two stopped at the first space or full stop, two of 48 tokens.
  for (let round = 0; round < 3; round++) {
    const jobs = prompts.map((prompt, i) => field.jobs.submit({
      prompt, maxTokens: 48, temperature: 0.8, topP: 0.95, seed: 10 * round + i, stop: i % 2 === 0 ? [' ', '.'] : [],
    }));
    summaries.push(...await Promise.all(jobs.map((j) => j.done)));
  }
  assert.ok(summaries.every((s) => s.status === 'done'), summaries.map((s) => `${s.id} ${s.status} ${s.error?.message ?? ''}`).join('; '));
  for (const s of summaries) {
    assert.ok(s.energyJ >= 0, `${s.id}: ${s.energyJ} J`);
    assert.ok(s.energyUncertaintyJ !== undefined && Number.isFinite(s.energyUncertaintyJ) && s.energyUncertaintyJ > 0, `${s.id}: uncertainty ${s.energyUncertaintyJ}`);
  }
  let reportedJ = 0;
  let served = 0;
  for (const node of field.nodes) {
    const worker = node.agent?.worker;
    assert.ok(worker, `${node.nodeId} runs a worker`);
    const e = worker.energy.totals;
    reportedJ += e.reportedJ;
    served += e.reports;
    if (e.reports === 0) continue;
    const meteredAboveIdleJ = e.busyConsumedJ - e.busyIdleJ;
    t.diagnostic(`${node.nodeId}: ${e.reports} jobs ${e.reportedJ.toFixed(3)} ± ${e.reportedUncertaintyJ.toFixed(3)} J; metered above idle ${meteredAboveIdleJ.toFixed(3)} J`);
    assert.ok(
      Math.abs(e.reportedJ - meteredAboveIdleJ) <= e.reportedUncertaintyJ,
      `${node.nodeId}: ${e.reports} jobs ${e.reportedJ.toFixed(3)} J, metered above idle ${meteredAboveIdleJ.toFixed(3)} J over ${e.busyIntervals} intervals, ± ${e.reportedUncertaintyJ.toFixed(3)} J`,
    );
  }
  assert.equal(served, summaries.length * 3, 'one report per job and group');
  const gatewayJ = summaries.reduce((a, s) => a + s.energyJ, 0);
  assert.ok(Math.abs(gatewayJ - reportedJ) < 1e-6 * Math.max(1, reportedJ), `gateway ${gatewayJ} J, nodes ${reportedJ} J`);
});
