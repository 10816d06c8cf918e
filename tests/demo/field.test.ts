// The field in process: a group count the bundled shards do not have is served from a
// re-split of the bundled model; a node that runs flat at night goes off, its battery is
// recharged by the morning sun, and the wake path brings it back to the gateway.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { pino } from 'pino';
import { startField, type Field, type FieldOptions } from '../../demo/field.js';
import { defaultStartMs } from '../../demo/plan.js';
import { until } from '../../ground/until.js';

const site = { latitudeDeg: 40.4, longitudeDeg: -3.7 };
// 04:00 solar time on 21 June: the sun rises half an hour later.
const dawn = defaultStartMs(Date.UTC(2026, 5, 21, 12), site.longitudeDeg);

function options(o: Partial<FieldOptions>): FieldOptions {
  return {
    groups: 1, nodesPerGroup: 1, seed: 3, dayMinutes: 10, policy: 'foresight', mqttPort: 0, startMs: dawn, ...site,
    log: pino({ level: 'silent' }), ...o,
  };
}

test('2 groups: the bundled model is re-split into 2 block ranges, a completion passes both, stop removes the folder', { timeout: 120_000 }, async (t) => {
  const field: Field = await startField(options({ groups: 2, nodesPerGroup: 1, initialSocPct: 70 }));
  t.after(() => field.stop());
  assert.equal(field.model.split, true);
  assert.deepEqual(field.model.ranges, [{ from: 0, to: 3 }, { from: 3, to: 5 }]);
  assert.ok(field.model.dir.startsWith(field.dir), 'the split lives in the field\'s own folder');
  const job = await field.jobs.submit({ prompt: 'The state of the Union is', maxTokens: 12, temperature: 0, topP: 1, seed: 1, stop: [] }).done;
  assert.equal(job.status, 'done');
  assert.equal(job.completionTokens, 12);
  assert.deepEqual(job.served.map(({ group, nodes }) => ({ group, nodes })), [{ group: 'g1', nodes: ['g1-n1'] }, { group: 'g2', nodes: ['g2-n1'] }]);
  // The prompt's pass gives the first token; each of the other 11 took one decode forward per group.
  for (const g of job.served) assert.ok(g.decode?.frames === 11 && g.decode.forwardMs > 0, JSON.stringify(g));
  await field.stop();
  assert.equal(existsSync(field.dir), false);
});

test('a node that runs flat before dawn goes off, and the wake path brings it back once the sun has recharged it', { timeout: 180_000 }, async (t) => {
  // One node just above the critical level (3 %) at 04:00 on a one-minute day, which the
  // gateway does not send to sleep first.
  const field = await startField(options({ dayMinutes: 1, initialSocPct: 3.6, coordinatedSleep: false }));
  t.after(() => field.stop());
  const node = field.nodes[0]!;
  let seenOffline = false;
  const watch = setInterval(() => {
    if (field.gateway.registry.get(node.nodeId)?.online === false) seenOffline = true;
  }, 20);
  t.after(() => clearInterval(watch));
  await until('the node to power off at the critical level', () => node.power === 'off', 60_000);
  assert.match(node.offReason ?? '', /critical/);
  const offAt = field.clock.now();
  await until('the node to wake', () => node.restarts === 1 && node.power === 'on', 120_000);
  const wokeAt = field.clock.now();
  await until('the gateway to see it online again', () => field.gateway.registry.get(node.nodeId)?.online === true, 30_000);
  assert.ok(seenOffline, 'the gateway saw the node go offline in between');
  const solarHour = ((wokeAt / 3_600_000 + site.longitudeDeg / 15) % 24 + 24) % 24;
  assert.ok(solarHour > 5 && solarHour < 14, `woke in the morning (${solarHour.toFixed(2)} h solar time)`);
  assert.ok(wokeAt - offAt > 3_600_000, 'recharging to the wake level took more than an hour of sun');
  // It woke above E′_th (20 %), so it takes jobs again rather than starting in power saving.
  assert.ok(node.trueSocPct()! >= 20, `battery ${node.trueSocPct()} % at wake`);
});
