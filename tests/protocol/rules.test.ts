// The rules both sides of the protocol compute: one function each, and the node's power
// policy and the gateway's chain reach the same answer through them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modeAt } from '../../gateway/scheduler/chain.js';
import { PAPER_DYNAMIC_TABLE, PAPER_MODES } from '../../gateway/scheduler/paper.js';
import { DEFAULT_QUEUE_CAPACITY, modeStepAt, parseState, powerModeAt, thresholdProblems, encodeJson, type NodeProfile } from '../../protocol/index.js';

const table = [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.4, powerMode: 2 }, { minFraction: 0.6, powerMode: 3 }];
// Steps whose E_max × minFraction rounds above the level that lies exactly on them.
const fine = [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.28, powerMode: 2 }, { minFraction: 0.55, powerMode: 3 }];

test('PM(E) is the last step at or below E/E_max', () => {
  assert.equal(powerModeAt(table, 0, 100), 1);
  assert.equal(powerModeAt(table, 39.9, 100), 1);
  assert.equal(powerModeAt(table, 40, 100), 2);
  assert.equal(powerModeAt(table, 99, 100), 3);
  assert.equal(powerModeAt(table, 100, 100), 3);
  assert.equal(modeStepAt(table, 59.99, 100), 1);
});

test('PM(E) puts a level exactly on a step boundary on the step, where E_max × minFraction rounds above it', () => {
  // 0.55 × 100 is 55.00000000000001 in binary floating point, yet 55 of 100 is 55 %.
  const [, low, high] = fine;
  assert.ok(high!.minFraction * 100 > 55 && low!.minFraction * 25 > 7, 'the product lands above the level');
  assert.equal(powerModeAt(fine, 55, 100), 3);
  assert.equal(powerModeAt(fine, 54, 100), 2);
  assert.equal(powerModeAt(fine, 7, 25), 2);
  assert.equal(powerModeAt(fine, 6, 25), 1);
  for (const eMax of [20, 100, 200, 300, 1000]) {
    for (const [step, from] of [[1, 0.28], [2, 0.55]] as const) {
      const e = Math.round(from * eMax);
      assert.equal(modeStepAt(fine, e, eMax), step, `E = ${e} of ${eMax}`);
      assert.equal(modeStepAt(fine, e - 1, eMax), step - 1, `E = ${e - 1} of ${eMax}`);
    }
  }
});

test('the gateway\'s chain and the node pick the same mode at every battery level', () => {
  for (const modeTable of [PAPER_DYNAMIC_TABLE, fine]) {
    for (const eMax of [3, 5, 7, 10, 20, 25, 33, 50, 100, 250]) {
      const params = { eMax, modes: PAPER_MODES, modeTable };
      for (let e = 0; e <= eMax; e++) {
        assert.equal(modeAt(params, e).powerMode, powerModeAt(modeTable, e, eMax), `E = ${e} of ${eMax}`);
      }
    }
  }
});

test('the threshold order critical < E_th < E′_th < capacity, and each break named by the threshold to change', () => {
  assert.deepEqual(thresholdProblems({ criticalJ: 1, eThJ: 2, eThUpJ: 3 }, 4), []);
  assert.deepEqual(thresholdProblems({ criticalJ: 2, eThJ: 2, eThUpJ: 3 }, 4).map((p) => p.threshold), ['criticalJ']);
  assert.deepEqual(thresholdProblems({ criticalJ: 1, eThJ: 3, eThUpJ: 3 }, 4).map((p) => p.threshold), ['eThUpJ']);
  assert.deepEqual(thresholdProblems({ criticalJ: 1, eThJ: 2, eThUpJ: 4 }, 4).map((p) => p.message), ['eThUpJ must be below the battery capacity']);
  assert.equal(thresholdProblems({ criticalJ: 5, eThJ: 4, eThUpJ: 3 }, 2).length, 3);
});

test('a birth whose thresholds break the order is refused at the edge with the same rule', () => {
  const profile: NodeProfile = {
    group: 'g1', slotMs: 60_000, capacityJ: 1000, queueCapacity: DEFAULT_QUEUE_CAPACITY,
    thresholds: { eThJ: 100, eThUpJ: 1000, criticalJ: 100 },
    modes: [{ powerMode: 1, name: 'low', kappa: 1, costJ: 1 }],
    modeTable: [{ minFraction: 0, powerMode: 1 }],
  };
  const r = parseState(encodeJson({ v: 1, status: 'online', nodeId: 'a', atMs: 0, profile }));
  assert.ok(!r.ok);
  const expected = thresholdProblems(profile.thresholds, profile.capacityJ).map((p) => p.message);
  assert.equal(expected.length, 2);
  for (const message of expected) assert.ok(r.error.includes(message), `${r.error} names '${message}'`);
});
