// `foresight`: our policy. The paper's heuristics see only a device's power mode and its
// long-run weight; a gateway sees much more: each device's live battery level, what it
// already owes to the job in hand, and its own harvest estimate. `foresight` asks the
// device's chain what happens over the processing stage that this job would start:
//
//   E′ = E − owed + H_κ − C_E(PM(E − owed)),   H_κ ~ f^{*κ}   (the (1,E,1) row of §4)
//
// and hands the job to the available device that is least likely to fall below E_th
// because of it (power saving costs the whole climb back to E′_th), then to one that is
// idle (a queued job blocks the device's only queue place), then to the one left with the
// most energy (which both spends energy that a full battery would throw away and keeps
// devices out of the expensive low-battery mode).
import { modeAt } from './chain.js';
import type { DeviceModel } from './metrics.js';
import type { DeviceView, Policy } from './policies.js';
import { uniform } from './policies.js';

interface Outlook {
  /** P(E′ < E_th) after one job started at level E (index E). */
  risk: Float64Array;
  /** E[E′] after one job started at level E. */
  after: Float64Array;
}

const outlooks = new WeakMap<DeviceModel, Outlook>();

/** Per-level outlook of one job, computed once per parameter set from the chain's rows. */
export function outlook(model: DeviceModel): Outlook {
  let o = outlooks.get(model);
  if (o) return o;
  const { eMax, eTh } = model.params;
  const risk = new Float64Array(eMax + 1);
  const after = new Float64Array(eMax + 1);
  for (let e = 0; e <= eMax; e++) {
    const mode = modeAt(model.params, e);
    const fk = model.harvest.get(mode.kappa)!;
    let r = 0;
    let m = 0;
    for (let h = 0; h < fk.length; h++) {
      const ph = fk[h] as number;
      const next = Math.max(Math.min(e + h - mode.costQ, eMax), 0); // Eq. 1
      if (next < eTh) r += ph;
      m += ph * next;
    }
    risk[e] = r;
    after[e] = m;
  }
  o = { risk, after };
  outlooks.set(model, o);
  return o;
}

/** Risks closer than this are treated as equal, so the energy left decides. */
const RISK_TIE = 1e-3;

export const foresight: Policy = {
  name: 'foresight',
  probabilities(group: readonly DeviceView[], out?: Float64Array) {
    let best = -1;
    let bestRisk = Infinity;
    let bestBusy = true;
    let bestAfter = -Infinity;
    for (let i = 0; i < group.length; i++) {
      const d = group[i]!;
      if (!d.available || !d.model) continue;
      const o = outlook(d.model);
      const level = Math.max(0, Math.min(d.model.params.eMax, Math.floor(d.energyQ - d.committedQ)));
      const risk = o.risk[level] as number;
      const after = o.after[level] as number;
      const better =
        risk < bestRisk - RISK_TIE ||
        (Math.abs(risk - bestRisk) <= RISK_TIE && (bestBusy && !d.busy || (d.busy === bestBusy && after > bestAfter)));
      if (best < 0 || better) {
        best = i;
        bestRisk = risk;
        bestBusy = d.busy;
        bestAfter = after;
      }
    }
    if (best < 0) return uniform.probabilities(group, out);
    const probs = out ?? new Float64Array(group.length);
    probs.fill(0);
    probs[best] = 1;
    return probs;
  },
};
