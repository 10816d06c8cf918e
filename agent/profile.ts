// Profiling: N standard jobs in each power mode, timed on the clock and metered with the
// node's load INA219 through the ledger, give the power-mode table the scheduler needs:
// κ(PM) = slots one job occupies at δ, C_E(PM) = joules one job costs above idle
// (SPEC.md §3's table, measured on this node instead of taken from the paper's Jetson).
//
// A standard job is one stage of a generation: a prefill of `promptTokens` rows, then
// `decodeTokens` single-row steps through this node's blocks. The forward pass is
// synchronous, so the event loop is given back between steps to let the ledger sample.
import { monotonicMs, type Clock } from '../hardware/clock.js';
import type { NodeHardware } from '../hardware/node.js';
import type { BlockStack } from '../models/forward.js';
import type { PowerModeEntry } from '../protocol/index.js';
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
  onProgress?(done: number, total: number, mode: string): void;
}

export interface ModeProfile {
  powerMode: number;
  name: string;
  jobs: number;
  meanDurationMs: number;
  meanEnergyJ: number;
  baselineW: number;
  kappa: number;
  costJ: number;
}

const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

async function meterSpan(o: ProfileOptions, run: () => Promise<void>): Promise<{ ms: number; energyJ: number }> {
  await o.ledger.sample();
  const t0 = monotonicMs(o.clock);
  const e0 = o.ledger.consumedTotalJ;
  await run();
  await o.ledger.sample();
  return { ms: monotonicMs(o.clock) - t0, energyJ: o.ledger.consumedTotalJ - e0 };
}

export async function profileModes(o: ProfileOptions): Promise<ModeProfile[]> {
  const dim = o.stack.geometry.dim;
  const promptTokens = o.promptTokens ?? 16;
  const decodeTokens = o.decodeTokens ?? 16;
  const prompt = new Float32Array(promptTokens * dim).map((_, i) => Math.sin(i) * 0.5);
  const step = new Float32Array(dim).map((_, i) => Math.cos(i) * 0.5);
  const total = o.modes.length * o.jobsPerMode;
  let done = 0;
  const out: ModeProfile[] = [];
  for (const mode of o.modes) {
    await o.hardware.applyPowerMode(mode.name);
    const idle = await meterSpan(o, () => o.clock.sleep(o.idleMs ?? 5000));
    const baselineW = idle.ms > 0 ? idle.energyJ / (idle.ms / 1000) : 0;
    let durationMs = 0;
    let energyJ = 0;
    for (let j = 0; j < o.jobsPerMode; j++) {
      o.hardware.virtual?.setJobRunning(true);
      const m = await meterSpan(o, async () => {
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
      });
      o.hardware.virtual?.setJobRunning(false);
      durationMs += m.ms;
      energyJ += m.energyJ - baselineW * (m.ms / 1000);
      o.onProgress?.(++done, total, mode.name);
    }
    const meanDurationMs = durationMs / o.jobsPerMode;
    const meanEnergyJ = energyJ / o.jobsPerMode;
    out.push({
      powerMode: mode.powerMode, name: mode.name, jobs: o.jobsPerMode, meanDurationMs, meanEnergyJ, baselineW,
      kappa: Math.max(1, Math.ceil(meanDurationMs / o.slotMs)),
      // A job cannot cost less than nothing; a negative mean means the meter could not see it.
      costJ: Math.max(0, Math.round(meanEnergyJ * 1000) / 1000),
    });
  }
  return out;
}
