import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviations } from '../../sim/compare.js';
import type { PaperData } from '../../sim/paper-data.js';
import type { FigureResult } from '../../sim/run.js';

const curve = { x: [0, 10, 20], mean: { uniform: [0.7, 0.8, 1] }, std: { uniform: [0.01, 0.05, 0] } };
const paper = { fig3a: curve, fig3b: curve, fig4a: curve, fig4b: curve } as unknown as PaperData;

test('a curve is reported with its mean deviation, its worst point and the points inside the paper\'s band', () => {
  const result: FigureResult = {
    figure: 'fig4a', xLabel: '', yLabel: '',
    rows: [0.6, 0.84, 1].map((mean, i) => ({ x: i * 10, policy: 'uniform', metric: 'throughputCompleted', mean, std: 0 })),
    also: [0.72, 0.9, 1].map((mean, i) => ({ x: i * 10, policy: 'uniform', metric: 'throughputAccepted', mean, std: 0 })),
  };
  const [plotted, beside, ...rest] = deviations(result, paper);
  assert.equal(rest.length, 0);
  assert.equal(plotted!.metric, 'throughputCompleted');
  assert.ok(Math.abs(plotted!.mad - (0.1 + 0.04 + 0) / 3) < 1e-12);
  assert.deepEqual({ ...plotted!.worst, deviation: Math.round(plotted!.worst!.deviation * 1e9) / 1e9 }, { x: 0, deviation: 0.1, ours: 0.6, paper: 0.7 });
  // 0.84 is 0.04 from 0.8, inside its ±0.05; 1 sits on a band of zero width; 0.6 misses by 0.09.
  assert.equal(plotted!.inBand, 2);
  assert.equal(beside!.metric, 'throughputAccepted');
  assert.equal(beside!.inBand, 1);
  assert.deepEqual(beside!.worst?.x, 10);
});
