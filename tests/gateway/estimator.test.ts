// Harvest estimation from synthetic slot records, and re-solving on worker threads.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { EstimatorConfigSchema, HarvestEstimator, totalVariation } from '../../gateway/estimator.js';
import { NodeSolver, SolverPool, paramsHash, type Solved } from '../../gateway/solver-pool.js';
import { DeviceModel, PAPER_DYNAMIC_TABLE, PAPER_MODES, limits, mean, uniformOnGrid, type DeviceParams } from '../../gateway/scheduler/index.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 5, 21, 0);
/** A top level far above every harvest these tests record. */
const TOP = 1000;

test('a harvest above the top level counts at the top level: the PMF never grows with what a node reports', () => {
  const est = new HarvestEstimator(EstimatorConfigSchema.parse({ minSlots: 4, windowSlots: 100 }), 1000);
  // 1e12 J a slot, as a hostile node sent: before, a Float64Array of 1e9 levels
  for (let i = 0; i < 27; i++) est.add(i % 3 === 0 ? 1e12 : 2500, T0 + i * 100_000);
  const pmf = est.pmf(T0, 130)!;
  assert.equal(pmf.length, 131);
  assert.ok(Math.abs(pmf[130]! - 9 / 27) < 1e-12, 'the huge ones sit at the top level');
  assert.ok(Math.abs(pmf[2]! + pmf[3]! - 18 / 27) < 1e-12);
  assert.throws(() => est.pmf(T0, 1.5), /whole number of quanta/);
});

