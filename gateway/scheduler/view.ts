// The one place a DeviceView is made: the live gateway (gateway/router/scheduler.ts, from
// the registry's node state and the router's jobs in hand) and the simulator (sim/network.ts,
// from its own devices) both build what the policies see here, so a policy decides on the
// same facts in both.
import { groupWeights, type DeviceModel } from './metrics.js';
import type { DeviceView } from './policies.js';
import type { PowerModeSpec } from './types.js';

/** What is known of one device at a decision, in the chain's units. */
export interface DeviceState {
  /** Why it cannot take a job whatever its energy and queue (offline, another shard); '' when nothing bars it. */
  barred: string;
  /** Why the scheduler passes it over though it is active (the job gave up on it, it is a suspect); '' when it does not. */
  passedOver: string;
  /** γ = 1 active, 0 in power saving (SPEC.md §2). */
  gamma: 0 | 1;
  /** PM now; not meaningful in power saving. */
  powerMode: number;
  /** Battery level, in quanta. */
  energyQ: number;
  /** Jobs it holds: the one being processed and those waiting behind it. */
  held: number;
  /** Jobs it may hold at once: one in service and one waiting in the paper's model (SPEC.md §2). */
  capacity: number;
  /** Its power modes, for C_E(PM). */
  modes: readonly PowerModeSpec[];
  /** Long-term weight r_i of Eq. 6 within its group. */
  weight: number;
  model?: DeviceModel;
}

/**
 * What the device owes to the jobs it holds, in quanta: C_E of its PM now for each. The
 * chain pays C_E at the end of each processing stage (Eq. 1), so until a job is done its
 * whole cost is still to come off the battery level the policies see.
 */
export function committedQ(modes: readonly PowerModeSpec[], powerMode: number, held: number): number {
  if (held <= 0) return 0;
  for (const m of modes) if (m.powerMode === powerMode) return held * m.costQ;
  return 0; // PM 0, power saving: no stage runs, so nothing is paid until it is left
}

/** Why the device may not take a job now, the most lasting reason first; '' when it may. */
export function unavailableReason(s: DeviceState): string {
  if (s.barred) return s.barred;
  if (s.gamma !== 1) return 'in power saving';
  if (s.passedOver) return s.passedOver;
  if (s.held >= s.capacity) return 'busy';
  return '';
}

/** The view the policies decide on; written into `out` when given (the simulator reuses its views). */
export function deviceView(s: DeviceState, out?: DeviceView): DeviceView {
  const powerMode = s.gamma === 1 ? s.powerMode : 0;
  const v = out ?? ({} as DeviceView);
  v.available = unavailableReason(s) === '';
  v.busy = s.held > 0;
  v.powerMode = powerMode;
  v.energyQ = s.energyQ;
  v.committedQ = committedQ(s.modes, powerMode, s.held);
  v.weight = s.weight;
  v.model = s.model;
  return v;
}

/**
 * The long-term weights r_i of Eq. 6 of a group's members, in their order: shares of q_lim
 * over the online members only, since an offline node's capacity is not on offer; a node
 * not solved yet counts q_lim 0.
 */
export function memberWeights(members: ReadonlyArray<{ online: boolean; solved?: { qLim: number } | undefined }>): number[] {
  const online = members.filter((m) => m.online);
  const r = groupWeights(online.map((m) => m.solved?.qLim ?? 0));
  let k = 0;
  return members.map((m) => (m.online ? r[k++]! : 0));
}
