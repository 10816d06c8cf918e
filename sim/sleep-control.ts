// Coordinated sleep in the simulator: every few slots, each group's awake nodes get the
// orders of gateway/scheduler/sleep.ts, from the same view a gateway has (battery, idle
// draw, a forecast by time of day from each node's own past harvest, the arrival rate).
import { SLEEP_DEFAULTS, alignToPipeline, chargeSlots, groupBackInSlots, modeAt, persistentForecast, planSleep, type DeviceParams, type SleepNodeView, type SleepOptions, type SleepOrder } from '../gateway/scheduler/index.js';

export interface SleepScenario {
  /** Per device (group-major): expected harvest in each slot of the day, quanta. */
  profiles: Float64Array[];
  /** Slot of the day at slot 0 of the run. */
  startSlotOfDay: number;
  /** Draw of a node asleep (halted, its RTC alarm set), quanta per slot. */
  sleepQ: number;
  /** Slots between two plans: a gateway re-plans every few minutes, not every slot. */
  everySlots: number;
  /**
   * The longest sleep of a node not halted before running flat, as the gateway's
   * `sleep.checkInMs`: it then boots and is planned again. Absent: it sleeps as planned.
   */
  checkInSlots?: number;
  /** What a boot at an alarm costs a node, quanta. */
  bootQ?: number;
  options?: SleepOptions;
}

/** What the planner needs of the simulator's state, one array per device. */
export interface SleepState {
  energy: Float64Array;
  gamma: Uint8Array;
  current: Int32Array;
  queued: Int32Array;
  /** Slot at which a sleeping device's alarm wakes it; −1 while it is not asleep. */
  wakeAt: Int32Array;
}

/** An hour of slots at δ = 100 s: the window over which the sky now is judged. */
const HOUR_SLOTS = 36;
/** Cloud regimes last 3–10 h on average (weather.ts): the sky now says little beyond ~4 h. */
const PERSIST_SLOTS = 144;

export class SleepControl {
  private readonly views: SleepNodeView[][];
  private readonly byTimeOfDay: ((ahead: number) => number)[];
  /** Per device: harvest over the last hour, and what the time-of-day mean expected of it (exponential averages). */
  private readonly seen: Float64Array;
  private readonly expected: Float64Array;
  private slot = 0;

  constructor(private readonly spec: SleepScenario, private readonly groups: number, private readonly perGroup: number, private readonly params: Pick<DeviceParams, 'eMax' | 'eTh' | 'eThUp' | 'modes' | 'modeTable' | 'idleQ'>, private readonly arrivalsPerSlot: number) {
    this.seen = new Float64Array(groups * perGroup);
    this.expected = new Float64Array(groups * perGroup);
    this.byTimeOfDay = spec.profiles.map((profile) => (ahead: number) => profile[(spec.startSlotOfDay + this.slot + ahead) % profile.length] as number);
    this.views = [];
    for (let g = 0; g < groups; g++) {
      const row: SleepNodeView[] = [];
      for (let j = 0; j < perGroup; j++) row.push({ awake: true, busy: false, energyQ: 0, eThQ: params.eTh, idleQ: params.idleQ ?? 0, forecastQ: this.byTimeOfDay[g * perGroup + j]! });
      this.views.push(row);
    }
  }

  /** Device d harvested h in slot t: the sky now, against the time of day's mean. */
  observe(d: number, t: number, h: number): void {
    const profile = this.spec.profiles[d]!;
    const mean = profile[(this.spec.startSlotOfDay + t) % profile.length] as number;
    const a = 1 / HOUR_SLOTS;
    this.seen[d] = (this.seen[d] as number) + a * (h - (this.seen[d] as number));
    this.expected[d] = (this.expected[d] as number) + a * (mean - (this.expected[d] as number));
  }

  /**
   * Orders for slot t; sleeping devices get wakeAt set. Each group is planned on its own
   * (planSleep), then every group's awake nodes are aligned to when the whole pipeline is up
   * again (alignToPipeline).
   */
  plan(t: number, s: SleepState): void {
    if (t % this.spec.everySlots !== 0) return;
    this.slot = t;
    const o = this.spec.options ?? SLEEP_DEFAULTS;
    const rounds: SleepOrder[][] = [];
    let pipelineBack = 0;
    for (let g = 0; g < this.groups; g++) {
      const orders = this.planGroup(g, s, o);
      rounds.push(orders);
      pipelineBack = Math.max(pipelineBack, groupBackInSlots(this.views[g]!, orders, this.upInSlots(g, t, s, o)));
    }
    rounds.forEach((planned, g) => {
      alignToPipeline(this.views[g]!, planned, pipelineBack, o).forEach((order, j) => {
        if (!order.sleep) return;
        const nap = order.why !== 'flat' && this.spec.checkInSlots !== undefined;
        s.wakeAt[g * this.perGroup + j] = t + (nap ? Math.min(order.wakeInSlots, this.spec.checkInSlots!) : order.wakeInSlots);
      });
    });
  }

  private planGroup(g: number, s: SleepState, o: SleepOptions): SleepOrder[] {
    const row = this.views[g]!;
    let kappa = 0;
    let cost = 0;
    let awake = 0;
    for (let j = 0; j < this.perGroup; j++) {
      const d = g * this.perGroup + j;
      const v = row[j]!;
      v.awake = s.wakeAt[d]! < 0 && s.gamma[d] === 1;
      v.busy = s.current[d]! >= 0 || s.queued[d]! >= 0;
      v.energyQ = s.energy[d]!;
      const expected = this.expected[d] as number;
      v.forecastQ = persistentForecast(this.byTimeOfDay[d]!, expected > 1e-9 ? (this.seen[d] as number) / expected : 1, PERSIST_SLOTS);
      if (v.awake) {
        const mode = modeAt(this.params, Math.floor(v.energyQ));
        kappa += mode.kappa;
        cost += mode.costQ;
        awake++;
      }
    }
    if (awake === 0) return row.map(() => ({ sleep: false }));
    return planSleep(row, { arrivalsPerSlot: this.arrivalsPerSlot, stageSlots: kappa / awake, jobQ: cost / awake }, o);
  }

  /**
   * Per node of group g not awake, slots until it is up: a sleeper at its alarm, a node that
   * ran flat once its forecast has charged it above E′_th, where its power board boots it;
   * Infinity if that is beyond the horizon.
   */
  private upInSlots(g: number, t: number, s: SleepState, o: SleepOptions): number[] {
    return this.views[g]!.map((v, j) => {
      const d = g * this.perGroup + j;
      if (v.awake) return 0;
      if (s.wakeAt[d]! >= 0) return s.wakeAt[d]! - t;
      const back = chargeSlots(v, this.params.eThUp + 1e-9, o.horizonSlots);
      return back < o.horizonSlots ? back : Infinity;
    });
  }
}
