// Numbers no node could measure, sent by an authenticated node to the real gateway (its
// broker, link, registry, router and HTTP API): a flood of slot records harvesting 1e12 J,
// births with impossible batteries, κ and queues, and a job's energy report of 1e308 J. Each
// is refused at the protocol edge, counted in /metrics by kind and reason, logged at most
// once per node per minute of the gateway's clock, and never seen by the registry, the
// scheduler, a reply or the job energy metric; the gateway keeps answering meanwhile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { addNode } from '../../gateway/broker/index.js';
import { RealClock } from '../../ground/clock.js';
import { parseGatewayConfig } from '../../gateway/config.js';
import { startGateway, type Gateway } from '../../gateway/index.js';
import {
  MAX_NODE_W, MAX_PANEL_W, MIN_CAPACITY_J, MAX_POWER_MODES, MAX_QUEUE_CAPACITY, MAX_SLOT_MS, PROTOCOL_VERSION, decodeFrame, maxDrawJ, maxHarvestJ, encodeFrame, encodeJson, nodeTopics, parseJobControl, type JobReport, type NodeProfile, type StateMessage,
} from '../../protocol/index.js';
import { captureLog, type Captured } from '../support/log.js';
import { slotRecord } from '../support/protocol-messages.js';
import { FLEET, open } from './support.js';
import { until } from '../../ground/until.js';

const KEY = 'node-bounds-api-key-3c9e41';
const ATTACKERS = ['pi-a', 'pi-panel', 'pi-b1', 'pi-b2', 'pi-b3', 'pi-b4', 'pi-b5', 'pi-c', 'pi-edge'];
/** Nodes that serve the model's other groups honestly in the job test. */
const HONEST = ['pi-h2', 'pi-h3', 'pi-h4', 'pi-h5', 'pi-h6', 'pi-h7'];

/** A Pi field node: 74 Wh (266,400 J), 60 s slots, two cpufreq modes. */
function piProfile(over: Partial<NodeProfile> = {}): NodeProfile {
  return {
    group: 'g1', slotMs: 60_000, capacityJ: 266_400, queueCapacity: 1,
    thresholds: { eThJ: 26_640, eThUpJ: 53_280, criticalJ: 8_000 },
    modes: [{ powerMode: 1, name: 'low', kappa: 2, costJ: 40 }, { powerMode: 2, name: 'high', kappa: 1, costJ: 55 }],
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.6, powerMode: 2 }],
    ...over,
  };
}

function piBirth(nodeId: string, profile: NodeProfile, over: Record<string, unknown> = {}): StateMessage {
  return { v: PROTOCOL_VERSION, status: 'online', nodeId, atMs: Date.now(), profile, gamma: 1, powerMode: 1, batteryJ: 200_000, ...over } as StateMessage;
}

let dir: string;
let gw: Gateway;
let levels: number;
let cap: Captured;
let base: string;
let mqttUrl: string;
const passwords: Record<string, string> = {};
const clients: MqttClient[] = [];
const byNode = new Map<string, MqttClient>();
/** The gateway's clock runs `offsetMs` ahead of the system's, so a test can let a minute pass. */
let offsetMs = 0;
const clock = new (class extends RealClock { override now() { return Date.now() + offsetMs; } })();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'heliomesh-node-bounds-'));
  const credentialsPath = join(dir, 'nodes.json');
  for (const n of [...ATTACKERS, ...HONEST]) passwords[n] = await addNode(credentialsPath, n);
  cap = captureLog();
  const config = parseGatewayConfig({
    fleet: FLEET,
    broker: { host: '127.0.0.1', port: 0, credentialsPath },
    http: { host: '127.0.0.1', port: 0, apiKey: KEY },
    router: { hopTimeoutMs: 10_000, reportTimeoutMs: 2_000 },
  });
  levels = config.registry.levels;
  gw = await startGateway(config, { clock, log: cap.log });
  base = `http://127.0.0.1:${gw.http!.port}`;
  mqttUrl = `mqtt://127.0.0.1:${gw.broker.ports.mqtt}`;
});

after(async () => {
  for (const c of clients) await c.endAsync(true);
  await gw?.close();
  await rm(dir, { recursive: true, force: true });
});

async function node(nodeId: string): Promise<MqttClient> {
  const c = await open({ clients }, mqttUrl, { clientId: nodeId, username: nodeId, password: passwords[nodeId] });
  byNode.set(nodeId, c);
  return c;
}

