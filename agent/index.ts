// The agent's composition root: builds the hardware, the spool, the ledger, the power
// policy, the MQTT link and the block worker from one validated config, and wires them.
// Nothing below this file reads files, the environment or the wall clock on its own.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock } from '../hardware/clock.js';
import { buildNode, type NodeHardware } from '../hardware/node.js';
import { selectBackend } from '../models/backend.js';
import { PROTOCOL_VERSION, type Command, type ModeStep, type PowerModeEntry, type StateMessage } from '../protocol/index.js';
import { capacityJ, profileOf, thresholdsJ, type AgentConfig, type ThresholdsJ } from './config.js';
import { budget, within } from './deadline.js';
import { Ledger, type BatteryLevel } from './ledger.js';
import { Link } from './link.js';
import { PowerPolicy } from './power.js';
import { profileModes } from './profile.js';
import { SeqStore } from './seq.js';
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

export class Agent {
  stopped = false;
  /** True while a re-profile runs: offers are refused so the meter sees only the standard jobs. */
  profiling = false;

  private constructor(
    readonly config: AgentConfig,
    readonly hardware: NodeHardware,
    readonly spool: Spool,
    readonly ledger: Ledger,
    readonly policy: PowerPolicy,
    readonly link: Link,
    readonly worker: BlockWorker | undefined,
    private readonly log: Logger,
    private readonly notify: ServiceNotify | undefined,
  ) {}

  static async start(config: AgentConfig, deps: AgentDeps): Promise<Agent> {
    const { clock, log } = deps;
    const shutdown = deps.shutdown ?? commandShutdown(config.shutdownCommand, log);
    const hardware = await buildNode(config.hardware, { clock });
    hardware.virtual?.start();
    const spool = Spool.open({ dir: config.spool.dir, maxBytes: config.spool.maxBytes });
    const st = spool.stats();
    if (st.entries || st.tornBytes) log.info({ pending: st.entries, tornBytes: st.tornBytes }, 'spool reopened');

    if (config.model) {
      const backend = await selectBackend();
      log.info({ backend: backend.name, detail: backend.detail, skipped: backend.skipped }, 'TF.js backend selected');
    }
    const worker = config.model ? BlockWorker.load({
      ...config.model, ...config.worker, clock, log,
      powerMode: () => ref.policy?.powerMode() ?? 0,
      // The virtual node draws for the forwards' measured CPU time, not for the time a job is
      // held: the busy share of this host's cores stands for that of the node's online cores.
      onBusy: (busy, cpu) => {
        const v = hardware.virtual;
        if (!v) return;
        if (busy) v.plant.setComputeLoad(cpu);
        v.setJobRunning(busy); // brings the plant up to now (sampling the meter) before the change
        if (!busy) v.plant.setComputeLoad(undefined);
      },
    }) : undefined;
    // Late-bound: the policy's actions reach the link and the agent, built just below.
    const ref: { link?: Link; agent?: Agent; policy?: PowerPolicy } = {};
    const policy = new PowerPolicy({
      nodeId: config.nodeId, clock, modes: config.powerModes, modeTable: config.modeTable, thresholds: thresholdsJ(config),
      queue: () => worker?.queue() ?? 0,
      log,
      actions: {
        applyMode: (name) => hardware.applyPowerMode(name),
        enterSaving: async () => (worker ? worker.enterSaving((p) => ref.link?.publishJobOut(p)) : 'no worker: nothing held'),
        leaveSaving: () => worker?.leaveSaving(),
        publishEvent: (e) => {
          ref.link?.send('event', e);
          // The retained birth carries γ: a gateway that starts later must not see a stale one.
          if (e.kind === 'power-saving-enter' || e.kind === 'power-saving-exit') ref.link?.announce();
        },
        critical: async (level: BatteryLevel) => {
          // The last words get criticalFlushMs at most; the shutdown never waits on the network.
          await ref.agent?.stop(`critical battery ${level.energyJ.toFixed(0)} J`, true, config.criticalFlushMs)
            .catch((err: Error) => log.error({ err: err.message }, 'error while stopping at the critical level'));
          await shutdown('critical battery').catch((err: Error) => log.error({ err: err.message }, 'shutdown action failed'));
        },
      },
    });
    ref.policy = policy;
    let lastTelemetryMs = -Infinity;
    const seq = SeqStore.open({ dir: config.spool.dir, spool });
    if (seq.stats().fsFailures) log.error({ err: seq.stats().lastError }, 'cannot store the slot sequence: check the spool folder (disk full or read-only?)');
    const ledger: Ledger = new Ledger({
      nodeId: config.nodeId, clock, source: hardware, policy, slotMs: config.slotMs, samplePeriodMs: 1000 / config.sampleHz,
      firstSeq: seq.nextSeq, seqStore: seq,
      onSeqError: (err) => log.error({ err }, 'cannot store the slot sequence: slot records wait in memory (disk full or read-only?)'),
      onSlot: (r) => {
        ref.link?.send('slot', r);
        log.info({ seq: r.seq, harvestJ: r.harvestJ, consumedJ: r.consumedJ, batteryPct: r.batteryPct, gamma: r.gamma, powerMode: r.powerMode, degraded: r.degraded }, 'slot closed');
      },
      onSample: (reading) => {
        // The watchdog is fed by the loop that meters the battery: if it stops turning, the node must restart.
        deps.notify?.alive();
        if (config.telemetryPeriodMs <= 0 || reading.monotonicMs - lastTelemetryMs < config.telemetryPeriodMs) return;
        lastTelemetryMs = reading.monotonicMs;
        ref.link?.send('telemetry', {
          v: PROTOCOL_VERSION, nodeId: config.nodeId, atMs: Math.round(reading.timeMs),
          sensors: reading.sensors.map((s) => ({ name: s.name.slice(0, 40), ok: s.ok, busVoltageV: s.busVoltageV, currentMa: s.currentMa, powerMw: s.powerMw })),
        });
      },
      onError: (err) => {
        // A failing sensor is not a hung agent: a restart would not mend the bus.
        deps.notify?.alive();
        log.warn({ err: err.message }, 'sensor read failed');
      },
    });

    if (worker) worker.meter = ledger;
    const birth = (): StateMessage => ({
      v: PROTOCOL_VERSION, status: 'online', nodeId: config.nodeId, atMs: Math.max(0, Math.round(clock.now())),
      profile: profileOf(config, policy.modeTable.modes, policy.modeTable.modeTable, policy.thresholds, worker?.shard),
      gamma: policy.gamma(), powerMode: policy.powerMode(), nextSeq: ledger.nextSeq, seqEpoch: seq.epoch,
      ...(ledger.latest() ? { batteryJ: Math.max(0, ledger.latest()!.energyJ) } : {}),
    });
    const tls = config.gateway.tls;
    const link: Link = new Link({
      url: config.gateway.url, fleet: config.fleet, nodeId: config.nodeId,
      username: config.gateway.username, password: config.gateway.password,
      tls: tls.caFile || tls.certFile ? {
        ca: tls.caFile ? readFileSync(tls.caFile) : undefined,
        cert: tls.certFile ? readFileSync(tls.certFile) : undefined,
        key: tls.keyFile ? readFileSync(tls.keyFile) : undefined,
        rejectUnauthorized: tls.rejectUnauthorized,
      } : undefined,
      keepaliveS: config.gateway.keepaliveS, reconnectMinMs: config.gateway.reconnectMinMs, reconnectMaxMs: config.gateway.reconnectMaxMs,
      spool, clock, birth, log,
      onCommand: (cmd) => ref.agent!.command(cmd, shutdown),
      onJobIn: (payload) => {
        worker?.handle(payload, (out) => link.publishJobOut(out), policy.acceptsJobs() && !ref.agent?.profiling)
          .catch((err: Error) => log.warn({ err: err.message }, 'job message failed'));
      },
      // The gateway's cancels of a restart may not have got through; its successor knows
      // nothing of these jobs, so they would hold their queue places until sessionIdleMs.
      onSessionLost: () => {
        if (!worker?.queue()) return;
        void worker.abandon(async () => {}, 'the broker restarted: the gateway that sent the job is gone')
          .then((n) => log.warn({ jobs: n }, 'held jobs dropped: the broker lost the session they came in'));
      },
    });
    ref.link = link;
    const agent: Agent = new Agent(config, hardware, spool, ledger, policy, link, worker, log, deps.notify);
    ref.agent = agent;

    let first = true;
    ledger.onBattery((b) => {
      if (first) {
        first = false;
        void policy.initialise(b);
      } else {
        void policy.update(b);
      }
    });
    await ledger.start();
    // A battery below critical at the first reading has already stopped the agent.
    if (agent.stopped) return agent;
    link.start();
    log.info({ nodeId: config.nodeId, fleet: config.fleet, group: config.group, gateway: config.gateway.url, slotMs: config.slotMs }, 'agent started');
    deps.notify?.ready();
    return agent;
  }

