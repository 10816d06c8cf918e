// Witty Pi 4 driver against the register model of its firmware (uugear/Witty-Pi-4,
// WittyPi4.ino revision 5): BCD alarms, voltage registers, thresholds, read-only registers,
// and the firmware's alarm and low-voltage behaviour.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hardware/clock.js';
import { VirtualI2cBus } from '../../hardware/virtual/bus.js';
import { REASON, type VirtualWittyPi4Options, type WittyAnalog, VirtualWittyPi4 } from '../../hardware/virtual/wittyPi4.js';
import { THRESHOLD_OFF, WITTYPI4_ADDRESS, WITTY_REG, WittyPi4, WittyPi4Error, fromBcd, toBcd } from '../../hardware/wake/wittyPi4.js';

const NOW_MS = Date.UTC(2026, 5, 21, 21, 30, 5); // Sunday 21 June 2026, 21:30:05

function rig(options: VirtualWittyPi4Options = {}, analog: Partial<WittyAnalog> = {}) {
  const clock = new VirtualClock(NOW_MS);
  const bus = new VirtualI2cBus();
  const a: WittyAnalog = { inputVoltageV: 12.34, outputVoltageV: 5.08, outputCurrentA: 0.61, ...analog };
  const board = new VirtualWittyPi4(() => a, clock, options);
  bus.attach(WITTYPI4_ADDRESS, board);
  return { clock, bus, a, board, witty: new WittyPi4(bus, clock) };
}

test('BCD: each decimal digit in a nibble', () => {
  assert.equal(toBcd(59), 0x59);
  assert.equal(toBcd(7), 0x07);
  assert.equal(fromBcd(0x31), 31);
  for (let n = 0; n < 100; n++) assert.equal(fromBcd(toBcd(n)), n);
});

test('identification: firmware ID 0x26 and revision; other IDs are refused', async () => {
  const { witty } = rig();
  assert.deepEqual(await witty.identify(), { id: 0x26, model: 'Witty Pi 4', revision: 5 });
  const other = rig({ id: 0x22 });
  await assert.rejects(other.witty.identify(), (e: unknown) => e instanceof WittyPi4Error && e.kind === 'identity' && /0x22/.test(e.message));
});

test('voltages and current: integer and hundredths registers; the hundredths refresh only with the integer read', async () => {
  const { a, bus, witty } = rig();
  assert.equal(await witty.readInputVoltage(), 12.34);
  assert.equal(await witty.readOutputVoltage(), 5.08);
  assert.equal(await witty.readOutputCurrent(), 0.61);
  a.inputVoltageV = 11.5;
  assert.equal(await bus.readByte(WITTYPI4_ADDRESS, WITTY_REG.voltageInD), 34, 'stale until register 1 is read');
  assert.equal(await bus.readByte(WITTYPI4_ADDRESS, WITTY_REG.voltageInI), 11);
  assert.equal(await bus.readByte(WITTYPI4_ADDRESS, WITTY_REG.voltageInD), 50);
  assert.equal(await witty.readPowerMode(), 'dc-input', 'Vin above 5.25 V');
  a.inputVoltageV = 5.1;
  assert.equal(await witty.readPowerMode(), 'usb-5v');
});

test('registers 0–15 are read-only; 16–49 take one byte per write', async () => {
  const { bus, board } = rig();
  await bus.writeByte(WITTYPI4_ADDRESS, WITTY_REG.id, 0x99);
  await bus.writeByte(WITTYPI4_ADDRESS, WITTY_REG.lvShutdown, 1);
  assert.equal(board.peek(WITTY_REG.id), 0x26);
  assert.equal(board.peek(WITTY_REG.lvShutdown), 0);
  await bus.writeWord(WITTYPI4_ADDRESS, WITTY_REG.lowVoltage, 0x2a1f); // bytes 1F 2A: only 1F lands
  assert.equal(board.peek(WITTY_REG.lowVoltage), 0x1f);
  assert.equal(board.peek(WITTY_REG.lowVoltage + 1), 100, 'the next register is untouched');
  assert.equal(await bus.readWord(WITTYPI4_ADDRESS, WITTY_REG.lowVoltage), 0xff1f, 'one byte per read, then 0xFF');
});

