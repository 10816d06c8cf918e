// The physical bounds on what a node says (protocol/bounds.ts): the schemas' bounds of any
// node, and the bounds of one node's declared profile. Each is tried just inside and just
// beyond, and the fixtures of a real Pi node and of the paper's device stay within them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_CAPACITY_J, MAX_JOB_MS, MAX_NODE_W, MAX_PANEL_W, MAX_POWER_MODES, MAX_QUEUE_CAPACITY, MAX_RECORD_SLOT_MS, MAX_SLOT_MS, MIN_CAPACITY_J,
  PANEL_OVER_STC, PROTOCOL_VERSION, encodeJson, eventBeyondProfile, jobEnergyBeyondProfile, parseJobReport, parseSlotRecord, parseState,
  slotBeyondProfile, type NodeProfile,
} from '../../protocol/index.js';
import { paperProfile, slotRecord } from '../support/protocol-messages.js';

const pi: NodeProfile = {
  group: 'g1', slotMs: 60_000, capacityJ: 266_400, queueCapacity: 1,
  thresholds: { eThJ: 26_640, eThUpJ: 53_280, criticalJ: 8_000 },
  modes: [{ powerMode: 1, name: 'low', kappa: 2, costJ: 40 }, { powerMode: 2, name: 'high', kappa: 1, costJ: 55 }],
  modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.6, powerMode: 2 }],
};

const birth = (profile: NodeProfile, over: Record<string, unknown> = {}) =>
  parseState(encodeJson({ v: PROTOCOL_VERSION, status: 'online', nodeId: 'pi-1', atMs: 1, profile, ...over }));

function refusedInRange(r: { ok: boolean; outOfRange?: boolean; error?: string }, pattern: RegExp): void {
  assert.equal(r.ok, false, 'refused');
  assert.equal(r.outOfRange, true, `counted as out of range: ${r.error}`);
  assert.match(r.error!, pattern);
}

test('a Pi node\'s and the paper device\'s births are within every bound', () => {
  assert.ok(birth(pi).ok);
  assert.ok(birth(paperProfile()).ok, 'the paper\'s 60 W device with its 100 kJ battery');
  assert.ok(birth(pi, { gamma: 1, powerMode: 2, batteryJ: 266_400 }).ok, 'a full battery');
  assert.ok(birth({ ...pi, panelPeakW: MAX_PANEL_W }).ok);
});

test('a birth\'s battery, capacity, slot, κ, costs, queue, modes and panel are held to their bounds', () => {
  refusedInRange(birth(pi, { gamma: 1, powerMode: 1, batteryJ: 1e308 }), /batteryJ/);
  refusedInRange(birth(pi, { gamma: 1, powerMode: 1, batteryJ: 266_401 }), /batteryJ 266401 J is above the declared capacity/);
  refusedInRange(birth(pi, { gamma: 1, powerMode: 3, batteryJ: 1000 }), /powerMode 3 is none of the declared modes/);
  refusedInRange(birth({ ...pi, capacityJ: 1e-300 }), /capacityJ/);
  refusedInRange(birth({ ...pi, capacityJ: MIN_CAPACITY_J - 1, thresholds: { eThJ: 100, eThUpJ: 200, criticalJ: 10 }, modes: [{ powerMode: 1, name: 'low', kappa: 2, costJ: 40 }] }), /capacityJ/);
  refusedInRange(birth({ ...pi, capacityJ: MAX_CAPACITY_J * 2 }), /capacityJ/);
  refusedInRange(birth({ ...pi, slotMs: MAX_SLOT_MS + 1 }), /slotMs/);
  refusedInRange(birth({ ...pi, slotMs: 999 }), /slotMs/);
  refusedInRange(birth({ ...pi, modes: [{ ...pi.modes[0]!, kappa: 2 ** 53 - 1 }, pi.modes[1]!] }), /kappa/);
  // κ × δ past a day, though κ alone is within its own bound.
  refusedInRange(birth({ ...pi, modes: [{ ...pi.modes[0]!, kappa: MAX_JOB_MS / 60_000 + 1 }, pi.modes[1]!] }), /longer than the 86400000 ms a job may last/);
  assert.ok(birth({ ...pi, modes: [{ ...pi.modes[0]!, kappa: MAX_JOB_MS / 60_000 }, pi.modes[1]!] }).ok, 'a job of exactly a day');
  refusedInRange(birth({ ...pi, modes: [{ ...pi.modes[0]!, costJ: 266_401 }, pi.modes[1]!] }), /above the battery capacity/);
  // 55 J in one 60 s slot is fine; the board's 240 W × 60 s = 14,400 J is the most one slot's job costs.
  assert.ok(birth({ ...pi, modes: [pi.modes[0]!, { ...pi.modes[1]!, costJ: MAX_NODE_W * 60 }] }).ok);
  refusedInRange(birth({ ...pi, modes: [pi.modes[0]!, { ...pi.modes[1]!, costJ: MAX_NODE_W * 60 + 1 }] }), /board can draw/);
  refusedInRange(birth({ ...pi, queueCapacity: 1e15 }), /queueCapacity/);
  assert.ok(birth({ ...pi, queueCapacity: MAX_QUEUE_CAPACITY }).ok);
  const many = Array.from({ length: MAX_POWER_MODES + 1 }, (_, i) => ({ powerMode: i + 1, name: `m${i}`, kappa: 1, costJ: 10 }));
  assert.equal(birth({ ...pi, modes: many }).ok, false, 'more modes than a node has operating points');
  refusedInRange(birth({ ...pi, panelPeakW: MAX_PANEL_W + 1 }), /panelPeakW/);
});

