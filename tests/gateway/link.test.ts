// Node messages into the registry: validation at the edge, the energy grid, refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { encodeJson, nodeTopic } from '../../protocol/index.js';
import { RealClock } from '../../ground/clock.js';
import { EstimatorConfigSchema } from '../../gateway/estimator.js';
import { NodeLink, chainProfile } from '../../gateway/link.js';
import { Registry } from '../../gateway/registry.js';
import { mean } from '../../gateway/scheduler/index.js';
import { captureLog } from '../support/log.js';
import { birth, paperProfile, slotRecord, will } from '../support/protocol-messages.js';

function setup() {
  const updates: string[] = [];
  const registry = new Registry(
    { silenceMs: 1e9, xiLim: 0.01, estimator: EstimatorConfigSchema.parse({}) },
    { update: (id) => void updates.push(id), forget: () => {} },
  );
  const cap = captureLog();
  const link = new NodeLink(
    { fleet: 'f1', levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } },
    { client: {} as MqttClient, registry, clock: new RealClock(), log: cap.log },
  );
  return { registry, link, cap, updates };
}

test('a profile in joules lands on the chain\'s grid of quanta', () => {
  const c = chainProfile(paperProfile(), { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 30_000 } });
  assert.equal(c.quantumJ, 1000);
  assert.deepEqual(c.modes.map((m) => [m.powerMode, m.kappa, m.costQ]), [[1, 3, 26], [2, 2, 22], [3, 1, 23]]);
  assert.ok(Math.abs(mean(c.priorHarvestPmf) - 15) < 1e-9);
  const fine = chainProfile({ ...paperProfile(), modes: [{ powerMode: 1, name: 'x', kappa: 1, costJ: 10 }], modeTable: [{ minFraction: 0, powerMode: 1 }] },
    { levels: 100, priorHarvestJ: { loJ: 0, hiJ: 0 } });
  assert.equal(fine.modes[0]!.costQ, 1, 'a job never costs less than one quantum');
  assert.deepEqual([...fine.priorHarvestPmf], [1], 'no harvest assumed by default');
});

test('births, slot records, events and wills reach the registry', () => {
  const { registry, link, updates } = setup();
  link.onMessage(nodeTopic('f1', 'pi-1', 'state'), encodeJson(birth('pi-1', 1)));
  assert.equal(registry.get('pi-1')?.online, true);
  assert.deepEqual(updates, ['pi-1']);
  link.onMessage(nodeTopic('f1', 'pi-1', 'slot'), encodeJson(slotRecord('pi-1', 7, { batteryJ: 42_000, queue: 1 })));
  assert.equal(registry.get('pi-1')!.batteryJ, 42_000);
  assert.equal(registry.get('pi-1')!.queue, 1);
  link.onMessage(nodeTopic('f1', 'pi-1', 'event'), encodeJson({
    v: 1, nodeId: 'pi-1', atMs: 5, kind: 'power-saving-enter', batteryJ: 9_000, batteryPct: 9, gamma: 0, powerMode: 0, detail: '',
  }));
  assert.equal(registry.get('pi-1')!.gamma, 0);
  assert.equal(registry.get('pi-1')!.batteryJ, 9_000);
  link.onMessage(nodeTopic('f1', 'pi-1', 'state'), encodeJson(will('pi-1')));
  assert.equal(registry.get('pi-1')!.online, false);
  link.onMessage(nodeTopic('f1', 'pi-1', 'state'), Buffer.alloc(0));
  assert.equal(link.counters.invalid, 0);
});

test('a birth that carries the node\'s state makes it available at once; one without waits for a report', () => {
  const { registry, link } = setup();
  link.onMessage(nodeTopic('f1', 'pi-1', 'state'), encodeJson(birth('pi-1', 1)));
  assert.equal(registry.get('pi-1')!.gamma, 0, 'no state in the birth: not assumed active');
  link.onMessage(nodeTopic('f1', 'pi-2', 'state'), encodeJson({ ...birth('pi-2', 1), gamma: 1, powerMode: 3, batteryJ: 61_000 }));
  assert.deepEqual([registry.get('pi-2')!.gamma, registry.get('pi-2')!.powerMode, registry.get('pi-2')!.batteryJ], [1, 3, 61_000]);
  link.onMessage(nodeTopic('f1', 'pi-2', 'state'), encodeJson({ ...birth('pi-2', 2), gamma: 0, powerMode: 1 }));
  assert.equal(registry.get('pi-2')!.gamma, 0, 'a birth re-sent on entering power saving');
  link.onMessage(nodeTopic('f1', 'pi-3', 'state'), encodeJson({ ...birth('pi-3', 1), gamma: 2 }));
  assert.equal(registry.get('pi-3'), undefined);
  assert.equal(link.counters.invalid, 1, 'γ outside {0, 1} is refused');
});

test('broken or mislabelled messages are refused, logged and counted', () => {
  const { registry, link, cap } = setup();
  link.onMessage(nodeTopic('f1', 'pi-1', 'state'), Buffer.from('{not json'));
  link.onMessage(nodeTopic('f1', 'pi-1', 'state'), encodeJson(birth('pi-2', 1)));
  link.onMessage(nodeTopic('f1', 'pi-1', 'slot'), encodeJson({ ...slotRecord('pi-1', 1), harvestJ: -5 }));
  assert.equal(link.counters.invalid, 3);
  assert.equal(registry.get('pi-1'), undefined);
  assert.equal(registry.get('pi-2'), undefined, 'a node cannot speak for another');
  const refused = cap.records.filter((r) => r.msg === 'node message refused');
  assert.equal(refused.length, 3);
  assert.ok(refused.every((r) => typeof r.err === 'string' && typeof r.node === 'string'));
  link.onMessage('heliomesh/other/node/pi-1/state', encodeJson(birth('pi-1', 1)));
  assert.equal(registry.get('pi-1'), undefined, 'another fleet\'s topics are not ours');
});

test('past a flood of made-up topics, and on repeats of one, each message is still read by its own topic', () => {
  const { registry, link } = setup();
  for (let i = 0; i < 9000; i++) link.onMessage(`heliomesh/f1/node/ghost-${i}/slot`, Buffer.from('{}'));
  assert.equal(link.counters.invalid, 9000, 'each malformed slot record refused');
  link.onMessage('heliomesh/other/node/pi-1/state', encodeJson(birth('pi-1', 1)));
  assert.equal(registry.get('pi-1'), undefined, 'another fleet\'s topic is ignored');
  link.onMessage('heliomesh/f1/node/pi+1/state', encodeJson(birth('pi-1', 1)));
  assert.equal(registry.get('pi-1'), undefined, 'a topic whose node id is not one is ignored');
  for (let i = 0; i < 2; i++) link.onMessage(nodeTopic('f1', 'pi-1', 'state'), encodeJson(birth('pi-1', 1)));
  assert.equal(registry.get('pi-1')?.online, true);
  link.onMessage(nodeTopic('f1', 'pi-2', 'state'), encodeJson(birth('pi-1', 1)));
  assert.equal(registry.get('pi-2'), undefined, 'a birth naming another node than its topic is refused');
  assert.equal(link.counters.invalid, 9001);
});
