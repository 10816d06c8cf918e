// A node that accepts every job and then fails it loses its standing the way a silent one
// does: after the one failover it costs, the group's other node serves, and the failing
// node gets a job again only when nobody in good standing could serve one. A clean run —
// a job served to its close frame and reported ok — gives its standing back.
//
// Real agents on virtual hardware behind a real gateway (tests/support/field.ts); the
// failing node's block worker throws on every frame, as a worker that runs out of memory
// would, so the agent reports each job it accepted as failed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompletionRequest } from '../../gateway/jobs.js';
import { Field, until } from '../support/field.js';

const GROUP = 'g2';
const req: CompletionRequest = { prompt: { ids: [1, 20, 30, 40] }, maxTokens: 4, temperature: 0, topP: 1, seed: 1, stop: [] };

let field: Field;

before(async () => {
  // A job that waits for a queue place gives up after queueTimeoutMs: short, so a wrong wait shows as a failure, not a hang.
  field = await Field.start({ nodesPerGroup: 2, gateway: { router: { queueTimeoutMs: 3000 } } });
  await field.ready();
});

after(async () => {
  await field?.close();
});

const servedIn = (nodes: { group: string; nodes: string[] }[]) => nodes.find((g) => g.group === GROUP)!.nodes;

const standing = (nodeId: string) => {
  const g = field.gateway.jobs.scheduler().groups.find((x) => x.group === GROUP)!;
  return g.nodes.find((n) => n.nodeId === nodeId)!.available;
};

test('a node that fails every job it accepts is chosen at most once in 4 jobs, and again after a clean run', async () => {
  // Whichever node of the group is given the first job is the failing one, so the test
  // does not depend on which of two equal nodes the policy prefers.
  let failing: string | undefined;
  let behaves = false;
  for (const n of field.group(GROUP)) {
    const worker = n.agent!.worker!;
    const run = worker.run.bind(worker);
    worker.run = (job, f) => {
      failing ??= n.nodeId;
      if (n.nodeId === failing && !behaves) throw new Error('out of memory');
      return run(job, f);
    };
  }
  let chosen = 0;
  for (let i = 0; i < 4; i++) {
    const s = await field.gateway.jobs.submit(req).done;
    assert.equal(s.status, 'done', `job ${i + 1} completes`);
    if (servedIn(s.served).includes(failing!)) chosen++;
  }
  assert.ok(failing, 'a node of the group was given a job');
  const good = field.group(GROUP).find((n) => n.nodeId !== failing)!.nodeId;
  assert.equal(chosen, 1, `the failing node ${failing} was chosen ${chosen} of 4 times`);
  assert.equal(standing(failing!), false, 'it has lost its standing while it is online and active');

  // It behaves again; with the other node gone it is the group's last resort, and runs a job cleanly.
  behaves = true;
  await field.node(good).kill('stop');
  await until(`${good} offline`, () => field.gateway.registry.get(good)?.online === false);
  const clean = await field.gateway.jobs.submit(req).done;
  assert.equal(clean.status, 'done');
  assert.deepEqual(servedIn(clean.served), [failing]);
  assert.equal(clean.failovers, 0);
  await until(`${failing} in good standing`, () => standing(failing!));

  // With the other node back and busy, a node in good standing is chosen (a suspect would be passed over: the job would wait).
  await field.node(good).start();
  await field.ready();
  field.gateway.router.scheduling.hold(good);
  try {
    const again = await field.gateway.jobs.submit(req).done;
    assert.deepEqual(servedIn(again.served), [failing]);
  } finally {
    field.gateway.router.scheduling.release(good);
  }
});
