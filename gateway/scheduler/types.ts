// The parameters of one device's semi-Markov energy model (SPEC.md §2–§4), in the paper's
// vocabulary. Energies are integers in units of one battery quantum; `quantumJ` converts.

/** One power mode: κ slots per job and C_E quanta per job (SPEC.md §3 table). */
export interface PowerModeSpec {
  /** The paper's PM index: 1 = 15 W, 2 = 30 W, 3 = 60 W. 0 is reserved for power saving. */
  powerMode: number;
  name: string;
  /** Processing stage length in slots, κ(PM) ≥ 1. */
  kappa: number;
  /** Energy spent per job, C_E(PM), in quanta. */
  costQ: number;
}

/** Dynamic power mode: the mode used while the battery is at or above `minFraction` of E_max. */
export interface ModeStep {
  minFraction: number;
  powerMode: number;
}

export interface DeviceParams {
  /** Battery capacity E_max in quanta (levels 0..eMax). */
  eMax: number;
  /** Power-saving entry threshold E_th (quanta): entered when E falls below it. */
  eTh: number;
  /** Power-saving exit threshold E′_th (quanta): left when E rises above it. */
  eThUp: number;
  /** Available modes, keyed by powerMode. */
  modes: PowerModeSpec[];
  /** Dynamic table (ascending minFraction, first entry 0), or a single fixed mode. */
  modeTable: ModeStep[];
  /** f(e): probability of harvesting exactly e quanta in one slot, e = 0..len-1. */
  harvestPmf: Float64Array;
  /**
   * Our extension (docs/scheduling.md, "Idle draw"): quanta the device draws in every slot
   * while it is on, whatever it does: a Raspberry Pi idles at 2.7–3.5 W. The paper's device
   * spends only C_E; absent or 0 is the paper's model unchanged. With it, C_E is the cost of
   * a job above idle (what `agent profile` measures), a stage of κ slots draws κ·idle on
   * top, and a device that is not working loses energy whenever f(e) < idle.
   */
  idleQ?: number;
}

export interface StateSpace {
  /** Per state: queue occupancy Q ∈ {0,1}. */
  q: Uint8Array;
  /** Per state: battery level E in quanta. */
  e: Int32Array;
  /** Per state: γ ∈ {0 power saving, 1 active}. */
  gamma: Uint8Array;
  /** index[E*4 + Q*2 + γ] → state index, or -1 when the state is unreachable. */
  index: Int32Array;
  size: number;
}
