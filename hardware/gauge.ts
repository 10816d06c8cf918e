// The battery level from a MAX17048 fuel gauge (19-6171), the alternative to counting
// energy through the battery INA219 (hardware/battery.ts): E = SOC × capacity. The gauge
// is configured (ATHD) before its first reading and again whenever it says it was reset,
// and its SOC-low alert is reported once per crossing, then cleared so that the next
// crossing raises it again. NodeHardware.read() decides which of the two gives the level.
import type { BatteryEstimate } from './battery.js';
import type { GaugeConfig } from './config.js';
import { type I2cBus, errorText } from './i2c.js';
import { Max17048 } from './max17048.js';

export interface GaugeReading {
  ok: boolean;
  address: number;
  cellVoltageV?: number;
  /** The SOC register as read: ModelGauge may show a little above 100 % at the end of a charge. */
  socPct?: number;
  chargeRatePctPerHour?: number;
  /** The ATHD the gauge holds. */
  alertThresholdPct: number;
  /**
   * The gauge flagged SOC low (STATUS.HD with CONFIG.ALRT): the cell crossed below ATHD
   * since the last reading. Cleared at the gauge once read.
   */
  socLowAlert?: boolean;
  /**
   * STATUS.RI was set: the gauge had powered up or browned out since it was configured, and
   * was configured again. Its SOC then restarts from a voltage estimate.
   */
  recoveredFromReset?: boolean;
  error?: string;
}

export class GaugeBattery {
  readonly driver: Max17048;
  private configured = false;

  constructor(bus: I2cBus, private readonly config: GaugeConfig, readonly capacityJ: number) {
    this.driver = new Max17048(bus, { address: config.address });
  }

  /** One reading of the gauge at monotonic time `atMs`; a failure is a health flag, never a throw. */
  async read(atMs: number, health: string[]): Promise<{ gauge: GaugeReading; battery: BatteryEstimate | null }> {
    const g = this.driver;
    const base = { address: g.address, alertThresholdPct: this.config.alertThresholdPct };
    try {
      if (!this.configured) await g.identify();
      const { alert, status } = await g.readAlert();
      const recoveredFromReset = this.configured && status.resetIndicator;
      if (!this.configured || status.resetIndicator) {
        // CONFIG.ATHD returns to 4 % at every power-on reset (Register Summary, CONFIG POR 971Ch).
        await g.setAlertThreshold(this.config.alertThresholdPct);
        // STATUS.RI: cleared once configured, so that a later RI tells of a lost configuration.
        await g.clearResetIndicator();
        this.configured = true;
      }
      if (recoveredFromReset) health.push(`gauge-reset:max17048@0x${g.address.toString(16)}`);
      // The IC keeps ALRT and the flags until the host clears them (CONFIG.ALRT, STATUS).
      if (alert) await g.clearAlert();
      const r = await g.read();
      // SOC is the share of the full cell (SOC register, 1/256 % per LSB): E = SOC × capacity.
      const socPct = Math.min(100, Math.max(0, r.socPct));
      const battery: BatteryEstimate = {
        source: 'max17048', energyJ: (socPct / 100) * this.capacityJ, capacityJ: this.capacityJ, socPct,
        resting: false, ocvCorrected: false, unmeasuredMs: 0, lastSampleMs: atMs,
      };
      // An alert pending from before the configuration was raised at the power-on ATHD, not
      // at the configured one: it counts only with the SOC below the configured threshold.
      const socLowAlert = alert && status.socLow && r.socPct < this.config.alertThresholdPct;
      return {
        gauge: { ...base, ok: true, ...r, socLowAlert, recoveredFromReset },
        battery,
      };
    } catch (err) {
      health.push(`gauge-${(err as { kind?: string }).kind ?? 'error'}:max17048@0x${g.address.toString(16)}`);
      return { gauge: { ...base, ok: false, error: errorText(err) }, battery: null };
    }
  }
}
