// Register model of the Witty Pi 4 as its firmware (uugear/Witty-Pi-4,
// Firmware/WittyPi4/WittyPi4.ino, revision 5) presents it on I2C: the power-on values of
// initializeRegisters, read-only registers 0–15, one byte written per transfer to 16–49,
// the voltage registers refreshed when their integer part is read, and the PCF85063 time
// registers in BCD. Its once-a-second watchdog work is played on every transfer and on
// poll(): the startup and shutdown alarms, low-voltage shutdown and recovery, each with the
// firmware's conditions. The board switches the Pi's 5 V; the virtual node reads powerOn.
import type { Clock } from '../../ground/clock.js';
import { RTC_OS, THRESHOLD_OFF, WITTY_REG, fromBcd, msOfRtcFields, rtcFieldsOf, toBcd } from '../wake/wittyPi4.js';
import type { VirtualI2cDevice } from './bus.js';

export interface WittyAnalog {
  inputVoltageV: number;
  outputVoltageV: number;
  outputCurrentA: number;
}

export interface VirtualWittyPi4Options {
  /** The RTC's time minus the clock's (e.g. a local time zone), ms. */
  rtcOffsetMs?: number;
  /** The RTC lost its time (no backup cell): it runs from 2000-01-01 with OS set until Seconds is written. */
  rtcLost?: boolean;
  /** The Pi is powered at start (it booted before the test begins). */
  powerOn?: boolean;
  /** Firmware ID: 0x26, or 0x37 for the L3V7. */
  id?: number;
}

/** Reasons written to I2C_ACTION_REASON (firmware REASON_*). */
export const REASON = { alarm1: 1, alarm2: 2, lowVoltage: 4, voltageRestore: 5 } as const;

const REG_COUNT = 50;
const RTC_FIRST = 54;
const RTC_LAST = 71;
/** Power mode threshold (firmware updatePowerMode: Vin > 5.25 V means the DC input). */
const DC_INPUT_V = 5.25;

export class VirtualWittyPi4 implements VirtualI2cDevice {
  private readonly regs = new Uint8Array(REG_COUNT);
  private readonly rtcRegs = new Uint8Array(RTC_LAST - RTC_FIRST + 1);
  private pointer = 0;
  private rtcOffsetMs: number;
  private rtcLost: boolean;
  private lastPollMs: number;
  private on: boolean;
  /** The board has "clicked the button": the Pi's daemon should shut it down. */
  shutdownRequested = false;
  /** Power transitions with their reason (for tests and the virtual node). */
  readonly events: { atMs: number; on: boolean; reason: number }[] = [];

  constructor(private readonly analog: () => WittyAnalog, private readonly clock: Clock, options: VirtualWittyPi4Options = {}) {
    const r = this.regs;
    // initializeRegisters: every other register starts at 0.
    r[WITTY_REG.id] = options.id ?? 0x26;
    r[WITTY_REG.fwRevision] = 0x05;
    r[WITTY_REG.address] = 0x08;
    r[18] = 4; // pulse interval, s
    r[WITTY_REG.lowVoltage] = THRESHOLD_OFF;
    r[20] = 100; // LED blink, ms
    r[WITTY_REG.powerCutDelay] = 70;
    r[WITTY_REG.recoveryVoltage] = THRESHOLD_OFF;
    r[24] = 20; // ADJ_VIN, ADJ_VOUT: the board's ADC trim, which this exact ADC does not need
    r[25] = 20;
    r[38] = 0x01; // RTC temperature compensation
    r[44] = 0x4b; // below-temperature point
    r[46] = 0x50; // over-temperature point
    this.rtcLost = options.rtcLost ?? false;
    // A PCF85063 that lost power restarts from its reset time, 2000-01-01 00:00:00, with OS set.
    this.rtcOffsetMs = this.rtcLost ? Date.UTC(2000, 0, 1) - clock.now() : (options.rtcOffsetMs ?? 0);
    this.on = options.powerOn ?? true;
    this.lastPollMs = clock.now();
    this.updatePowerMode();
  }

  get powerOn(): boolean {
    return this.on;
  }

  /** A register as the Pi would read it now, without a bus transfer (for tests). */
  peek(register: number): number {
    return this.readRegister(register);
  }

  /** The Pi has halted: the board cuts its 5 V (after POWER_CUT_DELAY on the real board). */
  hostHalted(): void {
    if (this.on) this.setPower(false, this.regs[WITTY_REG.actionReason]!);
    this.shutdownRequested = false;
  }

