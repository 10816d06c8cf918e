// One node of the virtual field across its life: a real agent while it runs; after a
// planned sleep or a critical shutdown a halted Pi whose battery the panel recharges, until
// its RTC alarm or its recovered battery switches it on again, as a Pi boots: a new agent
// on the same spool folder (docs/agent.md, "The wake path").
import type { Logger } from 'pino';
import { Agent } from '../agent/index.js';
import type { AgentConfig } from '../agent/config.js';
import { join } from 'node:path';
import type { Clock } from '../ground/clock.js';
import { parseHardwareConfig } from '../hardware/config.js';
import { VirtualNode } from '../hardware/virtual/node.js';
import type { Plant } from '../hardware/virtual/plant.js';
import { PowerSupervisor, type PowerOff } from '../hardware/virtual/power.js';
import { armedAlarm } from '../hardware/virtual/rtc.js';
import type { NodePlan } from './plan.js';

export type NodePower = 'on' | 'off' | 'stopped';

/** A change of the node's power as its board sees it, at the simulated time it happened. */
export type PowerEvent =
  | { kind: 'off'; cause: PowerOff['cause']; reason: string; atMs: number; batteryPct: number }
  | { kind: 'on'; why: string; atMs: number; batteryPct: number };

/** Energy through the node's plants over its whole life, J (the plants' own ledgers). */
export interface NodeEnergy {
  harvestedJ: number;
  consumedJ: number;
  /** What the battery holds now. */
  storedJ: number;
}

/** How often the power board of a halted node looks at its alarm and battery: an alarm fires at most this late. */
const WAKE_CHECK_MS = 60_000;

export class FieldNode {
  agent: Agent | undefined;
  power: NodePower = 'stopped';
  /** Why the node is off, when it is. */
  offReason: string | undefined;
  /** Times the node went down (asleep or flat) and came back. */
  restarts = 0;
  /** When the RTC alarm of a node asleep is set to power it up, ms since the epoch. */
  wakeAtMs: number | undefined;
  private halted: { node: VirtualNode; supervisor: PowerSupervisor } | undefined;
  private closing = false;
  private readonly listeners = new Set<(e: PowerEvent) => void>();
  /**
   * What the plants already left behind took in and gave out: each agent and each halt has
   * a plant of its own, so the node's life is the sum of theirs.
   */
  private readonly retired = { harvestedJ: 0, consumedJ: 0 };

  constructor(
    readonly plan: NodePlan,
    private config: AgentConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get nodeId(): string {
    return this.plan.nodeId;
  }

  /** The node's virtual plant now: the halted one while it is off, else the running agent's. */
  plant(): Plant | undefined {
    return this.halted?.node.plant ?? this.agent?.hardware.virtual?.plant;
  }

  /** Calls `listener` at every power-off and power-on from now on; returns the unsubscribe. */
  onPower(listener: (e: PowerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The plants' ledgers over the node's life, brought up to the clock's now. */
  energy(): NodeEnergy {
    const plant = this.plant();
    plant?.advanceTo(this.clock.now());
    return {
      harvestedJ: this.retired.harvestedJ + (plant?.ledger.harvestedJ ?? 0),
      consumedJ: this.retired.consumedJ + (plant?.ledger.consumedJ ?? 0),
      storedJ: plant?.cell.energyJ ?? 0,
    };
  }

  private retire(plant: Plant | undefined): void {
    if (!plant) return;
    this.retired.harvestedJ += plant.ledger.harvestedJ;
    this.retired.consumedJ += plant.ledger.consumedJ;
  }

  private emit(e: PowerEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Battery as the virtual plant holds it (ground truth, not the agent's estimate). */
  trueSocPct(): number | undefined {
    return this.plant()?.cell.socPct;
  }

  async start(): Promise<void> {
    this.agent = await Agent.start(this.config, {
      clock: this.clock, log: this.log, shutdown: (reason) => this.poweredOff(reason, 'flat'), halt: (reason) => this.poweredOff(reason, 'sleep'),
    });
    this.power = 'on';
    this.offReason = undefined;
    this.wakeAtMs = undefined;
  }

  /**
   * The agent has halted the node: for a planned sleep with its RTC alarm set, or at the
   * critical level (or by a shutdown command). The power board takes over until it powers
   * the Pi up again (hardware/virtual/power.ts); meanwhile the charger runs on its power-on
   * defaults (nothing programs it) and the Pi draws only the board's sleep current.
   */
  private async poweredOff(reason: string, cause: PowerOff['cause']): Promise<void> {
    const plant = this.agent?.hardware.virtual?.plant;
    const soc = plant?.cell.socPct ?? 0;
    this.retire(plant);
    this.agent = undefined;
    this.power = 'off';
    this.offReason = reason;
    if (this.closing) return;
    this.emit({ kind: 'off', cause, reason, atMs: this.clock.now(), batteryPct: soc });
    const { thresholds, wake } = this.config;
    const off: PowerOff = cause === 'sleep' && wake.path === 'virtual' && wake.sysfsRoot
      ? { cause, rtcDir: join(wake.sysfsRoot, 'rtc0') }
      : { cause: 'flat', shutdownPct: thresholds.criticalPct, recoveryPct: thresholds.eThUpPct + 5 };
    const alarmS = off.cause === 'sleep' ? armedAlarm(off.rtcDir) : null;
    this.wakeAtMs = alarmS === null ? undefined : alarmS * 1000;
    this.log.warn({ node: this.nodeId, reason, batteryPct: Number(soc.toFixed(1)), ...(off.cause === 'sleep' ? { wakeAtMs: this.wakeAtMs } : { recoveryPct: off.recoveryPct }) }, 'node powered off');
    const hw = this.config.hardware;
    const halted = new VirtualNode({ clock: this.clock, config: parseHardwareConfig({ ...hw, virtual: { ...hw.virtual, initialSocPct: soc } }) });
    halted.start();
    const supervisor = new PowerSupervisor({
      clock: this.clock, plant: halted.plant, off, checkMs: WAKE_CHECK_MS,
      boot: (socPct, why) => void this.wake(socPct, why).catch((err: Error) => this.log.error({ node: this.nodeId, err: err.message }, 'node did not restart')),
    });
    this.halted = { node: halted, supervisor };
  }

  private async wake(socPct: number, why: string): Promise<void> {
    this.retire(this.halted?.node.plant);
    this.dropHalted();
    const hw = this.config.hardware;
    this.config = { ...this.config, hardware: { ...hw, battery: { ...hw.battery, initialSocPct: socPct }, virtual: { ...hw.virtual, initialSocPct: socPct } } };
    this.restarts++;
    this.log.info({ node: this.nodeId, batteryPct: Number(socPct.toFixed(1)), why }, 'node powered on by the wake path');
    // Powered on at the board's switch: the boot that follows is the node's, however long it takes.
    this.emit({ kind: 'on', why, atMs: this.clock.now(), batteryPct: socPct });
    await this.start();
  }

  private dropHalted(): void {
    this.halted?.supervisor.cancel();
    this.halted?.node.dispose();
    this.halted = undefined;
  }

  /** Stops the agent (flushing its spool to the broker) or the halted node. */
  async stop(reason: string): Promise<void> {
    this.closing = true;
    this.retire(this.plant());
    this.dropHalted();
    const agent = this.agent;
    this.agent = undefined;
    this.power = 'stopped';
    if (agent) await agent.stop(reason);
  }
}
