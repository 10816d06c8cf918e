// A folder laid out like /sys/class/rtc/rtc0 for the RtcWakealarm driver, and the
// kernel's side of it for the virtual node: the RTC's time in since_epoch, and the alarm
// that fires once the clock passes it (one-shot: it is disarmed as it fires).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface VirtualRtcSpec {
  device?: string;
  /** The RTC's time now, seconds since the epoch. */
  sinceEpochS: number;
  /** What the driver reports in `name`; the Pi 5's is rpi-rtc. */
  name?: string;
}

export function createRtcTree(root: string, spec: VirtualRtcSpec): string {
  const dir = join(root, spec.device ?? 'rtc0');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'name'), `${spec.name ?? 'rpi-rtc soc:rpi_rtc'}\n`);
  writeFileSync(join(dir, 'wakealarm'), '');
  setRtcTime(dir, spec.sinceEpochS);
  return dir;
}

/** The RTC ticks: since_epoch follows the virtual clock. */
export function setRtcTime(dir: string, sinceEpochS: number): void {
  writeFileSync(join(dir, 'since_epoch'), `${Math.floor(sinceEpochS)}\n`);
}

/** The armed alarm, seconds since the epoch, or null ("" and "0" are disarmed). */
export function armedAlarm(dir: string): number | null {
  const text = readFileSync(join(dir, 'wakealarm'), 'utf8').trim();
  return text === '' || text === '0' ? null : Number(text);
}

/** Fires the alarm if the RTC has reached it: disarms it and returns true. */
export function fireIfDue(dir: string, sinceEpochS: number): boolean {
  const alarm = armedAlarm(dir);
  if (alarm === null || sinceEpochS < alarm) return false;
  writeFileSync(join(dir, 'wakealarm'), '');
  return true;
}
