// Register model of the MAX17048 fuel gauge (19-6171): VCELL and SOC from a virtual cell,
// CRATE from the SOC's change over time, the ALRT/STATUS alert logic (SOC low at ATHD,
// 1 % change, VALRT window), sleep, quick-start, the power-on values and the CMD reset,
// and the read-only registers. Seen on the wire: big-endian words behind a byte pointer.
// Not modelled: the reset at VRESET (VRESET/ID is kept as a plain register, VR is never
// raised), the custom-model TABLE, and hibernate's slower sampling.
import type { Clock } from '../../ground/clock.js';
import {
  CMD_POR, CONFIG_ALRT, CONFIG_ALSC, CONFIG_SLEEP, CRATE_LSB_PCT_PER_H, MAX17048_POR, MAX17048_REG, MODE_EN_SLEEP,
  MODE_HIB_STAT, MODE_QUICK_START, SOC_LSB_PCT, STATUS, STATUS_FLAGS, VALRT_LSB_V, VCELL_LSB_V, decodeAthd,
} from '../max17048.js';
import type { BatteryCell } from './cell.js';
import type { VirtualI2cDevice } from './bus.js';

export interface GaugeAnalog {
  /** Voltage at the CELL pin. */
  cellVoltageV: number;
  /** The state of charge ModelGauge would report for the cell. */
  socPct: number;
}

/** The cell as the gauge sees it; `powerW` is the power flowing into the cell now (negative: out). */
export function cellAnalog(cell: BatteryCell, powerW: () => number = () => 0): () => GaugeAnalog {
  return () => ({ cellVoltageV: cell.terminalVoltage(powerW()), socPct: cell.socPct });
}

/** VERSION of the part modelled (Register Summary: 0x001_). */
export const VIRTUAL_MAX17048_VERSION = 0x0012;
/** CRATE is recomputed at most this often (the IC updates it with the SOC, not per read). */
const CRATE_UPDATE_MS = 1000;

interface Words {
  mode: number;
  hibrt: number;
  config: number;
  valrt: number;
  vresetId: number;
  status: number;
}

export class VirtualMax17048 implements VirtualI2cDevice {
  private pointer = 0;
  private words: Words = { ...MAX17048_POR };
  private vcell = 0;
  private soc = 0;
  private crate = 0;
  private rateFrom: { atMs: number; socPct: number } | null = null;
  private socBelowThreshold = false;
  private wholeSocPct: number | null = null;
  /** Transfers that wrote a read-only register (for tests). */
  ignoredWrites = 0;

  constructor(private readonly analog: () => GaugeAnalog, private readonly clock: Clock, readonly id = 0x00) {
    this.powerOnReset();
  }

  /** Power-up or a CMD reset: every register to its POR value, RI set. */
  powerOnReset(): void {
    this.words = { ...MAX17048_POR, vresetId: MAX17048_POR.vresetId | (this.id & 0xff) };
    this.pointer = 0;
    this.crate = 0;
    this.rateFrom = null;
    this.socBelowThreshold = false;
    this.wholeSocPct = null;
    this.sample();
  }

  /** A register's value without a bus transfer (for tests). */
  peek(register: number): number {
    this.update();
    return this.word(register);
  }

  write(bytes: readonly number[]): void {
    if (bytes.length === 0) return;
    this.update();
    this.pointer = bytes[0]!;
    // Registers are written as whole words, MSB then LSB; a lone byte changes nothing.
    for (let i = 1; i + 1 < bytes.length; i += 2) {
      this.writeWord(this.pointer + i - 1, (bytes[i]! << 8) | bytes[i + 1]!);
    }
  }

  read(length: number): number[] {
    this.update();
    const out: number[] = [];
    // Byte addresses: a register's MSB at its even address, its LSB at the next; a longer
    // read runs on into the following register.
    for (let i = 0; i < length; i++) {
      const address = (this.pointer + i) & 0xff;
      const word = this.word(address & 0xfe);
      out.push(address & 1 ? word & 0xff : word >> 8);
    }
    return out;
  }

