// What the policies see of a node: the live gateway builds its DeviceViews in one place,
// with committedQ the cost of the jobs the router has handed the node and not yet closed,
// and the simulator feeds the policies the same quantity for the same situation.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RealClock } from '../../ground/clock.js';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { loadGatewayModel } from '../../gateway/index.js';
import { chainProfile } from '../../gateway/link.js';
import { Registry, toParams } from '../../gateway/registry.js';
import { SchedulerService, type GatewayModel } from '../../gateway/router/index.js';
import { DeviceModel, committedQ, type DeviceView, type Policy } from '../../gateway/scheduler/index.js';
import { NullStore } from '../../gateway/store/index.js';
import { selectBackend } from '../../models/backend.js';
import { runNetwork } from '../../sim/network.js';
import { stream } from '../../sim/rng.js';
import { paperProfile } from '../support/protocol-messages.js';

const quiet = pino({ level: 'silent' });
let model: GatewayModel;

before(async () => {
  await selectBackend({ backend: 'cpu' });
  model = loadGatewayModel(undefined, undefined, 0);
});

/**
 * Nodes of group g1 with the paper's profile (1 kJ quanta, E_th = 10, PM 1/2/3 below 40 %,
 * below 60 %, above: C_E 26, 22, 23) and no harvest, each at its battery level, solved so
 * that `foresight` has a chain to ask.
 */
const profileFor = (g: GatewayModel['groups'][number]) => chainProfile(
  { ...paperProfile(g.name), shard: { model: 'bundled', firstBlock: g.from, lastBlock: g.to - 1, sha256: g.sha256 } },
  { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } },
);

function group(batteryJ: Record<string, number>, policy = 'foresight') {
  const registry = new Registry({ silenceMs: 60_000, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) }, { update() {}, forget() {} });
  const g1 = model.groups[0]!;
  const now = Date.now();
  for (const [id, j] of Object.entries(batteryJ)) {
    const profile = profileFor(g1);
    registry.birth(id, profile, now);
    const pm = j >= 60_000 ? 3 : j >= 40_000 ? 2 : 1;
    registry.state(id, { gamma: 1, powerMode: pm, batteryJ: j }, now);
    registry.applySolved(id, toParams(profile, profile.priorHarvestPmf), { qLim: 0.1, qEnergy: 0.1, qProc: 0.5, energyBinds: true, solves: 1, solveMs: 1, hash: id }, now);
  }
  const scheduler = new SchedulerService({ fleet: 'f', policy, seed: 1 }, { registry, model, store: new NullStore(quiet), clock: new RealClock(), log: quiet });
  return { registry, scheduler, g1 };
}

test('live foresight counts what a node owes to the job it holds', () => {
  // a: 50 kJ in PM 2 and one job in hand (C_E 22): after it, 28 kJ, and a second job in
  // PM 1 (C_E 26) would leave 2 kJ, below E_th. b: 30 kJ, idle, would end at 4 kJ. Both end
  // below E_th, so the idle one is better; a node's own job in hand hidden (committedQ = 0)
  // would make a look safe, and the job would queue behind it.
  const { scheduler, g1 } = group({ a: 50_000, b: 30_000 });
  scheduler.hold('a');
  const pick = scheduler.pick('job-1', g1, new Set(), 'dispatch');
  assert.ok(pick.ok);
  assert.equal(pick.nodeId, 'b');
  // With nothing in hand, a (28 kJ after the job) is the safe one.
  scheduler.release('a');
  const idle = scheduler.pick('job-2', g1, new Set(), 'dispatch');
  assert.ok(idle.ok);
  assert.equal(idle.nodeId, 'a');
});

test('the live view: committedQ is C_E of the node\'s PM for each job in hand, from the offer to the close', () => {
  const { registry, scheduler, g1 } = group({ a: 70_000, b: 50_000 });
  const owed = () => scheduler.views(g1).views.map((v) => v.committedQ);
  assert.deepEqual(owed(), [0, 0]);
  scheduler.hold('a');
  scheduler.hold('b');
  // PM 3 costs 23 quanta a job, PM 2 22 (23 kJ and 22 kJ in 1 kJ quanta).
  assert.deepEqual(owed(), [23, 22]);
  scheduler.hold('b');
  assert.deepEqual(owed(), [23, 44]);
  // The node drops to PM 1 (C_E 26): what it owes follows its mode.
  registry.state('a', { gamma: 1, powerMode: 1, batteryJ: 39_000 }, Date.now());
  assert.deepEqual(owed(), [26, 44]);
  scheduler.release('a');
  scheduler.release('b');
  scheduler.release('b');
  assert.deepEqual(owed(), [0, 0]);
});

