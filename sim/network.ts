// The paper's network (SPEC.md §1–§5): G groups × N devices, slotted time, Bernoulli job
// arrivals, per-device harvest, a queue of one job waiting beside the one in service, and
// power saving with hysteresis. Each device moves through the same stages as its chain in
// gateway/scheduler/chain.ts, so that the two agree: a processing stage lasts κ(PM) slots
// and pays C_E at its end through Eq. 1; every other stage lasts one slot. What the policy
// sees of each device is built by deviceView, as the live gateway builds it.
//
// A job passes group 1, then group 2, … (SPEC.md §1: device ℓ takes the output of group
// ℓ−1): the device chosen in group ℓ+1 holds the job from dispatch but starts its stage only
// in the slot after group ℓ's κ-slot stage ended. `groupOrder: 'parallel'` keeps the older
// reading, in which every group starts the job in the same slot.
//
// The other readings the paper leaves open are options of the scenario, each defaulting to
// the adopted one (docs/reproduction.md compares them: `heliomesh sim sensitivity`).
import { deviceView, modeAt, type DeviceModel, type DeviceParams, type DeviceState, type DeviceView, type Policy } from '../gateway/scheduler/index.js';
import { policyFor, type AlphaOptions } from './alpha.js';
import { harvestProcess, type HarvestProcessSpec } from './harvest.js';
import type { Rng } from './rng.js';
import { SleepControl, type SleepScenario } from './sleep-control.js';

export interface NetworkScenario {
  groups: number;
  devicesPerGroup: number;
  slots: number;
  /** Job arrival probability per slot. */
  p: number;
  /** Battery, thresholds and modes, shared by every device. */
  device: Omit<DeviceParams, 'harvestPmf'>;
  /** Harvest of each device, group-major (group g, device j at g*N + j). */
  harvest: HarvestProcessSpec[];
  /** Battery level at slot 0, as a fraction of E_max. */
  initialFraction: number;
  /** How a job passes the groups: one after another (the paper's pipeline, the default) or all at once. */
  groupOrder?: GroupOrder;
  /**
   * "C_E(PM) ≤ E_m" beside Eq. 1 (SPEC §7.4): 'clip' (adopted, and the chain's) runs every
   * job and lets Eq. 1 clip the battery at zero; 'admission' starts a job's stage only when
   * the battery can pay C_E(PM(E)), and otherwise the job waits, one slot at a time, while
   * the device harvests.
   */
  costRule?: CostRule;
  /**
   * What a device does with the jobs it holds when it falls into power saving: 'keep'
   * (adopted; SPEC §3 and the chain's (1,E,0) row: kept, not run) or 'drop' (they are
   * dropped, counted in jobsDropped, and every other group holding them lets them go).
   */
  pendingInSaving?: PendingInSaving;
  /** Jobs a device may hold: 2 (adopted: one in service, one waiting) or 1 (no waiting place). */
  queueCapacity?: 1 | 2;
  /** α of Algorithm 1 for the adaptive policy; absent: the live policy's reading. */
  alpha?: AlphaOptions;
  /** Coordinated sleep (gateway/scheduler/sleep.ts); absent: every node stays on until it runs flat. */
  sleep?: SleepScenario;
}

export type GroupOrder = 'sequential' | 'parallel';
export type CostRule = 'clip' | 'admission';
export type PendingInSaving = 'keep' | 'drop';

/** A stage boundary of one device, for tests and traces: `slot` is the slot the stage starts or ends before. */
export interface StageEvent {
  kind: 'start' | 'finish';
  slot: number;
  device: number;
  job: number;
}

export interface RunTrace {
  onStage?: (event: StageEvent) => void;
  /** Every device's battery level (quanta) and γ at each slot of the run, after its stage update. */
  onSlot?: (slot: number, energy: Float64Array, gamma: Uint8Array) => void;
}

export interface RunMetrics {
  /** Mean over slots of the fraction of devices in power saving. */
  inactiveFraction: number;
  jobsInput: number;
  jobsDropped: number;
  /** Jobs finished by every group before the horizon. */
  jobsCompleted: number;
  /** Accepted jobs / input jobs. */
  throughputAccepted: number;
  /**
   * Processed jobs / input jobs (the paper's Fig. 4a): jobs finished by every group, counting
   * those still in the pipeline at the horizon once the run has drained them (arrivals stop,
   * devices keep harvesting and working, for at most `slots` more slots). A device that dies
   * holding a job with no harvest to wake it never finishes it, so at zero harvest this is
   * below throughputAccepted by every job stranded on a dead device.
   */
  throughputCompleted: number;
  /** Mean battery level over devices and slots, in % of E_max. */
  meanBatteryPct: number;
  /** Share of device-slots with E ≤ E_th: the empirical ξ of Eq. 3. */
  lowBatteryFraction: number;
  /** Times an active device fell below E_th and halted (ran flat), over the measured slots. */
  flatEvents: number;
  /** Share of device-slots asleep by the coordinated-sleep planner (0 without it). */
  asleepFraction: number;
  /** Share of slots in which some group had no device awake and active. */
  darkGroupFraction: number;
  /** Energy the panels delivered over the measured slots, summed over devices, in quanta (spilled at E_max or not). */
  harvestQ: number;
}

