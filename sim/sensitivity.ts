// `heliomesh sim sensitivity`: what each open reading of the paper (SPEC.md §7, and the
// simulator's own choices that the paper does not pin down) does to the network figures.
// Every variant changes one reading of the adopted calibration; the best of them are then
// combined. For each it reports the paper's headline effects (Fig. 3b adaptive at p = 1,
// the Fig. 4b adaptive–uniform gap at p = 1, the Fig. 4a low-energy gaps) and every curve's
// mean deviation, worst point and band coverage (sim/compare.ts).
import { CALIBRATION, type Calibration } from './calibration.js';
import { deviations } from './compare.js';
import { NETWORK_FIGURES, type NetworkFigureName } from './figures.js';
import type { PaperData } from './paper-data.js';
import { runFigures, type FigureResult, type Row } from './run.js';

export const SENSITIVITY_POLICIES = ['uniform', 'long-term', 'adaptive'];
const STUDY_FIGURES: NetworkFigureName[] = ['fig3a', 'fig3b', 'fig4a', 'fig4b'];
/** The issue's goals for a curve's mean deviation: 0.03 of a fraction, 2 jobs for Fig. 4b. */
export const goalOf = (figure: string) => (figure === 'fig4b' ? 2 : 0.03);
/** "Low energy" on Fig. 4a: the paper's 7–10 point gap lies at x ≤ 50 J/slot. */
const LOW_ENERGY_J = 50;

export interface Variant {
  label: string;
  change: Partial<Calibration>;
}

export interface Reading {
  reading: string;
  variants: Variant[];
}

/** One question at a time, each against the adopted value in sim/calibration.ts. */
export const READINGS: Reading[] = [
  { reading: 'α (Algorithm 1)', variants: [{ label: 'α from the prose', change: { alpha: 'prose' } }] },
  { reading: 'α and power saving', variants: [{ label: 'α counts devices in power saving', change: { alphaCountsSleeping: true } }] },
  {
    reading: 'E′_th',
    variants: [0.1, 0.2, 0.3].map((f) => ({ label: `E′_th = ${Math.round(f * 100)} %`, change: { eThUpFraction: f } })),
  },
  {
    reading: 'harvest law',
    variants: [
      { label: 'harvest uniform on μ·[0.5, 1.5]', change: { halfWidth: 0.5 } },
      { label: 'harvest constant at μ', change: { halfWidth: 0 } },
    ],
  },
  {
    reading: 'per-device harvest means',
    variants: [0, 0.2, 0.8].map((s) => ({ label: `device means (1 ∓ ${s}) μ`, change: { deviceSpread: s } })),
  },
  { reading: 'C_E ≤ E_m', variants: [{ label: 'C_E ≤ E_m as admission', change: { costRule: 'admission' } }] },
  { reading: 'pending job in power saving', variants: [{ label: 'pending job dropped in power saving', change: { pendingInSaving: 'drop' } }] },
  { reading: 'order of the groups', variants: [{ label: 'parallel groups', change: { groupOrder: 'parallel' } }] },
  { reading: 'queue capacity', variants: [{ label: 'one job held in all', change: { queueCapacity: 1 } }] },
  { reading: 'battery', variants: [{ label: 'integer battery', change: { battery: 'integer' } }] },
];

export interface CurveResult {
  figure: string;
  curve: string;
  mad: number;
  goal: number;
  points: number;
  worst?: { x: number; deviation: number };
  inBand?: number;
}

export interface Headline {
  /** Fig. 3b's inactive fraction at p = 1, per policy. */
  fig3bAtP1: { uniform: number; longTerm: number; adaptive: number };
  /** Fig. 4b at p = 1: uniform's drops minus adaptive's. */
  fig4bGapAtP1: number;
  /** Fig. 4a, mean over x ≤ 50 J/slot of the policy's throughput minus uniform's. */
  fig4aLowGap: { adaptive: number; longTerm: number };
}

export interface VariantResult extends Headline {
  kind: 'adopted' | 'single' | 'combination';
  reading: string;
  label: string;
  change: Partial<Calibration>;
  /** Fig. 3b at p = 1 in the paper's order: uniform > long-term > adaptive. */
  ordering: boolean;
  curves: CurveResult[];
  /** Curves whose mean deviation is within its goal, of 12. */
  withinGoal: number;
  /** Σ over the 12 curves of mean deviation ÷ goal: the calibration's own objective. */
  objective: number;
}

export interface SensitivityReport {
  iterations: number;
  seed: number;
  paper: Headline;
  variants: VariantResult[];
}