test('the live view and the simulator\'s agree: same node, same jobs held, same committedQ', () => {
  // One simulated device with the live node's profile, no harvest and a job every slot: it
  // runs through PM 3, 2 and 1 with a job in service; the policy records each view it gets.
  const g1 = model.groups[0]!;
  const profile = profileFor(g1);
  const device = { eMax: 100, eTh: 10, eThUp: 15, modes: profile.modes, modeTable: profile.modeTable };
  const seen: DeviceView[] = [];
  const recording: Policy = {
    name: 'recording',
    probabilities(views, out) {
      seen.push({ ...views[0]! });
      const p = out ?? new Float64Array(views.length);
      p[0] = 1;
      return p;
    },
  };
  runNetwork({
    scenario: { groups: 1, devicesPerGroup: 1, slots: 12, p: 1, device, harvest: [{ kind: 'pmf', pmf: [1] }], initialFraction: 0.75 },
    policy: recording, models: [new DeviceModel({ ...device, harvestPmf: new Float64Array([1]) })], weights: [1], worldRng: stream(1), policyRng: stream(2),
  });
  const busy = seen.filter((v) => v.busy);
  assert.deepEqual([...new Set(busy.map((v) => v.powerMode))].sort(), [1, 2, 3], 'the run saw a job in service in every mode');
  for (const v of seen) {
    const held = v.busy ? 1 : 0;
    assert.equal(v.committedQ, committedQ(profile.modes, v.powerMode, held), `sim at ${v.energyQ} quanta in PM ${v.powerMode}`);
    // The same node live: that battery, that PM, that many of the router's jobs in hand.
    const live = group({ a: v.energyQ * profile.quantumJ });
    live.registry.state('a', { gamma: 1, powerMode: v.powerMode, batteryJ: v.energyQ * profile.quantumJ }, Date.now());
    for (let k = 0; k < held; k++) live.scheduler.hold('a');
    const view = live.scheduler.views(live.g1).views[0]!;
    assert.deepEqual([view.committedQ, view.busy, view.powerMode, view.energyQ, view.available], [v.committedQ, v.busy, v.powerMode, v.energyQ, v.available]);
  }
});

test('availability is decided once, in the scheduler: γ, the router\'s own jobs in hand against the queue capacity, online', () => {
  const { registry: reg, scheduler, g1 } = group({ a: 100_000, b: 12_345, c: 40_000, d: 0 });
  reg.state('b', { gamma: 0, powerMode: 1 }, Date.now());
  // A slot record's queue is up to a slot old: the router's count decides, not this.
  reg.state('d', { gamma: 1, powerMode: 1, queue: 2 }, Date.now());
  scheduler.hold('a');
  scheduler.hold('c');
  scheduler.hold('c');
  reg.will('c', Date.now());
  const { nodes, views, reasons } = scheduler.views(g1);
  assert.deepEqual(nodes.map((n) => n.nodeId), ['a', 'b', 'c', 'd']);
  assert.deepEqual(reasons, ['', 'in power saving', 'offline', '']);
  assert.deepEqual(views.map((v) => v.available), [true, false, false, true]);
  assert.deepEqual(views.map((v) => v.busy), [true, false, true, false]);
  assert.deepEqual(views.map((v) => v.powerMode), [3, 0, 2, 1]);
  assert.deepEqual(views.map((v) => v.energyQ), [100, 12, 40, 0]);
  assert.deepEqual(views.map((v) => v.committedQ), [23, 0, 44, 0], 'C_E of PM 3 for a, twice that of PM 2 for c');
  assert.deepEqual(views.map((v) => v.weight), [1 / 3, 1 / 3, 0, 1 / 3], 'Eq. 6 over the online nodes, equal q_lim');
  // The view the scheduler shows for the group is the same decision.
  assert.deepEqual(scheduler.view().groups[0]!.nodes.map((n) => n.available), [true, false, false, true]);
  scheduler.hold('a');
  assert.equal(scheduler.views(g1).reasons[0], 'busy', 'queue capacity 2: two jobs in hand fill it');
});