  write(bytes: readonly number[]): void {
    if (bytes.length === 0) return;
    this.poll();
    this.pointer = bytes[0]!;
    // receiveEvent: the index, then one data byte; the rest of a longer write is dropped.
    // (The LM75B's two-byte registers, 52–53, are not modelled.)
    if (bytes.length >= 2) this.writeRegister(this.pointer, bytes[1]!);
  }

  read(length: number): number[] {
    this.poll();
    const register = this.pointer;
    // requestEvent: refresh the measured values when their integer part is read.
    if (register === WITTY_REG.voltageInI) this.measure(WITTY_REG.voltageInI, this.analog().inputVoltageV);
    if (register === WITTY_REG.voltageOutI) this.measure(WITTY_REG.voltageOutI, this.analog().outputVoltageV);
    if (register === WITTY_REG.currentOutI) this.measure(WITTY_REG.currentOutI, this.analog().outputCurrentA);
    if (register === WITTY_REG.powerMode) this.updatePowerMode();
    // The firmware queues a single byte; the slave sends 0xFF for any byte read past it.
    return Array.from({ length }, (_, i) => (i === 0 ? this.readRegister(register) : 0xff));
  }

  /** The firmware's watchdog work (once a second on the board), for the time since the last call. */
  poll(): void {
    const now = this.clock.now();
    const from = this.lastPollMs;
    this.lastPollMs = now;
    const vin = this.analog().inputVoltageV;
    this.updatePowerMode(vin);
    this.lowVoltage(vin);
    this.alarms(from, now, vin);
    this.recovery(vin);
  }

  private readRegister(register: number): number {
    if (register < REG_COUNT) return this.regs[register]!;
    if (register >= RTC_FIRST && register <= RTC_LAST) return this.readRtc(register);
    if (register === 50) return 0x19; // LM75B temperature MSB: 25 °C
    return 0xff;
  }

  private writeRegister(register: number, value: number): void {
    if (register >= WITTY_REG.address && register < REG_COUNT) {
      // Changing an alarm re-arms it (receiveEvent clears its triggered flag).
      if (register >= 27 && register <= 31) this.regs[WITTY_REG.alarm1Triggered] = 0;
      if (register >= 32 && register <= 36) this.regs[WITTY_REG.alarm2Triggered] = 0;
      this.regs[register] = value;
    } else if (register >= RTC_FIRST && register <= RTC_LAST) {
      this.writeRtc(register, value);
    }
    // 0–15 are read-only: the firmware does not act on writes to them.
  }

  /** getIntegerPart / getDecimalPart: both truncate. */
  private measure(integerRegister: number, value: number): void {
    const v = Math.max(0, value);
    this.regs[integerRegister] = Math.min(255, Math.trunc(v));
    this.regs[integerRegister + 1] = Math.trunc(Math.round((v - Math.trunc(v)) * 1e6) / 1e4);
  }

  private updatePowerMode(vin = this.analog().inputVoltageV): void {
    this.regs[WITTY_REG.powerMode] = vin > DC_INPUT_V ? 1 : 0;
  }

  private rtcNowMs(): number {
    return this.clock.now() + this.rtcOffsetMs;
  }

  private readRtc(register: number): number {
    const f = rtcFieldsOf(this.rtcNowMs());
    switch (register) {
      case WITTY_REG.rtcSeconds: return (this.rtcLost ? RTC_OS : 0) | toBcd(f.second);
      case WITTY_REG.rtcMinutes: return toBcd(f.minute);
      case WITTY_REG.rtcHours: return toBcd(f.hour);
      case WITTY_REG.rtcDays: return toBcd(f.day);
      case WITTY_REG.rtcWeekdays: return f.weekday;
      case WITTY_REG.rtcMonths: return toBcd(f.month);
      case WITTY_REG.rtcYears: return toBcd(f.year);
      default: return this.rtcRegs[register - RTC_FIRST]!;
    }
  }

  /** Writing a time field sets that field of the running RTC; writing Seconds clears OS. */
  private writeRtc(register: number, value: number): void {
    if (register < WITTY_REG.rtcSeconds || register > WITTY_REG.rtcYears) {
      this.rtcRegs[register - RTC_FIRST] = value;
      return;
    }
    const f = rtcFieldsOf(this.rtcNowMs());
    const field = (['second', 'minute', 'hour', 'day', 'weekday', 'month', 'year'] as const)[register - WITTY_REG.rtcSeconds]!;
    f[field] = field === 'weekday' ? value & 0x07 : fromBcd(value & 0x7f);
    if (register === WITTY_REG.rtcSeconds) this.rtcLost = false;
    this.rtcOffsetMs = msOfRtcFields(f) - this.clock.now();
  }

