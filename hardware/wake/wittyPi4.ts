// Witty Pi 4 (UUGear) power board with RTC, over I2C. Its ATtiny841 answers as an I2C
// slave with the byte registers of its public firmware, uugear/Witty-Pi-4,
// Firmware/WittyPi4/WittyPi4.ino (revision 5): 0–15 read-only, 16–49 read/write (kept in
// EEPROM), 50–53 mapped to the LM75B and 54–71 to the PCF85063 RTC on its internal bus.
// The user manual (revision 1.02, §15.2 "What I2C registers are provided by Witty Pi 4?")
// lists the same map. Every register is one byte, read and written as an SMBus byte.
import type { Clock } from '../../ground/clock.js';
import { type I2cBus, type I2cDevice, transact } from '../i2c.js';
import { type WakeCheck, type WakePath, checkBy, wakeDelayMs } from './wakePath.js';

/** I2C_CONF_ADDRESS default (firmware initializeRegisters). */
export const WITTYPI4_ADDRESS = 0x08;

/** Register indexes, named after the firmware's I2C_* constants. */
export const WITTY_REG = {
  id: 0, // I2C_ID
  voltageInI: 1, // integer volts of the input
  voltageInD: 2, // hundredths, refreshed when voltageInI is read
  voltageOutI: 3,
  voltageOutD: 4,
  currentOutI: 5,
  currentOutD: 6,
  powerMode: 7, // 1: powered through the DC input (Vin > 5.25 V), 0: 5 V through USB-C
  lvShutdown: 8, // 1: the last shutdown was for low voltage
  alarm1Triggered: 9,
  alarm2Triggered: 10,
  actionReason: 11,
  fwRevision: 12,
  address: 16, // I2C_CONF_ADDRESS
  defaultOn: 17,
  lowVoltage: 19, // × 10 V, 255 = off
  powerCutDelay: 21, // × 0.1 s
  recoveryVoltage: 22, // × 10 V, 255 = off
  secondAlarm1: 27, // startup alarm, BCD: second, minute, hour, day of month, weekday
  minuteAlarm1: 28,
  hourAlarm1: 29,
  dayAlarm1: 30,
  secondAlarm2: 32, // shutdown alarm, the same layout
  minuteAlarm2: 33,
  hourAlarm2: 34,
  dayAlarm2: 35,
  flagAlarm1: 39,
  flagAlarm2: 40,
  ignorePowerMode: 41,
  ignoreLvShutdown: 42,
  rtcSeconds: 58, // PCF85063 Seconds (bit 7 OS: oscillator stopped), then Minutes … Years
  rtcMinutes: 59,
  rtcHours: 60,
  rtcDays: 61,
  rtcWeekdays: 62,
  rtcMonths: 63,
  rtcYears: 64,
} as const;

/** Firmware IDs in register 0: the Witty Pi 4 and its 3.7 V battery variant, the L3V7. */
export const WITTYPI4_IDS: Record<number, string> = { 0x26: 'Witty Pi 4', 0x37: 'Witty Pi 4 L3V7' };
/** A threshold register holding 255 is disabled (firmware: I2C_CONF_LOW_VOLTAGE, I2C_CONF_RECOVERY_VOLTAGE). */
export const THRESHOLD_OFF = 0xff;
/** Seconds register bit 7 (PCF85063 datasheet, Seconds register: OS, clock integrity not guaranteed). */
export const RTC_OS = 0x80;

export const ACTION_REASONS: Record<number, string> = {
  1: 'startup alarm', 2: 'shutdown alarm', 3: 'button', 4: 'low voltage', 5: 'voltage restored',
  6: 'over temperature', 7: 'below temperature', 8: 'startup alarm (delayed)', 9: 'USB 5 V connected',
};

export function toBcd(n: number): number {
  return (Math.floor(n / 10) << 4) | (n % 10);
}

export function fromBcd(b: number): number {
  return (b >> 4) * 10 + (b & 0x0f);
}

/** The wall-clock fields the RTC shows, read as UTC. */
export interface RtcFields {
  second: number;
  minute: number;
  hour: number;
  day: number;
  weekday: number;
  month: number;
  /** Two digits: 2000 + year. */
  year: number;
}

export function rtcFieldsOf(ms: number): RtcFields {
  const d = new Date(ms);
  return {
    second: d.getUTCSeconds(), minute: d.getUTCMinutes(), hour: d.getUTCHours(), day: d.getUTCDate(),
    weekday: d.getUTCDay(), month: d.getUTCMonth() + 1, year: d.getUTCFullYear() - 2000,
  };
}

export function msOfRtcFields(f: RtcFields): number {
  return Date.UTC(2000 + f.year, f.month - 1, f.day, f.hour, f.minute, f.second);
}

/**
 * The firmware compares day of month, hour, minute and second only (processAlarmIfNeeded,
 * getTimestamp), so an alarm 28 days or more ahead could match a day earlier.
 */