  private word(register: number): number {
    const w = this.words;
    switch (register) {
      case MAX17048_REG.vcell: return this.vcell;
      case MAX17048_REG.soc: return this.soc;
      // QuickStart acts at once and reads back 0; HibStat is the IC's.
      case MAX17048_REG.mode: return w.mode | (this.hibernating() ? MODE_HIB_STAT : 0);
      case MAX17048_REG.version: return VIRTUAL_MAX17048_VERSION;
      case MAX17048_REG.hibrt: return w.hibrt;
      case MAX17048_REG.config: return w.config;
      case MAX17048_REG.valrt: return w.valrt;
      case MAX17048_REG.crate: return this.crate & 0xffff;
      case MAX17048_REG.vresetId: return w.vresetId;
      case MAX17048_REG.status: return w.status;
      default: return 0xffff; // unused addresses, the write-only TABLE and CMD
    }
  }

  private writeWord(register: number, value: number): void {
    const w = this.words;
    switch (register) {
      case MAX17048_REG.mode:
        w.mode = value & MODE_EN_SLEEP; // HibStat is the IC's, QuickStart acts and clears
        if (value & MODE_QUICK_START) this.quickStart();
        return;
      case MAX17048_REG.hibrt: w.hibrt = value; return;
      case MAX17048_REG.config: w.config = value; this.update(); return;
      case MAX17048_REG.valrt: w.valrt = value; return;
      // ID is one-time programmed at the factory: only VRESET and Dis are written.
      case MAX17048_REG.vresetId: w.vresetId = (value & 0xff00) | (w.vresetId & 0x00ff); return;
      // The host can clear flags, not raise them; EnVR and the low byte are plain bits.
      case MAX17048_REG.status:
        w.status = (w.status & value & STATUS_FLAGS) | (value & (STATUS.enVr | 0x00ff));
        return;
      case MAX17048_REG.cmd:
        if (value === CMD_POR) this.powerOnReset();
        return;
      default:
        this.ignoredWrites++; // VCELL, SOC, VERSION, CRATE
    }
  }

  /** Sleep (EnSleep and CONFIG.SLEEP) halts the ADC and the gauge: the registers hold. */
  private asleep(): boolean {
    return (this.words.mode & MODE_EN_SLEEP) !== 0 && (this.words.config & CONFIG_SLEEP) !== 0;
  }

  /**
   * HIBRT = FFFFh keeps the IC in hibernate, 0000h out of it (HIBRT register). The
   * automatic entry on a small CRATE in between is not modelled: it changes only how
   * often the IC samples, which this model does not resolve.
   */
  private hibernating(): boolean {
    return this.words.hibrt === 0xffff;
  }

  private quickStart(): void {
    this.rateFrom = null;
    this.crate = 0;
    this.sample();
  }

  private sample(): void {
    const a = this.analog();
    this.vcell = clamp(Math.round(a.cellVoltageV / VCELL_LSB_V), 0, 0xffff);
    this.soc = clamp(Math.round(a.socPct / SOC_LSB_PCT), 0, 0xffff);
    const now = this.clock.now();
    if (!this.rateFrom) {
      this.rateFrom = { atMs: now, socPct: a.socPct };
    } else if (now - this.rateFrom.atMs >= CRATE_UPDATE_MS) {
      const perHour = (a.socPct - this.rateFrom.socPct) / ((now - this.rateFrom.atMs) / 3_600_000);
      this.crate = clamp(Math.round(perHour / CRATE_LSB_PCT_PER_H), -0x8000, 0x7fff);
      this.rateFrom = { atMs: now, socPct: a.socPct };
    }
  }

  private update(): void {
    if (this.asleep()) return;
    this.sample();
    const vcellV = this.vcell * VCELL_LSB_V;
    const socPct = this.soc * SOC_LSB_PCT;
    const below = socPct < decodeAthd(this.words.config);
    if (below && !this.socBelowThreshold) this.raise(STATUS.hd); // HD marks the crossing, not the level
    this.socBelowThreshold = below;
    const whole = Math.floor(socPct);
    if (this.wholeSocPct !== null && whole !== this.wholeSocPct && this.words.config & CONFIG_ALSC) this.raise(STATUS.sc);
    this.wholeSocPct = whole;
    const valrt = this.words.valrt;
    if (vcellV < (valrt >> 8) * VALRT_LSB_V) this.raise(STATUS.vl);
    if (vcellV > (valrt & 0xff) * VALRT_LSB_V) this.raise(STATUS.vh);
  }

  /** Any alert flag also sets CONFIG.ALRT and pulls the ALRT pin (CONFIG register, ALRT). */
  private raise(flag: number): void {
    this.words.status |= flag;
    this.words.config |= CONFIG_ALRT;
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}
