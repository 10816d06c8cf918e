// INA219 current/power monitor (TI SBOS448). Register numbers, bit fields, LSBs and the
// calibration equations below are the datasheet's; section numbers refer to SBOS448G.
import type { Clock } from '../ground/clock.js';
import { swap16, transact, type I2cBus, type I2cDevice } from './i2c.js';

/** Register pointer addresses (§8.6.1, Table 2). */
export const INA219_REG = {
  config: 0x00,
  shuntVoltage: 0x01,
  busVoltage: 0x02,
  power: 0x03,
  current: 0x04,
  calibration: 0x05,
} as const;

/** Configuration register power-on value (§8.6.2.1: reset = 399Fh). */
export const INA219_POR_CONFIG = 0x399f;

export type Ina219Gain = 1 | 2 | 4 | 8;
export type Ina219BusRangeV = 16 | 32;
export type Ina219Samples = 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128;
export interface Ina219Adc {
  /** ADC resolution; averaging (samples > 1) is only available at 12 bits. */
  bits: 9 | 10 | 11 | 12;
  samples: Ina219Samples;
}
export const INA219_MODES = [
  'power-down', 'shunt-triggered', 'bus-triggered', 'shunt-bus-triggered',
  'adc-off', 'shunt-continuous', 'bus-continuous', 'shunt-bus-continuous',
] as const;
export type Ina219Mode = (typeof INA219_MODES)[number];

export interface Ina219Config {
  busRangeV: Ina219BusRangeV;
  gain: Ina219Gain;
  busAdc: Ina219Adc;
  shuntAdc: Ina219Adc;
  mode: Ina219Mode;
}

/** BADC/SADC codes (§8.6.2.1, Table 5): 0x00..0x03 = 9..12 bit, 0x08..0x0F = 1..128 samples. */
export function encodeAdc(adc: Ina219Adc): number {
  if (adc.samples === 1) return adc.bits - 9;
  if (adc.bits !== 12) throw new Error(`INA219 averages only 12-bit conversions (got ${adc.bits} bits × ${adc.samples} samples)`);
  return 0x08 | Math.log2(adc.samples);
}

export function decodeAdc(code: number): Ina219Adc {
  // 0X00..0X11: bit 3 clear means single conversion, the X bit (bit 2) is don't-care.
  if ((code & 0x08) === 0) return { bits: (9 + (code & 0x03)) as Ina219Adc['bits'], samples: 1 };
  return { bits: 12, samples: (1 << (code & 0x07)) as Ina219Samples };
}

export function encodeConfig(c: Ina219Config): number {
  const brng = c.busRangeV === 32 ? 1 : 0; // BRNG, bit 13
  const pg = Math.log2(c.gain); // PG1:PG0, bits 12-11: /1 /2 /4 /8
  return (brng << 13) | (pg << 11) | (encodeAdc(c.busAdc) << 7) | (encodeAdc(c.shuntAdc) << 3) | INA219_MODES.indexOf(c.mode);
}

export function decodeConfig(word: number): Ina219Config {
  return {
    busRangeV: word & 0x2000 ? 32 : 16,
    gain: (1 << ((word >> 11) & 0x03)) as Ina219Gain,
    busAdc: decodeAdc((word >> 7) & 0x0f),
    shuntAdc: decodeAdc((word >> 3) & 0x0f),
    mode: INA219_MODES[word & 0x07]!,
  };
}

/** One conversion's time in µs (§7.5 Electrical Characteristics, ADC conversion time). */
export function conversionTimeUs(adc: Ina219Adc): number {
  if (adc.samples === 1) return { 9: 84, 10: 148, 11: 276, 12: 532 }[adc.bits];
  return { 2: 1060, 4: 2130, 8: 4260, 16: 8510, 32: 17020, 64: 34050, 128: 68100 }[adc.samples as Exclude<Ina219Samples, 1>];
}

/** Time for one full cycle of the conversions the mode performs, in ms. */
export function cycleTimeMs(c: Ina219Config): number {
  const shunt = c.mode.startsWith('shunt') ? conversionTimeUs(c.shuntAdc) : 0;
  const bus = c.mode.includes('bus') ? conversionTimeUs(c.busAdc) : 0;
  return (shunt + bus) / 1000;
}

/** Shunt register LSB (§8.6.3.1) and bus register LSB (§8.6.3.2). */
export const SHUNT_LSB_V = 10e-6;
export const BUS_LSB_V = 4e-3;

/** Shunt register full scale in LSBs for each PGA setting (§8.6.3.1: ±4000 at /1 … ±32000 at /8). */
export function shuntFullScaleRaw(gain: Ina219Gain): number {
  return 4000 * gain;
}

