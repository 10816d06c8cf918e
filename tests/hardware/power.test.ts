// The halted virtual node's power board: off → alarm → on; flat → recovery level → on;
// never on before; the plant draws only its sleep current meanwhile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../../hardware/clock.js';
import { parseHardwareConfig, referenceHardwareConfig } from '../../hardware/config.js';
import { VirtualNode } from '../../hardware/virtual/node.js';
import { PowerSupervisor, type PowerOff } from '../../hardware/virtual/power.js';
import { createRtcTree } from '../../hardware/virtual/rtc.js';

// 22:00 UTC on 21 June at 40° N, 3.7° W: dark until about 04:30 solar time.
const NIGHT = Date.UTC(2026, 5, 21, 22);
const HOUR = 3_600_000;

function halted(clock: VirtualClock, initialSocPct: number): VirtualNode {
  const base = referenceHardwareConfig('virtual');
  return new VirtualNode({ clock, config: parseHardwareConfig({ ...base, battery: { ...base.battery, capacityWh: 36 }, virtual: { ...base.virtual, initialSocPct } }) });
}

function supervise(clock: VirtualClock, node: VirtualNode, off: PowerOff) {
  const boots: Array<{ atMs: number; socPct: number; why: string }> = [];
  const s = new PowerSupervisor({ clock, plant: node.plant, off, checkMs: 60_000, boot: (socPct, why) => void boots.push({ atMs: clock.now(), socPct, why }) });
  return { s, boots };
}

test('asleep: the node draws only its sleep current, stays off before the alarm and boots once it fires', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-power-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const clock = new VirtualClock(NIGHT);
  const dir = createRtcTree(root, { sinceEpochS: NIGHT / 1000 });
  const wakeS = (NIGHT + 3 * HOUR) / 1000;
  writeFileSync(join(dir, 'wakealarm'), String(wakeS));
  const node = halted(clock, 50);
  t.after(() => node.dispose());
  const { boots } = supervise(clock, node, { cause: 'sleep', rtcDir: dir });
  assert.equal(node.plant.powered, false);
  const before = node.plant.cell.energyJ;
  await clock.advance(3 * HOUR - 120_000);
  assert.equal(boots.length, 0, 'not on before the alarm');
  const sleepW = node.plant.options.load.sleepW;
  assert.equal(sleepW, 0.05);
  const s = node.plant.ledger.elapsedMs / 1000;
  assert.ok(Math.abs(node.plant.ledger.consumedJ - sleepW * s) < 1e-6, `drew ${node.plant.ledger.consumedJ} J in ${s} s`);
  assert.ok(before - node.plant.cell.energyJ <= (sleepW * s) / 0.95 + 1e-6, 'the battery fell by no more than the sleep current took');
  await clock.advance(180_000);
  assert.equal(boots.length, 1);
  assert.match(boots[0]!.why, /alarm/);
  assert.ok(boots[0]!.atMs >= wakeS * 1000 && boots[0]!.atMs <= wakeS * 1000 + 60_000, 'on within a check of the alarm');
  assert.equal(node.plant.powered, true);
  await clock.advance(HOUR);
  assert.equal(boots.length, 1, 'boots once');
});

test('flat: the node stays off until the sun brings its battery back to the recovery level, above the shutdown level', async (t) => {
  const clock = new VirtualClock(NIGHT);
  const node = halted(clock, 3);
  t.after(() => node.dispose());
  const { boots } = supervise(clock, node, { cause: 'flat', shutdownPct: 3, recoveryPct: 25 });
  await clock.advance(6 * HOUR); // 04:00 UTC: before the sun is up at 3.7° W
  assert.equal(boots.length, 0, 'not on in the dark');
  assert.ok(node.plant.cell.socPct < 25);
  await clock.advance(12 * HOUR);
  assert.equal(boots.length, 1, `on once recharged (battery ${node.plant.cell.socPct.toFixed(1)} %)`);
  assert.match(boots[0]!.why, /recovery level 25 %/);
  assert.ok(boots[0]!.socPct >= 25 && boots[0]!.socPct < 27, `booted at ${boots[0]!.socPct} %`);
  const other = halted(clock, 3);
  t.after(() => other.dispose());
  assert.throws(() => supervise(clock, other, { cause: 'flat', shutdownPct: 10, recoveryPct: 10 }), /must be above the shutdown level/);
});
