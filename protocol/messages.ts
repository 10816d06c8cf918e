// JSON messages on the node topics, as zod schemas. Every parser takes the raw MQTT payload
// and never throws: a payload from the wire is either a typed value or a reason.
import { z } from 'zod';
import {
  MAX_BLOCK_INDEX, MAX_CAPACITY_J, MAX_JOB_MS, MAX_NODE_W, MAX_PANEL_W, MAX_POWER_MODES, MAX_QUEUE_CAPACITY, MAX_RECORD_SLOT_MS,
  MAX_SAMPLE_HZ, MAX_SLOT_MS, MIN_CAPACITY_J, MIN_SLOT_MS, eventBeyondProfile, maxDrawJ, maxHarvestJ,
} from './bounds.js';
import { thresholdProblems } from './rules.js';

export const PROTOCOL_VERSION = 1;

/** Largest JSON payload either side accepts; a slot record is well under 2 KiB. */
export const MAX_JSON_BYTES = 16 * 1024;

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'must be 1–63 letters, digits, "_" or "-", starting with a letter or digit');
// Every energy a node states is at most the largest battery there is (protocol/bounds.ts);
// the per-message bounds below and the node's own profile narrow it further.
const joules = z.number().finite().nonnegative().max(MAX_CAPACITY_J);
const ms = z.number().int().nonnegative();

/** One row of the power-mode table: the paper's PM index, κ at δ, and C_E in joules. */
export const powerModeEntrySchema = z.object({
  /** 1..n; 0 is reserved for power saving (SPEC.md §3). */
  powerMode: z.number().int().min(1).max(MAX_POWER_MODES),
  /** cpufreq operating point name in the node's hardware config. */
  name: z.string().min(1).max(40),
  /** κ(PM): slots one job occupies (≥ 1); κ × δ ≤ MAX_JOB_MS is checked with the profile. */
  kappa: z.number().int().min(1).max(MAX_JOB_MS / MIN_SLOT_MS),
  /** C_E(PM): energy one job costs, J. */
  costJ: joules,
});
export type PowerModeEntry = z.infer<typeof powerModeEntrySchema>;

/** Dynamic power-mode table (SPEC.md §3): at or above `minFraction` of capacity use `powerMode`. */
export const modeStepSchema = z.object({
  minFraction: z.number().min(0).max(1),
  powerMode: z.number().int().min(1).max(MAX_POWER_MODES),
});
export type ModeStep = z.infer<typeof modeStepSchema>;

export const thresholdsSchema = z.object({
  /** E_th: below it the node enters power saving. */
  eThJ: joules,
  /** E′_th: above it the node leaves power saving. */
  eThUpJ: joules,
  /** Below it the node shuts down. */
  criticalJ: joules,
});
export type Thresholds = z.infer<typeof thresholdsSchema>;

function checkTable(modes: PowerModeEntry[], table: ModeStep[], ctx: z.RefinementCtx, path: PropertyKey[]): void {
  const known = new Set(modes.map((m) => m.powerMode));
  if (known.size !== modes.length) ctx.addIssue({ code: 'custom', path: [...path.slice(0, -1), 'modes'], message: 'powerMode values must be unique' });
  if (table[0]?.minFraction !== 0) ctx.addIssue({ code: 'custom', path, message: 'the first step must have minFraction 0' });
  for (let i = 0; i < table.length; i++) {
    if (!known.has(table[i]!.powerMode)) ctx.addIssue({ code: 'custom', path: [...path, i, 'powerMode'], message: `powerMode ${table[i]!.powerMode} is not in modes` });
    if (i > 0 && table[i]!.minFraction <= table[i - 1]!.minFraction) ctx.addIssue({ code: 'custom', path: [...path, i, 'minFraction'], message: 'minFraction must increase' });
  }
}

function checkThresholds(t: Thresholds, capacityJ: number, ctx: z.RefinementCtx, path: PropertyKey[]): void {
  for (const p of thresholdProblems(t, capacityJ)) ctx.addIssue({ code: 'custom', path: [...path, p.threshold], message: p.message });
}

export const shardRefSchema = z.object({
  model: z.string().min(1),
  /** First and last transformer block held, inclusive. */
  firstBlock: z.number().int().nonnegative().max(MAX_BLOCK_INDEX),
  lastBlock: z.number().int().nonnegative().max(MAX_BLOCK_INDEX),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});

