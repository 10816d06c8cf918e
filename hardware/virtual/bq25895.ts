// Register model of the BQ25895 charger (TI SLUSC88C): the registers the plant needs to
// know (input limits, charge enable and current) and the status, fault and ADC registers
// it fills in, with the datasheet's reset values, offsets, steps and latching rules.
import type { Clock } from '../../ground/clock.js';
import { BQ_REG, decodeIinlim, decodeVindpm } from '../bq25895.js';
import type { VirtualI2cDevice } from './bus.js';

/** What the charger controls, as the plant needs it. */
export interface ChargerSettings {
  hiz: boolean;
  inputCurrentLimitA: number;
  inputVoltageLimitV: number;
  chargeEnabled: boolean;
  chargeCurrentLimitA: number;
  prechargeCurrentA: number;
  terminationCurrentA: number;
  /** Charge voltage limit (VREG). */
  chargeVoltageV: number;
}

/** What the plant reports back to the charger's status and ADC registers. */
export interface ChargerAnalog {
  inputPresent: boolean;
  powerGood: boolean;
  busVoltageV: number;
  batteryVoltageV: number;
  systemVoltageV: number;
  chargeCurrentA: number;
  /** 0 not charging, 1 pre-charge, 2 fast charging, 3 done (REG0B CHRG_STAT). */
  chrgStat: 0 | 1 | 2 | 3;
  inVoltageRegulation: boolean;
  inCurrentRegulation: boolean;
}

/** The plant's view of any charger, register-programmed or not. */
export interface ChargerControl {
  settings(): ChargerSettings;
  inputChanged(present: boolean): void;
}

// Reset values from the register map. REG01 and REG07..REG0A are kept for completeness;
// the model does not act on them (no watchdog, thermistor or boost mode).
const RESET: Record<number, number> = {
  0x00: 0x08, // IINLIM 500 mA
  0x01: 0x06,
  0x02: 0x31, // one-shot ADC, ICO_EN, AUTO_DPDM_EN
  0x03: 0x1a, // CHG_CONFIG = 1, SYS_MIN 3.5 V
  0x04: 0x20, // ICHG 2048 mA
  0x05: 0x13,
  0x06: 0x5e, // VREG 4.208 V
  0x07: 0x9d,
  0x08: 0x03,
  0x09: 0x44,
  0x0a: 0x93,
  0x0d: 0x12, // relative VINDPM, 4.4 V
  0x14: 0x39, // PN 111 (BQ25895), DEV_REV 01
};
/**
 * Bits of the registers the model uses that the register map marks as reset "by Watchdog":
 * EN_HIZ/EN_ILIM, CONV_START/CONV_RATE/BOOST_FREQ/FORCE_DPDM, BAT_LOADEN/WD_RST/OTG_CONFIG/
 * CHG_CONFIG, and REG04..REG06 (charge current and voltage). IINLIM and VINDPM are not.
 */
const WATCHDOG_RESET_MASK: Record<number, number> = { 0x00: 0xc0, 0x02: 0xe2, 0x03: 0xf0, 0x04: 0xff, 0x05: 0xff, 0x06: 0xff };
/** REG07 WATCHDOG[5:4]: 00 off, 01 40 s (default), 10 80 s, 11 160 s. */
const WATCHDOG_MS = [0, 40_000, 80_000, 160_000];
const WRITABLE = new Set([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0d, 0x14]);
const SYS_MIN_V = 3.5;
/** One-shot conversion time: the shortest tCONV of the timing table (the maximum is 1 s). */
const ADC_CONVERSION_MS = 8;
/** CONV_RATE = 1 converts once per second (REG02[6]). */
const ADC_PERIOD_MS = 1000;

export class VirtualBq25895 implements VirtualI2cDevice, ChargerControl {
  private readonly regs = new Uint8Array(0x15);
  private pointer = 0;
  private conversionStartMs: number | null = null;
  private lastContinuousMs = -Infinity;
  private inputPresent = false;
  /** REG0C bits latched since the last read (SLUSC88C, "Multi-Read and Multi-Write"). */
  private latchedFaults = 0;
  private presentFaults = 0;
  /** Last watchdog reset; null while in default mode (no host write since reset or expiry). */
  private watchdogKickMs: number | null = null;

