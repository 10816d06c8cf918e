// The paper's digitized results (shared/paper/figures.json), validated at the edge.
import { z } from 'zod';

const series = z.record(z.string(), z.array(z.number().nullable()));
const curveFigure = z.object({ x: z.array(z.number()), mean: series, std: series.optional() });

export const paperSchema = z.object({
  fig2a: z.object({ modes: z.array(z.string()), jobs_completed: z.array(z.number()), avg_battery_pct: z.array(z.number()) }),
  fig2b: z.object({ q: z.array(z.number()), xi: series, q_lim: z.record(z.string(), z.number()) }),
  fig3a: curveFigure,
  fig3b: curveFigure,
  fig4a: curveFigure,
  fig4b: curveFigure,
});

export type PaperData = z.infer<typeof paperSchema>;

export function parsePaper(json: unknown): PaperData {
  const parsed = paperSchema.safeParse(json);
  if (!parsed.success) throw new Error(`the paper's figures file does not have the expected shape: ${parsed.error.message}`);
  return parsed.data;
}
