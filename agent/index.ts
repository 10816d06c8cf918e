// The agent's composition root: builds the hardware, the spool, the ledger, the power
// policy, the MQTT link and the block worker from one validated config, and wires them.
// Nothing below it reads files, the environment or the wall clock on its own (agent/parts.ts
// reads the files the config names, for it).
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Clock } from '../ground/clock.js';
import { buildNode, type NodeHardware, type NodeReading } from '../hardware/node.js';
import { openWakePath, type OpenedWake } from '../hardware/wake/open.js';
import { PROTOCOL_VERSION, thresholdProblems, type Command, type EventMessage, type ModeStep, type PowerModeEntry, type StateMessage } from '../protocol/index.js';
import { capacityJ, profileOf, thresholdsJ, type AgentConfig, type ThresholdsJ } from './config.js';
import { budget, within } from './deadline.js';
import { EnergyAccount } from './energy.js';
import { GaugeWatch } from './gauge.js';
import { IdleDraw } from './idle.js';
import { Ledger, type BatteryLevel } from './ledger.js';
import { Link } from './link.js';
import { linkOptions, loadWorker } from './parts.js';
import { PowerPolicy, type PowerActions } from './power.js';
import { profileModes } from './profile.js';
import { SeqStore } from './seq.js';
import { NodeSleep } from './sleep.js';
import { Spool } from './spool.js';
import { BlockWorker } from './worker.js';

export interface AgentDeps {
  clock: Clock;
  log: Logger;
  /**
   * What the critical level and the shutdown command do. Default: run the configured
   * command (systemctl poweroff). The virtual node passes one that stops the process.
   */
  shutdown?: (reason: string) => Promise<void>;
  /**
   * What halts the node for a planned sleep, once its wake alarm is set. Default: the
   * injected `shutdown` when there is one (the virtual node's power-off is the same
   * either way), else the configured haltCommand.
   */
  halt?: (reason: string) => Promise<void>;
  /** The service manager (systemd's sd_notify, cli/notify.ts); absent when none watches. */
  notify?: ServiceNotify;
}

/**
 * What a service manager is told: started, still turning (called from the sample loop on
 * every turn; the implementation rate-limits), and stopping.
 */
export interface ServiceNotify {
  ready(): void;
  alive(): void;
  stopping(): void;
}

/** Runs argv without a shell; a failure is reported, never ignored. */
export function commandShutdown(argv: string[], log: Logger): (reason: string) => Promise<void> {
  return (reason) => new Promise((resolve, reject) => {
    log.warn({ argv, reason }, 'running the shutdown command');
    execFile(argv[0]!, argv.slice(1), (err, _out, stderr) => (err ? reject(new Error(`${argv.join(' ')} failed: ${err.message} ${stderr}`)) : resolve()));
  });
}

/** What the power policy tells the agent, which is built after it. */
interface PolicyAlarms {
  critical: [level: BatteryLevel];
}

/** The policy's actions on the parts built before it; the critical level is raised as an alarm. */
function policyActions(hardware: NodeHardware, worker: BlockWorker | undefined, link: Link, alarms: EventEmitter<PolicyAlarms>): PowerActions {
  return {
    applyMode: (name) => hardware.applyPowerMode(name),
    enterSaving: async () => (worker ? worker.enterSaving((p) => link.publishJobOut(p)) : 'no worker: nothing held'),
    leaveSaving: () => worker?.leaveSaving(),
    publishEvent: (e) => {
      link.send('event', e);
      // The retained birth carries γ: a gateway that starts later must not see a stale one.
      if (e.kind === 'power-saving-enter' || e.kind === 'power-saving-exit') link.announce();
    },
    critical: async (level) => {
      alarms.emit('critical', level);
    },
  };
}

/**
 * What every turn of the sample loop does besides metering: feed the watchdog (if the loop
 * stops turning, the node must restart) and send telemetry at its own period.
 */
