// `heliomesh agent --virtual`: the block range a virtual node serves follows its group (gN
// serves the N-th range of the model's manifest) or --blocks, so every group of the bundled
// model can be served from the command line alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { virtualAgentConfig } from '../../agent/virtual.js';
import { bundledModelDir } from '../../models/bundled.js';
import { readManifest } from '../../models/shards.js';

const base = { gateway: 'mqtt://localhost:1883' };

test('--group gN serves the N-th block range of the bundled model, --blocks any range', () => {
  const ranges = readManifest(bundledModelDir()).blocks.map((b) => [b.from, b.to - 1]);
  assert.ok(ranges.length >= 3, 'the bundled model has at least three groups');
  ranges.forEach(([from, to], i) => {
    const { model } = virtualAgentConfig({ ...base, group: `g${i + 1}` }, {});
    assert.deepEqual([model!.firstBlock, model!.lastBlock], [from, to], `g${i + 1}`);
  });
  assert.deepEqual(virtualAgentConfig(base, {}).model!.firstBlock, ranges[0]![0], 'g1 by default');
  const { model } = virtualAgentConfig({ ...base, group: 'edge', blocks: '1-3' }, {});
  assert.deepEqual([model!.firstBlock, model!.lastBlock], [1, 3]);
});

test('a group with no block range, or bad --blocks, is refused with what to pass instead', () => {
  assert.throws(() => virtualAgentConfig({ ...base, group: 'g9' }, {}), /group 'g9' names no block range .*its groups are g1 \(blocks 0-1\).*--blocks FROM-TO/);
  assert.throws(() => virtualAgentConfig({ ...base, group: 'edge' }, {}), /group 'edge' names no block range/);
  assert.throws(() => virtualAgentConfig({ ...base, blocks: '3-1' }, {}), /--blocks must be FROM-TO with FROM ≤ TO/);
  assert.throws(() => virtualAgentConfig({ ...base, blocks: '0-99' }, {}), /the model has blocks 0-4/);
});