/** A bound that ties two numbers of one message together (a `custom` issue, counted as out of range). */
function outOfRange(ctx: z.RefinementCtx, path: PropertyKey[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message, params: { bound: true } });
}

/** A job's cost is drawn over its κ slots, from the battery, by the board: both bound it. */
function checkCosts(p: { slotMs: number; capacityJ: number; modes: PowerModeEntry[] }, ctx: z.RefinementCtx): void {
  p.modes.forEach((m, i) => {
    const jobMs = m.kappa * p.slotMs;
    if (jobMs > MAX_JOB_MS) outOfRange(ctx, ['modes', i, 'kappa'], `κ ${m.kappa} × slotMs ${p.slotMs} is longer than the ${MAX_JOB_MS} ms a job may last`);
    if (m.costJ > p.capacityJ) outOfRange(ctx, ['modes', i, 'costJ'], `costJ ${m.costJ} J is above the battery capacity of ${p.capacityJ} J`);
    else if (m.costJ > maxDrawJ(jobMs)) outOfRange(ctx, ['modes', i, 'costJ'], `costJ ${m.costJ} J over κ × slotMs = ${jobMs} ms is above what a ${MAX_NODE_W} W board can draw`);
  });
}

export const profileSchema = z.object({
  group: id,
  shard: shardRefSchema.optional(),
  slotMs: z.number().int().min(MIN_SLOT_MS).max(MAX_SLOT_MS),
  capacityJ: z.number().min(MIN_CAPACITY_J).max(MAX_CAPACITY_J),
  /** The panel's peak power at STC, W: when given, a slot's harvest is bounded by it rather than by the largest panel. */
  panelPeakW: z.number().positive().max(MAX_PANEL_W).optional(),
  thresholds: thresholdsSchema,
  modes: z.array(powerModeEntrySchema).min(1).max(MAX_POWER_MODES),
  modeTable: z.array(modeStepSchema).min(1).max(MAX_POWER_MODES),
  queueCapacity: z.number().int().min(1).max(MAX_QUEUE_CAPACITY),
  /**
   * The board's idle draw while on, W: what `agent profile` measured as its baseline, or the
   * ledger's running idle estimate. The gateway's chain drains it every slot (idleQ,
   * docs/scheduling.md "Idle draw"); absent, the paper's model without idle draw.
   */
  idleW: z.number().finite().nonnegative().max(MAX_NODE_W).optional(),
  /**
   * How the node wakes from a planned sleep, and whether that path works now: the gateway
   * sends `sleep` only to a node with a working one (docs/scheduling.md "Coordinated sleep").
   */
  wake: z.object({
    path: z.enum(['rtc-wakealarm', 'witty-pi-4', 'virtual', 'none']),
    ok: z.boolean(),
    /** Why it does not work, when it does not. */
    reason: z.string().max(300).optional(),
  }).optional(),
}).superRefine((p, ctx) => {
  checkTable(p.modes, p.modeTable, ctx, ['modeTable']);
  checkThresholds(p.thresholds, p.capacityJ, ctx, ['thresholds']);
  checkCosts(p, ctx);
});
export type NodeProfile = z.infer<typeof profileSchema>;

/** Retained on `state`: the birth (online, with profile) and the will (offline). */
export const stateMessageSchema = z.discriminatedUnion('status', [
  z.object({
    v: z.literal(PROTOCOL_VERSION), status: z.literal('online'), nodeId: id, atMs: ms, profile: profileSchema,
    // The node's state when the birth was sent (it is re-sent on every γ change), so a
    // gateway that (re)starts knows at once which nodes can take jobs.
    gamma: z.union([z.literal(0), z.literal(1)]).optional(),
    powerMode: z.number().int().nonnegative().max(MAX_POWER_MODES).optional(),
    batteryJ: joules.optional(),
    // The sequence number the node's next slot record will carry. A birth comes with every
    // connect: this tells a reconnect, whose records continue the sequence (and whose gaps
    // still count), from a node whose counter started again (its spool was lost).
    nextSeq: z.number().int().nonnegative().optional(),
    // Drawn when the node's count starts at 0, and kept with it: a new epoch says the count
    // started again, whatever numbers it has reached since.
    seqEpoch: z.string().min(1).max(64).optional(),
  }).superRefine((b, ctx) => {
    // The birth's state is read against the profile it comes with.
    const beyond = eventBeyondProfile(b, b.profile);
    if (beyond) outOfRange(ctx, [beyond.bound === 'battery' ? 'batteryJ' : 'powerMode'], beyond.message);
  }),
  z.object({ v: z.literal(PROTOCOL_VERSION), status: z.literal('offline'), nodeId: id, atMs: ms.optional(), reason: z.string().max(200) }),
]);
export type StateMessage = z.infer<typeof stateMessageSchema>;