  constructor(private readonly analog: () => ChargerAnalog, private readonly clock: Clock) {
    this.reset();
  }

  reset(): void {
    this.regs.fill(0);
    for (const [reg, value] of Object.entries(RESET)) this.regs[Number(reg)] = value;
    this.conversionStartMs = null;
    this.watchdogKickMs = null;
  }

  settings(): ChargerSettings {
    const r = this.regs;
    return {
      hiz: (r[0x00]! & 0x80) !== 0,
      inputCurrentLimitA: decodeIinlim(r[0x00]!),
      inputVoltageLimitV: decodeVindpm(r[0x0d]!),
      chargeEnabled: (r[0x03]! & 0x10) !== 0,
      chargeCurrentLimitA: (r[0x04]! & 0x7f) * 0.064, // REG04 ICHG: 64 mA steps
      prechargeCurrentA: 0.064 + (r[0x05]! >> 4) * 0.064, // REG05 IPRECHG: offset 64 mA, 64 mA steps
      terminationCurrentA: 0.064 + (r[0x05]! & 0x0f) * 0.064, // REG05 ITERM: offset 64 mA, 64 mA steps
      chargeVoltageV: 3.84 + (r[0x06]! >> 2) * 0.016, // REG06 VREG: offset 3.840 V, 16 mV steps
    };
  }

  /**
   * Plug-in: REG0D returns to relative VINDPM and input source detection sets IINLIM.
   * A panel has no D+/D- signalling, so it is detected as an unknown adapter (500 mA).
   */
  inputChanged(present: boolean): void {
    if (present && !this.inputPresent) {
      this.regs[0x0d] = RESET[0x0d]!;
      this.regs[0x00] = (this.regs[0x00]! & 0xc0) | 0x08;
    }
    if (!present && this.inputPresent) this.latchedFaults |= 0x10; // CHRG_FAULT 01: input fault (VBUS < VVBUSMIN)
    this.inputPresent = present;
  }

  /** Fault: raise REG0C bits (latched until read, present until cleared). */
  setFaults(reg0cBits: number): void {
    this.presentFaults = reg0cBits & 0xff;
    this.latchedFaults |= this.presentFaults;
  }

  peek(register: number): number {
    return this.readRegister(register, false);
  }

  write(bytes: readonly number[]): void {
    if (bytes.length === 0) return;
    this.checkWatchdog();
    // The first write puts the device in host mode, which starts the watchdog timer.
    if (bytes.length > 1) this.watchdogKickMs ??= this.clock.now();
    this.pointer = bytes[0]!;
    for (let i = 1; i < bytes.length; i++) this.writeRegister(this.pointer + i - 1, bytes[i]!);
  }

  read(length: number): number[] {
    this.checkWatchdog();
    const out: number[] = [];
    for (let i = 0; i < length; i++) out.push(this.readRegister(this.pointer + i, true));
    return out;
  }

  private writeRegister(register: number, value: number): void {
    if (!WRITABLE.has(register)) return;
    if (register === 0x14) {
      if (value & 0x80) this.reset(); // REG_RST, returns to 0
      return;
    }
    if (register === 0x02) {
      if (value & 0x40) this.lastContinuousMs = -Infinity;
      else if (value & 0x80) this.conversionStartMs = this.clock.now();
    }
    if (register === 0x03 && value & 0x40) this.watchdogKickMs = this.clock.now();
    if (register === 0x03) value &= ~0x40; // WD_RST reads back 0
    if (register === 0x07) this.watchdogKickMs = this.clock.now(); // a new WATCHDOG setting restarts the timer
    if (register === 0x0d && !(value & 0x80)) value = RESET[0x0d]!; // VINDPM is read-only while FORCE_VINDPM = 0
    this.regs[register] = value;
  }

