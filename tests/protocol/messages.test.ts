import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_JSON_BYTES, commandIdOf, encodeJson, fleetFilter, nodeAclPatterns, nodeTopic, nodeTopics, parseCommand, parseNodeTopic,
  parseCommandReply, parseEvent, parseJobControl, parseJobReport, parseSlotRecord, parseState, parseTelemetry, type NodeProfile, type SlotRecord,
} from '../../protocol/index.js';
import { NodeAcl } from '../../gateway/broker/acl.js';

const profile: NodeProfile = {
  group: 'g1', slotMs: 60_000, capacityJ: 266_400, queueCapacity: 1,
  thresholds: { eThJ: 26_640, eThUpJ: 53_280, criticalJ: 5_000 },
  modes: [{ powerMode: 1, name: 'low', kappa: 3, costJ: 40 }, { powerMode: 2, name: 'high', kappa: 1, costJ: 55 }],
  modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.6, powerMode: 2 }],
};

test('topics are built, parsed back and refuse ids that would break MQTT levels', () => {
  const t = nodeTopics('solar', 'pi-01');
  assert.equal(t.slot, 'heliomesh/solar/node/pi-01/slot');
  assert.equal(t.cmdReply, 'heliomesh/solar/node/pi-01/cmd/reply');
  assert.deepEqual(parseNodeTopic(t.cmdReply), { fleet: 'solar', nodeId: 'pi-01', kind: 'cmdReply' });
  assert.deepEqual(parseNodeTopic(t.jobIn), { fleet: 'solar', nodeId: 'pi-01', kind: 'jobIn' });
  assert.equal(parseNodeTopic('heliomesh/solar/node/pi-01/other'), null);
  assert.equal(parseNodeTopic('elsewhere/solar/node/pi-01/slot'), null);
  assert.throws(() => nodeTopic('solar', 'a/b', 'slot'), /node id/);
  assert.throws(() => nodeTopic('solar', '+', 'slot'), /node id/);
  assert.throws(() => nodeTopic('solar', '-x', 'slot'), /node id/);
  assert.throws(() => nodeTopic('solar', 'x'.repeat(64), 'slot'), /node id/);
  assert.throws(() => nodeTopic('#', 'x', 'slot'), /fleet/);
  assert.equal(fleetFilter('solar', 'slot'), 'heliomesh/solar/node/+/slot');
});

test('the ACL patterns let a node publish and subscribe only under its own topics', () => {
  const acl = new NodeAcl(nodeAclPatterns('solar'));
  const mine = nodeTopics('solar', 'a');
  const theirs = nodeTopics('solar', 'b');
  for (const k of ['state', 'slot', 'event', 'telemetry', 'cmdReply', 'jobOut'] as const) {
    assert.ok(acl.mayPublish('a', mine[k]), k);
    assert.ok(!acl.mayPublish('a', theirs[k]), k);
  }
  assert.ok(!acl.mayPublish('a', mine.cmd));
  assert.ok(!acl.mayPublish('a', mine.jobIn));
  assert.ok(acl.maySubscribe('a', mine.cmd));
  assert.ok(acl.maySubscribe('a', mine.jobIn));
  assert.ok(!acl.maySubscribe('a', theirs.cmd));
  assert.ok(!acl.maySubscribe('a', 'heliomesh/solar/node/+/cmd'));
  assert.ok(!acl.maySubscribe('a', '#'));
});

test('birth and slot records round-trip through encode and parse', () => {
  const birth = { v: 1 as const, status: 'online' as const, nodeId: 'pi-01', atMs: 1000, profile };
  const r = parseState(encodeJson(birth));
  assert.ok(r.ok, !r.ok ? r.error : '');
  assert.deepEqual(r.value, birth);
  const slot: SlotRecord = {
    v: 1, nodeId: 'pi-01', seq: 5, slotStartMs: 300_000, slotMs: 60_000, harvestJ: 120.5, consumedJ: 160.2, batteryJ: 100_000,
    batteryPct: 37.5, powerMode: 1, gamma: 1, queue: 0, charger: 'fast-charging', health: [], degraded: false, samples: 120,
  };
  const s = parseSlotRecord(encodeJson(slot));
  assert.ok(s.ok);
  assert.deepEqual(s.value, slot);
});

test('parsers never throw and say what is wrong', () => {
  const notJson = parseSlotRecord(Buffer.from('{oops'));
  assert.ok(!notJson.ok && /not JSON/.test(notJson.error));
  const neg = parseSlotRecord(encodeJson({ v: 1, nodeId: 'x', seq: -1 }));
  assert.ok(!neg.ok && /seq/.test(neg.error));
  const big = parseCommand(Buffer.alloc(MAX_JSON_BYTES + 1, 0x20));
  assert.ok(!big.ok && /exceeds/.test(big.error));
  const noHyst = parseState(encodeJson({ v: 1, status: 'online', nodeId: 'a', atMs: 0, profile: { ...profile, thresholds: { eThJ: 10, eThUpJ: 5, criticalJ: 1 } } }));
  assert.ok(!noHyst.ok && /hysteresis/.test(noHyst.error));
  const table = parseState(encodeJson({ v: 1, status: 'online', nodeId: 'a', atMs: 0, profile: { ...profile, modeTable: [{ minFraction: 0, powerMode: 9 }] } }));
  assert.ok(!table.ok && /powerMode 9 is not in modes/.test(table.error));
  const op = parseCommand(encodeJson({ v: 1, id: 'c1', op: 'format-disk' }));
  assert.ok(!op.ok);
  assert.equal(commandIdOf(encodeJson({ v: 1, id: 'c1', op: 'format-disk' })), 'c1');
  assert.equal(commandIdOf(Buffer.from('garbage')), null);
  const ok = parseCommand(encodeJson({ v: 1, id: 'c2', op: 're-profile' }));
  assert.ok(ok.ok && ok.value.op === 're-profile' && ok.value.jobsPerMode === 5);
});

test('mutated payloads never make a parser throw', () => {
  const seeds = [
    encodeJson({ v: 1, status: 'online', nodeId: 'a', atMs: 0, profile }),
    encodeJson({ v: 1, id: 'c', op: 'set-thresholds', thresholds: { eThJ: 1, eThUpJ: 2, criticalJ: 0 } }),
    encodeJson({ v: 1, type: 'offer', jobId: 1, sessionId: 2 }),
  ];
  const parsers = [parseState, parseCommand, parseSlotRecord, parseJobControl, parseJobReport, parseEvent, parseCommandReply, parseTelemetry];
  let s = 12345;
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(seeds[i % seeds.length]!);
    for (let k = 0; k < 1 + (i % 4); k++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      b[s % b.length] = (s >> 8) & 0xff;
    }
    for (const p of parsers) {
      const r = p(b);
      assert.equal(typeof r.ok, 'boolean');
      if (r.ok) accepted++;
      else assert.ok(r.error.length > 0);
    }
  }
  assert.ok(accepted < 3000 * parsers.length);
});