/** One slot's energy account (SPEC.md §2): sequence numbers expose lost records. */
export const slotRecordSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  nodeId: id,
  /** Increments by one per slot for the node's lifetime (persists over restarts). */
  seq: z.number().int().nonnegative(),
  slotStartMs: ms,
  /** How long the slot really lasted (a stalled node's is longer than δ). */
  slotMs: z.number().int().positive().max(MAX_RECORD_SLOT_MS),
  harvestJ: joules,
  consumedJ: joules,
  batteryJ: joules,
  batteryPct: z.number().min(0).max(100),
  /** 0 in power saving, else the PM index used. */
  powerMode: z.number().int().nonnegative().max(MAX_POWER_MODES),
  /** γ: 1 active, 0 power saving. */
  gamma: z.union([z.literal(0), z.literal(1)]),
  queue: z.number().int().nonnegative().max(MAX_QUEUE_CAPACITY),
  charger: z.string().max(40).nullable(),
  /** Sensor reads that failed in the slot; the energies then cover only the good samples. */
  health: z.array(z.string().max(120)).max(32),
  degraded: z.boolean(),
  samples: z.number().int().nonnegative(),
}).superRefine((s, ctx) => {
  // No panel delivers more than the largest one, no board draws more than the largest one,
  // over the slot's length; the node's own panel and battery are checked by the gateway.
  if (s.harvestJ > maxHarvestJ(s.slotMs)) outOfRange(ctx, ['harvestJ'], `harvestJ ${s.harvestJ} J in ${s.slotMs} ms is above what any ${MAX_PANEL_W} W panel delivers`);
  if (s.consumedJ > maxDrawJ(s.slotMs)) outOfRange(ctx, ['consumedJ'], `consumedJ ${s.consumedJ} J in ${s.slotMs} ms is above what a ${MAX_NODE_W} W board draws`);
  // One sample at the slot's start and one at its close beyond the rate's count.
  if (s.samples > (MAX_SAMPLE_HZ * s.slotMs) / 1000 + 2) outOfRange(ctx, ['samples'], `${s.samples} samples in ${s.slotMs} ms is above ${MAX_SAMPLE_HZ} Hz`);
});
export type SlotRecord = z.infer<typeof slotRecordSchema>;

export const EVENT_KINDS = ['power-saving-enter', 'power-saving-exit', 'mode-change', 'critical', 'job-handed-back', 'config-changed', 'sleeping'] as const;
export const eventMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  nodeId: id,
  atMs: ms,
  kind: z.enum(EVENT_KINDS),
  batteryJ: joules,
  batteryPct: z.number().min(0).max(100),
  gamma: z.union([z.literal(0), z.literal(1)]),
  powerMode: z.number().int().nonnegative().max(MAX_POWER_MODES),
  detail: z.string().max(500),
});
export type EventMessage = z.infer<typeof eventMessageSchema>;

export const telemetrySchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  nodeId: id,
  atMs: ms,
  sensors: z.array(z.object({
    name: z.string().max(40),
    ok: z.boolean(),
    busVoltageV: z.number().finite().optional(),
    currentMa: z.number().finite().optional(),
    powerMw: z.number().finite().optional(),
  })).max(8),
});
export type TelemetryMessage = z.infer<typeof telemetrySchema>;

