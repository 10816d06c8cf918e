// Register model of the INA219 (TI SBOS448): configuration and calibration registers,
// conversion with the ADC's resolution and the PGA's range, the current and power
// multiplications, CNVR and OVF, and power-on reset values. The analog inputs come from
// the plant through `analog()`.
import type { Clock } from '../../ground/clock.js';
import {
  INA219_POR_CONFIG, INA219_REG, SHUNT_LSB_V, BUS_LSB_V, cycleTimeMs, decodeConfig, shuntFullScaleRaw,
} from '../ina219.js';
import type { VirtualI2cDevice } from './bus.js';

export interface Ina219Analog {
  /** V(IN+) − V(IN−). */
  shuntVoltageV: number;
  /** V(IN−) to ground, what the bus voltage register measures (§8.3.1). */
  busVoltageV: number;
}

interface Data {
  shunt: number;
  bus: number;
  current: number;
  power: number;
  ovf: boolean;
}

const ZERO: Data = { shunt: 0, bus: 0, current: 0, power: 0, ovf: false };

export class VirtualIna219 implements VirtualI2cDevice {
  private pointer = 0;
  private config = INA219_POR_CONFIG;
  private calibration = 0;
  private data: Data = { ...ZERO };
  /** When the conversion the CNVR bit waits for started. */
  private cycleStartMs: number;
  private cnvrCleared = false;

  constructor(private readonly analog: () => Ina219Analog, private readonly clock: Clock) {
    this.cycleStartMs = clock.now();
  }

  /** Fault: a brown-out. Every register returns to its power-on value (§8.6.1, Table 2). */
  powerOnReset(): void {
    this.pointer = 0;
    this.config = INA219_POR_CONFIG;
    this.calibration = 0;
    this.data = { ...ZERO };
    this.cycleStartMs = this.clock.now();
    this.cnvrCleared = false;
  }

  /** Register contents without a bus transfer (for tests). */
  peek(register: number): number {
    return this.readRegister(register, false);
  }

  write(bytes: readonly number[]): void {
    if (bytes.length === 0) return;
    this.pointer = bytes[0]!;
    // §8.5.6: a write is the pointer byte, then MSB, then LSB. A lone pointer byte only
    // selects the register for the following reads.
    if (bytes.length >= 3) this.writeRegister(this.pointer, (bytes[1]! << 8) | bytes[2]!);
  }

  read(length: number): number[] {
    const value = this.readRegister(this.pointer, true);
    const out: number[] = [];
    for (let i = 0; i < length; i++) out.push(i % 2 === 0 ? value >> 8 : value & 0xff); // MSB first
    return out;
  }

  private writeRegister(register: number, value: number): void {
    if (register === INA219_REG.config) {
      if (value & 0x8000) return this.powerOnReset(); // RST: reset, and the bit self-clears (§8.6.2.1)
      this.config = value & 0x3fff; // bit 14 is unused and reads 0
      // Writing the mode restarts conversions and clears CNVR (§8.6.3.2).
      this.cycleStartMs = this.clock.now();
      this.cnvrCleared = false;
      if (this.mode().endsWith('triggered')) this.convert();
    } else if (register === INA219_REG.calibration) {
      this.calibration = value & 0xfffe; // bit 0 (FS0) always reads 0 (§8.6.4.1)
    }
    // Data registers are read-only; writes to them are ignored.
  }

  private readRegister(register: number, onBus: boolean): number {
    switch (register) {
      case INA219_REG.config: return this.config;
      case INA219_REG.calibration: return this.calibration;
      case INA219_REG.shuntVoltage: return this.refresh().shunt & 0xffff;
      case INA219_REG.busVoltage: {
        const d = this.refresh();
        return (d.bus << 3) | (this.conversionReady() ? 0x02 : 0) | (d.ovf ? 0x01 : 0);
      }
      case INA219_REG.current: return this.refresh().current & 0xffff;
      case INA219_REG.power: {
        const power = this.refresh().power;
        if (onBus) {
          // Reading the power register clears CNVR (§8.6.3.2); continuous conversion goes on.
          this.cycleStartMs = this.clock.now();
          this.cnvrCleared = true;
        }
        return power;
      }
      default: return 0;
    }
  }

  private mode(): string {
    return decodeConfig(this.config).mode;
  }

  private conversionReady(): boolean {
    const done = this.clock.now() - this.cycleStartMs >= cycleTimeMs(decodeConfig(this.config));
    // Continuous conversion sets CNVR again after each cycle; otherwise no new conversion comes.
    return this.mode().endsWith('continuous') ? done : done && !this.cnvrCleared;
  }

  /** Continuous modes show the input as it is now; triggered and stopped modes hold their last result. */
  private refresh(): Data {
    if (this.mode().endsWith('continuous')) this.convert();
    return this.data;
  }

  private convert(): void {
    const c = decodeConfig(this.config);
    const input = this.analog();
    const d = this.data;
    if (c.mode.startsWith('shunt')) {
      // Register LSB is 10 µV at every gain; the ADC's step is coarser by the PGA divider
      // and by each bit of resolution below 12 (§8.3.1.2, §8.6.3.1).
      const bits = c.shuntAdc.samples > 1 ? 12 : c.shuntAdc.bits;
      const step = c.gain * 2 ** (12 - bits);
      const full = shuntFullScaleRaw(c.gain);
      d.shunt = clamp(Math.round(input.shuntVoltageV / SHUNT_LSB_V / step) * step, -full, full);
    }
    if (c.mode.includes('bus')) {
      // 4 mV LSB (§8.6.3.2); over the 32 V range a 12-bit conversion steps by 8 mV.
      const bits = c.busAdc.samples > 1 ? 12 : c.busAdc.bits;
      const step = (c.busRangeV === 32 ? 2 : 1) * 2 ** (12 - bits);
      const max = c.busRangeV === 32 ? 0x1fff : 0x0fff;
      d.bus = clamp(Math.round(input.busVoltageV / BUS_LSB_V / step) * step, 0, max);
    }
    // Equations 4 and 5 (§8.5.1): Current = Shunt × Cal / 4096, Power = Current × Bus / 5000.
    // Results that do not fit their 16-bit registers saturate and raise OVF. The power
    // register is unsigned and holds the magnitude.
    const current = Math.trunc((d.shunt * this.calibration) / 4096);
    const power = Math.trunc((Math.abs(current) * d.bus) / 5000);
    d.ovf = current > 0x7fff || current < -0x8000 || power > 0xffff;
    d.current = clamp(current, -0x8000, 0x7fff);
    d.power = Math.min(power, 0xffff);
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}
