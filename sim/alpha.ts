// The readings of Algorithm 1's α that the paper leaves open (SPEC.md §5, §7.5), for the
// sensitivity study only. The live gateway's `adaptive` (gateway/scheduler/policies.ts) is
// the adopted reading; the simulator swaps in one of these when a scenario asks for another.
import { adaptive, longTerm, type DeviceView, type Policy } from '../gateway/scheduler/index.js';

/**
 * 'pseudo-code': a PM 1 device keeps the fraction α/N_ℓ of its weight (Algorithm 1 as
 * printed, the adopted reading). 'prose': its weight is "decreased by a quantity
 * proportional to α/N_ℓ", read as losing that fraction: it keeps 1 − α/N_ℓ.
 */
export type AlphaReading = 'pseudo-code' | 'prose';

export interface AlphaOptions {
  reading: AlphaReading;
  /** Count the group's devices in power saving in α, beside the active ones in PM 1 (SPEC §7.5). */
  countSleeping: boolean;
}

/** Algorithm 1 under one reading of α. */
export function adaptiveReading(reading: AlphaReading, countSleeping: boolean): Policy {
  return {
    name: 'adaptive',
    probabilities(group: readonly DeviceView[], out?: Float64Array) {
      let alpha = 0;
      // Only a device in power saving has PM 0 in its view (deviceView): an active one always runs a mode.
      for (const d of group) if (d.powerMode === 1 || (countSleeping && d.powerMode === 0)) alpha++;
      const share = alpha / group.length;
      const factor = reading === 'prose' ? 1 - share : share;
      const w = out ?? new Float64Array(group.length);
      let sum = 0;
      for (let i = 0; i < group.length; i++) {
        const d = group[i]!;
        w[i] = d.available ? d.weight * (d.powerMode === 1 ? factor : 1) : 0;
        sum += w[i] as number;
      }
      if (sum === 0) return longTerm.probabilities(group, w);
      for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) / sum;
      return w;
    },
  };
}

/** The policy a run uses: the live one, unless it is adaptive and the scenario reads α otherwise. */
export function policyFor(policy: Policy, alpha: AlphaOptions | undefined): Policy {
  if (policy.name !== adaptive.name || !alpha || (alpha.reading === 'pseudo-code' && !alpha.countSleeping)) return policy;
  return adaptiveReading(alpha.reading, alpha.countSleeping);
}