const cmdId = z.string().min(1).max(64);
export const commandSchema = z.discriminatedUnion('op', [
  z.object({ v: z.literal(PROTOCOL_VERSION), id: cmdId, op: z.literal('ping') }),
  z.object({ v: z.literal(PROTOCOL_VERSION), id: cmdId, op: z.literal('set-thresholds'), thresholds: thresholdsSchema }),
  z.object({
    v: z.literal(PROTOCOL_VERSION), id: cmdId, op: z.literal('set-mode-table'),
    modes: z.array(powerModeEntrySchema).min(1), modeTable: z.array(modeStepSchema).min(1),
  }).superRefine((c, ctx) => checkTable(c.modes, c.modeTable, ctx, ['modeTable'])),
  z.object({ v: z.literal(PROTOCOL_VERSION), id: cmdId, op: z.literal('re-profile'), jobsPerMode: z.number().int().min(1).max(100).default(5) }),
  z.object({ v: z.literal(PROTOCOL_VERSION), id: cmdId, op: z.literal('shutdown'), reason: z.string().max(200) }),
  /**
   * Coordinated sleep: finish or hand back the jobs held, flush the spool, set the wake
   * alarm for `wakeAtMs` (the node's clock, epoch ms), and halt. A node without a working
   * wake path refuses, with the reason.
   */
  z.object({ v: z.literal(PROTOCOL_VERSION), id: cmdId, op: z.literal('sleep'), wakeAtMs: ms, reason: z.string().max(200) }),
]);
export type Command = z.infer<typeof commandSchema>;

export const commandReplySchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  /** The command's id, or null when the command was too broken to carry one. */
  id: cmdId.nullable(),
  ok: z.boolean(),
  error: z.string().max(1000).optional(),
  result: z.record(z.string(), z.unknown()).optional(),
});
export type CommandReply = z.infer<typeof commandReplySchema>;

/**
 * Where a node sends a job's output frames: the node serving the next group, under the
 * session the gateway opened there (the frame carries that session id on the next node's
 * job/hop). Absent: back to the gateway on the node's own job/out.
 */
export const hopRouteSchema = z.object({ nodeId: id, sessionId: z.number().int().nonnegative() });
export type HopRoute = z.infer<typeof hopRouteSchema>;

/** JSON on `job/in` beside the binary frames: the gateway offers or cancels a job, or moves its route. */
export const jobControlSchema = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(PROTOCOL_VERSION), type: z.literal('offer'), jobId: z.number().int().nonnegative(), sessionId: z.number().int().nonnegative(),
    // The context positions the job can reach (prompt + max tokens − 1). The node sizes the
    // session's KV cache to it, so attention spans what the job uses, not the model's whole
    // context. Absent: the whole context, as before this field existed.
    positions: z.number().int().positive().max(1 << 20).optional(),
    next: hopRouteSchema.optional(),
  }),
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('cancel'), jobId: z.number().int().nonnegative(), reason: z.string().max(200) }),
  /** The next group moved to another node (or has none now): outputs from the next frame on go there. */
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('route'), jobId: z.number().int().nonnegative(), next: hopRouteSchema.optional() }),
]);
export type JobControl = z.infer<typeof jobControlSchema>;

/** JSON on `job/out` beside the binary frames. */
export const jobReportSchema = z.discriminatedUnion('type', [
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('accepted'), jobId: z.number().int().nonnegative() }),
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('refused'), jobId: z.number().int().nonnegative(), reason: z.string().max(300) }),
  z.object({ v: z.literal(PROTOCOL_VERSION), type: z.literal('handed-back'), jobId: z.number().int().nonnegative(), reason: z.string().max(300) }),
  z.object({
    v: z.literal(PROTOCOL_VERSION), type: z.literal('report'), jobId: z.number().int().nonnegative(), sessionId: z.number().int().nonnegative(),
    ok: z.boolean(), error: z.string().max(1000).optional(), steps: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative().max(MAX_JOB_MS),
    // Net of the idle baseline: the job's energy minus baselineW × its duration. The upper
    // bound depends on the node's slot and battery, checked where the gateway receives it.
    energyJ: z.number().finite(),
    /** Per-job energy's uncertainty (docs/agent.md "Per-job energy"); absent from nodes that predate it. At most a day of the largest board's draw. */
    energyUncertaintyJ: z.number().finite().nonnegative().max(MAX_NODE_W * (MAX_JOB_MS / 1000)).optional(),
    baselineW: z.number().finite().nonnegative().max(MAX_NODE_W),
    powerMode: z.number().int().nonnegative().max(MAX_POWER_MODES),
    /**
     * The session's decode forwards (one-row frames, not replays): how many, and their wall
     * time on the node, ms. The gateway takes them from the group's hop time to show what the
     * link and the node's handling cost. Absent from nodes that predate them.
     */
    decode: z.object({ frames: z.number().int().nonnegative(), forwardMs: z.number().finite().nonnegative().max(MAX_JOB_MS) }).optional(),
  }).superRefine((r, ctx) => {
    // The meter only adds: the net energy is at least minus the baseline over the job.
    if (r.energyJ < -(r.baselineW * (r.durationMs / 1000))) outOfRange(ctx, ['energyJ'], `energyJ ${r.energyJ} J is below minus the ${r.baselineW} W baseline over ${r.durationMs} ms`);
    if (r.decode && r.decode.frames > r.steps) outOfRange(ctx, ['decode', 'frames'], `decode.frames ${r.decode.frames} is more than the session's ${r.steps} steps`);
  }),
]);
export type JobReport = z.infer<typeof jobReportSchema>;

