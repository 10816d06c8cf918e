// Two remote stages of one job, chained, driven by hand: what the gateway sends and what it
// takes. The first group's node is told to send to the second's once that one accepts;
// from then on the second stage sends nothing and takes its node's output, even one that
// came before it asked; a replacement in the second group gets the history replayed and
// the rows from the gateway, and the first group's node is routed to it. A node entering
// power saving with the rows in hand finishes the hop. Without chainHops, the star.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { VirtualClock } from '../../hardware/clock.js';
import { decodeFrame, encodeFrame, isFrame, parseJobControl, type Frame, type JobControl } from '../../protocol/index.js';
import { RemoteStage, type JobDeps } from '../../gateway/router/remote-stage.js';
import { JobTally } from '../../gateway/router/tally.js';
import { JobError } from '../../gateway/jobs.js';
import type { GatewayModel, ModelGroup } from '../../gateway/router/model.js';
import type { SchedulerService } from '../../gateway/router/scheduler.js';

const DIM = 4;
const JOB = 5;

interface Sent { to: string; control?: JobControl; frame?: Frame }

function fixture(chainHops = true) {
  const sent: Sent[] = [];
  const nodes: Record<string, string[]> = { g1: ['a1'], g2: ['b1', 'b2'] };
  const scheduler = {
    servable: () => null,
    pick: (_job: string, group: ModelGroup, exclude: ReadonlySet<string>) => {
      const nodeId = nodes[group.name]!.find((n) => !exclude.has(n));
      return nodeId ? { ok: true, nodeId } : { ok: false, why: 'none', message: 'no node' };
    },
    hold: () => undefined, release: () => undefined, suspect: () => undefined, cleanRun: () => undefined,
  } as unknown as SchedulerService;
  let session = 10;
  const deps: JobDeps = {
    model: { config: { dim: DIM } } as unknown as GatewayModel,
    scheduler,
    settings: { hopTimeoutMs: 1000, queueTimeoutMs: 0, reportTimeoutMs: 0, frameDtype: 'f32', maxFrameBytes: 1_000_000, chainHops },
    clock: new VirtualClock(0),
    log: pino({ level: 'silent' }),
    send: (to, payload) => {
      if (isFrame(payload)) {
        const d = decodeFrame(payload);
        assert.ok(d.ok);
        sent.push({ to, frame: d.frame });
      } else {
        const c = parseJobControl(payload);
        assert.ok(c.ok);
        sent.push({ to, control: c.value });
      }
    },
    isOnline: () => true,
    nextSessionId: () => ++session,
  };
  const job = { num: JOB, id: `job-${JOB}`, tally: new JobTally(), onAccepted: () => undefined };
  const group = (index: number): ModelGroup => ({ index, name: `g${index + 1}`, from: index, to: index + 1 }) as ModelGroup;
  const first = new RemoteStage(group(0), job, deps, 8);
  const second = new RemoteStage(group(1), job, deps, 8);
  first.link(undefined, second);
  second.link(first, undefined);
  first.open(8);
  second.open(8);
  return { sent, first, second, tally: job.tally };
}

const rows = (v: number) => new Float32Array(DIM).fill(v);
const output = (sessionId: number, step: number, position: number, v: number): Frame =>
  decodeFrameOf(encodeFrame({ jobId: JOB, sessionId, step, position, rows: 1, dim: DIM, data: rows(v) }));
function decodeFrameOf(b: Buffer): Frame {
  const d = decodeFrame(b);
  assert.ok(d.ok);
  return d.frame;
}
const tick = () => new Promise((r) => setImmediate(r));

/** Answers the offer the stage just made as its node would. */
async function accept(stage: RemoteStage, sent: Sent[], nodeId: string): Promise<number> {
  await tick();
  const offer = [...sent].reverse().find((s) => s.to === nodeId && s.control?.type === 'offer')!.control as Extract<JobControl, { type: 'offer' }>;
  stage.onReport(nodeId, { v: 1, type: 'accepted', jobId: JOB });
  return offer.sessionId;
}

