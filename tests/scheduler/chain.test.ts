import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DeviceModel, PAPER_DYNAMIC_TABLE, PAPER_MODES, brent, buildChain, fixedTable, groupWeights, gth, kFold, limits,
  mean, stateSpace, stationary, uniformOnGrid, type DeviceParams, type ModeStep,
} from '../../gateway/scheduler/index.js';

function params(table: ModeStep[], lo: number, hi: number, over: Partial<DeviceParams> = {}): DeviceParams {
  return { eMax: 100, eTh: 10, eThUp: 15, modes: PAPER_MODES, modeTable: table, harvestPmf: uniformOnGrid(lo, hi), ...over };
}

test('uniform harvest on the grid keeps its mean and total mass', () => {
  for (const [lo, hi] of [[0, 20], [0.3, 0.9], [2.5, 2.5], [0, 0.05], [7, 13.2]] as const) {
    const pmf = uniformOnGrid(lo, hi);
    assert.ok(Math.abs(pmf.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    assert.ok(Math.abs(mean(pmf) - (lo + hi) / 2) < 1e-12, `mean of U[${lo},${hi}]`);
  }
  // κ-fold convolution: means add.
  const f = uniformOnGrid(1, 5);
  assert.ok(Math.abs(mean(kFold(f, 3)) - 9) < 1e-12);
  assert.throws(() => uniformOnGrid(3, 1), /lo ≤ hi/);
});

test('κ-fold harvest lumped above E_max + C_E gives the same chain, and a huge κ stays small', () => {
  const f = uniformOnGrid(0, 20);
  // Repeated squaring agrees with κ−1 plain convolutions.
  let plain = f;
  for (let k = 1; k < 7; k++) {
    const next = new Float64Array(plain.length + f.length - 1);
    for (let i = 0; i < plain.length; i++) for (let j = 0; j < f.length; j++) next[i + j]! += plain[i]! * f[j]!;
    plain = next;
  }
  const squared = kFold(f, 7);
  assert.equal(squared.length, plain.length);
  for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(squared[i]! - plain[i]!) < 1e-15, `index ${i}`);
  // Lumping: the mass above the cap sits at the cap, the rest is untouched.
  const lumped = kFold(f, 7, 50);
  assert.equal(lumped.length, 51);
  for (let i = 0; i < 50; i++) assert.ok(Math.abs(lumped[i]! - plain[i]!) < 1e-15);
  assert.ok(Math.abs(lumped[50]! - plain.slice(50).reduce((a, b) => a + b, 0)) < 1e-12);
  // The chain built from lumped stage harvests (what buildChain does) equals the one from full ones.
  const p = params(fixedTable(1), 0, 20, { modes: [{ powerMode: 1, name: 'slow', kappa: 7, costQ: 30 }], modeTable: fixedTable(1) });
  const full = new Map([[1, p.harvestPmf], [7, kFold(p.harvestPmf, 7)]]);
  const a = buildChain(p, 0.4);
  const b = buildChain(p, 0.4, stateSpace(p), full);
  assert.equal(a.matrix.length, b.matrix.length);
  for (let i = 0; i < a.matrix.length; i++) assert.ok(Math.abs(a.matrix[i]! - b.matrix[i]!) < 1e-14, `entry ${i}`);
  // A node declaring κ = 5·10^7 costs a few dozen convolutions of at most cap + 1 levels.
  const huge = kFold(f, 50_000_000, 130);
  assert.equal(huge.length, 131);
  assert.ok(Math.abs(huge[130]! - 1) < 1e-9, 'all of a 5·10^7-slot stage\'s harvest is beyond the cap');
});

test('every row of P sums to 1, clipping at 0 and E_max included', () => {
  for (const table of [fixedTable(1), fixedTable(2), fixedTable(3), PAPER_DYNAMIC_TABLE]) {
    for (const [lo, hi] of [[0, 20], [0, 60], [0, 0.5]] as const) {
      for (const p of [0, 0.3, 1]) {
        const chain = buildChain(params(table, lo, hi), p);
        const n = chain.space.size;
        for (let i = 0; i < n; i++) {
          let sum = 0;
          for (let j = 0; j < n; j++) {
            const v = chain.matrix[i * n + j] as number;
            assert.ok(v >= 0);
            sum += v;
          }
          assert.ok(Math.abs(sum - 1) < 1e-12, `row ${i} sums to ${sum}`);
        }
      }
    }
  }
});

test('the state space holds γ = 1 only at or above E_th and γ = 0 only at or below E′_th', () => {
  const space = stateSpace(params(PAPER_DYNAMIC_TABLE, 0, 20));
  for (let s = 0; s < space.size; s++) {
    if (space.gamma[s] === 1) assert.ok((space.e[s] as number) >= 10);
    else assert.ok((space.e[s] as number) <= 15);
  }
  assert.equal(space.size, 2 * 91 + 2 * 16);
});

test('π is a fixed point of P and sums to 1', () => {
  for (const table of [fixedTable(3), PAPER_DYNAMIC_TABLE]) {
    const chain = buildChain(params(table, 0, 20), 0.45);
    const pi = stationary(chain);
    const n = chain.space.size;
    assert.ok(Math.abs(pi.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    for (let j = 0; j < n; j++) {
      let v = 0;
      for (let i = 0; i < n; i++) v += (pi[i] as number) * (chain.matrix[i * n + j] as number);
      assert.ok(Math.abs(v - (pi[j] as number)) < 1e-12, `state ${j}: πP = ${v}, π = ${pi[j]}`);
    }
  }
});

test('GTH agrees with a dense solve of π(I − P) = 0', () => {
  const chain = buildChain(params(PAPER_DYNAMIC_TABLE, 0, 12), 0.4);
  const n = chain.space.size;
  // Dense Gaussian elimination on (I − P)ᵀ with the last equation replaced by Σπ = 1.
  const a = new Float64Array(n * n);
  const b = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[j * n + i] = (i === j ? 1 : 0) - (chain.matrix[i * n + j] as number);
  for (let j = 0; j < n; j++) a[(n - 1) * n + j] = 1;
  b[n - 1] = 1;
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c] as number) > Math.abs(a[piv * n + c] as number)) piv = r;
    for (let j = 0; j < n; j++) [a[c * n + j], a[piv * n + j]] = [a[piv * n + j] as number, a[c * n + j] as number];
    [b[c], b[piv]] = [b[piv] as number, b[c] as number];
    for (let r = c + 1; r < n; r++) {
      const f = (a[r * n + c] as number) / (a[c * n + c] as number);
      if (f === 0) continue;
      for (let j = c; j < n; j++) a[r * n + j] = (a[r * n + j] as number) - f * (a[c * n + j] as number);
      b[r] = (b[r] as number) - f * (b[c] as number);
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let v = b[r] as number;
    for (let j = r + 1; j < n; j++) v -= (a[r * n + j] as number) * (x[j] as number);
    x[r] = v / (a[r * n + r] as number);
  }
  const pi = gth(chain)!;
  for (let i = 0; i < n; i++) assert.ok(Math.abs((pi[i] as number) - (x[i] as number)) < 1e-10);
});