const auth = { authorization: `Bearer ${KEY}` };

async function metrics(): Promise<string> {
  const res = await fetch(`${base}/metrics`, { headers: auth });
  assert.equal(res.status, 200);
  return res.text();
}

/** One sample of the metric with these labels (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const braces = /\{([^}]*)\}/.exec(line)?.[1] ?? '';
    const have = braces.split(',').filter(Boolean);
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

const refused = async (kind: string, reason: string) => sample(await metrics(), 'heliomesh_link_refused_messages_total', { kind, reason });

async function apiNodes(): Promise<Array<{ node: string; batteryJ: number | null; batteryPct: number | null; qLim: number | null }>> {
  const res = await fetch(`${base}/api/nodes`, { headers: auth });
  assert.equal(res.status, 200);
  return ((await res.json()) as { nodes: Array<{ node: string; batteryJ: number | null; batteryPct: number | null; qLim: number | null }> }).nodes;
}

/** The node's refusal warnings (pino level 40): the repeats within a minute are debug lines. */
const refusalLines = (nodeId: string) => cap.records.filter((r) => r.msg === 'node message refused' && r.node === nodeId && r.level >= 40);

test('27 slot records harvesting 1e12 J, published without waiting for acknowledgements, are refused and counted; /healthz keeps answering', async (t) => {
  const a = await node('pi-a');
  const topics = nodeTopics(FLEET, 'pi-a');
  await a.publishAsync(topics.state, encodeJson(piBirth('pi-a', piProfile())), { qos: 1, retain: true });
  await until('pi-a solved', () => gw.registry.get('pi-a')?.solved !== undefined, 30_000);

  const acks = Array.from({ length: 27 }, (_, seq) =>
    a.publishAsync(topics.slot, encodeJson(slotRecord('pi-a', seq, { slotMs: 60_000, harvestJ: 1e12, consumedJ: 300, batteryJ: 200_000, batteryPct: 75, powerMode: 1 })), { qos: 1 }));
  const healthMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    const res = await fetch(`${base}/healthz`);
    healthMs.push(Date.now() - t0);
    assert.equal(res.status, 200);
  }
  await Promise.all(acks);
  await until('27 refusals counted', async () => (await refused('slot', 'out-of-range')) === 27, 20_000);

  t.diagnostic(`/healthz during the flood: ${healthMs.join(', ')} ms`);
  // Generous for a loaded machine; the stall this guards against took 7–16 s.
  assert.ok(Math.max(...healthMs) < 2_000, `/healthz answered in ${healthMs.join(', ')} ms`);
  const n = gw.registry.get('pi-a')!;
  assert.equal(n.lastSeq, undefined, 'no record reached the registry');
  assert.equal(n.estimator.samples(clock.now()), 0, 'no harvest reached the estimate');
  const view = (await apiNodes()).find((v) => v.node === 'pi-a')!;
  assert.notEqual(view.qLim, null, 'the solver has the node\'s q_lim');
  assert.equal(view.batteryJ, 200_000, 'the birth\'s battery, not a refused record\'s');
  assert.equal(refusalLines('pi-a').length, 1, 'one warning for the minute, not 27');
  assert.match(String(refusalLines('pi-a')[0]!.err), /harvestJ/);
});

test('a slot record within the largest panel but beyond the panel its birth declared is refused; one within it is taken', async () => {
  const p = await node('pi-panel');
  const topics = nodeTopics(FLEET, 'pi-panel');
  // A 20 W panel: at most 20 W × 1.5 × 60 s = 1,800 J per 60 s slot.
  await p.publishAsync(topics.state, encodeJson(piBirth('pi-panel', piProfile({ panelPeakW: 20 }))), { qos: 1, retain: true });
  await until('pi-panel born', () => gw.registry.get('pi-panel') !== undefined, 10_000);
  const record = (seq: number, harvestJ: number) => encodeJson(slotRecord('pi-panel', seq, { slotMs: 60_000, harvestJ, consumedJ: 300, batteryJ: 200_000, batteryPct: 75, powerMode: 1 }));
  await p.publishAsync(topics.slot, record(1, 1_900), { qos: 1 });
  await p.publishAsync(topics.slot, record(2, 1_700), { qos: 1 });
  await until('the second record taken', () => gw.registry.get('pi-panel')?.lastSeq === 2, 10_000);
  assert.equal(gw.registry.get('pi-panel')!.estimator.samples(clock.now()), 1, 'only the record within the panel counts');
  assert.equal(await refused('slot', 'beyond-profile'), 1);
  assert.match(String(refusalLines('pi-panel')[0]?.err), /20 W panel/);
});

