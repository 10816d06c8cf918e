// `heliomesh bench pipeline`'s own counts: the broker crossings per token come from the
// frames actually published (a star of 3 groups crosses 6 times), and the link delay holds
// every frame at the broker once for each link it travels: a star hop's round trip grows
// by two delays, and a chained frame from one node to the next is held for both nodes' links.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BareTokens } from '../../bench/pipeline/bare-chain.js';
import { BrokerCrossings } from '../../bench/pipeline/crossings.js';
import { pipelineBench } from '../../bench/pipeline.js';
import { benchModelName, parseBenchModel } from '../../bench/pipeline/model.js';
import { encodeFrame, encodeJson } from '../../protocol/index.js';

const frame = (jobId: number, o: { replay?: boolean; close?: boolean; rows?: number } = {}) => {
  const rows = o.rows ?? 1;
  return encodeFrame({ jobId, sessionId: 1, step: 3, position: 9, rows, dim: 4, data: new Float32Array(rows * 4), replay: o.replay, close: o.close });
};

test('the crossing count takes each data frame of a job, not replays, close frames or JSON; the link delay holds every frame for each link it travels', () => {
  const c = new BrokerCrossings(3);
  const topic = 'heliomesh/bench/node/stage-1/job/in';
  assert.equal(c.tap(topic, frame(7)), 3);
  assert.equal(c.tap(topic, frame(7, { rows: 16 })), 3);
  assert.equal(c.tap(topic, frame(7, { replay: true })), 3);
  assert.equal(c.tap(topic, frame(7, { close: true, rows: 0 })), 3);
  assert.equal(c.tap(topic, frame(8)), 3);
  assert.equal(c.tap(topic, encodeJson({ v: 1, type: 'offer', jobId: 7, sessionId: 1 })), 0, 'JSON control messages are not held');
  assert.equal(c.frames(7), 2);
  assert.equal(c.frames(8), 1);
  assert.equal(c.frames(9), 0);
  assert.equal(c.legs(7), 2);
  // A node's frame to the next node goes up its own link to the broker and down the next node's.
  const hop = 'heliomesh/bench/node/stage-2/job/hop';
  assert.equal(c.tap(hop, frame(7)), 6, 'two links, each holding it 3 ms');
  assert.equal(c.frames(7), 3);
  assert.equal(c.legs(7), 4);
  assert.equal(new BrokerCrossings().tap(topic, frame(1)), 0, 'no delay unless asked');
  assert.equal(new BrokerCrossings().tap(hop, frame(1)), 0, 'no delay unless asked');
  assert.throws(() => new BrokerCrossings(-1), /≥ 0/);
});

test('the bench model: stories15M by default, the bundled one, or a real shape in a quantized type, with clear refusals', () => {
  assert.equal(parseBenchModel(undefined), 'stories15M');
  assert.equal(parseBenchModel('bundled'), 'bundled');
  assert.deepEqual(parseBenchModel(undefined, 'tinyllama'), { shape: 'tinyllama', quant: 'q4_0' });
  assert.equal(benchModelName(parseBenchModel(undefined, 'tinyllama', 'q8_0')), 'tinyllama q8_0');
  assert.throws(() => parseBenchModel(undefined, 'tinyllam'), /unknown --shape 'tinyllam'; choose one of: tinyllama/);
  assert.throws(() => parseBenchModel(undefined, 'tinyllama', 'q5_k'), /unknown --quant 'q5_k'/);
  assert.throws(() => parseBenchModel('bundled', 'tinyllama'), /--model or --shape, not both/);
  assert.throws(() => parseBenchModel(undefined, undefined, 'q4_0'), /--quant goes with --shape/);
  assert.throws(() => parseBenchModel('stories42M'), /must be 'stories15M'/);
});