function sampleTurn(config: AgentConfig, link: Link, notify: ServiceNotify | undefined): (reading: NodeReading) => void {
  let lastTelemetryMs = -Infinity;
  return (reading) => {
    notify?.alive();
    if (config.telemetryPeriodMs <= 0 || reading.monotonicMs - lastTelemetryMs < config.telemetryPeriodMs) return;
    lastTelemetryMs = reading.monotonicMs;
    link.send('telemetry', {
      v: PROTOCOL_VERSION, nodeId: config.nodeId, atMs: Math.round(reading.timeMs),
      sensors: reading.sensors.map((s) => ({ name: s.name.slice(0, 40), ok: s.ok, busVoltageV: s.busVoltageV, currentMa: s.currentMa, powerMw: s.powerMw })),
    });
  };
}

export class Agent {
  stopped = false;
  /** True while a re-profile runs: offers are refused so the meter sees only the standard jobs. */
  profiling = false;
  readonly sleep: NodeSleep;
  /** The fuel gauge's alerts and resets, when the battery level comes from one. */
  readonly gauge: GaugeWatch;

  private constructor(
    readonly config: AgentConfig,
    readonly hardware: NodeHardware,
    readonly spool: Spool,
    private readonly seq: SeqStore,
    readonly ledger: Ledger,
    readonly policy: PowerPolicy,
    readonly link: Link,
    readonly worker: BlockWorker | undefined,
    private readonly log: Logger,
    private readonly notify: ServiceNotify | undefined,
    private readonly wake: OpenedWake,
    private readonly idle: IdleDraw,
    halt: (reason: string) => Promise<void>,
  ) {
    this.gauge = new GaugeWatch(log);
    this.sleep = new NodeSleep({
      clock: hardware.clock, log, wake, worker, drainMs: config.sleepDrainMs, stopFlushMs: config.stopFlushMs,
      event: (kind, detail) => this.event(kind, detail), publishJobOut: (p) => link.publishJobOut(p), announce: () => link.announce(),
      stop: (reason) => this.stop(reason, true), stopped: () => this.stopped, halt,
    });
  }

  /** Builds the parts in order, each from those before it, then connects them and starts. */
  static async start(config: AgentConfig, deps: AgentDeps): Promise<Agent> {
    const { clock, log } = deps;
    const shutdown = deps.shutdown ?? commandShutdown(config.shutdownCommand, log);
    const halt = deps.halt ?? deps.shutdown ?? commandShutdown(config.haltCommand, log);
    const hardware = await buildNode(config.hardware, { clock });
    hardware.virtual?.start();
    const wake = await openWakePath(config.wake, { clock, bus: hardware.bus, busNumber: config.hardware.i2cBus });
    if (wake.problem) log.error({ wake: config.wake.path, problem: wake.problem }, 'wake path not set up');
    const spool = Spool.open({ dir: config.spool.dir, maxBytes: config.spool.maxBytes });
    const st = spool.stats();
    if (st.entries || st.tornBytes) log.info({ pending: st.entries, tornBytes: st.tornBytes }, 'spool reopened');
    const seq = SeqStore.open({ dir: config.spool.dir, spool });
    if (seq.stats().fsFailures) log.error({ err: seq.stats().lastError }, 'cannot store the slot sequence: check the spool folder (disk full or read-only?)');
    const link = new Link(linkOptions(config, spool, clock, log));
    const worker = await loadWorker(config, hardware, clock, log);
    const alarms = new EventEmitter<PolicyAlarms>();
    const policy = new PowerPolicy({
      nodeId: config.nodeId, clock, modes: config.powerModes, modeTable: config.modeTable, thresholds: thresholdsJ(config),
      queue: () => worker?.queue() ?? 0, log, actions: policyActions(hardware, worker, link, alarms),
    });
    const turn = sampleTurn(config, link, deps.notify);
    const ledger = new Ledger({
      nodeId: config.nodeId, clock, source: hardware, policy, slotMs: config.slotMs, samplePeriodMs: 1000 / config.sampleHz,
      firstSeq: seq.nextSeq, seqStore: seq,
      onSeqError: (err) => log.error({ err }, 'cannot store the slot sequence: slot records wait in memory (disk full or read-only?)'),
      onSlot: (r) => {
        link.send('slot', r);
        void agent.slotClosed();
        log.info({ seq: r.seq, harvestJ: r.harvestJ, consumedJ: r.consumedJ, batteryPct: r.batteryPct, gamma: r.gamma, powerMode: r.powerMode, degraded: r.degraded }, 'slot closed');
      },
      onSample: (reading) => {
        turn(reading);
        agent.gauge.seen(reading);
      },
      onError: (err) => {
        // A failing sensor is not a hung agent: a restart would not mend the bus.
        deps.notify?.alive();
        log.warn({ err: err.message }, 'sensor read failed');
      },
    });
    // Without a worker the idle draw is still metered: every interval is an idle one.
    const idleMeter = worker?.energy ?? new EnergyAccount();
    if (!worker) ledger.onInterval((i) => idleMeter.interval(i, 0));
    const agent = new Agent(config, hardware, spool, seq, ledger, policy, link, worker, log, deps.notify, wake, new IdleDraw(idleMeter), halt);

    // Every part is built; now they are connected, and the node starts.
    if (worker) {
      worker.meter = ledger;
      worker.powerMode = () => policy.powerMode();
    }
    alarms.once('critical', (level) => void agent.critical(level, shutdown));
    let first = true;
    ledger.onBattery((b) => {
      void (first ? policy.initialise(b) : policy.update(b));
      first = false;
    });
    await ledger.start();
    // A battery below critical at the first reading has already stopped the agent.
    if (agent.stopped) return agent;
    await agent.sleep.recheck();
    link.start({
      birth: () => agent.birth(),
      onCommand: (cmd) => agent.command(cmd, shutdown),
      onJobIn: (payload) => agent.jobIn(payload),
      onSessionLost: () => agent.sessionLost(),
    });
    log.info({ nodeId: config.nodeId, fleet: config.fleet, group: config.group, gateway: config.gateway.url, slotMs: config.slotMs }, 'agent started');
    deps.notify?.ready();
    return agent;
  }