export interface RunInputs {
  scenario: NetworkScenario;
  policy: Policy;
  /** Solved models per device (same order as harvest), giving r_i and the harvest estimate. */
  models: DeviceModel[];
  /** r_i per device (Eq. 6 within its group). */
  weights: number[];
  /** Stream for arrivals and harvest: shared by every policy at the same iteration. */
  worldRng: Rng;
  /** Stream for the policy's own draws. */
  policyRng: Rng;
  trace?: RunTrace;
}

export function runNetwork(inputs: RunInputs): RunMetrics {
  return new NetworkSim(inputs.scenario, inputs.models, inputs.weights).run(inputs.policy, inputs.worldRng, inputs.policyRng, inputs.trace);
}

/**
 * One scenario's state, allocated once and reset for every run: a cell runs the same
 * scenario a thousand times, and allocation, not arithmetic, dominated the per-run cost.
 */
export class NetworkSim {
  private readonly D: number;
  private readonly params: Pick<DeviceParams, 'eMax' | 'modes' | 'modeTable'>;
  private readonly energy: Float64Array;
  private readonly gamma: Uint8Array;
  private readonly stageLeft: Int32Array;
  private readonly stageHarvest: Float64Array;
  private readonly processing: Uint8Array;
  private readonly stageCost: Float64Array;
  private readonly current: Int32Array;
  private readonly queued: Int32Array;
  private readonly powerMode: Uint8Array;
  private readonly views: DeviceView[][];
  /** One device's state at a decision, rewritten for each (the hot loop allocates nothing). */
  private readonly state: DeviceState;
  private readonly probs: Float64Array;
  /** Uniform harvest bounds per device, drawn inline; null when some device is not uniform. */
  private readonly uniformLo: Float64Array | null;
  private readonly uniformWidth: Float64Array | null;
  private readonly wakeAt: Int32Array;
  private readonly sleepControl: SleepControl | null;

  constructor(private readonly scenario: NetworkScenario, models: DeviceModel[], weights: number[]) {
    const { groups: G, devicesPerGroup: N } = scenario;
    const D = (this.D = G * N);
    this.params = scenario.device;
    this.energy = new Float64Array(D);
    this.gamma = new Uint8Array(D);
    this.stageLeft = new Int32Array(D);
    this.stageHarvest = new Float64Array(D);
    this.processing = new Uint8Array(D);
    this.stageCost = new Float64Array(D);
    this.current = new Int32Array(D);
    this.queued = new Int32Array(D);
    this.powerMode = new Uint8Array(D);
    this.probs = new Float64Array(N);
    // The paper's queue: one job in service and one waiting (SPEC.md §2).
    this.state = { barred: '', passedOver: '', gamma: 0, powerMode: 0, energyQ: 0, held: 0, capacity: scenario.queueCapacity ?? 2, modes: scenario.device.modes, weight: 0 };
    this.views = [];
    for (let g = 0; g < G; g++) {
      const row: DeviceView[] = [];
      for (let j = 0; j < N; j++) {
        const d = g * N + j;
        row.push({ available: false, busy: false, powerMode: 0, energyQ: 0, committedQ: 0, weight: weights[d] ?? 1 / N, model: models[d] });
      }
      this.views.push(row);
    }
    this.wakeAt = new Int32Array(D);
    this.sleepControl = scenario.sleep ? new SleepControl(scenario.sleep, G, N, scenario.device, scenario.p) : null;
    const allUniform = scenario.harvest.every((h) => h.kind === 'uniform');
    this.uniformLo = allUniform ? Float64Array.from(scenario.harvest, (h) => (h.kind === 'uniform' ? h.lo : 0)) : null;
    this.uniformWidth = allUniform ? Float64Array.from(scenario.harvest, (h) => (h.kind === 'uniform' ? h.hi - h.lo : 0)) : null;
  }

