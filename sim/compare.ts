// How far our curves lie from the paper's digitized points, per curve, over the x values
// both have: the mean absolute deviation, the worst point, and how many of our means fall
// inside the paper's ±std band.
import type { PaperData } from './paper-data.js';
import type { FigureResult, Row } from './run.js';

export interface Deviation {
  figure: string;
  curve: string;
  metric: string;
  /** Mean absolute deviation over `points` shared x values. */
  mad: number;
  points: number;
  /** The largest absolute deviation, and the x where it lies (network figures only). */
  worst?: { x: number; deviation: number; ours: number; paper: number };
  /** Shared points where our mean lies within the paper's mean ± std (network figures only). */
  inBand?: number;
}

export function deviations(result: FigureResult, paper: PaperData): Deviation[] {
  const out: Deviation[] = [];
  const f = result.figure;
  if (f === 'fig2a') {
    const p = paper.fig2a;
    for (const [metric, values] of [['jobs_completed', p.jobs_completed], ['avg_battery_pct', p.avg_battery_pct]] as const) {
      p.modes.forEach((mode, i) => {
        const ours = result.rows.find((r) => r.x === mode && r.metric === metric);
        if (ours) out.push({ figure: f, curve: mode, metric, mad: Math.abs(ours.mean - (values[i] as number)), points: 1 });
      });
    }
    return out;
  }
  if (f === 'fig2b') {
    for (const [mode, qLim] of Object.entries(paper.fig2b.q_lim)) {
      const ours = result.rows.find((r) => r.policy === mode && r.metric === 'q_lim');
      if (ours) out.push({ figure: f, curve: mode, metric: 'q_lim', mad: Math.abs(ours.mean - qLim), points: 1 });
    }
    for (const [mode, xis] of Object.entries(paper.fig2b.xi)) {
      // ξ spans 13 decades, so its deviation is measured in decades (|log10 ours − log10 paper|).
      let sum = 0;
      let n = 0;
      paper.fig2b.q.forEach((q, i) => {
        const ours = result.rows.find((r) => r.policy === mode && r.metric === 'xi' && r.x === q);
        const theirs = xis[i];
        if (ours && theirs != null && theirs > 0 && ours.mean > 0) {
          sum += Math.abs(Math.log10(ours.mean) - Math.log10(theirs));
          n++;
        }
      });
      if (n) out.push({ figure: f, curve: mode, metric: 'xi_log10', mad: sum / n, points: n });
    }
    return out;
  }
  if (f === 'solar') return out;
  const p = paper[f];
  const curves = (rows: Row[]) => {
    for (const policy of [...new Set(rows.map((r) => r.policy))]) {
      const theirs = p.mean[policy];
      if (!theirs) continue;
      const band = p.std?.[policy];
      let sum = 0;
      let n = 0;
      let inBand = 0;
      let worst: Deviation['worst'];
      p.x.forEach((x, i) => {
        const v = theirs[i];
        const ours = rows.find((r) => r.policy === policy && typeof r.x === 'number' && Math.abs(r.x - x) < 1e-9);
        if (v == null || !ours) return;
        const dev = Math.abs(ours.mean - v);
        sum += dev;
        n++;
        if (dev <= (band?.[i] ?? 0) + 1e-12) inBand++;
        if (!worst || dev > worst.deviation) worst = { x, deviation: dev, ours: ours.mean, paper: v };
      });
      if (n) out.push({ figure: f, curve: policy, metric: rows[0]?.metric ?? '', mad: sum / n, points: n, worst, inBand });
    }
  };
  curves(result.rows);
  // A metric reported beside the plotted one is held against the same published curve.
  const also = result.also ?? [];
  for (const metric of [...new Set(also.map((r) => r.metric))]) curves(also.filter((r) => r.metric === metric));
  return out;
}
