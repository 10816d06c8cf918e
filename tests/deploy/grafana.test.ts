// The Grafana dashboard proven against a real InfluxDB: the demo's virtual field runs an
// accelerated solar morning into a real influxd; then every panel query and every
// template query of deploy/grafana/dashboards/heliomesh.json is run there, with Grafana's
// macros and variables substituted as Grafana would, and must return data. The datasource
// the queries go to is the provisioning file's, expanded with deploy/grafana/grafana.env.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SCHEMA } from '../../gateway/store/schema.js';
import { TestInfluxd } from '../support/influxd.js';
import { runAcceleratedField, type FieldRun } from './field-run.js';
import {
  dashboardSchema, expandEnv, grafanaIntervalMs, identifiersByMeasurement, interpolate, panelQueries, queryVariables,
  type Dashboard, type Frame, type Selection,
} from './grafana-queries.js';

// Compiled to dist/tests/deploy/, so the repository root is three levels up.
const ROOT = resolve(import.meta.dirname, '../../..');
const GRAFANA = join(ROOT, 'deploy/grafana');
const DATABASE = 'heliomesh';
/**
 * The planned-wake panel reads the planner's sleep orders. On the gateway's first morning
 * the only one is the halt of the node the run rests (below its raised E_th), which serves
 * no job; so narrowed to the first node of the first group, which serves them, that panel
 * has nothing to show. The default selection shows the order, and
 * tests/gateway/sleep-gateway.test.ts runs that panel over a night of orders.
 */
const SLEEP_ORDERS = /FROM "sleep_plan"/;
/** A panel about 1000 px wide: Grafana asks for one point per pixel. */
const MAX_DATA_POINTS = 1000;

interface InfluxResult {
  results: Array<{ error?: string; series?: Array<{ name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }> }>;
}

let influxd: TestInfluxd;
let run: FieldRun;
let dashboard: Dashboard;
let datasource: { url: string; database: string; minInterval: string };

before(async () => {
  influxd = await TestInfluxd.create();
  await influxd.start();
  dashboard = dashboardSchema.parse(JSON.parse(await readFile(join(GRAFANA, 'dashboards/heliomesh.json'), 'utf8')));
  // The datasource as Grafana provisions it, with the shipped defaults except the URL,
  // which is this test's influxd.
  const env = Object.fromEntries((await readFile(join(GRAFANA, 'grafana.env'), 'utf8')).split('\n')
    .filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  env.HELIOMESH_INFLUX_URL = influxd.url;
  const provisioned = parseYaml(expandEnv(await readFile(join(GRAFANA, 'provisioning/datasources/heliomesh.yaml'), 'utf8'), env)) as {
    datasources: Array<{ url: string; jsonData: { dbName: string; timeInterval: string } }>;
  };
  const ds = provisioned.datasources[0]!;
  datasource = { url: ds.url, database: ds.jsonData.dbName, minInterval: ds.jsonData.timeInterval };
  run = await runAcceleratedField({ influxUrl: `${influxd.url}/${DATABASE}` });
});

after(async () => {
  await influxd?.destroy();
});

async function query(q: string): Promise<InfluxResult> {
  const res = await fetch(`${datasource.url}/query?db=${encodeURIComponent(datasource.database)}&epoch=ms`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ q }),
  });
  const body = await res.text();
  assert.equal(res.status, 200, `InfluxDB refused ${q}: ${body}`);
  return JSON.parse(body) as InfluxResult;
}

/** Rows of a query, after checking InfluxDB found no error in it. */
async function rows(q: string): Promise<NonNullable<InfluxResult['results'][number]['series']>> {
  const r = await query(q);
  for (const s of r.results) assert.equal(s.error, undefined, `${s.error} in ${q}`);
  return r.results.flatMap((s) => s.series ?? []);
}

/** Each value column has a value somewhere, so no field of a multi-field SELECT is missing. */
function emptyColumns(series: Awaited<ReturnType<typeof rows>>): string[] {
  const columns = new Set(series.flatMap((s) => s.columns.filter((c) => c !== 'time')));
  return [...columns].filter((c) => !series.some((s) => {
    const i = s.columns.indexOf(c);
    return i >= 0 && s.values.some((v) => v[i] !== null && v[i] !== undefined);
  }));
}

/** Runs the template queries in order, each with the variables before it set to `pick` of their options. */
async function selectVariables(pick: (name: string, options: string[]) => string[]): Promise<{ sel: Selection; options: Record<string, string[]> }> {
  const sel: Selection = { values: {}, multi: {} };
  const options: Record<string, string[]> = {};
  for (const v of queryVariables(dashboard)) {
    const series = await rows(interpolate(v.query, null, sel));
    // SHOW TAG VALUES answers with columns key, value.
    options[v.name] = [...new Set(series.flatMap((s) => s.values.map((r) => String(r[1]))))].sort();
    assert.ok(options[v.name]!.length > 0, `template variable ${v.name} has no options: ${v.query}`);
    sel.values[v.name] = pick(v.name, options[v.name]!);
    sel.multi[v.name] = Boolean(v.multi || v.includeAll);
  }
  return { sel, options };
}