test('power-on values: thresholds off (255), I2C address 0x08', async () => {
  const { board, witty } = rig();
  assert.equal(board.peek(WITTY_REG.address), 0x08);
  assert.equal(board.peek(WITTY_REG.lowVoltage), THRESHOLD_OFF);
  assert.deepEqual(await witty.readVoltageThresholds(), { shutdownV: null, recoveryV: null });
});

test('low-voltage shutdown and recovery voltage are written × 10 and read back', async () => {
  const { board, witty } = rig();
  await witty.setVoltageThresholds({ shutdownV: 11.2, recoveryV: 12.4 });
  assert.equal(board.peek(WITTY_REG.lowVoltage), 112);
  assert.equal(board.peek(WITTY_REG.recoveryVoltage), 124);
  assert.deepEqual(await witty.readVoltageThresholds(), { shutdownV: 11.2, recoveryV: 12.4 });
  await witty.setVoltageThresholds({ shutdownV: null, recoveryV: null });
  assert.equal(board.peek(WITTY_REG.recoveryVoltage), 255);
});

test('the recovery voltage must be above the shutdown voltage; values out of range are refused', async () => {
  const { board, witty } = rig();
  await assert.rejects(witty.setVoltageThresholds({ shutdownV: 12, recoveryV: 12 }), /must be above the shutdown voltage/);
  await assert.rejects(witty.setVoltageThresholds({ shutdownV: 30, recoveryV: null }), /2\.0–25\.4 V/);
  assert.equal(board.peek(WITTY_REG.lowVoltage), THRESHOLD_OFF, 'nothing written');
  const l3v7 = rig({ id: 0x37 });
  await assert.rejects(l3v7.witty.setVoltageThresholds({ shutdownV: 3.1, recoveryV: 3.6 }), /L3V7 has no recovery voltage/);
});

test('the startup alarm is written in BCD from the RTC\'s own time, day of month last', async () => {
  const { board, witty } = rig({ rtcOffsetMs: 2 * 3_600_000 }); // the RTC keeps UTC+2, as UUGear's software leaves it in CEST
  assert.equal(await witty.readRtcTime(), NOW_MS + 2 * 3_600_000);
  await witty.setWakeAt(Date.UTC(2026, 5, 22, 4, 45, 0)); // 7 h 14 min 55 s from now
  // RTC now 23:30:05 on the 21st → 06:45:00 on the 22nd.
  const regs = [27, 28, 29, 30].map((r) => board.peek(r));
  assert.deepEqual(regs, [0x00, 0x45, 0x06, 0x22]);
  assert.deepEqual(await witty.readAlarm('startup'), { second: 0, minute: 45, hour: 6, day: 22 });
  await witty.clear();
  assert.equal(await witty.readAlarm('startup'), null);
});

test('alarms too soon or 27+ days ahead are refused (the firmware matches day of month only)', async () => {
  const { witty } = rig();
  await assert.rejects(witty.setWakeAt(NOW_MS + 1000), /not at least 3 s/);
  await assert.rejects(witty.setWakeAt(NOW_MS + 28 * 86_400_000), /27 days ahead/);
  await witty.setWakeAt(NOW_MS + 26 * 86_400_000);
});

test('a halted Pi is powered up by the startup alarm, not before', async () => {
  const { board, clock, witty } = rig();
  await witty.setWakeAt(NOW_MS + 3_600_000);
  board.hostHalted();
  assert.equal(board.powerOn, false);
  await clock.advance(3_599_000);
  board.poll();
  assert.equal(board.powerOn, false);
  await clock.advance(10_000); // the plant may step past the alarm second: it still fires
  board.poll();
  assert.equal(board.powerOn, true);
  assert.equal(await witty.readActionReason(), 'startup alarm');
  assert.equal(board.peek(WITTY_REG.alarm1Triggered), 1);
  await clock.advance(86_400_000);
  board.hostHalted();
  board.poll();
  assert.equal(board.powerOn, false, 'a triggered alarm does not fire again');
  await witty.setWakeAt(clock.now() + 60_000);
  assert.equal(board.peek(WITTY_REG.alarm1Triggered), 0, 'writing the alarm re-arms it');
});

