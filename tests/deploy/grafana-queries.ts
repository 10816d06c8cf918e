// What Grafana does with the dashboard before a query reaches InfluxDB, done here so a test
// can run the very same text: the panel targets and template queries read from the JSON,
// the time-range and interval macros, the template variables (regex-escaped, multi-value as
// `(a|b)`), and the environment expansion of the provisioning files. Grafana is not a
// package this machine (or a Pi) can run in a test, so its documented rules are restated.
import { z } from 'zod';

const targetSchema = z.object({ refId: z.string(), query: z.string().optional(), rawQuery: z.boolean().optional(), hide: z.boolean().optional() });

interface PanelInput {
  id: number;
  type: string;
  title: string;
  interval?: string;
  maxDataPoints?: number;
  targets?: Array<z.infer<typeof targetSchema>>;
  panels?: PanelInput[];
}

const panelSchema: z.ZodType<PanelInput> = z.lazy(() => z.object({
  id: z.number().int(),
  type: z.string(),
  title: z.string(),
  interval: z.string().optional(),
  maxDataPoints: z.number().int().positive().optional(),
  targets: z.array(targetSchema).optional(),
  // A collapsed row keeps its panels inside itself.
  panels: z.array(panelSchema).optional(),
}));

const variableSchema = z.object({
  name: z.string(),
  type: z.string(),
  query: z.union([z.string(), z.object({ query: z.string() })]).optional(),
  multi: z.boolean().optional(),
  includeAll: z.boolean().optional(),
  allValue: z.string().nullable().optional(),
  /** The selection the dashboard opens with. */
  current: z.object({ value: z.union([z.string(), z.array(z.string())]) }).optional(),
});

export const dashboardSchema = z.object({
  uid: z.string(),
  title: z.string(),
  panels: z.array(panelSchema),
  templating: z.object({ list: z.array(variableSchema) }),
});

export type Dashboard = z.infer<typeof dashboardSchema>;
export type TemplateVariable = z.infer<typeof variableSchema>;

export interface PanelQuery {
  panel: string;
  refId: string;
  query: string;
  /** The panel's own minimum interval ("Min interval" in the query options), if set. */
  minInterval?: string;
  maxDataPoints?: number;
}

/** Every raw InfluxQL target of every panel, rows' nested panels included. */
export function panelQueries(d: Dashboard): PanelQuery[] {
  const out: PanelQuery[] = [];
  const walk = (panels: PanelInput[]) => {
    for (const p of panels) {
      if (p.panels) walk(p.panels);
      for (const t of p.targets ?? []) {
        if (t.hide) continue;
        if (!t.rawQuery || t.query === undefined) throw new Error(`panel "${p.title}" target ${t.refId} is not a raw InfluxQL query; the test reads only raw queries`);
        out.push({ panel: p.title, refId: t.refId, query: t.query, minInterval: p.interval, maxDataPoints: p.maxDataPoints });
      }
    }
  };
  walk(d.panels);
  return out;
}