  run(livePolicy: Policy, worldRng: Rng, policyRng: Rng, trace?: RunTrace): RunMetrics {
    const policy = policyFor(livePolicy, this.scenario.alpha);
    const { groups: G, devicesPerGroup: N, slots: T, p, device } = this.scenario;
    const { D, params, energy, gamma, stageLeft, stageHarvest, processing, stageCost, current, queued, powerMode, views, probs, state, wakeAt, sleepControl } = this;
    const sleepQ = this.scenario.sleep?.sleepQ ?? 0;
    const bootQ = this.scenario.sleep?.bootQ ?? 0;
    const { eMax, eTh, eThUp } = device;
    // Our extension (idleQ in gateway/scheduler/types.ts): an active device draws its idle
    // power every slot, a device in power saving is halted and draws nothing.
    const idle = device.idleQ ?? 0;
    const lo = this.uniformLo;
    const width = this.uniformWidth;
    const processes = lo ? null : this.scenario.harvest.map((spec) => harvestProcess(spec, worldRng));

    energy.fill(this.scenario.initialFraction * eMax);
    gamma.fill(1);
    stageLeft.fill(0); // 0: a stage ends before this slot
    stageHarvest.fill(0);
    processing.fill(0);
    stageCost.fill(0);
    current.fill(-1);
    queued.fill(-1);
    powerMode.fill(0);
    wakeAt.fill(-1);

    const sequential = this.scenario.groupOrder !== 'parallel';
    const admission = this.scenario.costRule === 'admission';
    const dropping = this.scenario.pendingInSaving === 'drop';
    const lost: number[] = []; // per job, under 'drop': 1 once a device dropped it in power saving
    const onStage = trace?.onStage;
    const onSlot = trace?.onSlot;
    const groupsDone: number[] = []; // per job: groups that have finished it
    let jobsInput = 0;
    let jobsDropped = 0;
    let jobsRefused = 0; // at arrival; jobsDropped adds the jobs dropped in power saving before the horizon
    let jobsLost = 0; // dropped in power saving, also while draining
    let jobsCompleted = 0;
    let jobsFinished = 0; // including those finished while draining
    let inactiveSum = 0;
    let batterySum = 0;
    let lowSum = 0;
    let harvestSum = 0;
    let flatEvents = 0;
    let asleepSum = 0;
    let darkSlots = 0;

    // Past the horizon no job arrives and nothing is measured but completions, until the
    // pipeline is empty or as many slots again have passed.
    for (let t = 0; t < T || (t < 2 * T && jobsFinished + jobsLost < jobsInput - jobsRefused); t++) {
      const measuring = t < T;
      // 1. Stages that ended: Eq. 1, the γ rules, then the next stage and its PM.
      let inactive = 0;
      for (let d = 0; d < D; d++) {
        if (stageLeft[d] === 0) {
          let e = energy[d] as number;
          if (processing[d]) {
            e = Math.max(Math.min(e + (stageHarvest[d] as number) - (stageCost[d] as number), eMax), 0);
            if (e < eTh) {
              gamma[d] = 0;
              if (measuring) flatEvents++;
            }
            const job = current[d] as number;
            const done = (groupsDone[job] as number) + 1;
            groupsDone[job] = done;
            if (done === G && !(dropping && lost[job])) {
              jobsFinished++;
              if (measuring) jobsCompleted++;
            }
            onStage?.({ kind: 'finish', slot: t, device: d, job });
            current[d] = queued[d] as number;
            queued[d] = -1;
            // Falling asleep, it holds at most the job that was waiting (now current).
            const pending = current[d] as number;
            if (dropping && gamma[d] === 0 && pending >= 0) {
              if (!lost[pending]) {
                lost[pending] = 1;
                jobsLost++;
                if (measuring) jobsDropped++;
              }
              current[d] = -1;
            }
          } else if ((wakeAt[d] as number) >= 0 && (current[d] as number) < 0) {
            // Asleep (a node told to sleep first serves what it holds): the board's sleep draw only.
            e = Math.max(Math.min(e + (stageHarvest[d] as number) - sleepQ, eMax), 0);
          } else if (gamma[d] === 1 && idle > 0) {
            e = Math.max(Math.min(e + (stageHarvest[d] as number) - idle, eMax), 0);
            if (e < eTh) {
              gamma[d] = 0;
              if (measuring) flatEvents++;
            }
          } else {
            e = Math.min(e + (stageHarvest[d] as number), eMax);
            if (gamma[d] === 0 && e > eThUp) gamma[d] = 1;
          }
          // At its alarm a sleeping node boots, or stays halted if its battery is below E_th.
          if ((wakeAt[d] as number) >= 0 && t >= (wakeAt[d] as number)) {
            wakeAt[d] = -1;
            if (e < eTh) gamma[d] = 0;
            else e = Math.max(0, e - bootQ);
          }
          energy[d] = e;
          stageHarvest[d] = 0;
          const mode = modeAt(params, e);
          // Under 'drop', a job another group dropped is let go here, before its stage would start.
          while (dropping && (current[d] as number) >= 0 && lost[current[d] as number]) {
            current[d] = queued[d] as number;
            queued[d] = -1;
          }
          const job = current[d] as number;
          // Devices are visited group by group, so group ℓ's stage that ended before this slot
          // is already counted when group ℓ+1's device looks.
          if (gamma[d] === 1 && job >= 0 && (!sequential || groupsDone[job] === Math.floor(d / N)) && (!admission || e >= mode.costQ)) {
            processing[d] = 1;
            stageCost[d] = mode.costQ + idle * mode.kappa;
            stageLeft[d] = mode.kappa;
            onStage?.({ kind: 'start', slot: t, device: d, job });
          } else {
            processing[d] = 0;
            stageCost[d] = 0;
            stageLeft[d] = 1;
          }
          powerMode[d] = gamma[d] === 1 && (wakeAt[d] as number) < 0 ? mode.powerMode : 0;
        }
        if (!measuring) continue;
        if (gamma[d] === 0) inactive++;
        const e = energy[d] as number;
        batterySum += e / eMax;
        if (e <= eTh) lowSum++;
      }
      inactiveSum += inactive / D;
      if (sleepControl && measuring) {
        sleepControl.plan(t, { energy, gamma, current, queued, wakeAt });
        let dark = false;
        for (let g = 0; g < G && !dark; g++) {
          let up = false;
          for (let j = 0; j < N && !up; j++) up = gamma[g * N + j] === 1 && (wakeAt[g * N + j] as number) < 0;
          dark = !up;
        }
        if (dark) darkSlots++;
        for (let d = 0; d < D; d++) if ((wakeAt[d] as number) >= 0) asleepSum++;
      } else if (measuring) {
        for (let g = 0; g < G; g++) {
          let up = false;
          for (let j = 0; j < N && !up; j++) up = gamma[g * N + j] === 1;
          if (!up) {
            darkSlots++;
            break;
          }
        }
      }
      onSlot?.(t, energy, gamma);

      // 2–3. A job arrives with probability p; the policy picks one device per group.
      if (measuring && worldRng() < p) {
        jobsInput++;
        let dropped = false;
        for (let g = 0; g < G && !dropped; g++) {
          let any = false;
          const row = views[g]!;
          for (let j = 0; j < N; j++) {
            const d = g * N + j;
            const v = row[j]!;
            // Every job held is owed C_E(PM), whether its stage is running or waits for the
            // group before.
            state.gamma = (wakeAt[d] as number) < 0 ? (gamma[d] as 0 | 1) : 0;
            state.powerMode = powerMode[d] as number;
            state.energyQ = energy[d] as number;
            state.held = ((current[d] as number) >= 0 ? 1 : 0) + ((queued[d] as number) >= 0 ? 1 : 0);
            state.weight = v.weight;
            state.model = v.model;
            deviceView(state, v);
            any ||= v.available;
          }
          if (!any) dropped = true;
        }
        if (dropped) {
          jobsDropped++;
          jobsRefused++;
        } else {
          const job = groupsDone.length;
          groupsDone.push(0);
          if (dropping) lost.push(0);
          for (let g = 0; g < G; g++) {
            const d = g * N + draw(policy.probabilities(views[g]!, probs), policyRng());
            if ((current[d] as number) < 0) current[d] = job;
            else queued[d] = job;
          }
        }
      }

      // 4. Harvest of this slot; stages advance.
      for (let d = 0; d < D; d++) {
        const h = lo ? (lo[d] as number) + (width![d] as number) * worldRng() : processes![d]!.next(t);
        stageHarvest[d] = (stageHarvest[d] as number) + h;
        stageLeft[d] = (stageLeft[d] as number) - 1;
        if (measuring) harvestSum += h;
        sleepControl?.observe(d, t, h);
      }
    }

    return {
      inactiveFraction: inactiveSum / T,
      jobsInput,
      jobsDropped,
      jobsCompleted,
      throughputAccepted: jobsInput > 0 ? (jobsInput - jobsDropped) / jobsInput : 1,
      throughputCompleted: jobsInput > 0 ? jobsFinished / jobsInput : 1,
      meanBatteryPct: (100 * batterySum) / (T * D),
      lowBatteryFraction: lowSum / (T * D),
      harvestQ: harvestSum,
      flatEvents,
      asleepFraction: asleepSum / (T * D),
      darkGroupFraction: darkSlots / T,
    };
  }
}

/** Index drawn from a probability vector with one uniform number. */
export function draw(probs: Float64Array, u: number): number {
  let acc = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    const pi = probs[i] as number;
    if (pi <= 0) continue;
    acc += pi;
    last = i;
    if (u < acc) return i;
  }
  if (last < 0) throw new Error('policy gave no device any probability');
  return last;
}