test('the shutdown alarm asks the Pi to shut down', async () => {
  const { board, clock, witty } = rig();
  await witty.setShutdownAt(NOW_MS + 600_000);
  await clock.advance(600_000);
  board.poll();
  assert.equal(board.shutdownRequested, true);
  assert.equal(await witty.readActionReason(), 'shutdown alarm');
  board.hostHalted();
  assert.equal(board.powerOn, false);
  await witty.clearShutdown();
  assert.equal(await witty.readAlarm('shutdown'), null);
});

test('below the shutdown voltage the board shuts the Pi down; at the recovery voltage it powers it up', async () => {
  const { a, board, clock, witty } = rig({}, { inputVoltageV: 12.0 });
  await witty.setVoltageThresholds({ shutdownV: 11.0, recoveryV: 12.5 });
  a.inputVoltageV = 10.9;
  board.poll();
  assert.equal(board.shutdownRequested, true);
  assert.equal(board.peek(WITTY_REG.lvShutdown), 1);
  board.hostHalted();
  a.inputVoltageV = 12.2; // above the shutdown voltage, below recovery: stays off
  await clock.advance(60_000);
  board.poll();
  assert.equal(board.powerOn, false);
  a.inputVoltageV = 12.6;
  board.poll();
  assert.equal(board.powerOn, true);
  assert.equal(board.events.at(-1)!.reason, REASON.voltageRestore);
});

test('a startup alarm does not boot a Pi whose supply has not recovered', async () => {
  const { a, board, clock, witty } = rig({}, { inputVoltageV: 12.0 });
  await witty.setVoltageThresholds({ shutdownV: 11.0, recoveryV: 12.5 });
  await witty.setWakeAt(NOW_MS + 60_000);
  a.inputVoltageV = 10.8;
  board.poll();
  board.hostHalted();
  a.inputVoltageV = 11.8;
  await clock.advance(61_000);
  board.poll();
  assert.equal(board.powerOn, false);
});

test('check() passes on a working board and fails with a clear reason otherwise', async () => {
  const ok = rig();
  assert.deepEqual(await ok.witty.check(), { ok: true });
  assert.match(ok.witty.describe(), /Witty Pi 4.*0x08/);
  ok.bus.setAbsent(WITTYPI4_ADDRESS, true);
  const absent = await ok.witty.check();
  assert.equal(absent.ok, false);
  assert.match(absent.reason!, /does not answer \(no ACK\).*i2cdetect -y 1.*08/);
  const lost = rig({ rtcLost: true });
  const result = await lost.witty.check();
  assert.equal(result.ok, false);
  assert.match(result.reason!, /oscillator has stopped/);
  await assert.rejects(lost.witty.setWakeAt(NOW_MS + 60_000), /oscillator has stopped/);
});

test('writing the RTC time sets it and clears the oscillator-stop flag', async () => {
  const { bus, witty } = rig({ rtcLost: true });
  const write = (r: number, v: number) => bus.writeByte(WITTYPI4_ADDRESS, r, v);
  await write(WITTY_REG.rtcYears, 0x26);
  await write(WITTY_REG.rtcMonths, 0x06);
  await write(WITTY_REG.rtcDays, 0x21);
  await write(WITTY_REG.rtcHours, 0x21);
  await write(WITTY_REG.rtcMinutes, 0x30);
  assert.equal((await witty.check()).ok, false, 'OS is set until Seconds is written');
  await write(WITTY_REG.rtcSeconds, 0x05);
  assert.deepEqual(await witty.check(), { ok: true });
  assert.equal(await witty.readRtcTime(), NOW_MS);
});
