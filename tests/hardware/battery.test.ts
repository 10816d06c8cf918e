// Battery estimator: OCV curves, coulomb (energy) counting, rest detection and OCV
// correction, and gaps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatteryEstimator, OCV_CURVES, ocvAt, ocvSlopeVPerPct, socFromOcv, validateOcvCurve,
} from '../../hardware/battery.js';

test('OCV curves interpolate and invert', () => {
  for (const chem of ['li-ion', 'lifepo4'] as const) {
    const curve = OCV_CURVES[chem];
    validateOcvCurve(curve);
    for (const soc of [0, 3, 17.5, 50, 88, 100]) assert.ok(Math.abs(socFromOcv(curve, ocvAt(curve, soc)) - soc) < 1e-9, `${chem} ${soc} %`);
  }
  assert.equal(ocvAt(OCV_CURVES['li-ion'], 100), 4.2);
  assert.equal(socFromOcv(OCV_CURVES['li-ion'], 2.5), 0);
  assert.equal(socFromOcv(OCV_CURVES['li-ion'], 4.3), 100);
  assert.ok(ocvSlopeVPerPct(OCV_CURVES.lifepo4, 55) < 0.003, 'the LiFePO4 plateau');
  assert.throws(() => validateOcvCurve([[0, 3], [50, 2.9], [100, 4]]), /rise strictly/);
});

const base = { capacityWh: 10, chemistry: 'li-ion' as const, chargeEfficiency: 0.95, dischargeEfficiency: 0.9 };

test('energy counting: terminal energy × charge efficiency in, ÷ discharge efficiency out', () => {
  const e = new BatteryEstimator({ ...base, initialSocPct: 50 });
  const start = e.estimate.energyJ;
  assert.equal(start, 18_000);
  // 1 A at 4 V for 60 s charging, sampled every second.
  for (let s = 0; s <= 60; s++) e.update({ timeMs: s * 1000, voltageV: 4, currentA: 1 });
  assert.ok(Math.abs(e.estimate.energyJ - (start + 4 * 60 * 0.95)) < 1e-9);
  const mid = e.estimate.energyJ;
  for (let s = 61; s <= 120; s++) e.update({ timeMs: s * 1000, voltageV: 3.8, currentA: -2 });
  // The 60→61 s interval is the trapezoid between the last charging sample (4 W) and the
  // first discharging one (−7.6 W): −1.8 J net at the terminals, a discharge; holding the
  // charging sample would have counted +4 J.
  assert.ok(Math.abs(e.estimate.energyJ - (mid - 1.8 / 0.9 - (3.8 * 2 * 59) / 0.9)) < 1e-9);
});

test('a gap longer than maxGapMs is not bridged but counted', () => {
  const e = new BatteryEstimator({ ...base, initialSocPct: 50, maxGapMs: 60_000 });
  e.update({ timeMs: 0, voltageV: 3.8, currentA: -1 });
  e.update({ timeMs: 600_000, voltageV: 3.8, currentA: -1 });
  assert.equal(e.estimate.energyJ, 18_000);
  assert.equal(e.estimate.unmeasuredMs, 600_000);
});

test('without a start value the first voltage is read as the OCV', () => {
  const e = new BatteryEstimator(base);
  e.update({ timeMs: 0, voltageV: ocvAt(OCV_CURVES['li-ion'], 72), currentA: 0 });
  assert.ok(Math.abs(e.estimate.socPct - 72) < 1e-9);
});

test('after resting long enough, the SoC converges to the OCV where the curve is steep', () => {
  const e = new BatteryEstimator({ ...base, initialSocPct: 20, restMs: 30 * 60_000, ocvTimeConstantMs: 10 * 60_000 });
  const v = ocvAt(OCV_CURVES['li-ion'], 90); // really at 90 %: the count had drifted
  let t = 0;
  for (; t <= 29 * 60_000; t += 60_000) e.update({ timeMs: t, voltageV: v, currentA: 0.01 });
  assert.ok(Math.abs(e.estimate.socPct - 20) < 0.2, 'not before the rest time');
  assert.equal(e.estimate.resting, false);
  for (; t <= 150 * 60_000; t += 60_000) e.update({ timeMs: t, voltageV: v, currentA: 0.01 });
  assert.equal(e.estimate.resting, true);
  assert.ok(Math.abs(e.estimate.socPct - 90) < 0.5, `converged to ${e.estimate.socPct}`);
  e.update({ timeMs: t, voltageV: v, currentA: 1 });
  assert.equal(e.estimate.resting, false, 'current ends the rest');
});

test('no OCV correction on a flat segment (LiFePO4 plateau)', () => {
  const e = new BatteryEstimator({ ...base, chemistry: 'lifepo4', initialSocPct: 40 });
  const v = ocvAt(OCV_CURVES.lifepo4, 60);
  for (let t = 0; t <= 300 * 60_000; t += 60_000) e.update({ timeMs: t, voltageV: v, currentA: 0 });
  assert.ok(Math.abs(e.estimate.socPct - 40) < 1e-9, 'the plateau says too little to correct');
  assert.equal(e.estimate.ocvCorrected, false);
});