  /** The retained online state: the profile, γ, PM, the slot count and the battery. */
  private birth(): StateMessage {
    const { policy, ledger } = this;
    const level = ledger.latest();
    return {
      v: PROTOCOL_VERSION, status: 'online', nodeId: this.config.nodeId, atMs: Math.max(0, Math.round(this.hardware.clock.now())),
      profile: profileOf(this.config, policy.modeTable.modes, policy.modeTable.modeTable, policy.thresholds, this.worker?.shard, {
        ...(this.idle.estimateW() === undefined ? {} : { idleW: this.idle.forBirth() }), wake: this.sleep.wakeState(),
      }),
      gamma: policy.gamma(), powerMode: policy.powerMode(), nextSeq: ledger.nextSeq, seqEpoch: this.seq.epoch,
      ...(level ? { batteryJ: Math.max(0, level.energyJ) } : {}),
    };
  }

  private jobIn(payload: Buffer): void {
    const worker = this.worker;
    const sleeping = this.sleep.plan !== undefined;
    worker?.handle(payload, (out, hopTo) => (hopTo ? this.link.publishHop(hopTo, out) : this.link.publishJobOut(out)), this.policy.acceptsJobs() && !this.profiling && !sleeping, sleeping ? 'node is going to sleep' : undefined)
      .catch((err: Error) => this.log.warn({ err: err.message }, 'job message failed'));
  }

  /** A slot closed: the birth is re-published if the idle estimate drifted or the wake path's check changed. */
  private async slotClosed(): Promise<void> {
    if (this.stopped || this.sleep.plan) return;
    const wakeChanged = await this.sleep.recheck().catch(() => false);
    if (wakeChanged || this.idle.drifted()) this.link.announce();
  }

  /**
   * The gateway's cancels of a restart may not have got through; its successor knows
   * nothing of these jobs, so they would hold their queue places until sessionIdleMs.
   */
  private sessionLost(): void {
    if (!this.worker?.queue()) return;
    void this.worker.abandon(async () => {}, 'the broker restarted: the gateway that sent the job is gone')
      .then((n) => this.log.warn({ jobs: n }, 'held jobs dropped: the broker lost the session they came in'));
  }

  /** The battery fell below the critical level: last words within criticalFlushMs at most, then the shutdown action, which never waits on the network. */
  private async critical(level: BatteryLevel, shutdown: (reason: string) => Promise<void>): Promise<void> {
    await this.stop(`critical battery ${level.energyJ.toFixed(0)} J`, true, this.config.criticalFlushMs)
      .catch((err: Error) => this.log.error({ err: err.message }, 'error while stopping at the critical level'));
    await shutdown('critical battery').catch((err: Error) => this.log.error({ err: err.message }, 'shutdown action failed'));
  }