export interface SensitivityOptions {
  iterations: number;
  seed: number;
  paper: PaperData;
  threads?: number;
  /** The readings to vary; all of READINGS unless given. */
  readings?: Reading[];
  /** How many of the best single readings are combined (cumulatively: the best 2, 3, …). */
  combine?: number;
  onVariant?: (index: number, label: string) => void;
}

type Series = (policy: string, x: number) => number;

function headline(at: Record<'fig3b' | 'fig4a' | 'fig4b', Series>, fig4aXs: number[]): Headline {
  const low = fig4aXs.filter((x) => x <= LOW_ENERGY_J);
  const gap = (policy: string) => low.reduce((s, x) => s + at.fig4a(policy, x) - at.fig4a('uniform', x), 0) / low.length;
  return {
    fig3bAtP1: { uniform: at.fig3b('uniform', 1), longTerm: at.fig3b('long-term', 1), adaptive: at.fig3b('adaptive', 1) },
    fig4bGapAtP1: at.fig4b('uniform', 1) - at.fig4b('adaptive', 1),
    fig4aLowGap: { adaptive: gap('adaptive'), longTerm: gap('long-term') },
  };
}

const near = (a: number, b: number) => Math.abs(a - b) < 1e-9;

function ourSeries(results: FigureResult[], figure: string): Series {
  const rows: Row[] = results.find((r) => r.figure === figure)?.rows ?? [];
  return (policy, x) => rows.find((r) => r.policy === policy && typeof r.x === 'number' && near(r.x, x))?.mean ?? NaN;
}

export function paperHeadline(paper: PaperData): Headline {
  const series = (figure: 'fig3b' | 'fig4a' | 'fig4b'): Series => (policy, x) => {
    const i = paper[figure].x.findIndex((px) => near(px, x));
    return i < 0 ? NaN : paper[figure].mean[policy]?.[i] ?? NaN;
  };
  return headline({ fig3b: series('fig3b'), fig4a: series('fig4a'), fig4b: series('fig4b') }, paper.fig4a.x);
}

function measure(results: FigureResult[], paper: PaperData): Omit<VariantResult, 'kind' | 'reading' | 'label' | 'change'> {
  const curves: CurveResult[] = [];
  for (const result of results) {
    const plotted = NETWORK_FIGURES[result.figure as NetworkFigureName].metric;
    for (const d of deviations(result, paper)) {
      if (d.metric !== plotted) continue; // Fig. 4a's accepted / input is not one of the twelve
      curves.push({
        figure: d.figure, curve: d.curve, mad: d.mad, goal: goalOf(d.figure), points: d.points,
        worst: d.worst && { x: d.worst.x, deviation: d.worst.deviation }, inBand: d.inBand,
      });
    }
  }
  const h = headline(
    { fig3b: ourSeries(results, 'fig3b'), fig4a: ourSeries(results, 'fig4a'), fig4b: ourSeries(results, 'fig4b') },
    NETWORK_FIGURES.fig4a.xs,
  );
  const { uniform, longTerm, adaptive } = h.fig3bAtP1;
  return {
    ...h,
    ordering: uniform > longTerm && longTerm > adaptive,
    curves,
    withinGoal: curves.filter((c) => c.mad <= c.goal).length,
    objective: curves.reduce((s, c) => s + c.mad / c.goal, 0),
  };
}

/** More curves within goal first, then the smaller objective. */
const better = (a: VariantResult, b: VariantResult) => b.withinGoal - a.withinGoal || a.objective - b.objective;

export async function runSensitivity(opts: SensitivityOptions): Promise<SensitivityReport> {
  const variants: VariantResult[] = [];
  let index = 0;
  const run = async (kind: VariantResult['kind'], reading: string, label: string, change: Partial<Calibration>) => {
    opts.onVariant?.(index++, label);
    const results = await runFigures({
      figures: STUDY_FIGURES, policies: SENSITIVITY_POLICIES, iterations: opts.iterations, seed: opts.seed,
      calibration: { ...CALIBRATION, ...change }, threads: opts.threads,
    });
    const v: VariantResult = { kind, reading, label, change, ...measure(results, opts.paper) };
    variants.push(v);
    return v;
  };

  await run('adopted', 'adopted', 'adopted', {});
  const singles: VariantResult[] = [];
  const bestPerReading: VariantResult[] = [];
  for (const reading of opts.readings ?? READINGS) {
    const tried: VariantResult[] = [];
    for (const v of reading.variants) tried.push(await run('single', reading.reading, v.label, v.change));
    singles.push(...tried);
    const best = tried.filter((v) => v.ordering).sort(better)[0];
    if (best) bestPerReading.push(best);
  }

  const combine = async (parts: VariantResult[]) => {
    const change = Object.assign({}, ...parts.map((p) => p.change)) as Partial<Calibration>;
    await run('combination', 'combination', parts.map((p) => p.label).join(' + '), change);
  };
  // The best variant of each reading that keeps the paper's order at p = 1, best first,
  // combined cumulatively: the best 2, the best 3, …
  bestPerReading.sort(better);
  const k = Math.min(opts.combine ?? 3, bestPerReading.length);
  for (let n = 2; n <= k; n++) await combine(bestPerReading.slice(0, n));
  // And the variants that each bring the paper's headline, Fig. 3b adaptive at p = 1,
  // within its 0.03 goal, together.
  const headlineParts = singles.filter((v) => v.ordering && v.fig3bAtP1.adaptive <= goalOf('fig3b'));
  if (headlineParts.length >= 2) await combine(headlineParts);
  return { iterations: opts.iterations, seed: opts.seed, paper: paperHeadline(opts.paper), variants };
}

