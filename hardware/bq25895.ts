// BQ25895 single-cell switching charger with power path (TI SLUSC88C). Register names,
// fields, offsets and steps are those of the datasheet's register map (REG00..REG14).
import { monotonicMs, type Clock } from '../ground/clock.js';
import { transact, type I2cBus, type I2cDevice } from './i2c.js';

export const BQ25895_ADDRESS = 0x6a;

export const BQ_REG = {
  inputSource: 0x00, // EN_HIZ, EN_ILIM, IINLIM
  adcControl: 0x02, // CONV_START, CONV_RATE, …
  chargeControl: 0x03, // WD_RST, OTG_CONFIG, CHG_CONFIG, SYS_MIN
  chargeCurrent: 0x04, // EN_PUMPX, ICHG
  timerControl: 0x07, // EN_TERM, STAT_DIS, WATCHDOG, EN_TIMER, CHG_TIMER, JEITA_ISET
  status: 0x0b, // VBUS_STAT, CHRG_STAT, PG_STAT, VSYS_STAT
  fault: 0x0c, // WATCHDOG_FAULT, BOOST_FAULT, CHRG_FAULT, BAT_FAULT, NTC_FAULT
  vindpm: 0x0d, // FORCE_VINDPM, VINDPM
  batteryVoltage: 0x0e, // THERM_STAT, BATV
  systemVoltage: 0x0f, // SYSV
  tsVoltage: 0x10, // TSPCT
  busVoltage: 0x11, // VBUS_GD, VBUSV
  chargeCurrentAdc: 0x12, // ICHGR
  dpmStatus: 0x13,
  deviceInfo: 0x14, // REG_RST, ICO_OPTIMIZED, PN, TS_PROFILE, DEV_REV
} as const;

/** REG14 PN[5:3] of a BQ25895. */
export const BQ25895_PART_NUMBER = 0b111;

export type VbusStat =
  | 'no-input' | 'usb-sdp' | 'usb-cdp' | 'usb-dcp' | 'maxcharge-dcp' | 'unknown-adapter' | 'non-standard-adapter' | 'otg';
const VBUS_STAT: readonly VbusStat[] = [
  'no-input', 'usb-sdp', 'usb-cdp', 'usb-dcp', 'maxcharge-dcp', 'unknown-adapter', 'non-standard-adapter', 'otg',
];
export type ChrgStat = 'not-charging' | 'pre-charge' | 'fast-charging' | 'done';
const CHRG_STAT: readonly ChrgStat[] = ['not-charging', 'pre-charge', 'fast-charging', 'done'];

export interface Bq25895Status {
  vbusStat: VbusStat;
  chrgStat: ChrgStat;
  /** PG_STAT: the input source is good. */
  powerGood: boolean;
  /** VSYS_STAT: the system is held at SYS_MIN because the battery is below it. */
  vsysRegulation: boolean;
}

/** REG0B: VBUS_STAT[7:5], CHRG_STAT[4:3], PG_STAT[2], VSYS_STAT[0]. */
export function decodeStatus(reg0b: number): Bq25895Status {
  return {
    vbusStat: VBUS_STAT[(reg0b >> 5) & 0x07]!,
    chrgStat: CHRG_STAT[(reg0b >> 3) & 0x03]!,
    powerGood: (reg0b & 0x04) !== 0,
    vsysRegulation: (reg0b & 0x01) !== 0,
  };
}

export type ChrgFault = 'normal' | 'input-fault' | 'thermal-shutdown' | 'safety-timer-expired';
const CHRG_FAULT: readonly ChrgFault[] = ['normal', 'input-fault', 'thermal-shutdown', 'safety-timer-expired'];
export type NtcFault = 'normal' | 'warm' | 'cool' | 'cold' | 'hot' | 'unknown';

export interface Bq25895Faults {
  watchdog: boolean;
  boost: boolean;
  charge: ChrgFault;
  batteryOvervoltage: boolean;
  ntc: NtcFault;
}

/** REG0C: WATCHDOG_FAULT[7], BOOST_FAULT[6], CHRG_FAULT[5:4], BAT_FAULT[3], NTC_FAULT[2:0] (buck mode codes). */
export function decodeFaults(reg0c: number): Bq25895Faults {
  const ntc = reg0c & 0x07;
  return {
    watchdog: (reg0c & 0x80) !== 0,
    boost: (reg0c & 0x40) !== 0,
    charge: CHRG_FAULT[(reg0c >> 4) & 0x03]!,
    batteryOvervoltage: (reg0c & 0x08) !== 0,
    ntc: ({ 0: 'normal', 2: 'warm', 3: 'cool', 5: 'cold', 6: 'hot' } as Record<number, NtcFault>)[ntc] ?? 'unknown',
  };
}

export function anyFault(f: Bq25895Faults): boolean {
  return f.watchdog || f.boost || f.charge !== 'normal' || f.batteryOvervoltage || f.ntc !== 'normal';
}

