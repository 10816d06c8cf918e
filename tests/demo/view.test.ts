// The live view rendered from a snapshot: near solar noon with full batteries, a node whose
// harvest estimate is not trusted yet shows the q_lim of the gateway's cautious prior (no
// harvest assumed, so 0), marked and explained by a legend line; a job's latency is shown
// on the one clock the API reports it on (simulated), labelled so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JobSummary } from '../../gateway/jobs.js';
import type { NodeRow, Snapshot } from '../../demo/snapshot.js';
import { PLAIN, renderView } from '../../demo/view.js';

function row(nodeId: string, o: Partial<NodeRow>): NodeRow {
  return {
    nodeId, group: nodeId.slice(0, 2), power: 'on', online: true, batteryPct: 90, gamma: 1, powerMode: 3, queue: 0,
    qLim: 0, weight: 1 / 3, harvestW: 6.2, restarts: 0, noHarvest: true, harvestSlots: 12, harvestMinSlots: 24, ...o,
  };
}

const job: JobSummary = {
  id: 'job-7', status: 'done', model: 'bundled', createdMs: 0, finishedMs: 179_817, latencyMs: 179_817, promptTokens: 25, completionTokens: 48,
  text: 'and the people', energyJ: 12.4, energyUncertaintyJ: 3.1, failovers: 0, served: [{ group: 'g1', nodes: ['g1-n1'] }],
};

function snapshot(nodes: NodeRow[]): Snapshot {
  return {
    timeMs: 0, day: 1, solarHour: 11.74, sunElevationDeg: 71, clearSkyWm2: 950, speed: 1440, slotMs: 864_000, policy: 'foresight', nodes, jobs: [job],
    counters: { submitted: 1, completed: 1, failed: 0, cancelled: 0, failovers: 0, active: 0, promptTokens: 25, completionTokens: 48, energyJ: 12.4 },
    load: undefined, tokensPerS: null, curl: undefined, notes: [],
  };
}

test('a node asleep shows it and when its alarm wakes it', () => {
  const text = renderView(snapshot([row('g1-n1', { power: 'off', wakeAtMs: Date.UTC(2026, 5, 22, 4, 31) }), row('g1-n2', { power: 'off' })]), PLAIN).join('\n');
  assert.match(text, /g1-n1\s+asleep .*wakes 04:31 UTC/);
  assert.match(text, /g1-n2\s+off /);
});

test('q_lim from the prior is marked, and a legend says why it is 0 and when the node\'s own estimate takes over', () => {
  const lines = renderView(snapshot([row('g1-n1', { harvestSlots: 12 }), row('g1-n2', { harvestSlots: 30, qLim: 0.985, noHarvest: false })]), PLAIN);
  const n1 = lines.find((l) => l.startsWith('g1-n1'))!;
  const n2 = lines.find((l) => l.startsWith('g1-n2'))!;
  assert.match(n1, / 0\.000\* /, n1);
  assert.match(n2, / 0\.985 /, n2);
  assert.doesNotMatch(n2, /\*/, 'a node with its own estimate is not marked');
  const legend = lines.find((l) => l.startsWith('* q_lim'));
  assert.ok(legend, lines.join('\n'));
  assert.match(legend, /no harvest/);
  assert.match(legend, /24 slot records/);
  assert.match(legend, /12\/24/);
  assert.match(legend, /864 s/);
  assert.doesNotMatch(legend, /re-solve/, 'no node is past the prior yet');
});

test('a node past its 24 slot records whose re-solve has not landed is still marked, and the legend says so', () => {
  const lines = renderView(snapshot([row('g1-n1', { harvestSlots: 25 }), row('g1-n2', { harvestSlots: 21 })]), PLAIN);
  assert.match(lines.find((l) => l.startsWith('g1-n1'))!, / 0\.000\* /);
  const legend = lines.find((l) => l.startsWith('* q_lim'))!;
  assert.match(legend, /21, 25\/24/);
  assert.match(legend, /re-solve with its own estimate/);
});

test('no legend when every node has its own harvest estimate', () => {
  const lines = renderView(snapshot([row('g1-n1', { harvestSlots: 24, qLim: 1, noHarvest: false })]), PLAIN);
  assert.equal(lines.some((l) => l.startsWith('* q_lim')), false);
});

test('a job\'s latency is shown in simulated time, as the API reports it, and says so', () => {
  const lines = renderView(snapshot([row('g1-n1', {})]), PLAIN);
  const j = lines.find((l) => l.startsWith('job-7'))!;
  assert.match(j, / 179\.8s /, j);
  assert.doesNotMatch(j, /0\.12s|1\.25s/);
  assert.match(j, /12 ± 3 J/, 'the energy with its uncertainty');
  const header = lines.find((l) => /latency/.test(l));
  assert.ok(header && /simulated/.test(header), lines.join('\n'));
});