/** Template variables that run an InfluxQL query, in dashboard order (later ones may use earlier ones). */
export function queryVariables(d: Dashboard): Array<TemplateVariable & { query: string }> {
  return d.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ ...v, query: typeof v.query === 'string' ? v.query : v.query?.query ?? '' }));
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** '60s', '1m', '500ms' → milliseconds. */
export function durationMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration like 60s or 1m`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

// Grafana rounds the raw interval (range / data points) to the next step of this ladder
// (its rangeutil roundInterval): each pair is [raw interval below, rounded interval], in ms.
const ROUND_STEPS: Array<[number, number]> = [
  [15, 10], [35, 20], [75, 50], [150, 100], [350, 200], [750, 500], [1500, 1000], [3500, 2000], [7500, 5000],
  [12_500, 10_000], [17_500, 15_000], [25_000, 20_000], [45_000, 30_000], [90_000, 60_000], [210_000, 120_000],
  [450_000, 300_000], [750_000, 600_000], [1_050_000, 900_000], [1_500_000, 1_200_000], [2_700_000, 1_800_000],
  [5_400_000, 3_600_000], [9_000_000, 7_200_000], [16_200_000, 10_800_000], [32_400_000, 21_600_000],
  [86_400_000, 43_200_000], [604_800_000, 86_400_000], [1_814_400_000, 604_800_000],
];

export function roundIntervalMs(rawMs: number): number {
  for (const [below, rounded] of ROUND_STEPS) if (rawMs < below) return rounded;
  return 2_592_000_000;
}

/** An interval in the largest whole unit, the form Grafana writes into $__interval. */
export function formatInterval(ms: number): string {
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** $__interval: range / max data points, rounded, but never below the panel's or the datasource's minimum. */
export function grafanaIntervalMs(rangeMs: number, maxDataPoints: number, minInterval?: string): number {
  const rounded = roundIntervalMs(rangeMs / maxDataPoints);
  return minInterval ? Math.max(rounded, durationMs(minInterval)) : rounded;
}

/** Characters with a meaning in a regular expression, escaped the way Grafana escapes a variable's values for `=~ /.../`. */
export function escapeRegex(value: string): string {
  return value.replace(/[\\^$*+?.()|[\]{}/]/g, '\\$&');
}

export interface Selection {
  /** Values chosen for each template variable ('All' = every option). */
  values: Record<string, string[]>;
  /** Whether the variable is multi-value or has "All" (then its values are regex-escaped and joined). */
  multi: Record<string, boolean>;
}

export interface Frame {
  fromMs: number;
  toMs: number;
  intervalMs: number;
}

/**
 * Replaces Grafana's macros and template variables in an InfluxQL query:
 * $timeFilter → `time >= FROMms and time <= TOms`; $__interval and $interval → the interval
 * as a duration; $__interval_ms → the same in ms; $name / ${name} → the variable's value,
 * several values as `(a|b)`. An unknown variable is an error, so a misspelt one fails.
 */
export function interpolate(query: string, frame: Frame | null, sel: Selection): string {
  return query.replace(/\$(\w+)|\$\{(\w+)(?::\w+)?\}/g, (token, a?: string, b?: string) => {
    const name = (a ?? b)!;
    if (name === 'timeFilter' || name === '__interval' || name === 'interval' || name === '__interval_ms') {
      if (!frame) throw new Error(`${token} in a query that runs without a time range: ${query}`);
      if (name === 'timeFilter') return `time >= ${frame.fromMs}ms and time <= ${frame.toMs}ms`;
      if (name === '__interval_ms') return String(frame.intervalMs);
      return formatInterval(frame.intervalMs);
    }
    const values = sel.values[name];
    if (!values) throw new Error(`query uses ${token}, which is not a template variable of the dashboard: ${query}`);
    if (!sel.multi[name]) return escapeRegex(values[0] ?? '');
    const escaped = values.map(escapeRegex);
    return escaped.length === 1 ? escaped[0]! : `(${escaped.join('|')})`;
  });
}

/** Grafana's expansion of provisioning files: $NAME and ${NAME} from the environment, unset → ''; $$ is a literal $. */
export function expandEnv(text: string, env: Record<string, string | undefined>): string {
  return text
    .split('$$')
    .map((part) => part.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a?: string, b?: string) => env[(a ?? b)!] ?? ''))
    .join('$');
}

export interface FieldUse {
  measurement: string;
  identifier: string;
  where: 'select' | 'where';
}

/**
 * The quoted identifiers a query reads from each measurement it names: the arguments of
 * its functions (fields) and the names in its WHERE clause (tags or fields). A subquery's
 * outer SELECT reads the subquery's aliases, not a measurement, and is not listed.
 */
export function identifiersByMeasurement(query: string): FieldUse[] {
  const out: FieldUse[] = [];
  const select = /SELECT\s+((?:(?!SELECT\b|FROM\b)[\s\S])*?)\s+FROM\s+"(\w+)"(?:\s+WHERE\s+((?:(?!GROUP\s+BY|\))[\s\S])*))?/g;
  for (const m of query.matchAll(select)) {
    const [, list, measurement, where] = m as unknown as [string, string, string, string | undefined];
    for (const f of list.matchAll(/\w+\(\s*"(\w+)"/g)) out.push({ measurement, identifier: f[1]!, where: 'select' });
    for (const f of (where ?? '').matchAll(/"(\w+)"\s*(?:=~|!~|!=|=|<|>)/g)) out.push({ measurement, identifier: f[1]!, where: 'where' });
  }
  return out;
}