const MAX_ALARM_DELAY_MS = 27 * 86_400_000;
/** The firmware looks at the alarms once a second and fires within a 2 s window. */
const MIN_ALARM_DELAY_MS = 3000;

export interface VoltageThresholds {
  /** Below this input voltage the board shuts the Pi down; null: disabled. */
  shutdownV: number | null;
  /** After a low-voltage shutdown the board powers the Pi up again at this input voltage; null: disabled. */
  recoveryV: number | null;
}

export class WittyPi4Error extends Error {
  constructor(readonly kind: 'absent' | 'bus' | 'identity' | 'rtc' | 'verify', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WittyPi4Error';
  }
}

export interface WittyPi4Options {
  address?: number;
  retries?: number;
}

export class WittyPi4 implements WakePath {
  readonly address: number;
  private readonly retries: number;

  constructor(private readonly bus: I2cBus, private readonly clock: Clock, options: WittyPi4Options = {}) {
    this.address = options.address ?? WITTYPI4_ADDRESS;
    this.retries = options.retries ?? 2;
  }

  describe(): string {
    return `Witty Pi 4 startup alarm (I2C 0x${this.address.toString(16).padStart(2, '0')})`;
  }

  async identify(): Promise<{ id: number; model: string; revision: number }> {
    const id = await this.readRegister(WITTY_REG.id);
    const model = WITTYPI4_IDS[id];
    if (!model) {
      throw new WittyPi4Error('identity', `device at 0x${this.address.toString(16)} reports firmware ID 0x${id.toString(16)}, not a Witty Pi 4 (0x26) or L3V7 (0x37): check the address and that the board's firmware is UUGear's`);
    }
    return { id, model, revision: await this.readRegister(WITTY_REG.fwRevision) };
  }

  /** Input voltage: the firmware refreshes both registers when the integer part is read. */
  readInputVoltage(): Promise<number> {
    return this.readFixed(WITTY_REG.voltageInI);
  }

  readOutputVoltage(): Promise<number> {
    return this.readFixed(WITTY_REG.voltageOutI);
  }

  readOutputCurrent(): Promise<number> {
    return this.readFixed(WITTY_REG.currentOutI);
  }

  /** 'dc-input': low-voltage shutdown and recovery are active; 'usb-5v': they are not (unless ignorePowerMode). */
  async readPowerMode(): Promise<'usb-5v' | 'dc-input' | 'battery'> {
    const mode = await this.readRegister(WITTY_REG.powerMode);
    return mode === 1 ? 'dc-input' : mode === 2 ? 'battery' : 'usb-5v';
  }

  async readActionReason(): Promise<string> {
    const code = await this.readRegister(WITTY_REG.actionReason);
    return ACTION_REASONS[code] ?? `unknown (${code})`;
  }

  async readVoltageThresholds(): Promise<VoltageThresholds> {
    const decode = (b: number) => (b === THRESHOLD_OFF ? null : b / 10);
    return {
      shutdownV: decode(await this.readRegister(WITTY_REG.lowVoltage)),
      recoveryV: decode(await this.readRegister(WITTY_REG.recoveryVoltage)),
    };
  }

  /**
   * Low-voltage shutdown and the voltage that powers the Pi up again, in 0.1 V steps. The
   * recovery voltage must be above the shutdown voltage, as on every power board: a
   * battery that recovers a little at rest would otherwise boot the Pi into another
   * shutdown, night after night. The L3V7's register 22 means something else (power up
   * when USB 5 V appears), so a recovery voltage is refused there.
   */
  async setVoltageThresholds(t: VoltageThresholds): Promise<void> {
    const code = (v: number | null, what: string) => {
      if (v === null) return THRESHOLD_OFF;
      if (!(v >= 2 && v <= 25.4)) throw new RangeError(`Witty Pi 4 ${what} must be 2.0–25.4 V (0.1 V steps), got ${v}`);
      return Math.round(v * 10);
    };
    const low = code(t.shutdownV, 'shutdown voltage');
    const recovery = code(t.recoveryV, 'recovery voltage');
    if (low !== THRESHOLD_OFF && recovery !== THRESHOLD_OFF && recovery <= low) {
      throw new RangeError(`Witty Pi 4 recovery voltage ${t.recoveryV} V must be above the shutdown voltage ${t.shutdownV} V, or the node would boot into another shutdown`);
    }
    if (recovery !== THRESHOLD_OFF && (await this.identify()).id === 0x37) {
      throw new WittyPi4Error('identity', 'a Witty Pi 4 L3V7 has no recovery voltage (its register 22 powers up on USB 5 V instead): set recoveryV to null');
    }
    await this.writeVerified(WITTY_REG.lowVoltage, low);
    await this.writeVerified(WITTY_REG.recoveryVoltage, recovery);
  }

  /** The board's RTC time, read as UTC; fails if its oscillator stopped (OS) or it was never set. */
  async readRtcTime(): Promise<number> {
    const f = await this.readRtcFields();
    return msOfRtcFields(f);
  }