export interface Bq25895Adc {
  batteryVoltageV: number;
  systemVoltageV: number;
  busVoltageV: number;
  /** VBUS_GD: an input is attached. */
  busAttached: boolean;
  chargeCurrentA: number;
}

/** Decodes REG0E..REG12 read as one block (REG10, TSPCT, is skipped). */
export function decodeAdcBlock(bytes: ArrayLike<number>): Bq25895Adc {
  const [reg0e, reg0f, , reg11, reg12] = Array.from(bytes);
  return {
    batteryVoltageV: 2.304 + ((reg0e! & 0x7f) * 0.02), // REG0E BATV: offset 2.304 V, 20 mV
    systemVoltageV: 2.304 + ((reg0f! & 0x7f) * 0.02), // REG0F SYSV: offset 2.304 V, 20 mV
    busVoltageV: 2.6 + ((reg11! & 0x7f) * 0.1), // REG11 VBUSV: offset 2.6 V, 100 mV
    busAttached: (reg11! & 0x80) !== 0, // REG11 VBUS_GD
    chargeCurrentA: (reg12! & 0x7f) * 0.05, // REG12 ICHGR: offset 0, 50 mA
  };
}

/** REG00 IINLIM: offset 100 mA, 50 mA steps, 100 mA–3.25 A. */
export function encodeIinlim(amps: number): number {
  return clampCode(Math.round((amps - 0.1) / 0.05), 0, 0x3f, `input current limit ${amps} A`, '0.1–3.25 A');
}
export function decodeIinlim(reg00: number): number {
  return 0.1 + (reg00 & 0x3f) * 0.05;
}

/** REG0D VINDPM: offset 2.6 V, 100 mV steps, 3.9 V (0001101)–15.3 V. */
export function encodeVindpm(volts: number): number {
  return clampCode(Math.round((volts - 2.6) / 0.1), 0x0d, 0x7f, `input voltage limit ${volts} V`, '3.9–15.3 V');
}
export function decodeVindpm(reg0d: number): number {
  return 2.6 + Math.max(reg0d & 0x7f, 0x0d) * 0.1; // codes below 0001101 are clamped to 3.9 V
}

function clampCode(code: number, min: number, max: number, what: string, range: string): number {
  if (code < min || code > max) throw new Error(`${what} is outside the BQ25895's range ${range}`);
  return code;
}

export interface SolarSettings {
  /** Written to IINLIM. */
  inputCurrentLimitA: number;
  /** Fixed input voltage (FORCE_VINDPM = 1): hold the panel near its maximum power point. */
  inputVoltageLimitV: number;
}

export class Bq25895Error extends Error {
  constructor(readonly kind: 'absent' | 'bus' | 'identity' | 'timeout', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Bq25895Error';
  }
}

export interface Bq25895Options {
  address?: number;
  retries?: number;
  /** Longest wait for a one-shot ADC conversion (SLUSC88C Timing Requirements: tCONV up to 1 s). */
  adcTimeoutMs?: number;
}

export class Bq25895 {
  readonly address: number;
  private readonly device: I2cDevice;
  private readonly adcTimeoutMs: number;
  private continuousAdc = false;

  constructor(private readonly bus: I2cBus, private readonly clock: Clock, options: Bq25895Options = {}) {
    this.address = options.address ?? BQ25895_ADDRESS;
    this.device = {
      where: `BQ25895 charger at 0x${this.address.toString(16)}`,
      absentHint: 'check its wiring and that the board has an I2C charger; `i2cdetect -y 1` should show 6a',
      retries: options.retries ?? 2,
      fail: (kind, message, cause) => new Bq25895Error(kind, message, { cause }),
    };
    this.adcTimeoutMs = options.adcTimeoutMs ?? 1000;
  }

  /** Reads REG14 and fails unless PN says BQ25895. */
  async identify(): Promise<{ partNumber: number; deviceRevision: number }> {
    const reg14 = await this.readRegister(BQ_REG.deviceInfo);
    const partNumber = (reg14 >> 3) & 0x07;
    if (partNumber !== BQ25895_PART_NUMBER) {
      throw new Bq25895Error('identity', `device at 0x${this.address.toString(16)} reports part number ${partNumber.toString(2).padStart(3, '0')}b in REG14, not a BQ25895 (111b): check the charger kind in the hardware config`);
    }
    return { partNumber, deviceRevision: reg14 & 0x03 };
  }

  async readStatus(): Promise<Bq25895Status> {
    return decodeStatus(await this.readRegister(BQ_REG.status));
  }

  /**
   * REG0C latches faults until read (SLUSC88C, "Multi-Read and Multi-Write"): the first read returns what
   * happened since the last read, the second what is true now. Both are reported.
   */
  async readFaults(): Promise<{ latched: Bq25895Faults; present: Bq25895Faults }> {
    const latched = decodeFaults(await this.readRegister(BQ_REG.fault));
    const present = decodeFaults(await this.readRegister(BQ_REG.fault));
    return { latched, present };
  }

