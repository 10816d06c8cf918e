// Profiling: N standard jobs in each power mode, timed on the clock and metered with the
// node's load INA219 through the ledger, give the power-mode table the scheduler needs:
// κ(PM) = slots one job occupies at δ, C_E(PM) = joules one job costs above idle
// (SPEC.md §3's table, measured on this node instead of taken from the paper's Jetson).
//
// A standard job is one stage of a generation: a prefill of `promptTokens` rows, then
// `decodeTokens` single-row steps through this node's blocks. The forward pass is
// synchronous, so the event loop is given back between steps to let the ledger sample.
import { monotonicMs, type Clock } from '../ground/clock.js';
import type { NodeHardware } from '../hardware/node.js';
import type { BlockStack } from '../models/forward.js';
import type { PowerModeEntry } from '../protocol/index.js';
import type { MeteredInterval } from './energy.js';
import type { Ledger } from './ledger.js';

export interface ProfileOptions {
  hardware: NodeHardware;
  stack: BlockStack;
  ledger: Ledger;
  clock: Clock;
  modes: PowerModeEntry[];
  slotMs: number;
  jobsPerMode: number;
  /** Idle time measured per mode for the baseline. */
  idleMs?: number;
  promptTokens?: number;
  decodeTokens?: number;
  /**
   * Measurements per mode at most: a cost the meter cannot resolve is measured again with
   * twice as many standard jobs back to back in each metered span (the edges' sampling
   * error stays, the energy doubles), up to this.
   */
  maxAttempts?: number;
  onProgress?(done: number, total: number, mode: string): void;
  /** Told when a mode's cost was not resolved and is measured again with longer jobs. */
  onRetry?(mode: string, attempt: number, reason: string): void;
}

export interface ModeProfile {
  powerMode: number;
  name: string;
  jobs: number;
  meanDurationMs: number;
  meanEnergyJ: number;
  /** Uncertainty of meanEnergyJ (docs/agent.md "Per-job energy"). */
  energyUncertaintyJ: number;
  baselineW: number;
  kappa: number;
  costJ: number;
  /** Standard jobs run back to back in each metered span when the cost was resolved. */
  jobsPerSpan: number;
  attempts: number;
}

/** C_E is written in mJ (the table's resolution): a cost must clear its uncertainty by that. */
const COST_RESOLUTION_J = 0.001;

const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * A span between two samples of the ledger, as it metered it: the intervals closed from the
 * opening sample to the closing one, their time (`meteredMs`: from read to read, not the
 * clock around the awaits), energy and uncertainty; `ms` is the clock's span, the job's duration.
 */
async function meterSpan(o: ProfileOptions, run: () => Promise<void>): Promise<{ ms: number; meteredMs: number; energyJ: number; uncertaintyJ: number }> {
  await o.ledger.sampleNow();
  const t0 = monotonicMs(o.clock);
  const span = { meteredMs: 0, energyJ: 0, uncertaintyJ: 0 };
  const off = o.ledger.onInterval((i: MeteredInterval) => {
    const dtS = (i.toMs - i.fromMs) / 1000;
    span.meteredMs += i.toMs - i.fromMs;
    span.energyJ += i.energyJ;
    span.uncertaintyJ += ((i.fromResolutionW + i.toResolutionW) / 2 + Math.abs(i.toW - i.fromW) / 2) * dtS;
  });
  try {
    await run();
    await o.ledger.sampleNow();
  } finally {
    off();
  }
  return { ms: monotonicMs(o.clock) - t0, ...span };
}

export async function profileModes(o: ProfileOptions): Promise<ModeProfile[]> {
  const dim = o.stack.geometry.dim;
  const promptTokens = o.promptTokens ?? 16;
  const maxAttempts = o.maxAttempts ?? 4;
  const prompt = new Float32Array(promptTokens * dim).map((_, i) => Math.sin(i) * 0.5);
  const step = new Float32Array(dim).map((_, i) => Math.cos(i) * 0.5);
  const total = o.modes.length * o.jobsPerMode;
  let done = 0;
  const out: ModeProfile[] = [];
  for (const mode of o.modes) {
    await o.hardware.applyPowerMode(mode.name);
    const idle = await meterSpan(o, () => o.clock.sleep(o.idleMs ?? 5000));
    const baselineW = idle.meteredMs > 0 ? idle.energyJ / (idle.meteredMs / 1000) : 0;
    const baselineUncertaintyW = idle.meteredMs > 0 ? idle.uncertaintyJ / (idle.meteredMs / 1000) : 0;
    const decodeTokens = o.decodeTokens ?? 16;
    let jobsPerSpan = 1;
    for (let attempt = 1; ; attempt++) {
      let durationMs = 0;
      let energyJ = 0;
      let uncertaintyJ = 0;
      for (let j = 0; j < o.jobsPerMode; j++) {
        // A virtual node draws its full compute power while the standard job runs: the job
        // keeps the cores busy (demo/plan.ts powerModesFor defines C_E so).
        o.hardware.virtual?.setJobRunning(true);
        const m = await meterSpan(o, async () => {
          for (let b = 0; b < jobsPerSpan; b++) {
            const session = o.stack.openSession({ capacity: promptTokens + decodeTokens });
            try {
              o.stack.forward(session, prompt, promptTokens);
              for (let k = 0; k < decodeTokens; k++) {
                await yieldLoop();
                o.stack.forward(session, step, 1);
              }
            } finally {
              session.close();
            }
          }
        });
        o.hardware.virtual?.setJobRunning(false);
        durationMs += m.ms / jobsPerSpan;
        energyJ += (m.energyJ - baselineW * (m.meteredMs / 1000)) / jobsPerSpan;
        uncertaintyJ += (m.uncertaintyJ + baselineUncertaintyW * (m.meteredMs / 1000)) / jobsPerSpan;
        if (attempt === 1) o.onProgress?.(++done, total, mode.name);
      }
      const meanDurationMs = durationMs / o.jobsPerMode;
      const meanEnergyJ = energyJ / o.jobsPerMode;
      // Each job's error bound holds for the mean too (the bounds are not independent errors to average down).
      const meanUncertaintyJ = uncertaintyJ / o.jobsPerMode;
      if (meanEnergyJ - meanUncertaintyJ >= COST_RESOLUTION_J) {
        out.push({
          powerMode: mode.powerMode, name: mode.name, jobs: o.jobsPerMode, meanDurationMs, meanEnergyJ, energyUncertaintyJ: meanUncertaintyJ, baselineW,
          kappa: Math.max(1, Math.ceil(meanDurationMs / o.slotMs)),
          costJ: Math.round(meanEnergyJ * 1000) / 1000,
          jobsPerSpan, attempts: attempt,
        });
        break;
      }
      const reason = `${meanEnergyJ.toFixed(4)} ± ${meanUncertaintyJ.toFixed(4)} J per job above a ${baselineW.toFixed(3)} W idle baseline, ${jobsPerSpan} job(s) per metered span`;
      if (attempt >= maxAttempts) {
        throw new Error(`PM${mode.powerMode} ${mode.name}: the job's cost C_E is not resolved by the meter: ${reason}, after ${attempt} measurements; check that the load INA219 (role "load") reads the node's draw, or profile with a higher sampleHz`);
      }
      o.onRetry?.(mode.name, attempt, reason);
      jobsPerSpan *= 2;
    }
  }
  return out;
}
