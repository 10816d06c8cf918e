// Which wake path a node has (docs/hardware.md "Wake paths"), validated at the edge. The
// agent's config embeds it as `wake`; hardware/wake/open.ts builds the path from it.
import { z } from 'zod';
import { WITTYPI4_ADDRESS } from './wittyPi4.js';

/** The Witty Pi 4's threshold registers hold 2.0–25.4 V in 0.1 V steps (255 is off). */
const boardVolts = z.number().min(2).max(25.4).nullable();

export const wakeConfigSchema = z.discriminatedUnion('path', [
  /** Nothing can power the node up again: it refuses to sleep. */
  z.strictObject({ path: z.literal('none') }),
  /** The Pi 5's own RTC (POWER_OFF_ON_HALT=1 in its EEPROM, deploy/wake-paths.md). */
  z.strictObject({
    path: z.literal('rtc-wakealarm'),
    sysfsRoot: z.string().min(1).default('/sys/class/rtc'),
    device: z.string().regex(/^rtc\d+$/, 'must name an RTC device such as rtc0').default('rtc0'),
  }),
  z.strictObject({
    path: z.literal('witty-pi-4'),
    /** /dev/i2c-N the board answers on; default: the node's own bus (hardware.i2cBus). */
    bus: z.number().int().min(0).optional(),
    address: z.number().int().min(0x08).max(0x77).default(WITTYPI4_ADDRESS),
    /**
     * Low-voltage shutdown and the higher voltage that powers the node up again, written to
     * the board at start (null: that threshold off). Both left out: the board keeps what
     * UUGear's wittyPi.sh set.
     */
    shutdownV: boardVolts.optional(),
    recoveryV: boardVolts.optional(),
  }),
  /** The virtual node's RTC: a sysfs-like folder (hardware/virtual/rtc.ts) whose time follows the node's clock. */
  z.strictObject({
    path: z.literal('virtual'),
    /** Where the RTC's folder is laid out; default: a new temporary folder. */
    sysfsRoot: z.string().min(1).optional(),
  }),
]).superRefine((w, ctx) => {
  if (w.path !== 'witty-pi-4') return;
  const { shutdownV, recoveryV } = w;
  // As on every power board: a battery that recovers a little at rest must not boot the
  // node straight into another low-voltage shutdown.
  if (typeof shutdownV === 'number' && typeof recoveryV === 'number' && !(recoveryV > shutdownV)) {
    ctx.addIssue({ code: 'custom', path: ['recoveryV'], message: `the boot (recovery) voltage ${recoveryV} V must be above the shutdown voltage ${shutdownV} V, or the node would boot into another shutdown` });
  }
});

export type WakeConfig = z.output<typeof wakeConfigSchema>;
export type WakeConfigInput = z.input<typeof wakeConfigSchema>;
