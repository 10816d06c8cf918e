// How far our curves lie from the paper's digitized points: the mean absolute deviation
// over the x values both have, per curve.
import type { PaperData } from './paper-data.js';
import type { FigureResult } from './run.js';

export interface Deviation {
  figure: string;
  curve: string;
  metric: string;
  /** Mean absolute deviation over `points` shared x values. */
  mad: number;
  points: number;
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
  const policies = [...new Set(result.rows.map((r) => r.policy))];
  for (const policy of policies) {
    const theirs = p.mean[policy];
    if (!theirs) continue;
    let sum = 0;
    let n = 0;
    p.x.forEach((x, i) => {
      const v = theirs[i];
      const ours = result.rows.find((r) => r.policy === policy && typeof r.x === 'number' && Math.abs(r.x - x) < 1e-9);
      if (v != null && ours) {
        sum += Math.abs(ours.mean - v);
        n++;
      }
    });
    if (n) out.push({ figure: f, curve: policy, metric: result.rows[0]?.metric ?? '', mad: sum / n, points: n });
  }
  return out;
}
