// Power policy (SPEC.md §3): power saving with hysteresis and the dynamic power-mode table.
//  - E < E_th: γ → 0. The node refuses new jobs, drops the CPU to its lowest mode and says so.
//    The job already running is finished: it is seconds long and its energy is mostly spent,
//    so aborting it would waste what it cost; a job waiting behind it is handed back to the
//    gateway at once, which can route it to an active node (the paper's device would keep
//    it unprocessed until E′_th — with a gateway that can reroute, waiting helps nobody).
//  - E > E′_th: γ → 1, the mode follows the table PM(E) again.
//  - E < critical (below E_th): final state, spool flush and the shutdown action.
// Every transition is logged and published as an event.
import type { Clock } from '../ground/clock.js';
import type { Log } from '../ground/log.js';
import { PROTOCOL_VERSION, powerModeAt, type EventMessage, type ModeStep, type PowerModeEntry } from '../protocol/index.js';
import type { ThresholdsJ } from './config.js';
import type { BatteryLevel, PolicyView } from './ledger.js';

export interface PowerActions {
  /** Sets the cpufreq operating point named in the hardware config. */
  applyMode(name: string): Promise<void>;
  /** Stops taking jobs and hands back waiting ones; returns what was done, for the event. */
  enterSaving(): Promise<string>;
  leaveSaving(): void;
  publishEvent(event: EventMessage): void;
  /** Final state, spool flush and shutdown; called once. */
  critical(level: BatteryLevel): Promise<void>;
}

export interface PowerPolicyOptions {
  nodeId: string;
  clock: Clock;
  modes: PowerModeEntry[];
  modeTable: ModeStep[];
  thresholds: ThresholdsJ;
  queue(): number;
  actions: PowerActions;
  log: Log;
}

export class PowerPolicy implements PolicyView {
  private g: 0 | 1 = 1;
  private pm: number | null = null;
  private isCritical = false;
  private chain: Promise<void> = Promise.resolve();
  private modes: PowerModeEntry[];
  private table: ModeStep[];
  private th: ThresholdsJ;

  constructor(private readonly o: PowerPolicyOptions) {
    this.modes = o.modes;
    this.table = o.modeTable;
    this.th = o.thresholds;
  }

  gamma(): 0 | 1 {
    return this.g;
  }

  /** PM index in force; 0 while in power saving (the slot record's convention). */
  powerMode(): number {
    return this.g === 0 ? 0 : (this.pm ?? 0);
  }

  /** The PM the CPU is set to, even in power saving. */
  cpuMode(): number | null {
    return this.pm;
  }

  queue(): number {
    return this.o.queue();
  }

  acceptsJobs(): boolean {
    return this.g === 1 && !this.isCritical;
  }

  get critical(): boolean {
    return this.isCritical;
  }

  get thresholds(): ThresholdsJ {
    return this.th;
  }

  get modeTable(): { modes: PowerModeEntry[]; modeTable: ModeStep[] } {
    return { modes: this.modes, modeTable: this.table };
  }

  setThresholds(t: ThresholdsJ): void {
    this.th = t;
  }

  setTable(modes: PowerModeEntry[], modeTable: ModeStep[]): void {
    this.modes = modes;
    this.table = modeTable;
  }

  /** Resolves when every transition started so far is done. */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Feeds a new battery level; transitions run one at a time, in order. */
  update(level: BatteryLevel): Promise<void> {
    this.chain = this.chain.then(() => this.step(level)).catch((err: Error) => {
      this.o.log.error({ err: err.message }, 'power policy step failed');
    });
    return this.chain;
  }

  private lowestMode(): PowerModeEntry {
    return this.modes.reduce((a, b) => (b.powerMode < a.powerMode ? b : a));
  }

  private event(kind: EventMessage['kind'], level: BatteryLevel, detail: string): void {
    const e: EventMessage = {
      v: PROTOCOL_VERSION, nodeId: this.o.nodeId, atMs: Math.round(this.o.clock.now()), kind,
      batteryJ: Math.max(0, level.energyJ), batteryPct: Math.min(100, Math.max(0, level.socPct)),
      gamma: this.g, powerMode: this.powerMode(), detail,
    };
    this.o.log.info({ event: kind, batteryJ: e.batteryJ, batteryPct: e.batteryPct, gamma: e.gamma, powerMode: e.powerMode }, detail);
    this.o.actions.publishEvent(e);
  }

  private async setMode(pm: number, level: BatteryLevel, why: string): Promise<void> {
    if (pm === this.pm) return;
    const mode = this.modes.find((m) => m.powerMode === pm);
    if (!mode) throw new Error(`power mode ${pm} is not in the table`);
    await this.o.actions.applyMode(mode.name);
    const from = this.pm;
    this.pm = pm;
    this.event('mode-change', level, `power mode ${from ?? '-'} → ${pm} (${mode.name}): ${why}`);
  }

  private async step(level: BatteryLevel): Promise<void> {
    if (this.isCritical) return;
    const e = level.energyJ;
    if (e < this.th.criticalJ) {
      this.isCritical = true;
      this.g = 0;
      this.event('critical', level, `battery ${e.toFixed(0)} J below the critical ${this.th.criticalJ.toFixed(0)} J: shutting down`);
      await this.o.actions.critical(level);
      return;
    }
    if (this.g === 1 && e < this.th.eThJ) {
      this.g = 0;
      const done = await this.o.actions.enterSaving();
      await this.setMode(this.lowestMode().powerMode, level, 'power saving');
      this.event('power-saving-enter', level, `battery ${e.toFixed(0)} J below E_th ${this.th.eThJ.toFixed(0)} J: refusing new jobs; ${done}`);
      return;
    }
    if (this.g === 0 && e > this.th.eThUpJ) {
      this.g = 1;
      this.o.actions.leaveSaving();
      this.event('power-saving-exit', level, `battery ${e.toFixed(0)} J above E′_th ${this.th.eThUpJ.toFixed(0)} J: taking jobs again`);
    }
    if (this.g === 1) await this.setMode(powerModeAt(this.table, e, level.capacityJ), level, `battery at ${level.socPct.toFixed(1)} %`);
    else if (this.pm === null) await this.setMode(this.lowestMode().powerMode, level, 'starting in power saving');
  }

  /** Starts in power saving when the first level is already below E′_th... */
  initialise(level: BatteryLevel): Promise<void> {
    // After a restart the node does not know which side of the hysteresis band it was on;
    // inside the band it starts saving, the safe side (it leaves once E > E′_th).
    if (level.energyJ <= this.th.eThUpJ) this.g = 0;
    return this.update(level);
  }
}