function frame(minInterval: string | undefined): Frame {
  const fromMs = run.fromMs;
  const toMs = run.toMs;
  // The panel's own minimum wins over the datasource's (Grafana's query options).
  return { fromMs, toMs, intervalMs: grafanaIntervalMs(toMs - fromMs, MAX_DATA_POINTS, minInterval ?? datasource.minInterval) };
}

test('the provisioning files: one InfluxQL datasource whose uid the dashboard defaults to, every variable given a default', async () => {
  const text = await readFile(join(GRAFANA, 'provisioning/datasources/heliomesh.yaml'), 'utf8');
  const env = await readFile(join(GRAFANA, 'grafana.env'), 'utf8');
  const settings = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
  for (const m of settings.matchAll(/\$\{(\w+)\}/g)) assert.match(env, new RegExp(`^${m[1]}=`, 'm'), `grafana.env gives ${m[1]} a value`);
  const ds = (parseYaml(text) as { apiVersion: number; datasources: Array<Record<string, unknown>> });
  assert.equal(ds.apiVersion, 1);
  const [source] = ds.datasources;
  assert.equal(source?.type, 'influxdb');
  assert.equal((source?.jsonData as { version: string }).version, 'InfluxQL');
  const dsVar = dashboard.templating.list.find((v) => v.type === 'datasource');
  assert.equal(dsVar?.current?.value, source?.uid, 'the dashboard\'s datasource variable defaults to the provisioned uid');
  const providers = parseYaml(await readFile(join(GRAFANA, 'provisioning/dashboards/heliomesh.yaml'), 'utf8')) as { providers: Array<{ type: string; options: { path: string } }> };
  assert.equal(providers.providers[0]?.type, 'file');
  assert.match(providers.providers[0]!.options.path, /^\//, 'an absolute dashboards path');
  assert.equal(datasource.database, DATABASE, 'the default database is the one the gateway example writes to');
});

test('the dashboard\'s structure: unique panel ids, every panel on the datasource variable, no overlapping panels', async () => {
  const raw = JSON.parse(await readFile(join(GRAFANA, 'dashboards/heliomesh.json'), 'utf8')) as {
    panels: Array<{ id: number; type: string; title: string; datasource?: { uid: string }; gridPos: { x: number; y: number; w: number; h: number }; targets?: Array<{ refId: string; datasource?: { uid: string } }> }>;
  };
  const ids = raw.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const cells = new Map<string, string>();
  for (const p of raw.panels) {
    if (p.type !== 'row') {
      assert.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the datasource variable`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, '${datasource}', `${p.title}/${t.refId} uses the datasource variable`);
      const refs = (p.targets ?? []).map((t) => t.refId);
      assert.equal(new Set(refs).size, refs.length, `${p.title}: unique refIds`);
    }
    const { x, y, w, h } = p.gridPos;
    assert.ok(x >= 0 && x + w <= 24, `${p.title} fits the 24-column grid`);
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        const other = cells.get(`${i},${j}`);
        assert.equal(other, undefined, `${p.title} overlaps ${String(other)}`);
        cells.set(`${i},${j}`, p.title);
      }
    }
  }
});

test('every field a panel reads is one the gateway writes (gateway/store/schema.ts)', () => {
  const known = new Map(SCHEMA.map((m) => [m.measurement, new Set([...Object.keys(m.fields), ...m.tags])]));
  const problems: string[] = [];
  const queries = panelQueries(dashboard);
  assert.ok(queries.length >= 20, `${queries.length} panel queries`);
  for (const q of queries) {
    const uses = identifiersByMeasurement(q.query);
    if (uses.length === 0) problems.push(`${q.panel}/${q.refId}: no field found in ${q.query}`);
    for (const u of uses) {
      const names = known.get(u.measurement);
      if (!names) problems.push(`${q.panel}/${q.refId}: measurement ${u.measurement} is not written`);
      else if (!names.has(u.identifier)) problems.push(`${q.panel}/${q.refId}: ${u.measurement} has no field or tag "${u.identifier}"`);
    }
  }
  assert.deepEqual(problems, []);
  // The check itself can fail.
  assert.deepEqual(identifiersByMeasurement('SELECT mean("batteryPercent") FROM "node_slot" WHERE "node" =~ /^$node$/ AND $timeFilter GROUP BY time($__interval)')
    .filter((u) => !known.get(u.measurement)!.has(u.identifier)).map((u) => u.identifier), ['batteryPercent']);
});

test('template variables list the run\'s fleet, groups and nodes', async () => {
  const { options } = await selectVariables((_n, o) => o);
  assert.deepEqual(options.fleet, [run.fleet]);
  assert.deepEqual(options.group, run.groups);
  assert.deepEqual(options.node, run.nodes);
  // Narrowed: the node list follows the group chosen.
  const one = await selectVariables((n, o) => (n === 'group' ? [run.groups[0]!] : o));
  assert.deepEqual(one.options.node, run.nodesOf(run.groups[0]!));
});

for (const [what, pick, without] of [
  ['All groups and nodes (the default)', (_n: string, o: string[]) => o, null],
  ['one node of one group', (n: string, o: string[]) => [o[0]!], SLEEP_ORDERS],
] as const) {
  test(`every panel query returns data: ${what}`, async () => {
    const { sel } = await selectVariables(pick);
    const failures: string[] = [];
    for (const q of panelQueries(dashboard).filter((p) => !without?.test(p.query))) {
      const text = interpolate(q.query, frame(q.minInterval), sel);
      const series = await rows(text);
      const values = series.reduce((n, s) => n + s.values.length, 0);
      if (values === 0) failures.push(`${q.panel}/${q.refId}: no rows for ${text}`);
      else {
        const empty = emptyColumns(series);
        if (empty.length) failures.push(`${q.panel}/${q.refId}: no value in column(s) ${empty.join(', ')} for ${text}`);
      }
    }
    assert.deepEqual(failures, []);
  });
}

test('a query naming a field the gateway does not write returns nothing', async () => {
  const { sel } = await selectVariables((_n, o) => o);
  const battery = panelQueries(dashboard).find((q) => q.query.includes('"batteryPct"') && q.panel.startsWith('Battery'));
  assert.ok(battery, 'the battery panel exists');
  const good = interpolate(battery.query, frame(battery.minInterval), sel);
  assert.ok((await rows(good)).length > 0);
  const wrong = good.replace('"batteryPct"', '"batteryPercent"');
  assert.notEqual(wrong, good);
  assert.deepEqual(await rows(wrong), []);
});

test('the run behind the data: slots from every node, harvest, q_lim, jobs by outcome, a power-saving period, an offline node', async () => {
  const f = `"fleet" = '${run.fleet}'`;
  const counts = await rows(`SELECT count("seq") FROM "node_slot" WHERE ${f} GROUP BY "node"`);
  assert.deepEqual(counts.map((s) => s.tags?.node).sort(), run.nodes);
  for (const s of counts) assert.ok((s.values[0]![1] as number) >= 20, `${s.tags?.node}: ${String(s.values[0]![1])} slot records`);
  const harvest = await rows(`SELECT max("harvestJ") FROM "node_slot" WHERE ${f} GROUP BY "node"`);
  assert.ok(harvest.some((s) => (s.values[0]![1] as number) > 0), 'the panels harvested');
  const qLim = await rows(`SELECT max("qLim") FROM "q_lim" WHERE ${f}`);
  assert.ok((qLim[0]?.values[0]?.[1] as number) > 0, 'q_lim solved on the nodes\' own harvest estimates');
  const outcomes = await rows(`SELECT count("jobId") FROM "job" WHERE ${f} GROUP BY "outcome"`);
  assert.deepEqual(Object.fromEntries(outcomes.map((s) => [s.tags?.outcome, s.values[0]![1]])), { ok: run.jobs.done.length, cancelled: 1 });
  const saving = await rows(`SELECT count("gamma") FROM "node_slot" WHERE ${f} AND "node" = '${run.savingNode}' AND "gamma" = 0`);
  assert.ok(saving.length > 0, `${run.savingNode} wrote slot records in power saving`);
  const offline = await rows(`SELECT last("reason") FROM "node_state" WHERE ${f} AND "node" = '${run.leavingNode}' AND "online" = false`);
  assert.equal(offline[0]?.values[0]?.[1], 'will', `${run.leavingNode}'s offline state is logged`);
  // The planner's first morning: nobody is sent to sleep for want of them; the rested node,
  // below its raised E_th, is halted as one about to run flat.
  const orders = await rows(`SELECT "reason" FROM "sleep_plan" WHERE ${f} GROUP BY "node"`);
  assert.deepEqual(orders.map((s) => s.tags?.node), [run.savingNode], 'only the rested node is sent to sleep');
  for (const r of orders[0]!.values) assert.match(String(r[1]), /would run flat/);
  const sleepers = await rows(`SELECT max("asleep") FROM "sleep_group" WHERE ${f} GROUP BY "group"`);
  assert.deepEqual(sleepers.map((s) => [s.tags?.group, s.values[0]![1]]), run.groups.map((g) => [g, g === run.groups[0] ? 1 : 0]), 'each group counted, only the first with a sleeper');
});
