// The numbers the paper gives (SPEC.md §3), as parameters of the model. Energies are in
// the paper's kilojoules, so one quantum is 1 kJ and the 100 kJ battery has 100 levels.
import type { ModeStep, PowerModeSpec } from './types.js';

/** Jetson AGX Orin modes measured by the paper for one job; κ at δ = 100 s. */
export const PAPER_MODES: PowerModeSpec[] = [
  { powerMode: 1, name: '15W', kappa: 3, costQ: 26 },
  { powerMode: 2, name: '30W', kappa: 2, costQ: 22 },
  { powerMode: 3, name: '60W', kappa: 1, costQ: 23 },
];

/** The hand-found dynamic table: below 40 % → 15 W, 40–60 % → 30 W, 60 % and above → 60 W. */
export const PAPER_DYNAMIC_TABLE: ModeStep[] = [
  { minFraction: 0, powerMode: 1 },
  { minFraction: 0.4, powerMode: 2 },
  { minFraction: 0.6, powerMode: 3 },
];

export const PAPER_BATTERY_KJ = 100;
/** E_th = 10 % of the battery. */
export const PAPER_E_TH_FRACTION = 0.1;
/** Tolerated risk for q^energy_lim. */
export const PAPER_XI_LIM = 0.01;
/** Slot length δ in seconds. */
export const PAPER_SLOT_S = 100;

export function fixedTable(powerMode: number): ModeStep[] {
  return [{ minFraction: 0, powerMode }];
}
