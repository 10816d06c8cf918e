// The rules the node and the gateway must compute alike: the power mode a battery level
// puts a node in, the order of its energy thresholds, and the queue it holds by default.
// The agent applies them, the gateway's model of the node assumes them, and the pure
// scheduler imports this file too, so it imports nothing: no schema library, no I/O.

/** One step of the dynamic power-mode table (SPEC.md §3): at or above `minFraction` of capacity use `powerMode`. */
export interface PowerModeStep {
  readonly minFraction: number;
  readonly powerMode: number;
}

/**
 * PM(E), as the index of the step in force at battery level `energy` of `capacity`: the
 * last step whose minFraction ≤ E/E_max (SPEC.md §3); the steps ascend from 0, as the
 * profile's schema checks. The level is compared as a fraction because E/E_max is rounded
 * once: 55 quanta of 100 is exactly the step at 0.55, where the product 0.55 × 100 rounds
 * to 55.00000000000001 and would miss it without a tolerance.
 */
export function modeStepAt(table: readonly PowerModeStep[], energy: number, capacity: number): number {
  const fraction = energy / capacity;
  let step = 0;
  while (step + 1 < table.length && fraction >= table[step + 1]!.minFraction) step++;
  return step;
}

/** PM(E): the power mode the table assigns to battery level `energy` of `capacity`. */
export function powerModeAt(table: readonly PowerModeStep[], energy: number, capacity: number): number {
  return table[modeStepAt(table, energy, capacity)]!.powerMode;
}

/** The node's energy thresholds, J (SPEC.md §3). */
export interface ThresholdLevels {
  /** E_th: below it the node enters power saving. */
  readonly eThJ: number;
  /** E′_th: above it the node leaves power saving. */
  readonly eThUpJ: number;
  /** Below it the node shuts down. */
  readonly criticalJ: number;
}

export interface ThresholdProblem {
  /** The threshold to change. */
  threshold: 'criticalJ' | 'eThUpJ';
  message: string;
}

/**
 * What breaks critical < E_th < E′_th < capacity, the order the power policy needs: a
 * critical level at or above E_th would shut a node down before it ever saved power, and
 * E′_th must lie above E_th for the hysteresis and below a full battery to be reachable.
 * Empty when the order holds.
 */
export function thresholdProblems(t: ThresholdLevels, capacityJ: number): ThresholdProblem[] {
  const problems: ThresholdProblem[] = [];
  if (!(t.criticalJ < t.eThJ)) problems.push({ threshold: 'criticalJ', message: 'criticalJ must be below eThJ' });
  if (!(t.eThUpJ > t.eThJ)) problems.push({ threshold: 'eThUpJ', message: 'eThUpJ (E′_th) must be above eThJ (E_th) for hysteresis' });
  if (!(t.eThUpJ < capacityJ)) problems.push({ threshold: 'eThUpJ', message: 'eThUpJ must be below the battery capacity' });
  return problems;
}

/**
 * Jobs a node holds at once when its profile does not say: one running and one waiting, the
 * queue of the paper's model (SPEC.md §2).
 */
export const DEFAULT_QUEUE_CAPACITY = 2;