test('births with impossible batteries, κ and queues are refused, counted and not in /api/nodes; logging stays once per node per minute', async () => {
  const births: Array<[string, StateMessage]> = [
    ['pi-b1', piBirth('pi-b1', piProfile(), { batteryJ: 1e308 })],
    ['pi-b2', piBirth('pi-b2', piProfile(), { batteryJ: 300_000 })],
    ['pi-b3', piBirth('pi-b3', piProfile({ capacityJ: 1e-300 }))],
    ['pi-b4', piBirth('pi-b4', piProfile({ modes: [{ powerMode: 1, name: 'low', kappa: 2 ** 53 - 1, costJ: 40 }, { powerMode: 2, name: 'high', kappa: 1, costJ: 55 }] }))],
    ['pi-b5', piBirth('pi-b5', piProfile({ queueCapacity: 1e15 }))],
  ];
  const before = await refused('state', 'out-of-range');
  for (const [id, b] of births) {
    const c = await node(id);
    await c.publishAsync(nodeTopics(FLEET, id).state, encodeJson(b), { qos: 1 });
  }
  await until('five births refused', async () => (await refused('state', 'out-of-range')) - before === 5, 10_000);
  const listed = (await apiNodes()).map((v) => v.node);
  for (const [id] of births) {
    assert.equal(gw.registry.get(id), undefined, `${id} is not in the registry`);
    assert.ok(!listed.includes(id), `${id} is not in /api/nodes`);
    assert.equal(refusalLines(id).length, 1, `${id}: logged once`);
  }
  assert.ok(!(await apiNodes()).some((v) => v.batteryPct === null), 'every node listed has a battery percentage');

  // The same birth again within the minute: counted, not logged; a minute later, logged again.
  const again = byNode.get('pi-b1')!;
  await again.publishAsync(nodeTopics(FLEET, 'pi-b1').state, encodeJson(births[0]![1]), { qos: 1 });
  await until('the repeat counted', async () => (await refused('state', 'out-of-range')) - before === 6, 10_000);
  assert.equal(refusalLines('pi-b1').length, 1, 'a repeat within the minute is counted, not warned of');
  offsetMs += 60_000;
  await again.publishAsync(nodeTopics(FLEET, 'pi-b1').state, encodeJson(births[0]![1]), { qos: 1 });
  await until('a minute later, logged again', () => refusalLines('pi-b1').length === 2, 10_000);
  assert.equal(refusalLines('pi-b1')[1]!.refusedSinceLast, 1, 'the warning says how many were refused since the last');
});

test('at the edge of every bound, the harvest law the solver gets is sized by the configured levels, not by what the node said', async () => {
  const id = 'pi-edge';
  const e = await node(id);
  const topics = nodeTopics(FLEET, id);
  // The smallest battery under the largest panel for the longest slot: each slot harvests
  // 2.16 MJ, 600,000 quanta of 3.6 J. All 16 modes, each costing the whole battery, and the
  // largest queue.
  const modes = Array.from({ length: MAX_POWER_MODES }, (_, i) => ({ powerMode: i + 1, name: `m${i + 1}`, kappa: i + 1, costJ: Math.min(MIN_CAPACITY_J, maxDrawJ((i + 1) * MAX_SLOT_MS)) }));
  const profile = piProfile({
    slotMs: MAX_SLOT_MS, capacityJ: MIN_CAPACITY_J, panelPeakW: MAX_PANEL_W, queueCapacity: MAX_QUEUE_CAPACITY, modes,
    thresholds: { eThJ: 36, eThUpJ: 72, criticalJ: 10 },
    modeTable: [{ minFraction: 0, powerMode: 1 }, { minFraction: 0.5, powerMode: MAX_POWER_MODES }],
  });
  await e.publishAsync(topics.state, encodeJson(piBirth(id, profile, { batteryJ: MIN_CAPACITY_J })), { qos: 1, retain: true });
  await until('pi-edge born', () => gw.registry.get(id) !== undefined, 10_000);
  const slots = 30; // past the estimator's 24 slots before it is trusted
  for (let seq = 0; seq < slots; seq++) {
    const r = slotRecord(id, seq, {
      slotStartMs: 1_700_000_000_000 + seq * MAX_SLOT_MS, slotMs: MAX_SLOT_MS, harvestJ: maxHarvestJ(MAX_SLOT_MS, MAX_PANEL_W),
      consumedJ: MAX_NODE_W * (MAX_SLOT_MS / 1000), batteryJ: MIN_CAPACITY_J, batteryPct: 100, powerMode: MAX_POWER_MODES, queue: MAX_QUEUE_CAPACITY,
    });
    await e.publishAsync(topics.slot, encodeJson(r), { qos: 1 });
  }
  await until('every record taken', () => gw.registry.get(id)?.lastSeq === slots - 1, 10_000);
  const n = gw.registry.get(id)!;
  await until('the node\'s own harvest law solved', () => n.solvedPmf !== undefined && n.solvedPmf !== n.profile.priorHarvestPmf && n.solved !== undefined, 30_000);
  // E_max + the largest C_E, each `levels` quanta here (C_E ≤ capacity): 201 levels, not 600,001.
  assert.equal(n.solvedPmf!.length, 2 * levels + 1, 'the harvest law ends at E_max + the largest C_E');
  assert.notEqual((await apiNodes()).find((v) => v.node === id)?.qLim, null, 'and the solver answered');
  assert.equal(await refused('slot', 'beyond-profile'), 1, 'only the earlier test\'s record was beyond its profile');
});