  check(): Promise<WakeCheck> {
    return checkBy(async () => {
      await this.identify();
      await this.readRtcFields();
    });
  }

  /** The startup alarm (alarm 1). */
  setWakeAt(epochMs: number): Promise<void> {
    return this.setAlarm(WITTY_REG.secondAlarm1, epochMs);
  }

  clear(): Promise<void> {
    return this.clearAlarm(WITTY_REG.secondAlarm1);
  }

  /** The shutdown alarm (alarm 2): the board asks the Pi to shut down at `epochMs`. */
  setShutdownAt(epochMs: number): Promise<void> {
    return this.setAlarm(WITTY_REG.secondAlarm2, epochMs);
  }

  clearShutdown(): Promise<void> {
    return this.clearAlarm(WITTY_REG.secondAlarm2);
  }

  /** The alarm as BCD fields, or null when cleared (all zero, which the firmware treats as no alarm). */
  async readAlarm(which: 'startup' | 'shutdown'): Promise<Pick<RtcFields, 'second' | 'minute' | 'hour' | 'day'> | null> {
    const base = which === 'startup' ? WITTY_REG.secondAlarm1 : WITTY_REG.secondAlarm2;
    const [second, minute, hour, day] = await this.readBytes(base, 4);
    if (!second && !minute && !hour && !day) return null;
    return { second: fromBcd(second!), minute: fromBcd(minute!), hour: fromBcd(hour!), day: fromBcd(day!) };
  }

  /**
   * The alarm is the board's RTC time plus the wanted delay, so it does not matter which
   * time zone UUGear's software left the RTC in. The old alarm is cleared first and the day
   * written last, so that no half-written alarm can match the clock in between.
   */
  private async setAlarm(base: number, epochMs: number): Promise<void> {
    const delayMs = wakeDelayMs(this.describe(), this.clock.now(), epochMs, MIN_ALARM_DELAY_MS, MAX_ALARM_DELAY_MS);
    const rtcNow = msOfRtcFields(await this.readRtcFields());
    const at = rtcFieldsOf(Math.ceil((rtcNow + delayMs) / 1000) * 1000);
    await this.clearAlarm(base);
    for (const [offset, value] of [[0, at.second], [1, at.minute], [2, at.hour], [3, at.day]] as const) {
      await this.writeVerified(base + offset, toBcd(value));
    }
  }

  private async clearAlarm(base: number): Promise<void> {
    for (const offset of [3, 2, 1, 0]) await this.writeVerified(base + offset, 0);
  }

  private async readRtcFields(): Promise<RtcFields> {
    const [seconds, minutes, hours, days, weekdays, months, years] = await this.readBytes(WITTY_REG.rtcSeconds, 7);
    if (seconds! & RTC_OS) {
      throw new WittyPi4Error('rtc', `${this.describe()}: its RTC oscillator has stopped (OS bit), the time is lost; check the board's backup cell and write the time with UUGear's wittyPi.sh (option 1)`);
    }
    if (years === 0) { // the test of UUGear's rtc_has_bad_time
      throw new WittyPi4Error('rtc', `${this.describe()}: its RTC was never set (year 2000); write the time with UUGear's wittyPi.sh (option 1)`);
    }
    return {
      second: fromBcd(seconds! & 0x7f), minute: fromBcd(minutes! & 0x7f), hour: fromBcd(hours! & 0x3f),
      day: fromBcd(days! & 0x3f), weekday: weekdays! & 0x07, month: fromBcd(months! & 0x1f), year: fromBcd(years!),
    };
  }

  private async readFixed(integerRegister: number): Promise<number> {
    const whole = await this.readRegister(integerRegister);
    return whole + (await this.readRegister(integerRegister + 1)) / 100;
  }

  /** One byte at a time: the firmware answers a read with the one register at its index. */
  private async readBytes(first: number, count: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(await this.readRegister(first + i));
    return out;
  }

  /** The EEPROM-backed registers are written and read back, as UUGear's own i2c_write does. */
  private async writeVerified(register: number, value: number): Promise<void> {
    await this.transact(() => this.bus.writeByte(this.address, register, value));
    const back = await this.readRegister(register);
    if (back !== value) {
      throw new WittyPi4Error('verify', `${this.describe()}: wrote 0x${value.toString(16)} to register ${register} but read back 0x${back.toString(16)}`);
    }
  }

  private readRegister(register: number): Promise<number> {
    return this.transact(() => this.bus.readByte(this.address, register));
  }

  private transact<T>(op: () => Promise<T>): Promise<T> {
    const device: I2cDevice = {
      where: `Witty Pi 4 at 0x${this.address.toString(16).padStart(2, '0')}`,
      absentHint: `check the board is seated on the header and powered; \`i2cdetect -y 1\` should show ${this.address.toString(16).padStart(2, '0')}`,
      retries: this.retries,
      fail: (kind, message, cause) => new WittyPi4Error(kind, message, { cause }),
    };
    return transact(device, op);
  }

}
