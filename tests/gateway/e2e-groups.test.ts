// The one generation loop, in process and on the fleet: the bundled model served as 1 group
// (its blocks re-split into one shard) and as its own 3 groups, one node each. Every job's
// token ids, as streamed, must be the ids of the same loop over in-process stages with the
// same block ranges (`heliomesh model generate --groups G`), greedy and sampled. The hops
// are chained: after the prompt's, every group's node sends its output straight to the next
// group's node, so a token crosses the broker G + 1 times instead of 2G.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CompletionRequest } from '../../gateway/jobs.js';
import { bundledModelDir } from '../../models/bundled.js';
import { openCheckpoint } from '../../models/checkpoint.js';
import { writeShards } from '../../models/shards.js';
import { Field } from '../support/field.js';
import { Reference, request, runJob } from './e2e-reference.js';

const REQUESTS: CompletionRequest[] = [
  request({ prompt: 'The little robot', maxTokens: 32 }),
  request({ prompt: 'Once upon a time', temperature: 0.9, topP: 0.95, seed: 7, maxTokens: 32 }),
  request({ prompt: 'The moon', temperature: 1, topP: 1, seed: 12, maxTokens: 24 }),
];

/** The bundled model's blocks as one shard, with its tokenizer, in a folder of its own. */
function oneGroupModel(dir: string): string {
  const source = bundledModelDir();
  const checkpoint = openCheckpoint(source);
  const spec = checkpoint.manifest!.tokenizer!;
  const out = join(dir, 'bundled-1');
  writeShards(checkpoint.config, (part) => checkpoint.read(part), { groups: 1, outDir: out, tokenizer: { kind: spec.kind, path: join(source, spec.file) } });
  return out;
}

for (const groups of [1, 3]) {
  describe(`${groups} group(s)`, () => {
    let work: string;
    let field: Field;
    let reference: Reference;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'heliomesh-groups-'));
      field = await Field.start({ nodesPerGroup: 1, shardDir: groups === 1 ? oneGroupModel(work) : undefined });
      reference = Reference.load(groups);
      await field.ready();
    });

    after(async () => {
      await field?.close();
      reference?.dispose();
      await rm(work, { recursive: true, force: true });
    });

    test(`a fleet of ${groups} group(s) streams the ids of the in-process loop over ${groups} stage(s)`, async () => {
      const path = field.gateway.router.path;
      for (const req of REQUESTS) {
        const expected = await reference.generate(req);
        const before = { ...path };
        const { s, tokens } = await runJob(field.gateway.jobs, req);
        // Forwards per group: the prompt's, then one per token after the first (and one for a sampled stop id).
        const forwards = tokens.length + (s.finishReason === 'stop' ? 1 : 0);
        // The prompt's hops go through the gateway (each next group gets its node as it is reached).
        assert.equal(path.handed - before.handed, (groups - 1) * (forwards - 1), 'every decode hop after the first group is chained');
        assert.equal(path.crossings - before.crossings, 2 * groups + (groups + 1) * (forwards - 1), 'crossings: 2G for the prompt, G + 1 per later token');
        assert.equal(s.status, 'done');
        assert.equal(s.served.length, groups);
        assert.ok(expected.ids.length > 0);
        assert.deepEqual(tokens.map((t) => t.id), expected.ids, `ids of ${JSON.stringify(req.prompt)} (temperature ${req.temperature})`);
        assert.equal(s.text, expected.text);
      }
    });
  });
}
