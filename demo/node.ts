// One node of the virtual field across its life: a real agent while it runs; after a
// critical shutdown a halted Pi whose battery the panel recharges, until the wake path
// switches it on again (docs/agent.md, "The wake path").
import type { Logger } from 'pino';
import { Agent } from '../agent/index.js';
import type { AgentConfig } from '../agent/config.js';
import type { Clock, Timer } from '../ground/clock.js';
import { parseHardwareConfig } from '../hardware/config.js';
import { VirtualNode } from '../hardware/virtual/node.js';
import type { NodePlan } from './plan.js';

export type NodePower = 'on' | 'off' | 'stopped';

/** How often a halted node's wake level is checked: a few slots. */
const WAKE_CHECK_MS = 5 * 60_000;

export class FieldNode {
  agent: Agent | undefined;
  power: NodePower = 'stopped';
  /** Why the node is off, when it is. */
  offReason: string | undefined;
  /** Times the node went down at the critical level and came back. */
  restarts = 0;
  private halted: { node: VirtualNode; timer: Timer } | undefined;
  private closing = false;

  constructor(
    readonly plan: NodePlan,
    private config: AgentConfig,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get nodeId(): string {
    return this.plan.nodeId;
  }

  /** Battery as the virtual plant holds it (ground truth, not the agent's estimate). */
  trueSocPct(): number | undefined {
    return this.halted?.node.plant.cell.socPct ?? this.agent?.hardware.virtual?.plant.cell.socPct;
  }

  async start(): Promise<void> {
    this.agent = await Agent.start(this.config, { clock: this.clock, log: this.log, shutdown: (reason) => this.poweredOff(reason) });
    this.power = 'on';
    this.offReason = undefined;
  }

  /**
   * The agent has stopped itself (critical battery or a shutdown command). The wake path
   * is a power board that cuts the Pi's 5 V and restores it once the battery is back above
   * E′_th; meanwhile the charger runs on its power-on defaults (nothing programs it) and
   * the Pi draws nothing.
   */
  private async poweredOff(reason: string): Promise<void> {
    const soc = this.agent?.hardware.virtual?.plant.cell.socPct ?? 0;
    this.agent = undefined;
    this.power = 'off';
    this.offReason = reason;
    if (this.closing) return;
    const wakePct = this.config.thresholds.eThUpPct + 5;
    this.log.warn({ node: this.nodeId, reason, batteryPct: Number(soc.toFixed(1)), wakePct }, 'node powered off; it wakes when its battery is recharged');
    const hw = this.config.hardware;
    const halted = new VirtualNode({
      clock: this.clock,
      config: parseHardwareConfig({ ...hw, virtual: { ...hw.virtual, initialSocPct: soc, load: { ...hw.virtual.load, idleW: 0, computeW: 0 } } }),
    });
    halted.start();
    const timer = this.clock.setInterval(() => {
      halted.plant.advanceTo(this.clock.now());
      const now = halted.plant.cell.socPct;
      if (now < wakePct || this.closing) return;
      this.wake(now).catch((err: Error) => this.log.error({ node: this.nodeId, err: err.message }, 'node did not restart'));
    }, WAKE_CHECK_MS);
    this.halted = { node: halted, timer };
  }

  private async wake(socPct: number): Promise<void> {
    this.dropHalted();
    const hw = this.config.hardware;
    this.config = { ...this.config, hardware: { ...hw, battery: { ...hw.battery, initialSocPct: socPct }, virtual: { ...hw.virtual, initialSocPct: socPct } } };
    this.restarts++;
    this.log.info({ node: this.nodeId, batteryPct: Number(socPct.toFixed(1)) }, 'node powered on by the wake path');
    await this.start();
  }

  private dropHalted(): void {
    this.halted?.timer.cancel();
    this.halted?.node.dispose();
    this.halted = undefined;
  }

  /** Stops the agent (flushing its spool to the broker) or the halted node. */
  async stop(reason: string): Promise<void> {
    this.closing = true;
    this.dropHalted();
    const agent = this.agent;
    this.agent = undefined;
    this.power = 'stopped';
    if (agent) await agent.stop(reason);
  }
}
