// The field's plan and view: the same seed gives the same field, the nodes' harvests
// really differ on the virtual hardware, the power-mode table follows the virtual Pi's
// load model, the clock starts at dawn in summer, and the view ends with a working curl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import { buildNode } from '../../hardware/node.js';
import { clearSkyGhi } from '../../hardware/virtual/sun.js';
import { defaultStartMs, planField, powerModesFor, slotMsFor, summerSite, PAPER_SLOT_MS } from '../../demo/plan.js';
import { curlLine, type Snapshot } from '../../demo/snapshot.js';
import { PLAIN, renderView } from '../../demo/view.js';

test('the same seed gives the same field; another seed another one; every node differs from its group mates', () => {
  const o = { groups: 3, nodesPerGroup: 3, slotMs: PAPER_SLOT_MS };
  const a = planField({ ...o, seed: 7 });
  assert.deepEqual(planField({ ...o, seed: 7 }), a);
  assert.notDeepEqual(planField({ ...o, seed: 8 }).map((p) => p.summary), a.map((p) => p.summary));
  assert.deepEqual(a.map((p) => p.nodeId), ['g1-n1', 'g1-n2', 'g1-n3', 'g2-n1', 'g2-n2', 'g2-n3', 'g3-n1', 'g3-n2', 'g3-n3']);
  const skies = new Set(a.map((p) => p.hardware.virtual.clouds.seed));
  assert.equal(skies.size, a.length, 'each node has a sky of its own');
  for (const p of a) {
    assert.ok(p.summary.batteryWh > 30 && p.summary.batteryWh < 50, `${p.nodeId}: ${p.summary.batteryWh} Wh`);
    assert.equal(p.hardware.battery.capacityWh, p.summary.batteryWh);
    assert.equal(p.hardware.kind, 'virtual');
  }
});

test('the nodes\' harvests differ on the virtual hardware over a summer morning', async () => {
  const site = { latitudeDeg: 40.4, longitudeDeg: -3.7 };
  const plans = planField({ groups: 1, nodesPerGroup: 3, seed: 1, slotMs: PAPER_SLOT_MS, ...site });
  const start = Date.UTC(2026, 5, 21, 6);
  const harvests: number[] = [];
  for (const p of plans) {
    const clock = new VirtualClock(start);
    const hw = await buildNode(p.hardware, { clock });
    try {
      // Reads every 5 simulated minutes, as an agent's ledger would, so the driver sets
      // the charger's input limits.
      for (let m = 0; m <= 6 * 60; m += 5) {
        await clock.advanceTo(start + m * 60_000);
        await hw.read();
      }
      harvests.push(hw.virtual!.plant.ledger.harvestedJ);
    } finally {
      await hw.close();
    }
  }
  for (const h of harvests) assert.ok(h > 10_000, `a summer morning harvests more than 10 kJ, got ${h.toFixed(0)} J`);
  for (let i = 0; i < harvests.length; i++) {
    for (let j = i + 1; j < harvests.length; j++) {
      assert.ok(Math.abs(harvests[i]! - harvests[j]!) / Math.max(harvests[i]!, harvests[j]!) > 0.02, `harvests ${harvests.map((h) => h.toFixed(0)).join(', ')} J differ by more than 2 %`);
    }
  }
});

test('power modes: κ from throughput (cores × clock), C_E from the plant\'s extra power over κ slots', () => {
  const [plan] = planField({ groups: 1, nodesPerGroup: 1, seed: 1, slotMs: PAPER_SLOT_MS });
  const modes = powerModesFor(plan!.hardware, PAPER_SLOT_MS);
  assert.deepEqual(modes.map((m) => [m.powerMode, m.name, m.kappa]), [[1, 'low', 10], [2, 'medium', 3], [3, 'high', 1]]);
  const { computeW, freqExponent } = plan!.hardware.virtual.load;
  // The top mode: all cores at the top clock for one slot.
  assert.equal(modes[2]!.costJ, Math.round(computeW * PAPER_SLOT_MS / 1000));
  // Medium: 2 of 4 cores at 1.0 of 1.5 GHz for 3 slots.
  assert.equal(modes[1]!.costJ, Math.round(computeW * 0.5 * (1 / 1.5) ** freqExponent * 3 * PAPER_SLOT_MS / 1000));
  assert.deepEqual(plan!.powerModes, modes);
});