/** Smallest PGA range (40 mV × gain) that holds `maxShuntV`. */
export function gainFor(maxShuntV: number): Ina219Gain {
  // The nanovolt slack keeps 0.1 Ω × 3.2 A (0.32000000000000006 in binary) on the /8 range.
  for (const g of [1, 2, 4, 8] as const) if (maxShuntV <= 0.04 * g + 1e-9) return g;
  throw new Error(`a ${(maxShuntV * 1000).toFixed(0)} mV shunt drop exceeds the INA219's ±320 mV range: use a smaller shunt resistor or a lower maxCurrentA`);
}

export interface Ina219Calibration {
  calibration: number;
  currentLsbA: number;
  powerLsbW: number;
}

/**
 * Calibration register value and resulting LSBs (§8.5.1):
 *   Current_LSB = Maximum Expected Current / 2^15            (Equation 2)
 *   Cal = trunc(0.04096 / (Current_LSB × RSHUNT))              (Equation 1)
 *   Power_LSB = 20 × Current_LSB                               (Equation 3)
 * `currentLsbA` overrides Equation 2, as the datasheet suggests for a round LSB. The
 * register's bit 0 does not exist (§8.6.4.1, FS0 reads 0), so Cal is made even, and the
 * LSBs returned are the ones the truncated Cal actually gives.
 */
export function calibrationFor(shuntOhms: number, maxCurrentA: number, currentLsbA?: number): Ina219Calibration {
  if (!(shuntOhms > 0)) throw new Error(`shunt resistance must be > 0 Ω, got ${shuntOhms}`);
  if (!(maxCurrentA > 0)) throw new Error(`maximum expected current must be > 0 A, got ${maxCurrentA}`);
  const lsb = currentLsbA ?? maxCurrentA / 2 ** 15;
  let cal = Math.trunc(0.04096 / (lsb * shuntOhms));
  cal = Math.min(cal, 0xfffe) & 0xfffe;
  if (cal < 2) throw new Error(`calibration underflows for ${shuntOhms} Ω and a ${lsb} A LSB: choose a smaller current LSB`);
  const currentLsb = 0.04096 / (cal * shuntOhms);
  return { calibration: cal, currentLsbA: currentLsb, powerLsbW: 20 * currentLsb };
}

export type Ina219ErrorKind = 'absent' | 'bus' | 'overflow' | 'range';

export class Ina219Error extends Error {
  constructor(readonly kind: Ina219ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Ina219Error';
  }
}

export interface Ina219Options {
  address: number;
  shuntOhms: number;
  maxCurrentA: number;
  /** Names the sensor in messages, e.g. "solar". */
  label?: string;
  busRangeV?: Ina219BusRangeV;
  gain?: Ina219Gain;
  busAdc?: Ina219Adc;
  shuntAdc?: Ina219Adc;
  mode?: Ina219Mode;
  currentLsbA?: number;
  /** Extra attempts for a failed transaction before giving up. */
  retries?: number;
}

export interface Ina219Reading {
  busVoltageV: number;
  shuntVoltageV: number;
  currentA: number;
  /** Signed like the current: the power register itself is unsigned (§8.6.3.3). */
  powerW: number;
  conversionReady: boolean;
  /** The configuration had been lost (brown-out) and was rewritten during this read. */
  recoveredFromReset: boolean;
}

// Averaging filters the charger's switching ripple out of the shunt voltage.
const DEFAULT_ADC: Ina219Adc = { bits: 12, samples: 32 };

export class Ina219 {
  readonly address: number;
  readonly label: string;
  readonly config: Ina219Config;
  readonly configWord: number;
  readonly calibration: Ina219Calibration;
  /** How many times the device was found reset (brown-out) and reprogrammed. */
  resets = 0;
  private readonly device: I2cDevice;
  private programmed = false;

  constructor(private readonly bus: I2cBus, private readonly clock: Clock, options: Ina219Options) {
    this.address = options.address;
    this.label = options.label ?? 'INA219';
    this.device = {
      where: `${this.label} INA219 at 0x${this.address.toString(16)}`,
      absentHint: 'check its wiring, power and address jumpers; `i2cdetect -y 1` lists the devices present',
      retries: options.retries ?? 2,
      fail: (kind, message, cause) => new Ina219Error(kind, message, { cause }),
    };
    this.config = {
      busRangeV: options.busRangeV ?? 16,
      gain: options.gain ?? gainFor(options.shuntOhms * options.maxCurrentA),
      busAdc: options.busAdc ?? DEFAULT_ADC,
      shuntAdc: options.shuntAdc ?? DEFAULT_ADC,
      mode: options.mode ?? 'shunt-bus-continuous',
    };
    if (options.shuntOhms * options.maxCurrentA > 0.04 * this.config.gain + 1e-9) {
      throw new Error(`${this.device.where}: ${options.maxCurrentA} A through ${options.shuntOhms} Ω exceeds the ±${40 * this.config.gain} mV range of gain /${this.config.gain}`);
    }
    this.configWord = encodeConfig(this.config);
    this.calibration = calibrationFor(options.shuntOhms, options.maxCurrentA, options.currentLsbA);
  }