  async command(cmd: Command, shutdown: (reason: string) => Promise<void>): Promise<Record<string, unknown> | undefined> {
    this.log.info({ op: cmd.op, id: cmd.id }, 'command');
    const level = this.ledger.latest();
    switch (cmd.op) {
      case 'ping':
        return {
          nextSeq: this.ledger.nextSeq, gamma: this.policy.gamma(), powerMode: this.policy.powerMode(), batteryJ: level?.energyJ ?? null,
          battery: { source: this.config.hardware.battery.source, ...(this.gauge.snapshot() ? { gauge: this.gauge.snapshot() } : {}) },
          spool: this.spool.stats(), seq: this.ledger.seqStats(), link: this.link.counters, connection: this.link.connection(), jobs: { held: this.worker?.queue() ?? 0, ...this.worker?.counters },
          // What the meter charged jobs, and what it metered above idle while they computed (docs/agent.md "Per-job energy").
          ...(this.worker ? { jobEnergy: { ...this.worker.energy.totals, baselineW: this.worker.energy.baselineW } } : {}),
          // What the process costs the node: resident memory and CPU time since start.
          process: { rssBytes: process.memoryUsage().rss, cpuUserUs: process.cpuUsage().user, cpuSystemUs: process.cpuUsage().system },
        };
      case 'set-thresholds': {
        const t: ThresholdsJ = cmd.thresholds;
        const cap = capacityJ(this.config);
        const problems = thresholdProblems(t, cap);
        if (problems.length > 0) throw new Error(`${problems.map((p) => p.message).join('; ')} (battery capacity ${cap} J)`);
        this.policy.setThresholds(t);
        this.changed(`thresholds set to E_th ${t.eThJ} J, E′_th ${t.eThUpJ} J, critical ${t.criticalJ} J`);
        if (level) await this.policy.update(level);
        return undefined;
      }
      case 'set-mode-table':
        this.setTable(cmd.modes, cmd.modeTable);
        if (level) await this.policy.update(level);
        return undefined;
      case 're-profile':
        return this.reprofile(cmd.jobsPerMode);
      case 'shutdown':
        // Reply first (the caller publishes it when this returns), then go.
        setImmediate(() => void (async () => {
          await this.stop(`shutdown command: ${cmd.reason}`, true).catch((err: Error) => this.log.error({ err: err.message }, 'error while stopping'));
          await shutdown(cmd.reason).catch((err: Error) => this.log.error({ err: err.message }, 'shutdown action failed'));
        })());
        return { shuttingDown: true };
      case 'sleep':
        if (this.profiling) throw new Error('a re-profile is running; sleep when it is over');
        return this.sleep.command({ wakeAtMs: cmd.wakeAtMs, reason: cmd.reason });
    }
  }

  /**
   * Measures κ and C_E per power mode on this node (agent/profile.ts) and makes the result
   * the node's table: the birth is re-published with it, so the gateway re-solves the
   * node's chain with measured values. Offers are refused meanwhile; a held job must end first.
   */
  private async reprofile(jobsPerMode: number): Promise<Record<string, unknown>> {
    const worker = this.worker;
    if (!worker) throw new Error('this node serves no model: there is no standard job to profile');
    if (this.profiling) throw new Error('a re-profile is already running');
    if (this.policy.gamma() === 0) throw new Error('the node is in power saving; profiling would spend the energy it is saving');
    if (worker.queue() > 0) throw new Error(`the node holds ${worker.queue()} job(s); re-profile when it is idle`);
    this.profiling = true;
    const before = this.policy.powerMode();
    try {
      const modes = this.policy.modeTable.modes;
      const result = await profileModes({
        hardware: this.hardware, stack: worker.stack, ledger: this.ledger, clock: this.hardware.clock,
        modes, slotMs: this.config.slotMs, jobsPerMode,
        // Two samples at least, so the idle baseline is an average rather than one reading.
        idleMs: Math.max(2000 / this.config.sampleHz, Math.min(5000, this.config.slotMs)),
      });
      const measured = result.map((r): PowerModeEntry => ({ powerMode: r.powerMode, name: r.name, kappa: r.kappa, costJ: r.costJ }));
      // The idle draw of the mode the node returns to, until the meter has its own.
      const idle = result.find((r) => r.powerMode === before) ?? result[0];
      if (idle) this.idle.profiled(idle.baselineW);
      this.setTable(measured, this.policy.modeTable.modeTable);
      return { modes: measured, profile: result };
    } finally {
      // profileModes leaves the last mode applied; the policy's mode for the battery returns.
      const mode = this.policy.modeTable.modes.find((m) => m.powerMode === before);
      if (mode) await this.hardware.applyPowerMode(mode.name).catch((err: Error) => this.log.warn({ err: err.message }, 'power mode not restored after profiling'));
      this.profiling = false;
    }
  }

