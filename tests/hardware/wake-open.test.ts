// The wake path built from a node's `wake` config: the Witty Pi 4's thresholds written at
// start on the node's own bus, a missing board reported rather than fatal, and the virtual
// RTC keeping the node's time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../../hardware/clock.js';
import { VirtualI2cBus } from '../../hardware/virtual/bus.js';
import { armedAlarm } from '../../hardware/virtual/rtc.js';
import { VirtualWittyPi4 } from '../../hardware/virtual/wittyPi4.js';
import { wakeConfigSchema, type WakeConfigInput } from '../../hardware/wake/config.js';
import { openWakePath } from '../../hardware/wake/open.js';
import { WITTYPI4_ADDRESS, WittyPi4 } from '../../hardware/wake/wittyPi4.js';

const NOW_MS = Date.UTC(2026, 5, 21, 21, 30, 0);

function wittyBus() {
  const clock = new VirtualClock(NOW_MS);
  const bus = new VirtualI2cBus();
  bus.attach(WITTYPI4_ADDRESS, new VirtualWittyPi4(() => ({ inputVoltageV: 12, outputVoltageV: 5.1, outputCurrentA: 0.6 }), clock));
  return { clock, bus, open: (w: WakeConfigInput) => openWakePath(wakeConfigSchema.parse(w), { clock, bus, busNumber: 1 }) };
}

test('a Witty Pi 4 on the node\'s bus gets its shutdown and recovery voltages at start', async () => {
  const { bus, clock, open } = wittyBus();
  const wake = await open({ path: 'witty-pi-4', shutdownV: 3.3, recoveryV: 3.7 });
  assert.equal(wake.problem, undefined);
  assert.equal(wake.kind, 'witty-pi-4');
  assert.deepEqual(await new WittyPi4(bus, clock).readVoltageThresholds(), { shutdownV: 3.3, recoveryV: 3.7 });
  assert.deepEqual(await wake.path!.check(), { ok: true });
  await wake.close();
  // The bus is the node's: closing the wake path leaves it open.
  assert.equal(await bus.readByte(WITTYPI4_ADDRESS, 0), 0x26);
});

test('without thresholds in the config the board keeps its own; one threshold alone turns the other off', async () => {
  const { bus, clock, open } = wittyBus();
  const board = new WittyPi4(bus, clock);
  await board.setVoltageThresholds({ shutdownV: 3.2, recoveryV: 3.6 });
  await open({ path: 'witty-pi-4' });
  assert.deepEqual(await board.readVoltageThresholds(), { shutdownV: 3.2, recoveryV: 3.6 });
  await open({ path: 'witty-pi-4', shutdownV: 3.4 });
  assert.deepEqual(await board.readVoltageThresholds(), { shutdownV: 3.4, recoveryV: null });
});

test('a Witty Pi 4 that does not answer is a problem to report, not a node that cannot start', async () => {
  const { open } = wittyBus();
  const wake = await open({ path: 'witty-pi-4', address: 0x09, shutdownV: 3.3, recoveryV: 3.7 });
  assert.match(wake.problem ?? '', /cannot write the shutdown 3.3 V \/ recovery 3.7 V thresholds: .*does not answer/);
  const c = await wake.path!.check();
  assert.equal(c.ok, false);
  assert.match(c.reason ?? '', /does not answer/);
});

test('the virtual RTC follows the node\'s clock: the alarm lands at the time asked for after time has passed', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-wake-open-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { clock, open } = wittyBus();
  const wake = await open({ path: 'virtual', sysfsRoot: root });
  assert.deepEqual(await wake.path!.check(), { ok: true });
  await clock.advance(3 * 3_600_000);
  const wakeAtMs = NOW_MS + 10 * 3_600_000;
  await wake.path!.setWakeAt(wakeAtMs);
  assert.equal(armedAlarm(join(root, 'rtc0')), wakeAtMs / 1000);
  assert.equal(Number(readFileSync(join(root, 'rtc0', 'since_epoch'), 'utf8')), (NOW_MS + 3 * 3_600_000) / 1000);
  assert.match(wake.path!.describe(), /^virtual RTC wake alarm/);
});

test('no wake path: nothing to check or arm', async () => {
  const { open } = wittyBus();
  const wake = await open({ path: 'none' });
  assert.equal(wake.path, undefined);
});

test('the virtual RTC\'s own temporary folder is removed on close; a configured one is kept', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-wake-open-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { open } = wittyBus();
  const own = await open({ path: 'virtual' });
  const dir = (own.path as unknown as { dir: string }).dir;
  assert.ok(existsSync(dir));
  await own.close();
  assert.equal(existsSync(dir), false);
  const kept = await open({ path: 'virtual', sysfsRoot: root });
  await kept.close();
  assert.ok(existsSync(join(root, 'rtc0', 'wakealarm')));
});
