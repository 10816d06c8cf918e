// The Pi 5 RTC wake path against a /sys/class/rtc tree in a temporary folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../../hardware/clock.js';
import { armedAlarm, createRtcTree, fireIfDue, setRtcTime } from '../../hardware/virtual/rtc.js';
import { RtcWakealarm } from '../../hardware/wake/rtcWakealarm.js';
import type { WakePath } from '../../hardware/wake/wakePath.js';

const NOW_MS = Date.UTC(2026, 5, 21, 21, 30, 0); // a June evening

function tree(rtcOffsetS = 0) {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-rtc-'));
  const clock = new VirtualClock(NOW_MS);
  const dir = createRtcTree(root, { sinceEpochS: NOW_MS / 1000 + rtcOffsetS });
  const wake: WakePath & RtcWakealarm = new RtcWakealarm(clock, { sysfsRoot: root });
  return { root, dir, clock, wake, done: () => rmSync(root, { recursive: true, force: true }) };
}

test('setWakeAt writes 0, then the alarm in epoch seconds, and reads it back', async () => {
  const t = tree();
  try {
    assert.deepEqual(await t.wake.check(), { ok: true });
    const wakeMs = Date.UTC(2026, 5, 22, 4, 45, 0);
    await t.wake.setWakeAt(wakeMs);
    assert.equal(readFileSync(join(t.dir, 'wakealarm'), 'utf8'), `${wakeMs / 1000}\n`);
    assert.equal(await t.wake.readAlarm(), wakeMs / 1000);
    assert.equal(armedAlarm(t.dir), wakeMs / 1000);
    await t.wake.clear();
    assert.equal(await t.wake.readAlarm(), null);
    assert.match(t.wake.describe(), /rtc0\/wakealarm/);
  } finally {
    t.done();
  }
});

test('the alarm is set on the RTC\'s own time: an RTC 90 s ahead still wakes after the delay asked for', async () => {
  const t = tree(90);
  try {
    await t.wake.setWakeAt(NOW_MS + 3_600_000);
    assert.equal(await t.wake.readAlarm(), NOW_MS / 1000 + 90 + 3600);
    // A part second rounds up: never wake before the time asked for.
    await t.wake.setWakeAt(NOW_MS + 10_400);
    assert.equal(await t.wake.readAlarm(), NOW_MS / 1000 + 90 + 11);
  } finally {
    t.done();
  }
});

test('the virtual RTC fires the alarm once when its time passes, and disarms it', async () => {
  const t = tree();
  try {
    await t.wake.setWakeAt(NOW_MS + 60_000);
    assert.equal(fireIfDue(t.dir, NOW_MS / 1000 + 59), false);
    setRtcTime(t.dir, NOW_MS / 1000 + 60);
    assert.equal(fireIfDue(t.dir, NOW_MS / 1000 + 60), true);
    assert.equal(await t.wake.readAlarm(), null, 'one-shot');
    assert.equal(fireIfDue(t.dir, NOW_MS / 1000 + 61), false);
  } finally {
    t.done();
  }
});

test('wake times in the past, too soon or beyond a year are refused', async () => {
  const t = tree();
  try {
    await assert.rejects(t.wake.setWakeAt(NOW_MS - 1000), /not at least 2 s after now/);
    await assert.rejects(t.wake.setWakeAt(NOW_MS + 1000), /not at least 2 s after now/);
    await assert.rejects(t.wake.setWakeAt(NOW_MS + 400 * 86_400_000), /days ahead/);
    await assert.rejects(t.wake.setWakeAt(Number.NaN), /not at least/);
    assert.equal(await t.wake.readAlarm(), null, 'nothing was armed');
  } finally {
    t.done();
  }
});

test('check fails with a clear reason when the board has no wakealarm file', async () => {
  const t = tree();
  try {
    const missing = new RtcWakealarm(t.clock, { sysfsRoot: t.root, device: 'rtc1' });
    const result = await missing.check();
    assert.equal(result.ok, false);
    assert.match(result.reason!, /rtc1\/wakealarm does not exist: this board has no RTC that can wake it/);
    assert.match(result.reason!, /Witty Pi 4/);
    await assert.rejects(missing.setWakeAt(NOW_MS + 60_000), /cannot write "0"/);
  } finally {
    t.done();
  }
});

test('check fails when the RTC lost its time (no backup cell)', async () => {
  const t = tree();
  try {
    setRtcTime(t.dir, 12);
    const result = await t.wake.check();
    assert.equal(result.ok, false);
    assert.match(result.reason!, /lost its time.*backup cell/);
  } finally {
    t.done();
  }
});

test('a wakealarm that does not hold epoch seconds is an error, not a silent null', async () => {
  const t = tree();
  try {
    writeFileSync(join(t.dir, 'wakealarm'), 'garbage');
    await assert.rejects(t.wake.readAlarm(), /holds "garbage"/);
  } finally {
    t.done();
  }
});