test('a malformed birth is not counted as out of range', () => {
  const r = birth({ ...pi, capacityJ: 'lots' as unknown as number });
  assert.equal(r.ok ? 'accepted' : r.outOfRange, false);
});

test('a slot record is held to what any panel delivers and any board draws over its length', () => {
  const slot = (over: Record<string, unknown>) => parseSlotRecord(encodeJson(slotRecord('pi-1', 1, { slotMs: 60_000, batteryJ: 100_000, ...over })));
  const panelJ = MAX_PANEL_W * PANEL_OVER_STC * 60;
  assert.ok(slot({ harvestJ: panelJ, consumedJ: MAX_NODE_W * 60 }).ok, 'at the bounds');
  refusedInRange(slot({ harvestJ: panelJ + 1, consumedJ: 100 }), /harvestJ/);
  refusedInRange(slot({ harvestJ: 1e12, consumedJ: 100 }), /harvestJ/);
  refusedInRange(slot({ harvestJ: 100, consumedJ: MAX_NODE_W * 60 + 1 }), /consumedJ/);
  refusedInRange(slot({ harvestJ: 100, consumedJ: 100, slotMs: MAX_RECORD_SLOT_MS + 1 }), /slotMs/);
  refusedInRange(slot({ harvestJ: 100, consumedJ: 100, samples: 50 * 60 + 3 }), /samples/);
  refusedInRange(slot({ harvestJ: 100, consumedJ: 100, queue: 1e15 }), /queue/);
  refusedInRange(slot({ harvestJ: 100, consumedJ: 100, batteryJ: 1e308 }), /batteryJ/);
  // The paper's fixture: 20 kJ harvested and 15 kJ drawn in a 100 s slot (200 W and 150 W).
  assert.ok(parseSlotRecord(encodeJson(slotRecord('pi-1', 1))).ok);
});

