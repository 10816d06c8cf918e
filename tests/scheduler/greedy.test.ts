// `greedy`, the fair baseline for `foresight`: the job goes to the available device with the
// most battery left once it has paid what it owes (the jobs in hand) and this job's C_E.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { parseGatewayConfig } from '../../gateway/config.js';
import { DeviceModel, PAPER_DYNAMIC_TABLE, PAPER_MODES, POLICIES, uniformOnGrid, type DeviceView, type Policy } from '../../gateway/scheduler/index.js';

const paperModel = new DeviceModel({ eMax: 100, eTh: 10, eThUp: 15, modes: PAPER_MODES, modeTable: PAPER_DYNAMIC_TABLE, harvestPmf: uniformOnGrid(0, 4) });
const view = (over: Partial<DeviceView>): DeviceView => ({ available: true, busy: false, powerMode: 3, energyQ: 80, committedQ: 0, weight: 1 / 3, model: paperModel, ...over });

function greedy(): Policy {
  const p = POLICIES.greedy;
  assert.ok(p, `no policy named greedy among ${Object.keys(POLICIES).join(', ')}`);
  assert.equal(p.name, 'greedy');
  return p;
}

const chosen = (probs: Float64Array) => Array.from(probs);

test('greedy hands the job to the device with the most battery left after its cost', () => {
  assert.deepEqual(chosen(greedy().probabilities([view({ energyQ: 70 }), view({ energyQ: 90 }), view({ energyQ: 50, powerMode: 2 })])), [0, 1, 0]);
});

test('greedy counts the energy already owed to jobs in hand (committedQ)', () => {
  // 90 − 40 owed − C_E(50) = 28 against 70 − C_E(70) = 47: the fuller battery owes too much.
  const group = [view({ energyQ: 90, busy: true, committedQ: 40 }), view({ energyQ: 70 })];
  assert.deepEqual(chosen(greedy().probabilities(group)), [0, 1]);
  // With nothing owed the same battery wins.
  assert.deepEqual(chosen(greedy().probabilities([view({ energyQ: 90 }), view({ energyQ: 70 })])), [1, 0]);
});

test("greedy counts this job's C_E at the mode the device will run it in", () => {
  // Above half charge this device runs a costly mode: 55 − 30 = 25 is left, below 45 − 5 = 40.
  const model = new DeviceModel({
    eMax: 100, eTh: 10, eThUp: 15, harvestPmf: uniformOnGrid(0, 4),
    modes: [{ powerMode: 1, name: 'slow', kappa: 3, costQ: 5 }, { powerMode: 2, name: 'fast', kappa: 1, costQ: 30 }],
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.5, powerMode: 2 }],
  });
  const group = [view({ energyQ: 55, powerMode: 2, model }), view({ energyQ: 45, powerMode: 1, model })];
  assert.deepEqual(chosen(greedy().probabilities(group)), [0, 1]);
});

test('greedy never chooses an unavailable device, however full', () => {
  const group = [view({ energyQ: 100, available: false }), view({ energyQ: 30, powerMode: 1 }), view({ energyQ: 100, available: false, busy: true })];
  assert.deepEqual(chosen(greedy().probabilities(group)), [0, 1, 0]);
  // Nothing available: nothing chosen (the caller holds the job).
  assert.deepEqual(chosen(greedy().probabilities([view({ available: false }), view({ available: false })])), [0, 0]);
});

test('greedy splits a tie evenly among the tied devices', () => {
  const p = greedy().probabilities([view({ energyQ: 80 }), view({ energyQ: 60 }), view({ energyQ: 80 }), view({ energyQ: 80, available: false })]);
  assert.deepEqual(chosen(p), [0.5, 0, 0.5, 0]);
});

test('greedy writes into the buffer it is given', () => {
  const out = new Float64Array([7, 7]);
  const p = greedy().probabilities([view({ energyQ: 20, powerMode: 1 }), view({ energyQ: 40, powerMode: 2 })], out);
  assert.equal(p, out);
  assert.deepEqual(chosen(out), [0, 1]);
});

test('the gateway accepts scheduler.policy: greedy', () => {
  const config = parseGatewayConfig(parseYaml('broker: { credentialsPath: nodes.json }\nscheduler: { policy: greedy }\n'), 'gw.yaml');
  assert.equal(config.scheduler.policy, 'greedy');
});
