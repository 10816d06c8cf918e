// The InfluxDB recipe of docs/monitoring.md, run as written on an influxd with
// authentication: the statements are read from the document's `influx -execute` lines and
// sent with the same logins over HTTP (the influx shell is a thin client of that API). The
// gateway's store must then write with its non-admin user, and Grafana's user read but not write.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { createStore, slotPoint } from '../../gateway/store/index.js';
import { TestInfluxd } from '../support/influxd.js';
import { until } from '../../ground/until.js';

const ROOT = resolve(import.meta.dirname, '../../..');
let influxd: TestInfluxd;

interface Statement {
  login?: { u: string; p: string };
  q: string;
}

/** The document's `influx [-username U -password 'P'] -execute "Q"` lines. */
function recipe(): Statement[] {
  const doc = readFileSync(join(ROOT, 'docs/monitoring.md'), 'utf8');
  return [...doc.matchAll(/^influx (?:-username (\S+) -password '([^']*)' )?-execute "([^"]+)"$/gm)]
    .map((m) => ({ ...(m[1] ? { login: { u: m[1], p: m[2]! } } : {}), q: m[3]! }));
}

/** The password a statement of the recipe gives `user`. */
function passwordOf(statements: Statement[], user: string): string {
  const m = statements.map((s) => new RegExp(`^CREATE USER ${user} WITH PASSWORD '([^']+)'`).exec(s.q)).find(Boolean);
  assert.ok(m, `the recipe creates the user ${user}`);
  return m[1]!;
}

before(async () => {
  influxd = await TestInfluxd.create({ auth: true });
  await influxd.start();
});

after(async () => {
  await influxd?.destroy();
});

test('docs/monitoring.md\'s InfluxDB users: the gateway writes as a non-admin user, Grafana reads and cannot write', async () => {
  const statements = recipe();
  assert.ok(statements.length >= 5, `${statements.length} statements in the document`);
  for (const s of statements) {
    const r = (await influxd.query('', s.q, s.login)) as { results: Array<{ error?: string }> };
    assert.equal(r.results[0]?.error, undefined, `${s.q}: ${r.results[0]?.error}`);
  }
  const gateway = { u: 'heliomesh', p: passwordOf(statements, 'heliomesh') };
  const grafana = { u: 'grafana', p: passwordOf(statements, 'grafana') };

  const config = parseGatewayConfig({
    broker: { credentialsPath: 'unused' },
    store: { url: `${influxd.url}/heliomesh`, username: gateway.u, password: gateway.p, flushIntervalMs: 50 },
  });
  const store = createStore(config.store, { clock: new RealClock(), log: pino({ level: 'silent' }) });
  try {
    store.write(slotPoint({ fleet: 'rooftop', node: 'pi-01', group: 'g1' }, { seq: 1, batteryPct: 55 }, Date.now()));
    await until('a point written', () => store.stats().written >= 1, 10_000, 50);
    assert.equal(store.stats().written, 1, 'the gateway wrote with its own user');
    assert.equal(store.stats().refused, 0);
  } finally {
    await store.close();
  }

  const read = (await influxd.query('heliomesh', 'SELECT "batteryPct" FROM "node_slot"', grafana)) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> };
  assert.equal(read.results[0]?.series?.[0]?.values[0]?.[1], 55, 'Grafana\'s user reads it');
  const write = await fetch(`${influxd.url}/write?db=heliomesh&u=${grafana.u}&p=${encodeURIComponent(grafana.p)}`, { method: 'POST', body: 'node_slot,fleet=x seq=2i' });
  assert.equal(write.status, 403, 'Grafana\'s user cannot write');
  await write.body?.cancel();
});
