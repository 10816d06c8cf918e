// MAX17048 1-cell ModelGauge fuel gauge (Maxim/ADI 19-6171, "MAX17048/MAX17049"), the gauge
// of common Pi UPS HATs. Register addresses, LSBs, bit fields and power-on values are the
// datasheet's Register Summary table and its register descriptions. Every register is a
// 16-bit word that the datasheet's read and write protocols send MSB first, while SMBus
// words travel low byte first: hence the swaps.
import { type I2cBus, type I2cDevice, swap16, transact } from './i2c.js';

/** Fixed 7-bit address: 0x6C/0x6D as 8-bit write/read addresses (datasheet, "Slave Address"). */
export const MAX17048_ADDRESS = 0x36;

/** The Register Summary table. */
export const MAX17048_REG = {
  vcell: 0x02, // R, 78.125 µV/cell
  soc: 0x04, // R, 1 %/256
  mode: 0x06, // W, QuickStart / EnSleep, HibStat read-only
  version: 0x08, // R, 0x001_
  hibrt: 0x0a, // R/W, ActThr[15:8] HibThr[7:0], POR 0x8030
  config: 0x0c, // R/W, RCOMP[15:8] SLEEP ALSC ALRT ATHD[4:0], POR 0x971C
  valrt: 0x14, // R/W, MIN[15:8] MAX[7:0], 20 mV per LSB, POR 0x00FF
  crate: 0x16, // R, 0.208 %/h, signed
  vresetId: 0x18, // R/W VRESET[15:9] Dis[8], ID[7:0] read-only, POR 0x96__
  status: 0x1a, // R/W, EnVR SC HD VR VL VH RI in [14:8], POR 0x01__
  cmd: 0xfe, // W, 0x5400 = power-on reset
} as const;

export const VCELL_LSB_V = 78.125e-6;
export const SOC_LSB_PCT = 1 / 256;
export const CRATE_LSB_PCT_PER_H = 0.208;
/** VALRT MIN/MAX: 20 mV per LSB. */
export const VALRT_LSB_V = 0.02;
/** VRESET[15:9]: 40 mV per LSB. */
export const VRESET_LSB_V = 0.04;

export const MODE_QUICK_START = 0x4000;
export const MODE_EN_SLEEP = 0x2000;
export const MODE_HIB_STAT = 0x1000;

export const CONFIG_SLEEP = 0x0080;
export const CONFIG_ALSC = 0x0040;
export const CONFIG_ALRT = 0x0020;
export const CONFIG_ATHD = 0x001f;

/** STATUS alert flags, high byte (STATUS register description). */
export const STATUS = {
  ri: 0x0100, // reset indicator: set at power-up, the host clears it
  vh: 0x0200, // VCELL above VALRT.MAX
  vl: 0x0400, // VCELL below VALRT.MIN
  vr: 0x0800, // voltage reset (VCELL fell below VRESET)
  hd: 0x1000, // SOC low: SOC crossed the ATHD threshold
  sc: 0x2000, // SOC changed by 1 % (with CONFIG.ALSC)
  enVr: 0x4000, // enable the VR alert
} as const;
export const STATUS_FLAGS = 0x3f00;

/** CMD value that resets the IC as at power-up (CMD register description). */
export const CMD_POR = 0x5400;

/** Power-on register values (Register Summary); VRESET/ID and STATUS low bytes are don't-care there. */
export const MAX17048_POR = {
  mode: 0x0000,
  hibrt: 0x8030,
  config: 0x971c,
  valrt: 0x00ff,
  vresetId: 0x9600,
  status: 0x0100,
} as const;

/**
 * ATHD holds 32 − threshold in 5 bits: 00000b = 32 %, 11111b = 1 % (CONFIG register, ATHD).
 */
export function encodeAthd(percent: number): number {
  if (!Number.isInteger(percent) || percent < 1 || percent > 32) {
    throw new RangeError(`MAX17048 alert threshold must be a whole 1–32 %, got ${percent}`);
  }
  return (32 - percent) & CONFIG_ATHD;
}

export function decodeAthd(config: number): number {
  return 32 - (config & CONFIG_ATHD);
}

export function toSigned16(word: number): number {
  return word & 0x8000 ? word - 0x10000 : word;
}

export interface Max17048Config {
  rcomp: number;
  sleep: boolean;
  socChangeAlert: boolean;
  alert: boolean;
  alertThresholdPct: number;
}

export function decodeConfig(word: number): Max17048Config {
  return {
    rcomp: word >> 8,
    sleep: (word & CONFIG_SLEEP) !== 0,
    socChangeAlert: (word & CONFIG_ALSC) !== 0,
    alert: (word & CONFIG_ALRT) !== 0,
    alertThresholdPct: decodeAthd(word),
  };
}

export interface Max17048Status {
  resetIndicator: boolean;
  voltageHigh: boolean;
  voltageLow: boolean;
  voltageReset: boolean;
  socLow: boolean;
  socChange: boolean;
}

export function decodeStatus(word: number): Max17048Status {
  return {
    resetIndicator: (word & STATUS.ri) !== 0,
    voltageHigh: (word & STATUS.vh) !== 0,
    voltageLow: (word & STATUS.vl) !== 0,
    voltageReset: (word & STATUS.vr) !== 0,
    socLow: (word & STATUS.hd) !== 0,
    socChange: (word & STATUS.sc) !== 0,
  };
}