  /** Writes configuration and calibration; call once before the first read. */
  async init(): Promise<void> {
    await this.writeRegister(INA219_REG.config, this.configWord);
    await this.writeRegister(INA219_REG.calibration, this.calibration.calibration);
    this.programmed = true;
  }

  async readBusVoltage(): Promise<{ busVoltageV: number; conversionReady: boolean; mathOverflow: boolean }> {
    const word = await this.readRegister(INA219_REG.busVoltage);
    // §8.6.3.2: BD12..BD0 in bits 15-3 (LSB 4 mV), CNVR bit 1, OVF bit 0.
    return { busVoltageV: (word >> 3) * BUS_LSB_V, conversionReady: (word & 0x02) !== 0, mathOverflow: (word & 0x01) !== 0 };
  }

  async readShuntVoltage(): Promise<number> {
    const raw = toSigned16(await this.readRegister(INA219_REG.shuntVoltage));
    // §8.6.3.1: two's complement, sign-extended above the PGA's range; at full scale the
    // ADC has clipped and the true current is unknown.
    if (Math.abs(raw) >= shuntFullScaleRaw(this.config.gain)) {
      throw new Ina219Error('range', `${this.device.where}: shunt voltage at full scale (±${40 * this.config.gain} mV), the current is beyond what this configuration measures; raise maxCurrentA (or use a smaller shunt)`);
    }
    return raw * SHUNT_LSB_V;
  }

  async readCurrent(): Promise<number> {
    await this.rewriteCalibration();
    return this.readCurrentRegister();
  }

  /** Power in W, unsigned as the register holds it. */
  async readPower(): Promise<number> {
    await this.rewriteCalibration();
    return this.readPowerRegister();
  }

  /** One complete, self-checking measurement. */
  async read(): Promise<Ina219Reading> {
    let recoveredFromReset = false;
    if (!this.programmed) {
      await this.init(); // first use, or init() failed earlier (the device was missing)
      await this.clock.sleep(cycleTimeMs(this.config));
    }
    const config = await this.readRegister(INA219_REG.config);
    if (config !== this.configWord) {
      // A brown-out returns every register to its power-on value (§8.6.1, Table 2):
      // reprogram, then let one full conversion cycle complete with the right settings.
      this.resets++;
      recoveredFromReset = true;
      await this.init();
      await this.clock.sleep(cycleTimeMs(this.config));
    } else if (this.config.mode.endsWith('triggered')) {
      await this.writeRegister(INA219_REG.config, this.configWord); // writing MODE triggers (§8.6.2.1)
      await this.clock.sleep(cycleTimeMs(this.config));
    }
    const bus = await this.readBusVoltage();
    if (bus.mathOverflow) {
      throw new Ina219Error('overflow', `${this.device.where}: math overflow (OVF): current or power exceeded the registers' range at this calibration; raise maxCurrentA so the current LSB grows`);
    }
    const shuntVoltageV = await this.readShuntVoltage();
    await this.rewriteCalibration();
    const currentA = await this.readCurrentRegister();
    const powerMagnitudeW = await this.readPowerRegister();
    return {
      busVoltageV: bus.busVoltageV,
      shuntVoltageV,
      currentA,
      powerW: currentA < 0 ? -powerMagnitudeW : powerMagnitudeW,
      conversionReady: bus.conversionReady,
      recoveredFromReset,
    };
  }

  private async readCurrentRegister(): Promise<number> {
    return toSigned16(await this.readRegister(INA219_REG.current)) * this.calibration.currentLsbA;
  }

  private async readPowerRegister(): Promise<number> {
    return (await this.readRegister(INA219_REG.power)) * this.calibration.powerLsbW;
  }

  /** §8.5.3: current and power are only valid with a programmed Calibration register, and a brown-out clears it. */
  private rewriteCalibration(): Promise<void> {
    return this.writeRegister(INA219_REG.calibration, this.calibration.calibration);
  }

  // §8.5.6: registers travel MSB first, SMBus words LSB first, hence the swaps.
  private async readRegister(register: number): Promise<number> {
    return swap16(await transact(this.device, () => this.bus.readWord(this.address, register)));
  }

  private writeRegister(register: number, value: number): Promise<void> {
    return transact(this.device, () => this.bus.writeWord(this.address, register, swap16(value)));
  }
}

function toSigned16(word: number): number {
  return word & 0x8000 ? word - 0x10000 : word;
}
