// The generation loop over fake stages and a fake head (no model): the positions each
// stage is asked to forward, the capacity it is opened with, stop ids, the context limit,
// seeded sampling, the prompt checks, and how stages are closed on each way out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateTokens, type FinishReason, type GenerateOptions, type TokenHead } from '../../models/generate.js';
import { Random } from '../../ground/random.js';
import { sampleMultinomial, softmax } from '../../models/head.js';
import type { Stage } from '../../models/stage.js';

const DIM = 2;
const VOCAB = 10;

/** Row t of the hidden states carries token t in its first value; logits peak at that value (mod VOCAB). */
function head(seqLen: number, logitsOf?: (hidden: Float32Array) => Float32Array): TokenHead {
  return {
    config: { seqLen, vocabSize: VOCAB },
    embed: (tokens) => {
      const out = new Float32Array(tokens.length * DIM);
      tokens.forEach((id, t) => (out[t * DIM] = id));
      return out;
    },
    logits: logitsOf ?? ((hidden) => {
      const logits = new Float32Array(VOCAB);
      logits[hidden[hidden.length - DIM]! % VOCAB] = 1;
      return logits;
    }),
  };
}

/** Adds 1 to the token each row carries, and records what it was asked. */
class CountingStage implements Stage {
  readonly calls: Array<[position: number, rows: number]> = [];
  closed: { failure: Error | undefined } | undefined;

  constructor(readonly positions: number, private readonly failAt?: number) {}

  async forward(hidden: Float32Array, position: number): Promise<Float32Array> {
    this.calls.push([position, hidden.length / DIM]);
    if (position === this.failAt) throw new Error(`stage lost at ${position}`);
    const out = Float32Array.from(hidden);
    for (let i = 0; i < out.length; i += DIM) out[i] = out[i]! + 1;
    return out;
  }

  async close(failure?: Error): Promise<void> {
    assert.equal(this.closed, undefined, 'a stage is closed once');
    this.closed = { failure };
  }
}

interface Rig {
  stages: CountingStage[];
  opened: number[];
  open: (positions: number) => CountingStage[];
}

function rig(count: number, failAt?: number): Rig {
  const r: Rig = {
    stages: [],
    opened: [],
    open: (positions) => {
      r.opened.push(positions);
      r.stages = Array.from({ length: count }, (_, i) => new CountingStage(positions, i === count - 1 ? failAt : undefined));
      return r.stages;
    },
  };
  return r;
}

const greedy = { temperature: 0, topP: 1, seed: 0 };

async function drain(tokens: AsyncGenerator<number, FinishReason>): Promise<{ ids: number[]; reason: FinishReason }> {
  const ids: number[] = [];
  for (;;) {
    const next = await tokens.next();
    if (next.done) return { ids, reason: next.value };
    ids.push(next.value);
  }
}

const run = (h: TokenHead, r: Rig, opts: Partial<GenerateOptions>) =>
  drain(generateTokens(h, r.open, { promptIds: [1, 2], maxTokens: 4, sampler: greedy, ...opts }));

test('the prompt goes through every stage at position 0, then one token per step at the next position', async () => {
  const r = rig(3);
  const { ids, reason } = await run(head(64), r, { promptIds: [1, 2], maxTokens: 4 });
  // each stage adds 1: the next token is the last one + 3
  assert.deepEqual(ids, [5, 8, 1, 4]);
  assert.equal(reason, 'length');
  // the last token is never fed back: prompt + maxTokens - 1 positions
  assert.deepEqual(r.opened, [5]);
  for (const s of r.stages) {
    assert.deepEqual(s.calls, [[0, 2], [2, 1], [3, 1], [4, 1]]);
    assert.deepEqual(s.closed, { failure: undefined });
  }
});

test('a stop id ends the generation without being yielded', async () => {
  const r = rig(1);
  // 2 → 3 → 4 → 5: stop at 4
  const { ids, reason } = await run(head(64), r, { promptIds: [2], maxTokens: 10, stopIds: [4, 9] });
  assert.deepEqual(ids, [3]);
  assert.equal(reason, 'stop');
  assert.deepEqual(r.stages[0]!.calls, [[0, 1], [1, 1]]);
  assert.deepEqual(r.stages[0]!.closed, { failure: undefined });
});