const CURVE_ORDER = STUDY_FIGURES.flatMap((f) => SENSITIVITY_POLICIES.map((p) => [f, p] as const));
const fmt = (x: number, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

function headlineCells(h: Headline, ordering: string): string {
  const { uniform, longTerm, adaptive } = h.fig3bAtP1;
  return [
    `${fmt(uniform)} / ${fmt(longTerm)} / ${fmt(adaptive)}`,
    ordering,
    fmt(h.fig4bGapAtP1, 2),
    `${fmt(100 * h.fig4aLowGap.adaptive, 1)} / ${fmt(100 * h.fig4aLowGap.longTerm, 1)}`,
  ].join(' | ');
}

/** Markdown: a table per reading (with the adopted row beside it), then every curve per variant. */
export function formatTable(report: SensitivityReport): string {
  const head = '| variant | curves within goal | Σ deviation ÷ goal | 3b at p = 1 (u / lt / ad) | order kept | 4b uniform − adaptive at p = 1 | 4a x ≤ 50: ad − u / lt − u (points) |';
  const rule = '|---|---|---|---|---|---|---|';
  const row = (v: VariantResult) => `| ${v.label} | ${v.withinGoal}/12 | ${v.objective.toFixed(2)} | ${headlineCells(v, v.ordering ? 'yes' : 'no')} |`;
  const adopted = report.variants.find((v) => v.kind === 'adopted')!;
  const out: string[] = [];
  const paperRow = `| paper | | | ${headlineCells(report.paper, '')} |`;
  const groups = [...new Set(report.variants.filter((v) => v.kind !== 'adopted').map((v) => v.reading))];
  for (const reading of groups) {
    out.push(`### ${reading}`, '', head, rule, paperRow, row(adopted));
    for (const v of report.variants.filter((x) => x.reading === reading)) out.push(row(v));
    out.push('');
  }
  out.push('### every curve: mean deviation; worst point @ x; points inside the band', '');
  out.push(`| variant | ${CURVE_ORDER.map(([f, p]) => `${f.slice(3)} ${p}`).join(' | ')} |`);
  out.push(`|---|${CURVE_ORDER.map(() => '---').join('|')}|`);
  for (const v of report.variants) {
    const cells = CURVE_ORDER.map(([f, p]) => {
      const c = v.curves.find((x) => x.figure === f && x.curve === p);
      if (!c) return '–';
      const digits = f === 'fig4b' ? 2 : 3;
      const mark = c.mad <= c.goal ? '' : ' ✗';
      return `${c.mad.toFixed(digits)}${mark}; ${c.worst ? `${c.worst.deviation.toFixed(digits)} @ ${c.worst.x}` : '–'}; ${c.inBand ?? '–'}/${c.points}`;
    });
    out.push(`| ${v.label} | ${cells.join(' | ')} |`);
  }
  return out.join('\n') + '\n';
}

export function toCsv(report: SensitivityReport): string {
  const lines = ['kind,reading,variant,figure,curve,mad,goal,worst_x,worst_deviation,in_band,points,within_goal,objective,ordering,fig3b_uniform_p1,fig3b_longterm_p1,fig3b_adaptive_p1,fig4b_gap_p1,fig4a_low_gap_adaptive,fig4a_low_gap_longterm'];
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  for (const v of report.variants) {
    for (const c of v.curves) {
      lines.push([
        v.kind, q(v.reading), q(v.label), c.figure, c.curve, c.mad, c.goal, c.worst?.x ?? '', c.worst?.deviation ?? '', c.inBand ?? '', c.points,
        v.withinGoal, v.objective, v.ordering, v.fig3bAtP1.uniform, v.fig3bAtP1.longTerm, v.fig3bAtP1.adaptive, v.fig4bGapAtP1, v.fig4aLowGap.adaptive, v.fig4aLowGap.longTerm,
      ].join(','));
    }
  }
  return lines.join('\n') + '\n';
}