  /** processLowVoltageIfNeeded, for a Pi that is on. */
  private lowVoltage(vin: number): void {
    const r = this.regs;
    const low = r[WITTY_REG.lowVoltage]!;
    if (!this.on || this.shutdownRequested || low === THRESHOLD_OFF) return;
    if (!(r[WITTY_REG.powerMode] === 1 || r[WITTY_REG.ignorePowerMode] === 1)) return;
    if (!(r[WITTY_REG.lvShutdown] === 0 || r[WITTY_REG.ignoreLvShutdown] === 1)) return;
    if (vin < low / 10) {
      r[WITTY_REG.lvShutdown] = 1;
      this.requestShutdown(REASON.lowVoltage);
    }
  }

  /** The sleep loop's check: after a low-voltage shutdown, power up once Vin reaches the recovery voltage. */
  private recovery(vin: number): void {
    const r = this.regs;
    const rec = r[WITTY_REG.recoveryVoltage]!;
    if (this.on || rec === THRESHOLD_OFF) return;
    if (!(r[WITTY_REG.powerMode] === 1 || r[WITTY_REG.ignorePowerMode] === 1)) return;
    if (!(r[WITTY_REG.lvShutdown] === 1 || r[WITTY_REG.lowVoltage] === THRESHOLD_OFF || r[WITTY_REG.ignoreLvShutdown] === 1)) return;
    if (vin >= rec / 10) this.setPower(true, REASON.voltageRestore);
  }

  /** canTriggerAlarm: an alarm may not boot a Pi whose supply is below the thresholds. */
  private canTrigger(vin: number): boolean {
    const r = this.regs;
    if (this.on || r[WITTY_REG.powerMode] === 0) return true;
    const low = r[WITTY_REG.lowVoltage]!;
    const rec = r[WITTY_REG.recoveryVoltage]!;
    if (r[WITTY_REG.lvShutdown] === 1) return vin > low / 10 && (rec === THRESHOLD_OFF || vin > rec / 10);
    if (vin > low / 10 || low === THRESHOLD_OFF) return true;
    r[WITTY_REG.lvShutdown] = 1;
    return false;
  }

  /** processAlarmIfNeeded, for every second in (fromMs, toMs]. */
  private alarms(fromMs: number, toMs: number, vin: number): void {
    const r = this.regs;
    const due = (base: number, triggered: number) => {
      if (r[triggered] === 1) return false;
      const [s, m, h, d] = [r[base]!, r[base + 1]!, r[base + 2]!, r[base + 3]!];
      if (!s && !m && !h && !d) return false; // an all-zero alarm is no alarm
      const at = this.nextMatch(fromMs, fromBcd(d), fromBcd(h), fromBcd(m), fromBcd(s));
      return at !== null && at <= toMs;
    };
    if (due(WITTY_REG.secondAlarm1, WITTY_REG.alarm1Triggered) && this.canTrigger(vin)) {
      r[WITTY_REG.alarm1Triggered] = 1;
      r[WITTY_REG.flagAlarm1] = 1;
      if (!this.on) this.setPower(true, REASON.alarm1);
    } else if (due(WITTY_REG.secondAlarm2, WITTY_REG.alarm2Triggered) && this.canTrigger(vin)) {
      r[WITTY_REG.alarm2Triggered] = 1;
      r[WITTY_REG.flagAlarm2] = 1;
      if (this.on) this.requestShutdown(REASON.alarm2);
    }
  }

  /** The first clock time after `fromMs` at which the RTC shows this day of month and time. */
  private nextMatch(fromMs: number, day: number, hour: number, minute: number, second: number): number | null {
    const f = rtcFieldsOf(fromMs + this.rtcOffsetMs);
    for (let months = 0; months <= 2; months++) {
      const at = Date.UTC(2000 + f.year, f.month - 1 + months, day, hour, minute, second);
      // A day this month does not have (31 in April) never matches there.
      if (new Date(at).getUTCDate() !== day) continue;
      const clockMs = at - this.rtcOffsetMs;
      if (clockMs > fromMs) return clockMs;
    }
    return null;
  }

  private requestShutdown(reason: number): void {
    this.regs[WITTY_REG.actionReason] = reason;
    this.shutdownRequested = true;
  }

  private setPower(on: boolean, reason: number): void {
    this.on = on;
    this.regs[WITTY_REG.actionReason] = reason;
    if (on) this.shutdownRequested = false;
    this.events.push({ atMs: this.clock.now(), on, reason });
  }
}
