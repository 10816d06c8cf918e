// One pipeline stage of the shape bench, in its own process as on a fleet node: it builds
// exactly its own layers of the seeded random model (models/random.ts, per-layer streams),
// loads them into a BlockStack whose kernel runs on the given threads, and runs forwards
// for the parent over IPC. Its peak RSS is therefore its own: weights once in the kernel,
// its KV cache, the runtime.
//
// The layers are generated straight into the kernel's memory (the allocator BlockStack hands
// its loader, as the agent's shard reader uses it), so no host copy of the range exists.
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { selectBackend } from '../../models/backend.js';
import { BlockStack, type BlockSession } from '../../models/forward.js';
import { randomWeights } from '../../models/random.js';
import type { FromStage, StageMemory, StageSpec, ToStage } from './protocol.js';

function send(m: FromStage): void {
  process.send!(m);
}

/**
 * This process's own peak RSS: VmHWM of /proc/self/status where there is one. getrusage's
 * maxRSS is not: Linux carries the high-water mark of the memory a process had before exec
 * over into it, and a child forked from a large parent (here, the bench after writing the
 * C bar's file) reports the parent's size.
 */
function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: getrusage's figure is the best there is
  }
  return process.resourceUsage().maxRSS * 1024;
}

function memory(stack: BlockStack | undefined): StageMemory {
  return {
    peakRssBytes: peakRss(),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    rssBytes: process.memoryUsage().rss,
    kernelHeapBytes: stack?.kernel.heapBytes() ?? 0,
    kernelWeightBytes: stack?.kernel.weightBytes() ?? 0,
    tensorBytes: tf.memory().numBytes,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as StageSpec;
  const backend = await selectBackend({ backend: spec.backend });
  const t0 = performance.now();
  const stack = new BlockStack((allocate) => randomWeights(spec.config, spec.seed, spec.type, { range: spec.range }, allocate),
    spec.range, { threads: spec.threads });
  // Time inside the kernel's matmuls, to tell the kernel's share of a forward from the rest
  // of the block (TF.js norms, attention and SwiGLU, RoPE and cache writes, copies).
  let kernelMs = 0;
  const kernel = stack.kernel;
  const matmul = kernel.matmul.bind(kernel);
  kernel.matmul = (...args: Parameters<typeof matmul>) => {
    const began = performance.now();
    try {
      return matmul(...args);
    } finally {
      kernelMs += performance.now() - began;
    }
  };
  send({ type: 'ready', loadMs: performance.now() - t0, backend: backend.detail, memory: memory(stack) });

  let session: BlockSession | undefined;
  let forwardMs = 0;
  process.on('message', (raw) => {
    const m = raw as ToStage;
    try {
      switch (m.type) {
        case 'open':
          session?.close();
          session = stack.openSession({ capacity: m.capacity });
          send({ type: 'opened' });
          break;
        case 'forward': {
          if (!session) throw new Error('forward before open');
          const began = performance.now();
          const kernelBefore = kernelMs;
          const hidden = stack.forward(session, m.hidden, m.T);
          const took = performance.now() - began;
          forwardMs += took;
          send({ type: 'hidden', hidden, forwardMs: took, kernelMs: kernelMs - kernelBefore });
          break;
        }
        case 'mark': {
          const u = process.cpuUsage();
          send({ type: 'mark', cpuUs: u.user + u.system, nowMs: performance.now(), forwardMs });
          break;
        }
        case 'close':
          session?.close();
          session = undefined;
          send({ type: 'closed', memory: memory(stack) });
          break;
        case 'exit':
          stack.dispose();
          process.disconnect();
          break;
      }
    } catch (err) {
      send({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  });
}

main().catch((err: unknown) => {
  process.send?.({ type: 'error', message: (err as Error).stack ?? String(err) } satisfies FromStage);
  process.exitCode = 1;
  process.disconnect?.();
});