test('the estimate is the histogram of harvest per slot in quanta, mean kept exactly', () => {
  const est = new HarvestEstimator(EstimatorConfigSchema.parse({ minSlots: 4, windowSlots: 100 }), 1000);
  const harvestsJ = [0, 1500, 2000, 2250, 0, 3000, 1000, 500];
  harvestsJ.forEach((h, i) => est.add(h, T0 + i * 100_000));
  const pmf = est.pmf(T0, TOP)!;
  assert.ok(Math.abs(pmf.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  const meanQ = harvestsJ.reduce((a, b) => a + b, 0) / harvestsJ.length / 1000;
  assert.ok(Math.abs(mean(pmf) - meanQ) < 1e-12, `mean ${mean(pmf)} vs ${meanQ}`);
  // 1500 J = 1.5 quanta: half at 1, half at 2. Zeros: 2 of 8.
  assert.ok(Math.abs(pmf[0]! - (2 + 0.5) / 8) < 1e-12);
  assert.equal(pmf.length, 4);
  assert.throws(() => est.add(-1, T0), /≥ 0 J/);
});

test('no estimate before minSlots; the window forgets old slots', () => {
  const est = new HarvestEstimator(EstimatorConfigSchema.parse({ minSlots: 3, windowSlots: 5 }), 1);
  est.add(10, T0);
  est.add(10, T0);
  assert.equal(est.pmf(T0, TOP), undefined);
  for (let i = 0; i < 3; i++) est.add(10, T0);
  assert.equal(mean(est.pmf(T0, TOP)!), 10);
  for (let i = 0; i < 5; i++) est.add(2, T0);
  assert.equal(mean(est.pmf(T0, TOP)!), 2, 'five newer slots push the old ones out of a 5-slot window');
  assert.equal(est.samples(T0), 5);
});

test('by hour of day, noon and midnight keep separate laws, in the site\'s local time', () => {
  const est = new HarvestEstimator(EstimatorConfigSchema.parse({ minSlots: 2, byHourOfDay: true, utcOffsetMinutes: 120 }), 1);
  for (let day = 0; day < 5; day++) {
    for (let h = 0; h < 24; h++) {
      const local = (h + 2) % 24;
      const sunny = local >= 8 && local < 18;
      est.add(sunny ? 20 : 0, T0 + day * 24 * HOUR + h * HOUR);
    }
  }
  assert.equal(mean(est.pmf(T0 + 10 * HOUR, TOP)!), 20, '10:00 UTC is 12:00 local');
  assert.equal(mean(est.pmf(T0 + 22 * HOUR, TOP)!), 0, '22:00 UTC is midnight local');
  assert.equal(mean(est.pmf(T0 + 6 * HOUR, TOP)!), 20, '06:00 UTC is 08:00 local');
  assert.equal(mean(est.pmf(T0 + 5 * HOUR, TOP)!), 0);
});

test('a full battery\'s harvest is a lower bound: below its hour\'s mean it leaves the mean, the histogram and the forecast as they were', () => {
  const est = new HarvestEstimator(EstimatorConfigSchema.parse({ minSlots: 1, windowSlots: 2400 }), 100);
  // 14:00 UTC, sun: 800 J a slot, 8 quanta. Then the battery is full and the charger done:
  // the node takes only its own draw, 250 J.
  const at = (k: number) => T0 + 14 * HOUR + k * 100_000;
  for (let k = 0; k < 10; k++) est.add(800, at(k));
  for (let k = 10; k < 30; k++) est.add(250, at(k), true);
  assert.equal(est.meanAt(at(0)), 8);
  assert.equal(mean(est.pmf(at(0), TOP)!), 8);
  assert.equal(est.forecast(at(30), 100_000)!(0), 8, 'the last hour\'s full slots do not read as cloud');
  // The same records taken as they are pull the hour down to the node's draw.
  const plain = new HarvestEstimator(EstimatorConfigSchema.parse({ minSlots: 1, windowSlots: 2400 }), 100);
  for (let k = 0; k < 10; k++) plain.add(800, at(k));
  for (let k = 10; k < 30; k++) plain.add(250, at(k));
  assert.ok(plain.meanAt(at(0))! < 4.5, `taken as they are: ${plain.meanAt(at(0))}`);
  // A bound above the mean raises it, and the first record of an hour counts whatever it is.
  est.add(1200, at(30), true);
  assert.ok(est.meanAt(at(0))! > 8);
  est.add(300, T0 + 15 * HOUR, true);
  assert.equal(est.meanAt(T0 + 15 * HOUR), 3);
});

test('total variation distance', () => {
  assert.equal(totalVariation(new Float64Array([0.5, 0.5]), new Float64Array([0.5, 0.5])), 0);
  assert.equal(totalVariation(new Float64Array([1]), new Float64Array([0, 1])), 1);
});

const params = (lo: number, hi: number): DeviceParams => ({
  eMax: 100, eTh: 10, eThUp: 15, modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, harvestPmf: uniformOnGrid(lo, hi),
});

const pool = new SolverPool({ threads: 2, cacheSize: 8 });
after(() => pool.close());

test('the worker pool solves q_lim exactly as the scheduler does in-thread, and caches by parameters', async () => {
  const p = params(0, 30);
  const direct = limits(new DeviceModel(p), 0.01);
  const first = await pool.solve(p, 0.01);
  assert.equal(first.qLim, direct.qLim);
  assert.equal(first.qEnergy, direct.qEnergy);
  assert.equal(first.energyBinds, direct.energyBinds);
  assert.ok(first.solves > 0);
  const again = await pool.solve(params(0, 30), 0.01);
  assert.equal(again.qLim, first.qLim);
  assert.equal(again.solves, 0, 'answered from the cache');
  assert.equal(pool.stats().cacheHits, 1);
  assert.notEqual(paramsHash(p, 0.01), paramsHash(p, 0.02));
  assert.notEqual(paramsHash(p, 0.01), paramsHash(params(0, 31), 0.01));
  assert.notEqual(paramsHash(p, 0.01), paramsHash({ ...p, idleQ: 2 }, 0.01), 'the idle draw changes the chain');
  assert.equal(paramsHash(p, 0.01), paramsHash({ ...p, idleQ: 0 }, 0.01), 'no idle draw is the paper\'s device');
  await assert.rejects(pool.solve({ ...p, eTh: 200 }, 0.01));
  assert.equal(pool.stats().failed, 1);
});

test('NodeSolver skips the estimates superseded while a solve runs, and reports the rest in order, the newest last', async () => {
  const got: Array<[string, number, Solved]> = [];
  const errors: string[] = [];
  let resolveAll!: () => void;
  const finished = new Promise<void>((r) => (resolveAll = r));
  const solver = new NodeSolver(pool);
  solver.on('solved', (node, p, s) => {
    got.push([node, mean(p.harvestPmf), s]);
    if (got.length === 3) resolveAll();
  });
  solver.on('failed', (node, err) => errors.push(`${node}: ${err.message}`));
  solver.update('pi-1', params(0, 10), 0.01);
  solver.update('pi-1', params(0, 20), 0.01);
  solver.update('pi-1', params(0, 40), 0.01);
  solver.update('pi-2', params(5, 25), 0.01);
  await finished;
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(errors, []);
  const pi1 = got.filter(([n]) => n === 'pi-1');
  // The first solve's answer is applied when it finishes (it is newer than none); the
  // estimate that arrived and was superseded meanwhile is never solved; the newest comes last.
  assert.deepEqual(pi1.map(([, m]) => Math.round(m * 1e9) / 1e9), [5, 20], 'the running solve (mean 5 quanta), then the newest (20); the middle one (10) skipped');
  assert.equal(pi1[1]![2].qLim, limits(new DeviceModel(params(0, 40)), 0.01).qLim);
  assert.equal(got.filter(([n]) => n === 'pi-2').length, 1);
});

test('solves cut short by closing the pool are neither reported nor counted as the node\'s failures', async () => {
  const own = new SolverPool({ threads: 1 });
  const reports: string[] = [];
  const solver = new NodeSolver(own);
  solver.on('solved', (node) => reports.push(`${node}: solved`));
  solver.on('failed', (node, err) => reports.push(`${node}: ${err.message}`));
  for (let i = 0; i < 6; i++) solver.update(`pi-${i}`, params(0, 10 + i), 0.01);
  await own.close();
  solver.update('pi-late', params(0, 30), 0.01);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(reports.filter((r) => !r.endsWith(': solved')), []);
  assert.ok(reports.length < 7, `the queued solves were dropped at close (${reports.length} reported)`);
});

test('the forecast is the mean harvest of each hour of the day, whatever byHourOfDay says', () => {
  const est = new HarvestEstimator(EstimatorConfigSchema.parse({ windowSlots: 2400 }), 1000);
  assert.equal(est.forecast(T0, 100_000), undefined, 'nothing known before the first record');
  // Two days of 100 s slots: 4 kJ (4 quanta) a slot from 06:00 to 18:00, nothing at night.
  for (let t = T0 - 2 * 24 * HOUR; t < T0; t += 100_000) {
    const hour = new Date(t).getUTCHours();
    est.add(hour >= 6 && hour < 18 ? 4000 : 0, t);
  }
  const at22 = T0 - 2 * HOUR;
  const f = est.forecast(at22, 100_000)!;
  assert.equal(f(0), 0, 'night now');
  assert.equal(f(36 * 7), 0, '05:00 is still night');
  assert.ok(Math.abs(f(36 * 8) - 4) < 1e-9, `06:00 brings the morning's 4 quanta, got ${f(36 * 8)}`);
  assert.ok(Math.abs(est.meanAt(T0 + 12 * HOUR)! - 4) < 1e-9);
});

test('the forecast is corrected by the last hour: a dull morning lowers the next hours and fades back to the mean', () => {
  const est = new HarvestEstimator(EstimatorConfigSchema.parse({ windowSlots: 2400 }), 1000);
  const day0 = T0 - 24 * HOUR;
  for (let t = day0; t < T0 + 10 * HOUR; t += 100_000) {
    const hour = new Date(t).getUTCHours();
    const sun = hour >= 6 && hour < 18 ? 4000 : 0;
    // Today from 09:00 the sky is overcast: a quarter of the usual harvest.
    est.add(t >= T0 + 9 * HOUR ? sun / 4 : sun, t);
  }
  const now = T0 + 10 * HOUR;
  const f = est.forecast(now, 100_000)!;
  const mean = est.meanAt(now)!;
  assert.ok(f(0) < 0.5 * mean, `the sky now says less than the mean: ${f(0)} vs ${mean}`);
  assert.ok(f(36) > f(0), 'the correction fades');
  assert.ok(Math.abs(f(36 * 6) - est.meanAt(now + 6 * HOUR)!) < 0.25 * mean, 'six hours on, near the mean again');
});

test('hours seen, and the first hour ahead with no record, on the site\'s hours (a half-hour offset)', () => {
  const e = new HarvestEstimator(EstimatorConfigSchema.parse({ utcOffsetMinutes: 330 }), 1000);
  // 06:00 local at +05:30 is 00:30 UTC.
  const six = Date.UTC(2026, 5, 21, 0, 30);
  assert.equal(e.nextUnseenHourMs(six), six + 3_600_000, 'nothing seen: the next hour is unseen');
  for (let t = six; t < six + 3 * 3_600_000; t += 100_000) e.add(500, t);
  assert.equal(e.hoursSeen(), 3);
  assert.equal(e.nextUnseenHourMs(six + 10 * 60_000), six + 3 * 3_600_000, '09:00 local, the first hour not heard in');
  for (let t = six + 3 * 3_600_000; t < six + 24 * 3_600_000; t += 3_600_000) e.add(0, t);
  assert.equal(e.hoursSeen(), 24);
  assert.equal(e.nextUnseenHourMs(six), undefined);
});