export interface Max17048Reading {
  cellVoltageV: number;
  socPct: number;
  /** Positive while charging. */
  chargeRatePctPerHour: number;
}

export class Max17048Error extends Error {
  constructor(readonly kind: 'absent' | 'bus' | 'identity', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Max17048Error';
  }
}

export interface Max17048Options {
  address?: number;
  retries?: number;
}

export class Max17048 {
  readonly address: number;
  private readonly retries: number;

  constructor(private readonly bus: I2cBus, options: Max17048Options = {}) {
    this.address = options.address ?? MAX17048_ADDRESS;
    this.retries = options.retries ?? 2;
  }

  /** VERSION reads 0x001_ on a MAX17048/49 (Register Summary); anything else is another part. */
  async identify(): Promise<{ version: number }> {
    const version = await this.readVersion();
    if ((version & 0xfff0) !== 0x0010) {
      throw new Max17048Error('identity', `device at 0x${this.address.toString(16)} reports VERSION 0x${version.toString(16).padStart(4, '0')}, not a MAX17048 (0x001_): check the gauge kind in the hardware config`);
    }
    return { version };
  }

  readVersion(): Promise<number> {
    return this.readRegister(MAX17048_REG.version);
  }

  async readCellVoltage(): Promise<number> {
    return (await this.readRegister(MAX17048_REG.vcell)) * VCELL_LSB_V;
  }

  async readSoc(): Promise<number> {
    return (await this.readRegister(MAX17048_REG.soc)) * SOC_LSB_PCT;
  }

  async readChargeRate(): Promise<number> {
    return toSigned16(await this.readRegister(MAX17048_REG.crate)) * CRATE_LSB_PCT_PER_H;
  }

  async read(): Promise<Max17048Reading> {
    return {
      cellVoltageV: await this.readCellVoltage(),
      socPct: await this.readSoc(),
      chargeRatePctPerHour: await this.readChargeRate(),
    };
  }

  async readConfig(): Promise<Max17048Config> {
    return decodeConfig(await this.readRegister(MAX17048_REG.config));
  }

  async readStatus(): Promise<Max17048Status> {
    return decodeStatus(await this.readRegister(MAX17048_REG.status));
  }

  /** Writes ATHD and leaves RCOMP, SLEEP, ALSC and a pending ALRT as they are. */
  async setAlertThreshold(percent: number): Promise<void> {
    const athd = encodeAthd(percent);
    const config = await this.readRegister(MAX17048_REG.config);
    await this.writeRegister(MAX17048_REG.config, (config & ~CONFIG_ATHD) | athd);
  }

  /** CONFIG.ALRT and what raised it (the STATUS flags). */
  async readAlert(): Promise<{ alert: boolean; status: Max17048Status }> {
    const config = await this.readConfig();
    return { alert: config.alert, status: await this.readStatus() };
  }

  /**
   * The IC sets ALRT and the STATUS flags; only the host clears them (CONFIG.ALRT,
   * STATUS). The flags first, so that ALRT is not raised again by a flag still set.
   * RI is left alone: it tells of a reset, which clearResetIndicator() acknowledges.
   */
  async clearAlert(): Promise<void> {
    const status = await this.readRegister(MAX17048_REG.status);
    await this.writeRegister(MAX17048_REG.status, status & ~(STATUS_FLAGS & ~STATUS.ri));
    const config = await this.readRegister(MAX17048_REG.config);
    await this.writeRegister(MAX17048_REG.config, config & ~CONFIG_ALRT);
  }

  /**
   * STATUS.RI is set at every power-up and after a CMD reset; clearing it once configured
   * lets a later read tell that the gauge lost its configuration (a brown-out).
   */
  async clearResetIndicator(): Promise<void> {
    const status = await this.readRegister(MAX17048_REG.status);
    await this.writeRegister(MAX17048_REG.status, status & ~STATUS.ri);
  }

  /**
   * MODE.QuickStart restarts the SOC estimate from the present cell voltage (MODE
   * register, Quick-Start): for a gauge that started on a loaded cell and guessed wrong.
   * EnSleep is kept.
   */
  async quickStart(): Promise<void> {
    const mode = await this.readRegister(MAX17048_REG.mode);
    await this.writeRegister(MAX17048_REG.mode, (mode & MODE_EN_SLEEP) | MODE_QUICK_START);
  }

  /** CMD = 0x5400: every register to its power-on value. */
  reset(): Promise<void> {
    return this.writeRegister(MAX17048_REG.cmd, CMD_POR);
  }

  private async readRegister(register: number): Promise<number> {
    return swap16(await this.transact(() => this.bus.readWord(this.address, register)));
  }

  private writeRegister(register: number, value: number): Promise<void> {
    return this.transact(() => this.bus.writeWord(this.address, register, swap16(value & 0xffff)));
  }

  private transact<T>(op: () => Promise<T>): Promise<T> {
    const device: I2cDevice = {
      where: `MAX17048 fuel gauge at 0x${this.address.toString(16)}`,
      absentHint: 'check the UPS HAT is seated and its cell connected (the gauge is powered from the cell); `i2cdetect -y 1` should show 36',
      retries: this.retries,
      fail: (kind, message, cause) => new Max17048Error(kind, message, { cause }),
    };
    return transact(device, op);
  }

}