test('the context limits the positions: stages are opened for seqLen and never asked past it', async () => {
  const r = rig(2);
  const { ids, reason } = await run(head(6), r, { promptIds: [1, 1, 1], maxTokens: 100 });
  // 3 prompt positions + 3 fed back = 6 = seqLen; the 4th token is sampled from the last
  assert.equal(ids.length, 4);
  assert.equal(reason, 'length');
  assert.deepEqual(r.opened, [6]);
  for (const s of r.stages) assert.deepEqual(s.calls.map(([p]) => p), [0, 3, 4, 5]);
});

test('sampling draws once per token from the seeded random, as the sampler defines it', async () => {
  // The same distribution at every step, so the draws alone decide the ids.
  const fixed = Float32Array.from([0, 1, 2, 0.5, 1.5, 0, 0, 2.5, 1, 0.2]);
  const h = head(64, () => fixed);
  const sampler = { temperature: 0.7, topP: 1, seed: 1234 };
  const { ids } = await run(h, rig(2), { promptIds: [1], maxTokens: 24, sampler });
  const random = new Random(sampler.seed);
  const probs = softmax(fixed, sampler.temperature);
  assert.deepEqual(ids, Array.from({ length: 24 }, () => sampleMultinomial(probs, random.next())));
  assert.ok(new Set(ids).size > 3, `the draws vary: ${ids.join(',')}`);
  assert.deepEqual((await run(h, rig(2), { promptIds: [1], maxTokens: 24, sampler })).ids, ids, 'the seed reproduces the ids');
  assert.notDeepEqual((await run(h, rig(2), { promptIds: [1], maxTokens: 24, sampler: { ...sampler, seed: 1235 } })).ids, ids);
});

test('a stage that fails ends the generation: every stage is closed with the failure', async () => {
  const r = rig(3, 3);
  const ids: number[] = [];
  await assert.rejects(async () => {
    for await (const id of generateTokens(head(64), r.open, { promptIds: [1, 2], maxTokens: 8, sampler: greedy })) ids.push(id);
  }, /stage lost at 3/);
  assert.deepEqual(ids, [5, 8]);
  for (const s of r.stages) assert.match(s.closed?.failure?.message ?? '', /stage lost at 3/);
});

test('a caller that stops early (a stop sequence) closes the stages without a failure', async () => {
  const r = rig(2);
  for await (const id of generateTokens(head(64), r.open, { promptIds: [1], maxTokens: 8, sampler: greedy })) {
    assert.equal(id, 3);
    break;
  }
  for (const s of r.stages) assert.deepEqual(s.closed, { failure: undefined });
});

test('no stage is opened for zero tokens or for a request that fails its checks', async () => {
  const r = rig(2);
  assert.deepEqual(await run(head(8), r, { maxTokens: 0 }), { ids: [], reason: 'length' });
  const refused: Array<[Partial<GenerateOptions>, RegExp]> = [
    [{ promptIds: [] }, /the prompt is empty/],
    [{ promptIds: [1, VOCAB] }, /prompt token id 10 is outside the vocabulary \[0, 10\)/],
    [{ promptIds: Array<number>(9).fill(1) }, /the prompt has 9 tokens; the model's context is 8/],
    [{ maxTokens: 1.5 }, /maxTokens must be a whole number >= 0/],
    [{ sampler: { temperature: -1, topP: 1, seed: 0 } }, /temperature must be a finite number >= 0/],
    [{ sampler: { temperature: 1, topP: 0, seed: 0 } }, /topP must be in \(0, 1\]/],
    [{ sampler: { temperature: 1, topP: 1, seed: 0.5 } }, /seed must be an integer/],
  ];
  for (const [opts, why] of refused) await assert.rejects(run(head(8), r, opts), why);
  assert.deepEqual(r.opened, []);
});
