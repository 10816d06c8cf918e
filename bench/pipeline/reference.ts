// The in-process side of `heliomesh bench pipeline`, in a process of its own, as
// `heliomesh model generate --groups 3` runs: the shard folder loaded as one Pipeline of 3
// stages, generating on request. Apart from the gateway's process, neither side's heap,
// garbage or JIT is counted in the other's CPU and time (in one process, a round's leftover
// collection ran into the next round of the other path).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '../../models/backend.js';
import { allTokens, emptyStats, type Pipeline } from '../../models/generate.js';
import type { SamplerOptions } from '../../models/head.js';
import { reapOnExit } from '../reap.js';
import { inProcessPipeline } from './model.js';
import type { InProcessRun } from './report.js';

export interface ReferenceRequest {
  promptIds: number[];
  maxTokens: number;
  stopIds: number[];
  sampler: SamplerOptions;
}

type Reply = { ok: true; run: InProcessRun } | { ok: false; error: string } | { ready: true; stages: number };

/** Generates once and measures it: decode speed as the pipeline's own stats count it, this process's CPU per token. */
async function generateOnce(pipeline: Pipeline, req: ReferenceRequest): Promise<InProcessRun> {
  const stats = emptyStats(pipeline.stacks.length);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const ids = await allTokens(pipeline.generate({ promptIds: req.promptIds, maxTokens: req.maxTokens, sampler: req.sampler, stopIds: req.stopIds }, stats));
  const cpu = process.cpuUsage(cpu0);
  return {
    ids, stats, wallMs: performance.now() - t0, decodeTokensPerS: (stats.decodeTokens / stats.decodeMs) * 1000,
    cpuMsPerToken: (cpu.user + cpu.system) / 1000 / ids.length, systemCpuMsPerToken: cpu.system / 1000 / ids.length,
  };
}

/** The bench's handle on its reference process. */
export class ReferenceProcess {
  private closing = false;
  /** Rejects when the process exits before close(): a run that cannot answer must not hang the bench. */
  private readonly lost: Promise<never>;

  private constructor(private readonly child: ChildProcess) {
    this.lost = new Promise<never>((_resolve, reject) => {
      child.once('exit', (code, signal) => {
        if (!this.closing) reject(new Error(`the in-process reference exited (${signal ?? `code ${code}`})`));
      });
    });
    this.lost.catch(() => undefined);
  }

  /** Starts the process on `dir` and waits until its pipeline is loaded. */
  static async start(dir: string): Promise<ReferenceProcess> {
    const child = fork(fileURLToPath(import.meta.url), [dir], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    reapOnExit(child);
    const ref = new ReferenceProcess(child);
    try {
      await Promise.race([ref.lost, ref.reply()]);
    } catch (err) {
      await ref.close();
      throw err;
    }
    return ref;
  }

  private reply(): Promise<Reply> {
    return new Promise((resolve) => this.child.once('message', (m) => resolve(m as Reply)));
  }

  async run(req: ReferenceRequest): Promise<InProcessRun> {
    const answer = this.reply();
    this.child.send(req);
    const r = await Promise.race([this.lost, answer]);
    if ('ready' in r) throw new Error('the in-process reference answered out of turn');
    if (!r.ok) throw new Error(`the in-process reference failed: ${r.error}`);
    return r.run;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

async function serve(dir: string): Promise<void> {
  await selectBackend();
  const pipeline = inProcessPipeline(dir);
  process.on('disconnect', () => {
    pipeline.dispose();
    process.exit(0);
  });
  // One request at a time: the bench awaits each answer before it sends the next.
  process.on('message', (req: ReferenceRequest) => {
    generateOnce(pipeline, req).then(
      (run) => process.send!({ ok: true, run } satisfies Reply),
      (err: unknown) => process.send!({ ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply),
    );
  });
  process.send!({ ready: true, stages: pipeline.stacks.length } satisfies Reply);
}

if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  serve(process.argv[2]!).catch((err: unknown) => {
    console.error('in-process reference:', err);
    process.exit(1);
  });
}
