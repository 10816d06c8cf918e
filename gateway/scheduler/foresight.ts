// `foresight`: our policy. The paper's heuristics see only a device's power mode and its
// long-run weight; a gateway sees much more: each device's live battery level, what it
// already owes to the job in hand, and its own harvest estimate. `foresight` asks the
// device's chain what happens over the processing stage that this job would start:
//
//   E′ = E − owed + H_κ − C_E(PM(E − owed)),   H_κ ~ f^{*κ}   (the (1,E,1) row of §4)
//
// and hands the job to the available device whose expected time in power saving because of
// it is least — the chance of ending the stage below E_th times the expected climb, slot by
// slot on f(e), from where it lands back above E′_th (§2) — then to one that is idle (a
// queued job blocks the device's only queue place), then to the one left with the most
// energy (which both spends energy that a full battery would throw away and keeps devices
// out of the expensive low-battery mode). Weighing a fall by the climb it costs, not only
// by its chance, counts what the figures count: slots inactive, in which no job is served.
import { idleDraws, modeAt } from './chain.js';
import type { DeviceModel } from './metrics.js';
import type { DeviceView, Policy } from './policies.js';
import { uniform } from './policies.js';

interface Outlook {
  /** P(E′ < E_th) after one job started at level E (index E). */
  risk: Float64Array;
  /** E[E′] after one job started at level E. */
  after: Float64Array;
  /** Expected slots in power saving that one job started at level E leads to (∞ with no harvest). */
  downtime: Float64Array;
}

/**
 * Expected slots a device in power saving at level e (≤ E′_th) stays there: each slot it
 * harvests f(e) and nothing else happens, and it leaves once it ends a slot above E′_th
 * (SPEC.md §2). T(e) = 1 + Σ_h f(h) T(e + h) over e + h ≤ E′_th, solved from E′_th down.
 */
export function climbSlots(f1: Float64Array, eThUp: number): Float64Array {
  const t = new Float64Array(eThUp + 1);
  const stay = f1[0] ?? 0;
  for (let e = eThUp; e >= 0; e--) {
    let sum = 1;
    for (let h = 1; e + h <= eThUp && h < f1.length; h++) sum += (f1[h] as number) * (t[e + h] as number);
    t[e] = stay >= 1 ? Infinity : sum / (1 - stay);
  }
  return t;
}

const outlooks = new WeakMap<DeviceModel, Outlook>();

/** Per-level outlook of one job, computed once per parameter set from the chain's rows. */
export function outlook(model: DeviceModel): Outlook {
  let o = outlooks.get(model);
  if (o) return o;
  const { eMax, eTh, eThUp } = model.params;
  const risk = new Float64Array(eMax + 1);
  const after = new Float64Array(eMax + 1);
  const downtime = new Float64Array(eMax + 1);
  const climb = climbSlots(model.harvest.get(1)!, eThUp);
  for (let e = 0; e <= eMax; e++) {
    const mode = modeAt(model.params, e);
    const fk = model.harvest.get(mode.kappa)!;
    let r = 0;
    let m = 0;
    let d = 0;
    for (const [idle, pd] of idleDraws(model.params, mode.kappa)) {
      const spend = mode.costQ + idle;
      for (let h = 0; h < fk.length; h++) {
        const ph = (fk[h] as number) * pd;
        if (ph === 0) continue;
        const next = Math.max(Math.min(e + h - spend, eMax), 0); // Eq. 1
        if (next < eTh) {
          r += ph;
          d += ph * (climb[next] as number);
        }
        m += ph * next;
      }
    }
    risk[e] = r;
    after[e] = m;
    downtime[e] = d;
  }
  o = { risk, after, downtime };
  outlooks.set(model, o);
  return o;
}

/** Expected downtimes closer than this (slots) are treated as equal, so the energy left decides. */
const DOWNTIME_TIE = 1e-3;

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
      const risk = o.downtime[level] as number;
      const after = o.after[level] as number;
      const better =
        risk < bestRisk - DOWNTIME_TIE ||
        ((risk === bestRisk || Math.abs(risk - bestRisk) <= DOWNTIME_TIE) && (bestBusy && !d.busy || (d.busy === bestBusy && after > bestAfter)));
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
