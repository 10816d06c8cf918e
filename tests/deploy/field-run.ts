// A short accelerated run of the demo's virtual field (demo/field.ts: the gateway with its
// broker, registry, solver, router and InfluxDB store, and 3 groups × 2 real agents on
// seeded virtual panels, batteries and skies) that fills an InfluxDB with real gateway
// output. On top of what the field does by itself, the run makes the events the dashboard
// charts happen at least once: completions through the job service and one cancelled; one
// node sent into power saving by an operator's set-thresholds command over MQTT; one node
// leaving, so its offline state is logged.
import { pino, type Logger } from 'pino';
import { FLEET, startField, type Field } from '../../demo/field.js';
import { defaultStartMs } from '../../demo/plan.js';
import { JobError, type JobService, type JobSummary } from '../../gateway/jobs.js';
import { encodeJson, nodeTopic, PROTOCOL_VERSION } from '../../protocol/index.js';
import { until } from '../../ground/until.js';

export interface FieldRun {
  /** The completions that finished, and the cancelled one's id. */
  jobs: { done: JobSummary[]; cancelled: string };
  fleet: string;
  groups: string[];
  nodes: string[];
  nodesOf(group: string): string[];
  /** Sent into power saving by the run. */
  savingNode: string;
  /** Stopped before the end. */
  leavingNode: string;
  /** The run's span in the field's (simulated) time: what a dashboard's time range would cover. */
  fromMs: number;
  toMs: number;
}

export interface FieldRunOptions {
  /** http://HOST:PORT/DATABASE */
  influxUrl: string;
  /** Slot records each node must have sent before the run ends. */
  slots?: number;
  /** Completions sent through the job service (one more is cancelled). */
  jobs?: number;
  /** Where the gateway's and agents' logs go; silent by default. */
  log?: Logger;
}

const SITE = { latitudeDeg: 40.4, longitudeDeg: -3.7 };

/** `work`, or an error naming `what` once `ms` of wall time have passed: a stuck run fails, it does not hang. */
async function within<T>(what: string, work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`field run: ${what} took more than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runAcceleratedField(o: FieldRunOptions): Promise<FieldRun> {
  const log = o.log ?? pino({ level: 'silent' });
  // The gateway trusts a node's own harvest estimate after estimator.minSlots (24) records;
  // before that q_lim is solved on the cautious no-harvest prior.
  const slots = o.slots ?? 26;
  // 07:00 solar time on a June day, the sun a few hours up: the panels harvest, each as its
  // orientation and sky allow. Four wall-clock minutes a day: one slot every ~0.6 s.
  const field = await startField({
    groups: 3, nodesPerGroup: 2, seed: 3, dayMinutes: 4, policy: 'foresight', mqttPort: 0,
    startMs: defaultStartMs(Date.UTC(2026, 5, 21, 12), SITE.longitudeDeg) + 3 * 3_600_000, ...SITE,
    // Coordinated sleep is on, as in the demo. On its first day the planner sends no node to
    // sleep for want of it (gateway/sleep-planner.ts), so the nodes keep sending the slot
    // records the dashboard's queries read; the one an operator rests sits below its raised
    // E_th and is halted, until the first hour of the day it was not yet heard in.
    influxUrl: o.influxUrl, log, agentLogLevel: 'error',
  });
  const fromMs = field.options.startMs;
  const ids = field.nodes.map((n) => n.nodeId);
  const groups = [...new Set(field.nodes.map((n) => n.plan.group))].sort();
  const nodesOf = (g: string) => field.nodes.filter((n) => n.plan.group === g).map((n) => n.nodeId).sort();
  const savingNode = nodesOf(groups[0]!)[1]!;
  const leavingNode = nodesOf(groups[1]!)[1]!;
  let jobs: FieldRun['jobs'];
  try {
    const seq = (n: string) => field.gateway.registry.get(n)?.lastSeq ?? -1;
    await sendIntoPowerSaving(field, savingNode);
    await until(`${savingNode} in power saving`, () => field.gateway.registry.get(savingNode)?.gamma === 0, 30_000);
    jobs = await runJobs(field.jobs, o.jobs ?? 3);
    await until(`${slots} slot records from each node`, () => ids.every((n) => seq(n) >= slots - 1), 90_000);
    await within(`stopping ${leavingNode}`, field.nodes.find((n) => n.nodeId === leavingNode)!.stop('leaving early'), 30_000);
    await until(`${leavingNode} offline at the gateway`, () => field.gateway.registry.get(leavingNode)?.online === false, 15_000);
    const target = Math.max(...ids.filter((n) => n !== leavingNode).map(seq)) + 2;
    await until('two more slots from the others', () => ids.every((n) => n === leavingNode || seq(n) >= target), 30_000);
  } finally {
    await within('stopping the field', field.stop(), 60_000);
  }
  return {
    jobs, fleet: FLEET, groups, nodes: [...ids].sort(), nodesOf, savingNode, leavingNode,
    fromMs, toMs: Math.ceil(field.clock.now()),
  };
}

/**
 * What an operator does to rest a node: raise its E_th above its battery with the
 * set-thresholds command (protocol/messages.ts) on its cmd topic, from the gateway's client.
 */
async function sendIntoPowerSaving(field: Field, nodeId: string): Promise<void> {
  const node = field.gateway.registry.get(nodeId);
  if (!node) throw new Error(`field run: ${nodeId} is not registered`);
  const cap = node.profile.capacityJ;
  const thresholds = { eThJ: 0.97 * cap, eThUpJ: 0.99 * cap, criticalJ: 0.03 * cap };
  if (node.batteryJ >= thresholds.eThJ) throw new Error(`field run: ${nodeId} is already above 97 %; choose another node`);
  await field.gateway.client.publishAsync(nodeTopic(FLEET, nodeId, 'cmd'),
    encodeJson({ v: PROTOCOL_VERSION, id: 'rest', op: 'set-thresholds', thresholds }), { qos: 1 });
}

/** A few short completions one after the other, and one cancelled as soon as it is submitted. */
async function runJobs(jobs: JobService, count: number): Promise<FieldRun['jobs']> {
  const done: JobSummary[] = [];
  for (let i = 0; i < count; i++) {
    const job = jobs.submit({ prompt: 'The state of the Union is', maxTokens: 6, temperature: 0.8, topP: 0.9, seed: i + 1, stop: [] });
    done.push(await within(`completion ${job.id}`, job.done, 60_000));
  }
  const cancelled = jobs.submit({ prompt: 'My fellow citizens,', maxTokens: 6, temperature: 0, topP: 1, seed: 1, stop: [] });
  cancelled.cancel('the client went away');
  await within(`cancelling ${cancelled.id}`, cancelled.done, 30_000).then(
    () => { throw new Error('the cancelled job finished anyway'); },
    (err: unknown) => { if (!(err instanceof JobError) || err.kind !== 'cancelled') throw err; },
  );
  return { done, cancelled: cancelled.id };
}
