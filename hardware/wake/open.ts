// Builds a node's wake path from its `wake` config: the Pi 5's RTC, a Witty Pi 4 on the
// node's I2C bus (its voltage thresholds written first), or the virtual node's RTC.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../ground/clock.js';
import { type I2cBus, errorText, openI2cBus } from '../i2c.js';
import { createRtcTree, setRtcTime } from '../virtual/rtc.js';
import type { WakeConfig } from './config.js';
import { RtcWakealarm } from './rtcWakealarm.js';
import { type WakeCheck, type WakePath } from './wakePath.js';
import { WittyPi4 } from './wittyPi4.js';

export interface OpenedWake {
  kind: WakeConfig['path'];
  /** Undefined for `none`. */
  path: WakePath | undefined;
  /** Releases what was opened for the path alone (a second I2C bus). */
  close(): Promise<void>;
  /**
   * What could not be set up (the Witty Pi 4's thresholds not written). The node still
   * runs: serving does not need the board, and check() says whether it can sleep.
   */
  problem?: string;
}

export interface WakeDeps {
  clock: Clock;
  /** The node's own I2C bus and its number: a Witty Pi 4 on it shares the bus. */
  bus: I2cBus;
  busNumber: number;
}

/**
 * The RTC driver on a folder standing for /sys/class/rtc, whose since_epoch is set to the
 * node's clock before every use: the virtual RTC keeps the node's time, as a Pi 5's does.
 */
class VirtualRtcWake implements WakePath {
  private readonly driver: RtcWakealarm;
  readonly dir: string;

  constructor(private readonly clock: Clock, root: string) {
    this.dir = createRtcTree(root, { sinceEpochS: clock.now() / 1000 });
    this.driver = new RtcWakealarm(clock, { sysfsRoot: root });
  }

  describe(): string {
    return `virtual ${this.driver.describe()}`;
  }

  check(): Promise<WakeCheck> {
    this.tick();
    return this.driver.check();
  }

  setWakeAt(epochMs: number): Promise<void> {
    this.tick();
    return this.driver.setWakeAt(epochMs);
  }

  clear(): Promise<void> {
    return this.driver.clear();
  }

  private tick(): void {
    setRtcTime(this.dir, this.clock.now() / 1000);
  }
}

export async function openWakePath(config: WakeConfig, deps: WakeDeps): Promise<OpenedWake> {
  const kind = config.path;
  const nothing = async () => {};
  switch (config.path) {
    case 'none':
      return { kind, path: undefined, close: nothing };
    case 'rtc-wakealarm':
      return { kind, path: new RtcWakealarm(deps.clock, { sysfsRoot: config.sysfsRoot, device: config.device }), close: nothing };
    case 'virtual': {
      // A folder of its own goes with the process; one named in the config outlives it, so
      // whoever plays the sleeping node's power can fire the alarm (fireIfDue) after the halt.
      if (config.sysfsRoot) return { kind, path: new VirtualRtcWake(deps.clock, config.sysfsRoot), close: nothing };
      const root = mkdtempSync(join(tmpdir(), 'heliomesh-rtc-'));
      return { kind, path: new VirtualRtcWake(deps.clock, root), close: async () => rmSync(root, { recursive: true, force: true }) };
    }
    case 'witty-pi-4': {
      const own = config.bus !== undefined && config.bus !== deps.busNumber;
      const bus = own ? await openI2cBus(config.bus!) : deps.bus;
      const board = new WittyPi4(bus, deps.clock, { address: config.address });
      const opened: OpenedWake = { kind, path: board, close: own ? () => bus.close() : nothing };
      if (config.shutdownV === undefined && config.recoveryV === undefined) return opened;
      const thresholds = { shutdownV: config.shutdownV ?? null, recoveryV: config.recoveryV ?? null };
      try {
        await board.setVoltageThresholds(thresholds);
      } catch (err) {
        opened.problem = `cannot write the shutdown ${thresholds.shutdownV ?? 'off'} V / recovery ${thresholds.recoveryV ?? 'off'} V thresholds: ${errorText(err)}`;
      }
      return opened;
    }
  }
}