test('a short bench run through 3 agents reports 6 broker crossings per token on the star, the link delay in every hop, and the agents\' kernel threads', async (t) => {
  const outDir = mkdtempSync(join(tmpdir(), 'heliomesh-bench-pipeline-test-'));
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  const delayMs = 4;
  const r = await pipelineBench.run({ outDir, args: { tokens: '6', rounds: '1', linkDelayMs: String(delayMs), agentThreads: '1', star: 'true' } });
  const m = r.metrics as {
    crossingsPerToken: number; linkLegsPerToken: number; idsIdentical: boolean; linkDelayMs: number; agentThreads: number;
    transportCeiling: number; transportCpuFloor: number;
    rounds: Array<{ crossingsPerToken: number; tokens: number; hops: Array<{ roundTripMs: number; forwardMs: number }>; bareToken: BareTokens; bareTokenAfterIdle: BareTokens }>;
  };
  assert.equal(m.idsIdentical, true);
  assert.equal(m.rounds[0]!.tokens, 6);
  assert.equal(m.rounds[0]!.crossingsPerToken, 6, 'one frame to each of 3 nodes and one back from each, per token');
  assert.equal(m.crossingsPerToken, 6);
  assert.equal(m.linkLegsPerToken, 6, 'each of those frames travels one node\'s link');
  assert.equal(m.linkDelayMs, delayMs);
  assert.equal(m.agentThreads, 1);
  assert.match(r.summary, /agents' kernels on 1 thread\]/);
  for (const h of m.rounds[0]!.hops) {
    assert.ok(h.roundTripMs >= 2 * delayMs, `a hop's round trip ${h.roundTripMs.toFixed(2)} ms holds the frame in and the frame out ${delayMs} ms each`);
    assert.ok(h.forwardMs > 0 && h.forwardMs < h.roundTripMs, `the node timed its forward: ${h.forwardMs.toFixed(2)} ms`);
  }
  // The same star with nodes that compute nothing: 6 crossings, none of them held.
  const bare = m.rounds[0]!.bareToken;
  assert.ok(bare.medianMs > 0 && bare.medianMs < 2 * delayMs, `the bare path is measured without the link delay: ${bare.medianMs.toFixed(2)} ms`);
  assert.equal(m.rounds[0]!.bareTokenAfterIdle.gapMs > 0, true, 'the idle variant waits a fleet token between its tokens');
  assert.ok(bare.gatewayCpuMs > 0 && bare.nodesCpuMs > 0, `both sides of the bare path use CPU: ${JSON.stringify(bare)}`);
  assert.ok(m.transportCeiling > 0 && m.transportCeiling < 1, `transport ceiling ${m.transportCeiling}`);
  assert.ok(m.transportCpuFloor > 1, `transport CPU floor ${m.transportCpuFloor}`);
  assert.match(r.summary, /the same path with nodes that compute nothing [0-9.]+ ms per token/);
  const tcp = (m.rounds[0] as unknown as { tcpRoundTrip: { medianMs: number; gapMs: number }; tcpRoundTripAfterIdle: { medianMs: number; gapMs: number } });
  assert.ok(tcp.tcpRoundTrip.medianMs > 0 && tcp.tcpRoundTrip.gapMs === 0, JSON.stringify(tcp.tcpRoundTrip));
  assert.ok(tcp.tcpRoundTripAfterIdle.gapMs > 0, 'the plain TCP probe also waits a fleet token between its round trips');
  assert.match(r.summary, /a plain TCP round trip to a process that echoes [0-9.]+ ms back to back, [0-9.]+ ms after idling a token's time \(the machine waking a process that slept\), CPU on the probing side [0-9]+ and [0-9]+ µs a trip/);
  assert.match(r.summary, /broker crossings per token 6\.0–6\.0, link legs per token 6\.0–6\.0, each frame held 4 ms per leg/);
});

test('chained hops: 6 crossings for the prompt, then 4 per token for 3 groups, with the same ids', async (t) => {
  const outDir = mkdtempSync(join(tmpdir(), 'heliomesh-bench-pipeline-test-'));
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  // Two rounds: with an even count the median falls between them, and the breakdown shows the nearer one.
  const r = await pipelineBench.run({ outDir, args: { tokens: '6', rounds: '2', warmupRounds: '1', agentThreads: '1' } });
  type Hop = { roundTripMs: number; gatewayOutMs: number; gatewayInMs: number; nodeTransportMs: number; forwardMs: number };
  const m = r.metrics as {
    crossingsPerToken: number; idsIdentical: boolean; path: string;
    rounds: Array<{ crossingsPerToken: number; linkLegsPerToken: number; tokens: number; hops: Hop[] }>;
  };
  assert.equal(m.path, 'chained');
  assert.equal(m.rounds.length, 2);
  assert.match(r.summary, /median of 2 rounds after 1 unmeasured/);
  // Each node's share of a chained token is measured: the gateway's way out belongs to the
  // first node only, its way in to the last only.
  const hops = m.rounds[0]!.hops;
  assert.equal(hops.length, 3);
  for (const [i, h] of hops.entries()) {
    assert.ok(Number.isFinite(h.roundTripMs) && h.roundTripMs > h.forwardMs, `hop ${i + 1}: ${JSON.stringify(h)}`);
    assert.ok(Number.isFinite(h.nodeTransportMs), `hop ${i + 1}: ${JSON.stringify(h)}`);
    assert.equal(h.gatewayOutMs > 0, i === 0, `hop ${i + 1}: gateway out ${h.gatewayOutMs}`);
    assert.equal(h.gatewayInMs > 0, i === 2, `hop ${i + 1}: gateway in ${h.gatewayInMs}`);
  }
  assert.doesNotMatch(r.summary, /NaN/);
  // The gateway's share split into its head, as the job's loop timed it, and the rest.
  assert.match(r.summary, /gateway [0-9.]+ ms \(its head [0-9.]+ \[in-process [0-9.]+\], router and token events -?[0-9.]+\)/);
  assert.equal(m.idsIdentical, true);
  assert.equal(m.rounds[0]!.tokens, 6);
  // The prompt's hop still goes through the gateway (each group gets its node as the job reaches it).
  assert.ok(Math.abs(m.rounds[0]!.crossingsPerToken - (6 + 4 * 5) / 6) < 1e-9, `crossings per token ${m.rounds[0]!.crossingsPerToken}`);
  // Fewer crossings, but not fewer links: each node-to-node frame travels two, as the star's pair did.
  assert.equal(m.rounds[0]!.linkLegsPerToken, 6);
  assert.match(r.summary, /link legs per token 6\.0/);
});
