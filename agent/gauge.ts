// What the agent keeps of the fuel gauge, when the battery level comes from one. The
// gauge raises its SOC-low alert on its own (ALRT at ATHD, 19-6171 CONFIG and STATUS.HD):
// an early warning independent of the power policy's thresholds, so each one is logged and
// the last kept for `ping`. A gauge that reset is logged too: its SOC restarts from a
// voltage estimate, which is off while the cell is under load.
import type { Logger } from 'pino';
import type { NodeReading } from '../hardware/node.js';

export interface GaugeAlert {
  atMs: number;
  socPct: number;
  cellVoltageV: number;
}

export interface GaugeState {
  address: number;
  alertThresholdPct: number;
  /** The last reading's SOC and voltage, or its error. */
  socPct: number | null;
  cellVoltageV: number | null;
  error: string | null;
  /** SOC-low alerts since start, and the last one. */
  socLowAlerts: number;
  lastSocLowAlert: GaugeAlert | null;
  /** Resets (brown-outs) seen since start; the gauge was configured again after each. */
  resets: number;
}

export class GaugeWatch {
  private state: GaugeState | undefined;

  constructor(private readonly log: Logger) {}

  /** Takes one reading's gauge part (none: the level comes from the INA219 estimate). */
  seen(reading: NodeReading): void {
    const g = reading.gauge;
    if (!g) return;
    const s: GaugeState = this.state ??= {
      address: g.address, alertThresholdPct: g.alertThresholdPct, socPct: null, cellVoltageV: null, error: null, socLowAlerts: 0, lastSocLowAlert: null, resets: 0,
    };
    s.socPct = g.socPct ?? null;
    s.cellVoltageV = g.cellVoltageV ?? null;
    s.error = g.error ?? null;
    if (g.recoveredFromReset) {
      s.resets++;
      this.log.warn({ address: g.address }, 'fuel gauge had reset (brown-out?): configured again; its state of charge restarts from the cell voltage');
    }
    if (g.socLowAlert && g.socPct !== undefined && g.cellVoltageV !== undefined) {
      s.socLowAlerts++;
      s.lastSocLowAlert = { atMs: Math.round(reading.timeMs), socPct: g.socPct, cellVoltageV: g.cellVoltageV };
      this.log.warn({ socPct: g.socPct, alertThresholdPct: g.alertThresholdPct, cellVoltageV: g.cellVoltageV }, 'fuel gauge alert: state of charge below its alert threshold');
    }
  }

  /** For `ping`: undefined when the node has no gauge or has not read it yet. */
  snapshot(): GaugeState | undefined {
    return this.state && { ...this.state };
  }
}