test('a slot record against its node\'s profile: battery within capacity, harvest within its panel, queue and mode declared', () => {
  const s = { batteryJ: 200_000, harvestJ: 500, slotMs: 60_000, queue: 1, powerMode: 1 };
  assert.equal(slotBeyondProfile(s, pi), undefined);
  assert.equal(slotBeyondProfile({ ...s, batteryJ: 266_400.001 }, pi), undefined, 'the wire\'s 0.001 J rounding');
  assert.equal(slotBeyondProfile({ ...s, batteryJ: 266_401 }, pi)?.bound, 'battery');
  assert.equal(slotBeyondProfile({ ...s, batteryJ: 1e308 }, pi)?.bound, 'battery');
  // A declared 20 W panel: 20 W × 1.5 × 60 s = 1,800 J per slot.
  const panel = { ...pi, panelPeakW: 20 };
  assert.equal(slotBeyondProfile({ ...s, harvestJ: 1_800 }, panel), undefined);
  assert.equal(slotBeyondProfile({ ...s, harvestJ: 1_801 }, panel)?.bound, 'harvest');
  assert.equal(slotBeyondProfile({ ...s, harvestJ: 1_801 }, pi), undefined, 'without a declared panel, the largest panel bounds it');
  assert.equal(slotBeyondProfile({ ...s, queue: 2 }, pi)?.bound, 'queue');
  assert.equal(slotBeyondProfile({ ...s, powerMode: 0 }, pi), undefined, 'power saving');
  assert.equal(slotBeyondProfile({ ...s, powerMode: 3 }, pi)?.bound, 'power-mode');
  assert.equal(eventBeyondProfile({ batteryJ: 266_401, powerMode: 1 }, pi)?.bound, 'battery');
  assert.equal(eventBeyondProfile({ batteryJ: 1000, powerMode: 7 }, pi)?.bound, 'power-mode');
  assert.equal(eventBeyondProfile({ batteryJ: 1000, powerMode: 2 }, pi), undefined);
});

test('a job\'s energy: at least minus its baseline, at most the board\'s maximum over the job and one slot, and no more than battery and panel hold', () => {
  const report = (over: Record<string, unknown>) => parseJobReport(encodeJson({
    v: PROTOCOL_VERSION, type: 'report', jobId: 1, sessionId: 1, ok: true, steps: 3, durationMs: 2_000, energyJ: 12, baselineW: 3, powerMode: 1, ...over,
  }));
  assert.ok(report({}).ok);
  assert.ok(report({ energyJ: -6 }).ok, 'an idle-ish job: minus the baseline over 2 s');
  refusedInRange(report({ energyJ: -6.001 }), /below minus the 3 W baseline/);
  refusedInRange(report({ baselineW: MAX_NODE_W + 1 }), /baselineW/);
  refusedInRange(report({ durationMs: MAX_JOB_MS + 1 }), /durationMs/);
  assert.equal(report({ energyJ: Infinity }).ok, false, 'Infinity is no energy (JSON carries it as null)');
  // The session's decode forwards: optional, no more than its steps, never negative.
  assert.ok(report({ decode: { frames: 2, forwardMs: 1.5 } }).ok);
  assert.ok(report({ decode: { frames: 0, forwardMs: 0 } }).ok);
  refusedInRange(report({ decode: { frames: 4, forwardMs: 1.5 } }), /decode\.frames 4 is more than the session's 3 steps/);
  assert.equal(report({ decode: { frames: 2 } }).ok, false, 'frames without their time');
  assert.equal(report({ decode: { frames: 2, forwardMs: -1 } }).ok, false);
  refusedInRange(report({ decode: { frames: 2, forwardMs: MAX_JOB_MS + 1 } }), /forwardMs/);

  const maxJ = (MAX_NODE_W * (2_000 + 60_000)) / 1000;
  assert.equal(jobEnergyBeyondProfile({ energyJ: maxJ, durationMs: 2_000 }, pi), undefined);
  assert.equal(jobEnergyBeyondProfile({ energyJ: maxJ + 1, durationMs: 2_000 }, pi)?.bound, 'job-energy');
  assert.equal(jobEnergyBeyondProfile({ energyJ: 1e308, durationMs: 2_000 }, pi)?.bound, 'job-energy');
  // A day-long job on a small battery with a 5 W panel: the battery and the panel bound it, not the board.
  const small = { ...pi, capacityJ: 3_600, panelPeakW: 5 };
  const dayMs = MAX_JOB_MS - pi.slotMs;
  const heldJ = 3_600 + (5 * PANEL_OVER_STC * MAX_JOB_MS) / 1000;
  assert.equal(jobEnergyBeyondProfile({ energyJ: heldJ, durationMs: dayMs }, small), undefined);
  assert.equal(jobEnergyBeyondProfile({ energyJ: heldJ + 1, durationMs: dayMs }, small)?.bound, 'job-energy');
});
