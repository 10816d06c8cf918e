// Figures as SVG (and PNG): our curves with their ±std band, over the paper's digitized
// points. Vega-Lite describes the chart; Vega renders it headless; resvg rasterizes.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { PaperData } from './paper-data.js';
import type { FigureResult } from './run.js';

interface Point {
  x: number | string;
  curve: string;
  source: 'Heliomesh' | 'paper';
  metric: string;
  mean: number;
  lo: number;
  hi: number;
}

const OURS = 'Heliomesh';

function points(result: FigureResult, paper?: PaperData): Point[] {
  const pts: Point[] = result.rows
    .filter((r) => r.metric !== 'q_energy_lim' && r.metric !== 'q_proc_lim')
    .map((r) => ({ x: r.x, curve: r.policy, source: OURS, metric: r.metric, mean: r.mean, lo: r.mean - r.std, hi: r.mean + r.std }));
  if (!paper) return pts;
  const f = result.figure;
  if (f === 'fig2a') {
    paper.fig2a.modes.forEach((mode, i) => {
      pts.push({ x: mode, curve: 'single-device', source: 'paper', metric: 'jobs_completed', mean: paper.fig2a.jobs_completed[i]!, lo: 0, hi: 0 });
      pts.push({ x: mode, curve: 'single-device', source: 'paper', metric: 'avg_battery_pct', mean: paper.fig2a.avg_battery_pct[i]!, lo: 0, hi: 0 });
    });
  } else if (f === 'fig2b') {
    for (const [mode, xis] of Object.entries(paper.fig2b.xi)) {
      paper.fig2b.q.forEach((q, i) => {
        const v = xis[i];
        if (v != null) pts.push({ x: q, curve: mode, source: 'paper', metric: 'xi', mean: v, lo: v, hi: v });
      });
    }
  } else if (f !== 'solar') {
    const p = paper[f];
    for (const [policy, means] of Object.entries(p.mean)) {
      p.x.forEach((x, i) => {
        const v = means[i];
        const s = p.std?.[policy]?.[i] ?? 0;
        if (v != null) pts.push({ x, curve: policy, source: 'paper', metric: result.rows[0]?.metric ?? '', mean: v, lo: v - (s ?? 0), hi: v + (s ?? 0) });
      });
    }
  }
  return pts;
}

function spec(result: FigureResult, data: Point[]): TopLevelSpec {
  const title = { text: `${result.figure}: Heliomesh (solid, ±std band) vs paper (dashed, points)`, fontSize: 12 };
  const color = { field: 'curve', type: 'nominal', title: null } as const;
  if (result.figure === 'fig2a') {
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: 'fig2a: one device, 100 slots (Heliomesh vs paper)', fontSize: 12 },
      data: { values: data },
      facet: { column: { field: 'metric', type: 'nominal', title: null } },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: 240,
        height: 220,
        mark: 'bar',
        encoding: {
          x: { field: 'x', type: 'nominal', title: 'power-mode strategy', sort: ['15W', '30W', '60W', 'dynamic'] },
          xOffset: { field: 'source' },
          y: { field: 'mean', type: 'quantitative', title: null },
          color: { field: 'source', type: 'nominal', title: null },
        },
      },
    } as TopLevelSpec;
  }
  const logY = result.figure === 'fig2b';
  const y = { field: 'mean', type: 'quantitative', title: result.figure === 'solar' ? null : result.yLabel, scale: logY ? { type: 'log' } : { zero: true } } as const;
  const x = { field: 'x', type: 'quantitative', title: result.xLabel } as const;
  const layers: object[] = [
    {
      transform: [{ filter: `datum.source === '${OURS}'` }],
      mark: { type: 'area', opacity: 0.15 },
      encoding: { x, y: { field: 'lo', type: 'quantitative', scale: y.scale }, y2: { field: 'hi' }, color },
    },
    {
      transform: [{ filter: `datum.source === '${OURS}'` }],
      mark: { type: 'line', strokeWidth: 2 },
      encoding: { x, y, color },
    },
    {
      transform: [{ filter: "datum.source === 'paper'" }],
      mark: { type: 'line', strokeDash: [5, 3], strokeWidth: 1.5, point: { filled: false, size: 25 } },
      encoding: { x, y, color },
    },
  ];
  if (logY) {
    layers.push({ data: { values: [{ xi: 0.01 }] }, mark: { type: 'rule', color: 'gray', strokeDash: [2, 2] }, encoding: { y: { field: 'xi', type: 'quantitative' } } });
  }
  if (result.figure === 'solar') {
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: 'solar: 3 × 3 fleet over three days of sun, night and clouds (±std band)', fontSize: 12 },
      data: { values: data },
      facet: { column: { field: 'metric', type: 'nominal', title: null } },
      resolve: { scale: { y: 'independent' } },
      spec: { width: 360, height: 260, layer: layers.slice(0, 2) },
    } as TopLevelSpec;
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 320,
    data: { values: logY ? data.filter((d) => d.metric === 'xi' && d.mean > 0).map((d) => ({ ...d, lo: Math.max(d.lo, 1e-16) })) : data },
    layer: layers,
  } as TopLevelSpec;
}

export async function renderSvg(result: FigureResult, paper?: PaperData): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec(result, points(result, paper))).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** PNG from SVG, or null when the rasterizer is not installed on this platform. */
export async function renderPng(svg: string): Promise<Buffer | null> {
  try {
    const { Resvg } = await import('@resvg/resvg-js');
    return new Resvg(svg, { font: { loadSystemFonts: true }, background: 'white' }).render().asPng();
  } catch {
    return null;
  }
}

export function toCsv(result: FigureResult): string {
  const withMetric = result.figure === 'fig2a' || result.figure === 'fig2b' || result.figure === 'solar';
  const header = withMetric ? 'x,policy,metric,mean,std' : 'x,policy,mean,std';
  const lines = result.rows.map((r) =>
    withMetric ? `${r.x},${r.policy},${r.metric},${fmt(r.mean)},${fmt(r.std)}` : `${r.x},${r.policy},${fmt(r.mean)},${fmt(r.std)}`,
  );
  return [header, ...lines].join('\n') + '\n';
}

const fmt = (v: number) => (Math.abs(v) > 0 && Math.abs(v) < 1e-4 ? v.toExponential(4) : String(Math.round(v * 1e6) / 1e6));