/** `outOfRange`: the message is well-formed but a number in it is beyond a physical bound (protocol/bounds.ts). */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string; outOfRange?: boolean };

/** A range issue: a number past a schema's min/max, or a bound between a message's numbers. */
function isRangeIssue(i: z.core.$ZodIssue): boolean {
  if (i.code === 'too_big' || i.code === 'too_small') return i.origin === 'number';
  return i.code === 'custom' && (i.params as { bound?: unknown } | undefined)?.bound === true;
}

function parseWith<T>(schema: z.ZodType<T>, what: string, payload: Buffer | Uint8Array): ParseResult<T> {
  if (payload.length > MAX_JSON_BYTES) return { ok: false, error: `${what}: payload of ${payload.length} bytes exceeds the ${MAX_JSON_BYTES}-byte limit` };
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8'));
  } catch (err) {
    return { ok: false, error: `${what}: not JSON (${(err as Error).message})` };
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
    // Out of range: a number beyond a bound, and nothing else wrong but consistency checks
    // (a threshold above a capacity of 1e-300 J follows from the capacity, not the form).
    const outOfRange = r.error.issues.some(isRangeIssue) && r.error.issues.every((i) => i.code === 'custom' || isRangeIssue(i));
    return { ok: false, error: `${what}: ${issues.join('; ')}`, outOfRange };
  }
  return { ok: true, value: r.data };
}

export const parseState = (p: Buffer | Uint8Array): ParseResult<StateMessage> => parseWith(stateMessageSchema, 'state', p);
export const parseSlotRecord = (p: Buffer | Uint8Array): ParseResult<SlotRecord> => parseWith(slotRecordSchema, 'slot record', p);
export const parseEvent = (p: Buffer | Uint8Array): ParseResult<EventMessage> => parseWith(eventMessageSchema, 'event', p);
export const parseTelemetry = (p: Buffer | Uint8Array): ParseResult<TelemetryMessage> => parseWith(telemetrySchema, 'telemetry', p);
export const parseCommand = (p: Buffer | Uint8Array): ParseResult<Command> => parseWith(commandSchema, 'command', p);
export const parseCommandReply = (p: Buffer | Uint8Array): ParseResult<CommandReply> => parseWith(commandReplySchema, 'command reply', p);
export const parseJobControl = (p: Buffer | Uint8Array): ParseResult<JobControl> => parseWith(jobControlSchema, 'job control', p);
export const parseJobReport = (p: Buffer | Uint8Array): ParseResult<JobReport> => parseWith(jobReportSchema, 'job report', p);

/** The id of a command that failed validation, if it carried a usable one, for the reply. */
export function commandIdOf(payload: Buffer | Uint8Array): string | null {
  if (payload.length > MAX_JSON_BYTES) return null;
  try {
    const j = JSON.parse(Buffer.from(payload).toString('utf8')) as unknown;
    const r = cmdId.safeParse((j as { id?: unknown } | null)?.id);
    return r.success ? r.data : null;
  } catch {
    return null; // not JSON: no id to answer with; the reply says so with id null
  }
}

/** Serialises a message for publishing. */
export function encodeJson(msg: object): Buffer {
  return Buffer.from(JSON.stringify(msg), 'utf8');
}