  private setTable(modes: PowerModeEntry[], table: ModeStep[]): void {
    const known = this.hardware.powerModes.map((m) => m.name);
    const unknown = modes.filter((m) => !known.includes(m.name));
    if (unknown.length) throw new Error(`modes ${unknown.map((m) => m.name).join(', ')} are not in this node's hardware.cpu.modes (${known.join(', ')})`);
    this.policy.setTable(modes, table);
    this.changed(`power-mode table set: ${table.map((s) => `≥${s.minFraction}→PM${s.powerMode}`).join(' ')}`);
  }

  private changed(detail: string): void {
    this.event('config-changed', detail);
  }

  /** An event with the node's state; the birth is re-published with it, except when the node goes to sleep. */
  private event(kind: EventMessage['kind'], detail: string): void {
    const level = this.ledger.latest();
    this.link.send('event', {
      v: PROTOCOL_VERSION, nodeId: this.config.nodeId, atMs: Math.round(this.hardware.clock.now()), kind,
      batteryJ: Math.max(0, level?.energyJ ?? 0), batteryPct: Math.min(100, Math.max(0, level?.socPct ?? 0)),
      gamma: this.policy.gamma(), powerMode: this.policy.powerMode(), detail,
    });
    // A birth is a boot to the gateway: one after `sleeping` would undo the sleep there.
    if (kind !== 'sleeping') this.link.announce();
  }

  /**
   * Stops sampling, closes the partial slot, and spends at most `deadlineMs` of the clock's
   * time (default stopFlushMs) on the network: held jobs reported, the spool flushed, the offline
   * state, the disconnect. Past the deadline the connection is dropped; what the broker has
   * not acknowledged stays in the spool for the next start.
   */
  async stop(reason: string, flush = true, deadlineMs = this.config.stopFlushMs): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.notify?.stopping();
    const left = budget(this.hardware.clock, deadlineMs);
    // The slot timer goes first: no slot closes on it once the stop has begun.
    const nextSeq = this.ledger.nextSeq;
    this.ledger.stop();
    await this.ledger.settled();
    // The partial slot is closed too, so its energy reaches the gateway before the node goes;
    // unless a slot close already under way when the stop began has just ended it.
    if (this.ledger.nextSeq === nextSeq) {
      await this.ledger.closeSlot().catch((err: Error) => this.log.warn({ err: err.message }, 'last slot not closed'));
    }
    if (this.worker && this.link.connected) {
      const abandoned = await within(this.hardware.clock, this.worker.abandon((p) => this.link.publishJobOut(p), `node stopping: ${reason}`.slice(0, 1000))
        .catch((err: Error) => this.log.warn({ err: err.message }, 'held jobs not reported')), left());
      if (abandoned === 'late') this.log.warn({ deadlineMs }, 'held jobs not reported by the stop deadline');
      else if (abandoned) this.log.warn({ jobs: abandoned, reason }, 'held jobs reported failed');
    }
    this.worker?.close();
    if (flush && this.link.connected) {
      const flushed = await this.link.flush(left());
      if (!flushed) this.log.warn({ pending: this.spool.pending().length, deadlineMs }, 'spool not empty at stop; it is kept on disk for the next start');
    }
    await this.link.close(reason, left());
    this.spool.close();
    this.hardware.virtual?.stop();
    await this.wake.close().catch((err: Error) => this.log.warn({ err: err.message }, 'wake path not closed'));
    await this.hardware.close();
    this.log.info({ reason }, 'agent stopped');
  }
}
