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
import { until } from '../../ground/until.js';

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
  // On a loaded host a report can come after the router's wait (2 s of wall time here); the
  // kept job takes it then. Read the jobs as the gateway keeps them once every report is in.
  const served = summaries.length * 3;
  const sent = () => field.nodes.reduce((a, n) => a + (n.agent?.worker?.energy.totals.reportedJ ?? 0), 0);
  const keptJ = () => summaries.reduce((a, s) => a + (field.jobs.job(s.id)?.energyJ ?? 0), 0);
  await until('every node\'s energy reports sent', () =>
    field.nodes.reduce((a, n) => a + (n.agent?.worker?.energy.totals.reports ?? 0), 0) >= served, 30_000);
  await until('the gateway\'s kept jobs to hold what the nodes sent', () => Math.abs(keptJ() - sent()) < 1e-6 * Math.max(1, sent()), 30_000).catch(() => undefined);
  const kept = summaries.map((s) => field.jobs.job(s.id) ?? s);
  for (const s of kept) {
    assert.ok(s.energyJ >= 0, `${s.id}: ${s.energyJ} J`);
    assert.ok(s.energyUncertaintyJ !== undefined && Number.isFinite(s.energyUncertaintyJ) && s.energyUncertaintyJ > 0, `${s.id}: uncertainty ${s.energyUncertaintyJ}`);
  }
  let reportedJ = 0;
  let reports = 0;
  for (const node of field.nodes) {
    const worker = node.agent?.worker;
    assert.ok(worker, `${node.nodeId} runs a worker`);
    const e = worker.energy.totals;
    reportedJ += e.reportedJ;
    reports += e.reports;
    if (e.reports === 0) continue;
    const meteredAboveIdleJ = e.busyConsumedJ - e.busyIdleJ;
    t.diagnostic(`${node.nodeId}: ${e.reports} jobs ${e.reportedJ.toFixed(3)} ± ${e.reportedUncertaintyJ.toFixed(3)} J; metered above idle ${meteredAboveIdleJ.toFixed(3)} J`);
    assert.ok(
      Math.abs(e.reportedJ - meteredAboveIdleJ) <= e.reportedUncertaintyJ,
      `${node.nodeId}: ${e.reports} jobs ${e.reportedJ.toFixed(3)} J, metered above idle ${meteredAboveIdleJ.toFixed(3)} J over ${e.busyIntervals} intervals, ± ${e.reportedUncertaintyJ.toFixed(3)} J`,
    );
  }
  assert.equal(reports, served, 'one report per job and group');
  const gatewayJ = kept.reduce((a, s) => a + s.energyJ, 0);
  assert.ok(Math.abs(gatewayJ - reportedJ) < 1e-6 * Math.max(1, reportedJ), `gateway ${gatewayJ} J, nodes ${reportedJ} J`);
});