test('ξ is non-decreasing in q', () => {
  for (const table of [fixedTable(1), fixedTable(2), fixedTable(3), PAPER_DYNAMIC_TABLE]) {
    const model = new DeviceModel(params(table, 0, 20));
    let prev = 0;
    for (let k = 1; k <= 50; k++) {
      const q = k / 50;
      const { xi } = model.solve(q);
      assert.ok(xi >= prev * (1 - 1e-9) - 1e-15, `ξ fell from ${prev} to ${xi} at q=${q}`);
      prev = xi;
    }
  }
});

test('a fixed mode whose income covers its spending has q_lim = 1/κ', () => {
  // 15 W: at most one job per 3 slots costs 26/3 ≈ 8.7 kJ per slot; harvest averages 12.
  for (const [pm, kappa] of [[1, 3], [2, 2], [3, 1]] as const) {
    const cost = PAPER_MODES.find((m) => m.powerMode === pm)!.costQ;
    const income = (cost / kappa) * 1.6;
    const lim = limits(new DeviceModel(params(fixedTable(pm), income * 0.5, income * 1.5)), 0.01, { exact: true });
    assert.equal(lim.qEnergy, 1);
    assert.ok(Math.abs(lim.qLim - 1 / kappa) < 1e-4, `PM ${pm}: q_lim ${lim.qLim}`);
  }
});

test('an energy-bound mode has q_lim = q_energy with ξ(q_lim) = ξ_lim', () => {
  const model = new DeviceModel(params(fixedTable(3), 0, 20));
  const lim = limits(model, 0.01);
  assert.ok(lim.qEnergy < lim.qProc);
  assert.equal(lim.qLim, lim.qEnergy);
  assert.ok(Math.abs(model.solve(lim.qLim).xi - 0.01) < 1e-4);
});

test('zero harvest drives ξ to 1', () => {
  const model = new DeviceModel({ ...params(PAPER_DYNAMIC_TABLE, 0, 0), harvestPmf: new Float64Array([1]) });
  for (const q of [0.05, 0.3, 1]) assert.ok(Math.abs(model.solve(q).xi - 1) < 1e-9, `ξ(${q})`);
  assert.equal(limits(model, 0.01).qLim, 0);
});

test('mean battery is the time average: a device that never works sits full', () => {
  const model = new DeviceModel(params(PAPER_DYNAMIC_TABLE, 0, 4));
  const s = model.solve(1e-9);
  assert.ok(s.meanBattery > 99.9);
  assert.ok(s.xi < 1e-6);
});

test('Brent finds roots to tolerance and refuses a bracket without a sign change', () => {
  const r = brent((x) => x * x * x - 2 * x - 5, 2, 3, 1e-12);
  assert.ok(Math.abs(r.x - 2.0945514815423265) < 1e-10);
  assert.ok(r.evaluations < 15);
  assert.throws(() => brent((x) => x * x + 1, -1, 1), /same sign/);
});

test('group weights follow Eq. 6', () => {
  assert.deepEqual(groupWeights([0.2, 0.3, 0.5]).map((w) => Math.round(w * 1e9) / 1e9), [0.2, 0.3, 0.5]);
  assert.deepEqual(groupWeights([0, 0, 0]), [1 / 3, 1 / 3, 1 / 3]);
});

test('bad parameters are refused with the reason', () => {
  assert.throws(() => new DeviceModel(params(PAPER_DYNAMIC_TABLE, 0, 20, { eTh: 20, eThUp: 15 })), /eTh ≤ eThUp/);
  assert.throws(() => new DeviceModel(params([{ minFraction: 0, powerMode: 9 }], 0, 20)), /unknown power mode 9/);
  assert.throws(() => buildChain(params(PAPER_DYNAMIC_TABLE, 0, 20), 1.5), /\[0, 1\]/);
});
