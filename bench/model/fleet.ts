// The parent side of the shape bench: G stage processes (stage.ts), each holding one
// contiguous layer range with its kernel on all cores, driven in turn as the gateway drives
// a fleet: embed, stage 1, 2, …, G, final norm and classifier, greedy sample. Hidden states
// cross the process boundary over IPC (serialization 'advanced': a structured clone of the
// Float32Array, no JSON); the time each hop takes beyond the stage's own forward is the
// transport.
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { argmax, type ModelHead } from '../../models/head.js';
import type { BlockRange } from '../../models/types.js';
import type { FromStage, StageMemory, StageSpec, ToStage } from './protocol.js';

type Reply<K extends FromStage['type']> = Extract<FromStage, { type: K }>;

/** One stage process and the replies it owes us, in order. */
export class StageProcess {
  readonly child: ChildProcess;
  private readonly waiting: { resolve: (m: FromStage) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;
  private stderrTail = '';

  private constructor(readonly range: BlockRange, spec: StageSpec) {
    const entry = join(dirname(fileURLToPath(import.meta.url)), 'stage.js');
    this.child = fork(entry, [JSON.stringify(spec)], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
    this.child.on('message', (m: FromStage) => {
      if (m.type === 'error') {
        this.fail(new Error(`stage [${range.from}, ${range.to}) failed: ${m.message}`));
        return;
      }
      this.waiting.shift()?.resolve(m);
    });
    this.child.on('exit', (code, signal) => {
      if (this.waiting.length > 0) {
        this.fail(new Error(`stage [${range.from}, ${range.to}) exited (${signal ?? `code ${code}`}) with replies outstanding` +
          (this.stderrTail ? `; its stderr ended with:\n${this.stderrTail}` : '')));
      }
    });
  }

  /** Starts the process; resolves once its layers are loaded. */
  static async start(range: BlockRange, spec: StageSpec): Promise<{ stage: StageProcess; ready: Reply<'ready'> }> {
    const stage = new StageProcess(range, spec);
    const ready = await stage.next('ready');
    return { stage, ready };
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  private next<K extends FromStage['type']>(type: K): Promise<Reply<K>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<FromStage>((resolve, reject) => this.waiting.push({ resolve, reject })).then((m) => {
      if (m.type !== type) throw new Error(`stage [${this.range.from}, ${this.range.to}) answered '${m.type}', expected '${type}'`);
      return m as Reply<K>;
    });
  }

  request<K extends FromStage['type']>(m: ToStage, reply: K): Promise<Reply<K>> {
    const answer = this.next(reply);
    this.child.send(m);
    return answer;
  }

  async open(capacity: number): Promise<void> {
    await this.request({ type: 'open', capacity }, 'opened');
  }

  forward(hidden: Float32Array, T: number): Promise<Reply<'hidden'>> {
    return this.request({ type: 'forward', hidden, T }, 'hidden');
  }

  mark(): Promise<Reply<'mark'>> {
    return this.request({ type: 'mark' }, 'mark');
  }

  async close(): Promise<StageMemory> {
    return (await this.request({ type: 'close' }, 'closed')).memory;
  }

  /** Asks the process to free its stack and exit; waits for it to be gone. */
  async exit(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'exit' } satisfies ToStage);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(timer);
  }
}

/** What one greedy generation through the stage processes measured. */
export interface FleetRound {
  ids: number[];
  promptTokens: number;
  prefillMs: number;
  decodeTokens: number;
  decodeMs: number;
  /** Per stage: forward time during decode (the stage's own clock), and the hop's transport (round trip − forward). */
  stageForwardMs: number[];
  /** Of the forward time, inside the matmul kernel. */
  stageKernelMs: number[];
  stageTransportMs: number[];
  /** Embedding, final norm, classifier and argmax during decode. */
  headMs: number;
  /** Per stage over the decode: CPU time of the whole process (all threads) and its wall time. */
  stageCpuS: number[];
  stageWallS: number[];
  /** Each stage's memory after the round (its peak RSS so far included). */
  stageMemory: StageMemory[];
}

/**
 * One greedy generation: the prompt as one prefill forward per stage, then `decodeTokens`
 * tokens one forward each. Each stage's session holds prompt + decode positions.
 */
export async function generateThrough(head: ModelHead, stages: readonly StageProcess[], prompt: readonly number[],
  decodeTokens: number): Promise<FleetRound> {
  const capacity = prompt.length + decodeTokens;
  await Promise.all(stages.map((s) => s.open(capacity)));
  const G = stages.length;
  const r: FleetRound = {
    ids: [], promptTokens: prompt.length, prefillMs: 0, decodeTokens: 0, decodeMs: 0,
    stageForwardMs: Array<number>(G).fill(0), stageKernelMs: Array<number>(G).fill(0), stageTransportMs: Array<number>(G).fill(0), headMs: 0,
    stageCpuS: Array<number>(G).fill(0), stageWallS: Array<number>(G).fill(0), stageMemory: [],
  };
  let t0 = performance.now();
  let hidden = head.embed(prompt);
  for (const s of stages) hidden = (await s.forward(hidden, prompt.length)).hidden;
  let token = argmax(head.logits(hidden));
  r.prefillMs = performance.now() - t0;
  r.ids.push(token);

  const before = await Promise.all(stages.map((s) => s.mark()));
  for (let k = 0; k < decodeTokens; k++) {
    t0 = performance.now();
    let h0 = performance.now();
    hidden = head.embed([token]);
    let headMs = performance.now() - h0;
    for (let i = 0; i < G; i++) {
      const sent = performance.now();
      const reply = await stages[i]!.forward(hidden, 1);
      const hop = performance.now() - sent;
      hidden = reply.hidden;
      r.stageForwardMs[i] = r.stageForwardMs[i]! + reply.forwardMs;
      r.stageKernelMs[i] = r.stageKernelMs[i]! + reply.kernelMs;
      r.stageTransportMs[i] = r.stageTransportMs[i]! + Math.max(0, hop - reply.forwardMs);
    }
    h0 = performance.now();
    token = argmax(head.logits(hidden));
    headMs += performance.now() - h0;
    r.headMs += headMs;
    r.decodeMs += performance.now() - t0;
    r.decodeTokens++;
    r.ids.push(token);
  }
  const after = await Promise.all(stages.map((s) => s.mark()));
  stages.forEach((_, i) => {
    r.stageCpuS[i] = (after[i]!.cpuUs - before[i]!.cpuUs) / 1e6;
    r.stageWallS[i] = (after[i]!.nowMs - before[i]!.nowMs) / 1000;
  });
  r.stageMemory = await Promise.all(stages.map((s) => s.close()));
  return r;
}