test('after the first hop the second group takes its rows from the first group\'s node, and a replacement is routed to', async () => {
  const { sent, first, second, tally } = fixture();
  // The prompt's hop: each group gets its node as it is reached, the rows from the gateway.
  const f0 = first.forward(rows(1), 0);
  const a1 = await accept(first, sent, 'a1');
  await tick();
  assert.equal(first.onFrame('out', 'a1', output(a1, 0, 0, 2)), true);
  assert.deepEqual(await f0, rows(2));
  const s0 = second.forward(rows(2), 0);
  const b1 = await accept(second, sent, 'b1');
  await tick();
  assert.deepEqual(sent.find((s) => s.control?.type === 'route')?.control, { v: 1, type: 'route', jobId: JOB, next: { nodeId: 'b1', sessionId: b1 } }, 'a1 is told to send to b1');
  assert.equal(sent.filter((s) => s.to === 'b1' && s.frame).length, 1, 'the prompt\'s rows came from the gateway');
  assert.equal(second.onFrame('out', 'b1', output(b1, 0, 0, 3)), true);
  assert.deepEqual(await s0, rows(3));

  // A decode hop: a1's output is seen on b1's job/hop; b1 answers before the second stage asks.
  const before = sent.length;
  const f1 = first.forward(rows(4), 1);
  await tick();
  assert.equal(first.onFrame('hop', 'b1', output(b1, 1, 1, 5)), true);
  assert.deepEqual(await f1, rows(5));
  assert.equal(second.onFrame('out', 'b1', output(b1, 1, 1, 6)), true, 'an early output is kept');
  assert.deepEqual(await second.forward(rows(5), 1), rows(6));
  assert.deepEqual(sent.slice(before).map((s) => s.to), ['a1'], 'only the first group\'s rows were sent by the gateway');
  assert.equal(tally.handed, 1);
  assert.equal(tally.crossings, 4 + 3, 'four for the prompt\'s two hops, three for the chained token');

  // b1 dies: its replacement gets the history replayed and this step's rows, and a1 is routed to it.
  second.onNodeDown('b1', 'gone');
  const f2 = first.forward(rows(7), 2);
  await tick();
  assert.equal(first.onFrame('hop', 'b1', output(b1, 2, 2, 8)), true, 'the gateway keeps the rows sent to the dead node');
  await f2;
  const at = sent.length;
  const s2 = second.forward(rows(8), 2);
  const b2 = await accept(second, sent, 'b2');
  await tick();
  const after = sent.slice(at);
  assert.deepEqual(after.find((s) => s.control?.type === 'route')?.control, { v: 1, type: 'route', jobId: JOB, next: { nodeId: 'b2', sessionId: b2 } });
  const frames = after.filter((s) => s.to === 'b2' && s.frame).map((s) => s.frame!);
  assert.deepEqual(frames.map((f) => [f.position, f.rows, f.replay]), [[0, 2, true], [2, 1, false]]);
  assert.deepEqual(Array.from(frames[0]!.data), [...rows(2), ...rows(5)], 'the replay is the group\'s input history');
  assert.equal(second.onFrame('out', 'b2', output(b2, 2, 2, 9)), true);
  assert.deepEqual(await s2, rows(9));
});

test('without chainHops (an external broker) offers name no successor, no route is sent, and the gateway sends every group its rows', async () => {
  const { sent, first, second, tally } = fixture(false);
  const sessions = new Map<string, number>();
  for (const [step, stage, nodeId, v] of [[0, first, 'a1', 1], [0, second, 'b1', 2], [1, first, 'a1', 3], [1, second, 'b1', 4]] as const) {
    const hop = stage.forward(rows(v), step);
    if (step === 0) sessions.set(nodeId, await accept(stage, sent, nodeId));
    const session = sessions.get(nodeId)!;
    await tick();
    assert.equal(stage.onFrame('out', nodeId, output(session, step, step, v + 10)), true);
    assert.deepEqual(await hop, rows(v + 10));
  }
  assert.ok(sent.every((s) => s.control?.type !== 'route' && !(s.control?.type === 'offer' && s.control.next)));
  assert.equal(sent.filter((s) => s.frame).length, 4);
  assert.equal(tally.handed, 0);
  assert.equal(tally.crossings, 8);
});

test('a node entering power saving with the hop\'s rows already in hand finishes the hop; the group leaves it after', async () => {
  const { sent, first, second } = fixture();
  const f0 = first.forward(rows(1), 0);
  const a1 = await accept(first, sent, 'a1');
  await tick();
  first.onFrame('out', 'a1', output(a1, 0, 0, 2));
  await f0;
  const s0 = second.forward(rows(2), 0);
  const b1 = await accept(second, sent, 'b1');
  await tick();
  second.onFrame('out', 'b1', output(b1, 0, 0, 3));
  await s0;

  const f1 = first.forward(rows(4), 1);
  await tick();
  first.onFrame('hop', 'b1', output(b1, 1, 1, 5));
  await f1;
  second.onPowerSaving('b1');
  const at = sent.length;
  const s1 = second.forward(rows(5), 1);
  await tick();
  assert.deepEqual(sent.slice(at), [], 'no cancel, no offer elsewhere while b1 runs the rows it has');
  assert.equal(second.onFrame('out', 'b1', output(b1, 1, 1, 6)), true);
  assert.deepEqual(await s1, rows(6));
  assert.deepEqual(sent.slice(at).map((s) => [s.to, s.control?.type]), [['b1', 'cancel']], 'then the group leaves it');
  const s2 = second.forward(rows(7), 2);
  await tick();
  assert.equal(sent.at(-1)?.to, 'b2', 'the next hop goes to another node');
  assert.equal(sent.at(-1)?.control?.type, 'offer');
  second.abort(new JobError('the test ends here', 'cancelled'));
  await assert.rejects(s2);
});