  async command(cmd: Command, shutdown: (reason: string) => Promise<void>): Promise<Record<string, unknown> | undefined> {
    this.log.info({ op: cmd.op, id: cmd.id }, 'command');
    const level = this.ledger.latest();
    switch (cmd.op) {
      case 'ping':
        return {
          nextSeq: this.ledger.nextSeq, gamma: this.policy.gamma(), powerMode: this.policy.powerMode(), batteryJ: level?.energyJ ?? null,
          spool: this.spool.stats(), seq: this.ledger.seqStats(), link: this.link.counters, connection: this.link.connection(), jobs: { held: this.worker?.queue() ?? 0, ...this.worker?.counters },
          // What the meter charged jobs, and what it metered above idle while they computed (docs/agent.md "Per-job energy").
          ...(this.worker ? { jobEnergy: { ...this.worker.energy.totals, baselineW: this.worker.energy.baselineW } } : {}),
          // What the process costs the node: resident memory and CPU time since start.
          process: { rssBytes: process.memoryUsage().rss, cpuUserUs: process.cpuUsage().user, cpuSystemUs: process.cpuUsage().system },
        };
      case 'set-thresholds': {
        const t: ThresholdsJ = cmd.thresholds;
        const cap = capacityJ(this.config);
        if (!(t.criticalJ < t.eThJ && t.eThJ < t.eThUpJ && t.eThUpJ < cap)) throw new Error(`thresholds must satisfy criticalJ < eThJ < eThUpJ < capacity (${cap} J)`);
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
    const level = this.ledger.latest();
    this.link.send('event', {
      v: PROTOCOL_VERSION, nodeId: this.config.nodeId, atMs: Math.round(this.hardware.clock.now()), kind: 'config-changed',
      batteryJ: Math.max(0, level?.energyJ ?? 0), batteryPct: Math.min(100, Math.max(0, level?.socPct ?? 0)),
      gamma: this.policy.gamma(), powerMode: this.policy.powerMode(), detail,
    });
    this.link.announce();
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
    await this.hardware.close();
    this.log.info({ reason }, 'agent stopped');
  }
}