test('slot length: the paper\'s δ at the default day, longer when a slot would pass in under 0.6 s of wall time', () => {
  assert.equal(slotMsFor(144), 100_000);
  assert.equal(slotMsFor(1440), 864_000);
});

test('the simulated day starts at the last 04:00 solar time, in the hemisphere that has summer', () => {
  const june = Date.UTC(2026, 5, 10, 12);
  const december = Date.UTC(2026, 11, 1, 1);
  assert.equal(summerSite(june).latitudeDeg, 40.4);
  assert.equal(summerSite(december).latitudeDeg, -40.4);
  for (const now of [june, december, Date.UTC(2026, 11, 1, 4, 14), Date.UTC(2026, 11, 1, 4, 16)]) {
    const site = summerSite(now);
    const start = defaultStartMs(now, site.longitudeDeg);
    assert.ok(start <= now && now - start < 86_400_000, 'within the last day');
    const solarHours = ((start / 3_600_000 + site.longitudeDeg / 15) % 24 + 24) % 24;
    assert.ok(Math.abs(solarHours - 4) < 1e-6, `starts at 04:00 solar time, got ${solarHours}`);
    // Summer: the sun at solar noon of that day is high.
    assert.ok(clearSkyGhi(start + 8 * 3_600_000, site.latitudeDeg, site.longitudeDeg) > 800);
  }
});

test('the view shows each node\'s state and ends with a curl line whose body is valid JSON', () => {
  const node = { group: 'g1', power: 'on' as const, online: true, batteryPct: 55, gamma: 1 as const, powerMode: 2, queue: 0, qLim: 0.25, weight: 0.5, harvestW: 4.2, restarts: 0, noHarvest: false, harvestSlots: 300, harvestMinSlots: 24 };
  const s: Snapshot = {
    timeMs: 0, day: 1, solarHour: 13.5, sunElevationDeg: 60, clearSkyWm2: 900, speed: 144, slotMs: 100_000, policy: 'foresight',
    nodes: [
      { ...node, nodeId: 'g1-n1' },
      { ...node, nodeId: 'g1-n2', gamma: 0, powerMode: 0, batteryPct: 8 },
      { ...node, nodeId: 'g1-n3', power: 'off', online: false, batteryPct: 2, restarts: 1 },
    ],
    jobs: [{ id: 'job-1', status: 'done', model: 'bundled', createdMs: 0, finishedMs: 1, promptTokens: 5, completionTokens: 48, text: ' and the people', latencyMs: 144_000, energyJ: 612, failovers: 1, served: [{ group: 'g1', nodes: ['g1-n1', 'g1-n3'] }] }],
    counters: { submitted: 1, completed: 1, failed: 0, cancelled: 0, failovers: 1, active: 0, promptTokens: 5, completionTokens: 48, energyJ: 612 },
    load: { sent: 1, ok: 1, failed: 0, byKind: {} }, tokensPerS: 12.5, curl: curlLine(8080, 'bundled'), notes: [],
  };
  const lines = renderView(s, PLAIN);
  const row = (id: string) => lines.find((l) => l.startsWith(id))!;
  assert.match(row('g1-n1'), /active .* 55% +PM2 +1 +0 +0\.250 +0\.50 +4\.2W/);
  assert.match(row('g1-n2'), /saving/);
  assert.match(row('g1-n3'), /off .*↻1/);
  assert.match(lines.find((l) => l.startsWith('job-1'))!, /144\.0s +48 tok +612 J +g1-n1→g1-n3 +failovers 1/);
  assert.match(lines.join('\n'), /13:30 solar time/);
  const last = lines.at(-1)!;
  assert.ok(last.startsWith('curl -s http://localhost:8080/v1/completions'), last);
  const body = /-d '(.*)'$/.exec(last)![1]!;
  assert.deepEqual(Object.keys(JSON.parse(body) as object).sort(), ['max_tokens', 'model', 'prompt']);
});