  private readRegister(register: number, onBus: boolean): number {
    if (register === BQ_REG.adcControl) return this.adcControl();
    if (register >= BQ_REG.status && register <= BQ_REG.dpmStatus) {
      const a = this.analog();
      this.runAdc(a);
      switch (register) {
        case BQ_REG.status: {
          const vbusStat = a.inputPresent ? 0b101 : 0b000; // unknown adapter, or no input
          return (vbusStat << 5) | (a.chrgStat << 3) | (a.powerGood ? 0x04 : 0) | (a.batteryVoltageV < SYS_MIN_V ? 0x01 : 0);
        }
        case BQ_REG.fault: {
          const value = this.latchedFaults | this.presentFaults;
          if (onBus) this.latchedFaults = this.presentFaults; // read clears what is no longer true
          return value;
        }
        case BQ_REG.dpmStatus: {
          const idpmLim = Math.round((this.settings().inputCurrentLimitA - 0.1) / 0.05) & 0x3f;
          return (a.inVoltageRegulation ? 0x80 : 0) | (a.inCurrentRegulation ? 0x40 : 0) | idpmLim;
        }
        default:
          return this.regs[register]!;
      }
    }
    return register < this.regs.length ? this.regs[register]! : 0;
  }

  /** Watchdog expiry: WATCHDOG_FAULT, "by Watchdog" bits to reset values, back to default mode. */
  private checkWatchdog(): void {
    const periodMs = WATCHDOG_MS[(this.regs[0x07]! >> 4) & 0x03]!;
    if (this.watchdogKickMs === null || periodMs === 0 || this.clock.now() - this.watchdogKickMs < periodMs) return;
    this.latchedFaults |= 0x80;
    for (const [reg, mask] of Object.entries(WATCHDOG_RESET_MASK)) {
      const r = Number(reg);
      this.regs[r] = (this.regs[r]! & ~mask) | (RESET[r]! & mask);
    }
    this.watchdogKickMs = null;
  }

  private adcControl(): number {
    this.runAdc(this.analog());
    return this.regs[0x02]!;
  }

  /** Completes a pending one-shot conversion, or a due continuous one, into REG0E..REG12. */
  private runAdc(a: ChargerAnalog): void {
    const now = this.clock.now();
    const continuous = (this.regs[0x02]! & 0x40) !== 0;
    // In battery-only mode the monitor only runs with VBAT above SYS_MIN (battery monitor section).
    const canConvert = a.inputPresent || a.batteryVoltageV > SYS_MIN_V;
    if (continuous) {
      if (canConvert && now - this.lastContinuousMs >= ADC_PERIOD_MS) {
        this.latchAdc(a);
        this.lastContinuousMs = now;
      }
      return;
    }
    if (this.conversionStartMs !== null && canConvert && now - this.conversionStartMs >= ADC_CONVERSION_MS) {
      this.latchAdc(a);
      this.conversionStartMs = null;
      this.regs[0x02] = this.regs[0x02]! & ~0x80; // the device clears CONV_START when done
    }
  }

  private latchAdc(a: ChargerAnalog): void {
    const code = (v: number, offset: number, step: number) => Math.min(0x7f, Math.max(0, Math.round((v - offset) / step)));
    this.regs[0x0e] = code(a.batteryVoltageV, 2.304, 0.02); // BATV
    this.regs[0x0f] = code(a.systemVoltageV, 2.304, 0.02); // SYSV
    this.regs[0x10] = 0x3f; // TSPCT: a thermistor in the normal window, not modelled further
    this.regs[0x11] = a.inputPresent ? 0x80 | code(a.busVoltageV, 2.6, 0.1) : 0; // VBUS_GD, VBUSV
    // ICHGR reads 0 below VBATSHORT (≈2 V).
    this.regs[0x12] = a.batteryVoltageV > 2.0 ? code(a.chargeCurrentA, 0, 0.05) : 0;
  }
}