/**
 * A node that serves one group as an identity stage (its output rows are its input rows),
 * accepts every offer and, on the close frame, reports `energyJ` for the job.
 */
async function servingNode(nodeId: string, group: { name: string; from: number; to: number }, energyJ: number): Promise<void> {
  const c = await node(nodeId);
  const topics = nodeTopics(FLEET, nodeId);
  c.on('message', (_topic, payload) => {
    const reply = (m: Buffer) => void c.publishAsync(topics.jobOut, m, { qos: 1 });
    const control = parseJobControl(payload);
    if (control.ok) {
      if (control.value.type === 'offer') reply(encodeJson({ v: PROTOCOL_VERSION, type: 'accepted', jobId: control.value.jobId }));
      return;
    }
    const d = decodeFrame(payload);
    if (!d.ok || d.frame.replay) return;
    const f = d.frame;
    if (f.close) {
      const report: JobReport = { v: PROTOCOL_VERSION, type: 'report', jobId: f.jobId, sessionId: f.sessionId, ok: true, steps: 2, durationMs: 400, energyJ, baselineW: 2, powerMode: 1 };
      return reply(encodeJson(report));
    }
    reply(encodeFrame({ ...f, data: f.data }));
  });
  await c.subscribeAsync(topics.jobIn, { qos: 1 });
  const profile = piProfile({ group: group.name, shard: { model: gw.model.name, firstBlock: group.from, lastBlock: group.to - 1 } });
  await c.publishAsync(topics.state, encodeJson(piBirth(nodeId, profile)), { qos: 1, retain: true });
}

test('a job energy report of 1e308 J is refused: not in the reply\'s energy, not in the job energy metric', async () => {
  const groups = gw.model.groups;
  assert.ok(groups.length <= HONEST.length + 1, `${groups.length} groups`);
  const serving = groups.map((g, i) => (i === 0 ? 'pi-c' : HONEST[i - 1]!));
  for (const [i, g] of groups.entries()) await servingNode(serving[i]!, g, i === 0 ? 1e308 : 1.5);
  await until('every serving node solved', () => serving.every((id) => gw.registry.get(id)?.solved !== undefined), 30_000);

  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ model: gw.jobs.model.id, prompt: 'The sun', max_tokens: 2, temperature: 0 }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as { heliomesh: { energy_j: number; served: Array<{ nodes: string[] }> } };
  assert.deepEqual(body.heliomesh.served.map((s) => s.nodes), serving.map((id) => [id]), 'each group served by its node');
  const honestJ = 1.5 * (groups.length - 1);
  assert.equal(body.heliomesh.energy_j, honestJ, 'only the honest reports in the reply');
  const m = await metrics();
  assert.equal(sample(m, 'heliomesh_job_energy_joules'), honestJ, 'only the honest reports in the metric');
  assert.equal(sample(m, 'heliomesh_link_refused_messages_total', { kind: 'job-report', reason: 'beyond-profile' }), 1);
  assert.match(String(refusalLines('pi-c')[0]?.err), /energyJ 1e\+308/);
});