  /** CONV_RATE = 1: the ADC converts every second on its own (REG02[6]). */
  async startContinuousAdc(): Promise<void> {
    const reg02 = await this.readRegister(BQ_REG.adcControl);
    await this.writeRegister(BQ_REG.adcControl, reg02 | 0x40);
    this.continuousAdc = true;
  }

  async stopContinuousAdc(): Promise<void> {
    const reg02 = await this.readRegister(BQ_REG.adcControl);
    await this.writeRegister(BQ_REG.adcControl, reg02 & ~0x40);
    this.continuousAdc = false;
  }

  /** Battery, system and input voltages and charge current; starts a one-shot conversion unless continuous. */
  async readAdc(): Promise<Bq25895Adc> {
    if (!this.continuousAdc) await this.convertOnce();
    const buffer = Buffer.alloc(5);
    await transact(this.device, () => this.bus.readI2cBlock(this.address, BQ_REG.batteryVoltage, 5, buffer));
    return decodeAdcBlock(buffer);
  }

  async readSolarSettings(): Promise<{ settings: SolarSettings; forceVindpm: boolean; hiz: boolean; watchdogEnabled: boolean }> {
    const reg00 = await this.readRegister(BQ_REG.inputSource);
    const reg0d = await this.readRegister(BQ_REG.vindpm);
    const reg07 = await this.readRegister(BQ_REG.timerControl);
    return {
      settings: { inputCurrentLimitA: decodeIinlim(reg00), inputVoltageLimitV: decodeVindpm(reg0d) },
      forceVindpm: (reg0d & 0x80) !== 0,
      hiz: (reg00 & 0x80) !== 0,
      watchdogEnabled: (reg07 & 0x30) !== 0,
    };
  }

  /**
   * Input current limit and a fixed absolute VINDPM (REG0D FORCE_VINDPM = 1), so the buck
   * converter pulls the panel down no further than `inputVoltageLimitV`, near its maximum
   * power point. Leaves EN_HIZ and EN_ILIM as they are.
   *
   * Also turns the I2C watchdog off (REG07 WATCHDOG[5:4] = 00; the default 01 expires
   * after 40 s without a WD_RST). A node reads far less often than that, and an expiry
   * would only return the charge parameters to the defaults this driver leaves in place,
   * while latching WATCHDOG_FAULT into every fault reading.
   */
  async applySolarSettings(s: SolarSettings): Promise<void> {
    const iinlim = encodeIinlim(s.inputCurrentLimitA);
    const vindpm = encodeVindpm(s.inputVoltageLimitV);
    const reg00 = await this.readRegister(BQ_REG.inputSource);
    await this.writeRegister(BQ_REG.inputSource, (reg00 & 0xc0) | iinlim);
    await this.writeRegister(BQ_REG.vindpm, 0x80 | vindpm);
    const reg07 = await this.readRegister(BQ_REG.timerControl);
    await this.writeRegister(BQ_REG.timerControl, reg07 & ~0x30);
  }

  /**
   * The charger puts REG0D back to relative VINDPM when an input is plugged in, and input
   * source detection rewrites IINLIM (REG00 and REG0D notes) — at every sunrise for a
   * panel. Re-applies the settings if either was changed; returns whether it had to.
   */
  async ensureSolarSettings(s: SolarSettings): Promise<boolean> {
    const now = await this.readSolarSettings();
    const same = now.forceVindpm && !now.watchdogEnabled
      && encodeIinlim(now.settings.inputCurrentLimitA) === encodeIinlim(s.inputCurrentLimitA)
      && encodeVindpm(now.settings.inputVoltageLimitV) === encodeVindpm(s.inputVoltageLimitV);
    if (!same) await this.applySolarSettings(s);
    return !same;
  }

  private async convertOnce(): Promise<void> {
    const reg02 = await this.readRegister(BQ_REG.adcControl);
    await this.writeRegister(BQ_REG.adcControl, (reg02 & ~0x40) | 0x80); // CONV_START, one shot
    const deadline = monotonicMs(this.clock) + this.adcTimeoutMs;
    // CONV_START stays set during conversion and the device clears it when done (REG02[7]).
    for (;;) {
      await this.clock.sleep(10);
      if (((await this.readRegister(BQ_REG.adcControl)) & 0x80) === 0) return;
      if (monotonicMs(this.clock) >= deadline) {
        throw new Bq25895Error('timeout', `${this.device.where}: ADC conversion did not finish within ${this.adcTimeoutMs} ms (CONV_START still set); the ADC does not run in battery-only mode with VBAT below SYS_MIN`);
      }
    }
  }

  private readRegister(register: number): Promise<number> {
    return transact(this.device, () => this.bus.readByte(this.address, register));
  }

  private writeRegister(register: number, value: number): Promise<void> {
    return transact(this.device, () => this.bus.writeByte(this.address, register, value & 0xff));
  }
}
