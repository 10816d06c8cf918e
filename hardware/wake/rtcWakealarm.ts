// Wake through the kernel's RTC class: /sys/class/rtc/rtcN/wakealarm
// (Documentation/ABI/testing/sysfs-class-rtc). On a Pi 5 rtc0 is the board's own RTC, and
// with POWER_OFF_ON_HALT=1 in the bootloader EEPROM a halted Pi 5 powers off and its
// alarm powers it on again (docs/hardware.md). The file holds seconds since the epoch;
// the kernel refuses a new alarm with EBUSY while one is armed, and a time not in the
// future (0 by convention) disarms it (drivers/rtc/sysfs.c, wakealarm_store). Reading it
// back gives the armed time, or nothing when disarmed.
import { access, constants, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../../ground/clock.js';
import { errorText } from '../i2c.js';
import { type WakeCheck, type WakePath, checkBy, wakeDelayMs } from './wakePath.js';

export interface RtcWakealarmOptions {
  /** Default /sys/class/rtc; tests point it at a temporary folder (hardware/virtual/rtc.ts). */
  sysfsRoot?: string;
  /** Default rtc0. */
  device?: string;
}

/** 2020-01-01: an RTC reading earlier than this has lost its time (no backup cell). */
const VALID_SINCE_S = 1_577_836_800;
const MIN_DELAY_MS = 2000;
/** The kernel accepts any future time; a year keeps a typo from arming a decade. */
const MAX_DELAY_MS = 366 * 86_400_000;

export class RtcWakealarm implements WakePath {
  readonly dir: string;

  constructor(private readonly clock: Clock, options: RtcWakealarmOptions = {}) {
    this.dir = join(options.sysfsRoot ?? '/sys/class/rtc', options.device ?? 'rtc0');
  }

  describe(): string {
    return `RTC wake alarm (${this.dir}/wakealarm)`;
  }

  check(): Promise<WakeCheck> {
    return checkBy(async () => {
      const file = this.file('wakealarm');
      try {
        await access(file, constants.W_OK);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ENOENT') {
          throw new Error(`${file} does not exist: this board has no RTC that can wake it (a Pi 5 has one; older Pis need a power board with an RTC, such as the Witty Pi 4)`);
        }
        if (code === 'EACCES' || code === 'EPERM') {
          throw new Error(`no permission to write ${file}: run the agent as root or install the systemd-tmpfiles rule from docs/hardware.md (Wake paths)`);
        }
        throw new Error(`cannot access ${file}: ${errorText(err)}`);
      }
      const rtcS = await this.rtcSeconds();
      if (rtcS !== null && rtcS < VALID_SINCE_S) {
        throw new Error(`the RTC reads ${new Date(rtcS * 1000).toISOString()} (${this.file('since_epoch')}): it lost its time, so an alarm would fire at the wrong moment; fit a backup cell on the RTC connector and set the clock (\`sudo hwclock -w\`)`);
      }
    });
  }

  /**
   * The alarm is the RTC's own time plus the wanted delay, so an RTC that is off by some
   * seconds still wakes the node after the delay the gateway asked for.
   */
  async setWakeAt(epochMs: number): Promise<void> {
    const nowMs = this.clock.now();
    const delayMs = wakeDelayMs(this.describe(), nowMs, epochMs, MIN_DELAY_MS, MAX_DELAY_MS);
    const rtcNowS = (await this.rtcSeconds()) ?? Math.floor(nowMs / 1000);
    const alarmS = rtcNowS + Math.ceil(delayMs / 1000);
    await this.write('0'); // disarm first: an armed alarm makes the next write fail with EBUSY
    await this.write(String(alarmS));
    const armed = await this.readAlarm();
    if (armed !== alarmS) {
      throw new Error(`${this.describe()}: wrote ${alarmS} but read back ${armed ?? 'nothing'}; the RTC did not take the alarm`);
    }
  }

  async clear(): Promise<void> {
    await this.write('0');
    const armed = await this.readAlarm();
    if (armed !== null) throw new Error(`${this.describe()}: wrote 0 but the alarm is still armed at ${armed}`);
  }

  /** The armed alarm in RTC seconds since the epoch, or null. */
  async readAlarm(): Promise<number | null> {
    const text = await this.read('wakealarm');
    // The kernel prints nothing when disarmed; a plain file written 0 holds "0".
    if (text === '' || text === '0') return null;
    const s = Number(text);
    if (!Number.isInteger(s)) throw new Error(`${this.file('wakealarm')} holds "${text}", not seconds since the epoch`);
    return s;
  }

  private async rtcSeconds(): Promise<number | null> {
    let text: string;
    try {
      text = (await readFile(this.file('since_epoch'), 'utf8')).trim();
    } catch {
      return null; // no since_epoch: fall back to the node's clock
    }
    const s = Number(text);
    return text !== '' && Number.isFinite(s) ? s : null;
  }

  private file(name: string): string {
    return join(this.dir, name);
  }

  private async read(name: string): Promise<string> {
    try {
      return (await readFile(this.file(name), 'utf8')).trim();
    } catch (err) {
      throw new Error(`cannot read ${this.file(name)}: ${errorText(err)}`);
    }
  }

  private async write(value: string): Promise<void> {
    try {
      await writeFile(this.file('wakealarm'), `${value}\n`);
    } catch (err) {
      throw new Error(`cannot write "${value}" to ${this.file('wakealarm')}: ${errorText(err)}`);
    }
  }
}
