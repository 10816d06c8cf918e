// The paper's network (SPEC.md §1–§5): G groups × N devices, slotted time, Bernoulli job
// arrivals, per-device harvest, a queue of one job waiting beside the one in service, and
// power saving with hysteresis. Each device moves through the same stages as its chain in
// gateway/scheduler/chain.ts, so that the two agree: a processing stage lasts κ(PM) slots
// and pays C_E at its end through Eq. 1; every other stage lasts one slot. What the policy
// sees of each device is built by deviceView, as the live gateway builds it.
import { deviceView, modeAt, type DeviceModel, type DeviceParams, type DeviceState, type DeviceView, type Policy } from '../gateway/scheduler/index.js';
import { harvestProcess, type HarvestProcessSpec } from './harvest.js';
import type { Rng } from './rng.js';

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
}

export interface RunMetrics {
  /** Mean over slots of the fraction of devices in power saving. */
  inactiveFraction: number;
  jobsInput: number;
  jobsDropped: number;
  /** Jobs finished by every group before the horizon. */
  jobsCompleted: number;
  /** Accepted jobs / input jobs: an accepted job is held until it is processed. */
  throughput: number;
  /** Mean battery level over devices and slots, in % of E_max. */
  meanBatteryPct: number;
  /** Share of device-slots with E ≤ E_th: the empirical ξ of Eq. 3. */
  lowBatteryFraction: number;
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
}

export function runNetwork(inputs: RunInputs): RunMetrics {
  return new NetworkSim(inputs.scenario, inputs.models, inputs.weights).run(inputs.policy, inputs.worldRng, inputs.policyRng);
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
    this.state = { barred: '', passedOver: '', gamma: 0, powerMode: 0, energyQ: 0, held: 0, capacity: 2, modes: scenario.device.modes, weight: 0 };
    this.views = [];
    for (let g = 0; g < G; g++) {
      const row: DeviceView[] = [];
      for (let j = 0; j < N; j++) {
        const d = g * N + j;
        row.push({ available: false, busy: false, powerMode: 0, energyQ: 0, committedQ: 0, weight: weights[d] ?? 1 / N, model: models[d] });
      }
      this.views.push(row);
    }
    const allUniform = scenario.harvest.every((h) => h.kind === 'uniform');
    this.uniformLo = allUniform ? Float64Array.from(scenario.harvest, (h) => (h.kind === 'uniform' ? h.lo : 0)) : null;
    this.uniformWidth = allUniform ? Float64Array.from(scenario.harvest, (h) => (h.kind === 'uniform' ? h.hi - h.lo : 0)) : null;
  }

  run(policy: Policy, worldRng: Rng, policyRng: Rng): RunMetrics {
    const { groups: G, devicesPerGroup: N, slots: T, p, device } = this.scenario;
    const { D, params, energy, gamma, stageLeft, stageHarvest, processing, stageCost, current, queued, powerMode, views, probs, state } = this;
    const { eMax, eTh, eThUp } = device;
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

    const groupsLeft: number[] = []; // per job: groups that still have to finish it
    let jobsInput = 0;
    let jobsDropped = 0;
    let jobsCompleted = 0;
    let inactiveSum = 0;
    let batterySum = 0;
    let lowSum = 0;

    for (let t = 0; t < T; t++) {
      // 1. Stages that ended: Eq. 1, the γ rules, then the next stage and its PM.
      let inactive = 0;
      for (let d = 0; d < D; d++) {
        if (stageLeft[d] === 0) {
          let e = energy[d] as number;
          if (processing[d]) {
            e = Math.max(Math.min(e + (stageHarvest[d] as number) - (stageCost[d] as number), eMax), 0);
            if (e < eTh) gamma[d] = 0;
            const job = current[d] as number;
            const left = (groupsLeft[job] as number) - 1;
            groupsLeft[job] = left;
            if (left === 0) jobsCompleted++;
            current[d] = queued[d] as number;
            queued[d] = -1;
          } else {
            e = Math.min(e + (stageHarvest[d] as number), eMax);
            if (gamma[d] === 0 && e > eThUp) gamma[d] = 1;
          }
          energy[d] = e;
          stageHarvest[d] = 0;
          const mode = modeAt(params, e);
          if (gamma[d] === 1 && (current[d] as number) >= 0) {
            processing[d] = 1;
            stageCost[d] = mode.costQ;
            stageLeft[d] = mode.kappa;
          } else {
            processing[d] = 0;
            stageCost[d] = 0;
            stageLeft[d] = 1;
          }
          powerMode[d] = gamma[d] === 1 ? mode.powerMode : 0;
        }
        if (gamma[d] === 0) inactive++;
        const e = energy[d] as number;
        batterySum += e / eMax;
        if (e <= eTh) lowSum++;
      }
      inactiveSum += inactive / D;

      // 2–3. A job arrives with probability p; the policy picks one device per group.
      if (worldRng() < p) {
        jobsInput++;
        let dropped = false;
        for (let g = 0; g < G && !dropped; g++) {
          let any = false;
          const row = views[g]!;
          for (let j = 0; j < N; j++) {
            const d = g * N + j;
            const v = row[j]!;
            // An active device holding a job is processing it by now (an idle stage lasts one
            // slot), so C_E(PM) per job held is the cost its stage pays at its end.
            state.gamma = gamma[d] as 0 | 1;
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
        } else {
          const job = groupsLeft.length;
          groupsLeft.push(G);
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
      }
    }

    return {
      inactiveFraction: inactiveSum / T,
      jobsInput,
      jobsDropped,
      jobsCompleted,
      throughput: jobsInput > 0 ? (jobsInput - jobsDropped) / jobsInput : 1,
      meanBatteryPct: (100 * batterySum) / (T * D),
      lowBatteryFraction: lowSum / (T * D),
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
