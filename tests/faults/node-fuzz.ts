// Bad messages for an agent's own inbound topics, cmd and job/in. Each is bad by
// construction for the reason its category names, and the category says what the agent
// must do with it: a bad command is answered (ok false) and counted refused; a bad job
// message is dropped and counted invalid; a well-formed frame or cancel for a job the node
// does not hold is dropped and counted not-held. The seeded Rng is the gateway fuzz's.
import { MAX_JSON_BYTES, PROTOCOL_VERSION, encodeFrame, encodeJson } from '../../protocol/index.js';
import { Rng } from '../fuzz/generator.js';

export const CMD_CATEGORIES = ['truncated', 'garbage', 'not-object', 'missing-key', 'wrong-type', 'out-of-range', 'oversized', 'job-on-cmd', 'frame-on-cmd'] as const;
export const JOB_CATEGORIES = [
  'truncated', 'garbage', 'not-object', 'missing-key', 'wrong-type', 'out-of-range', 'oversized', 'command-on-job',
  'frame-corrupted', 'frame-truncated', 'frame-padded', 'frame-bad-header', 'frame-not-held', 'cancel-not-held',
] as const;
export type CmdCategory = (typeof CMD_CATEGORIES)[number];
export type JobCategory = (typeof JOB_CATEGORIES)[number];
/** What the worker counts each job category as. */
export const NOT_HELD: readonly JobCategory[] = ['frame-not-held', 'cancel-not-held'];

type Json = Record<string, unknown>;

const WRONG_TYPES: unknown[] = ['x', null, [], {}, true, 7, [1, 2]];
const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Valid commands; the fuzz only ever sends broken copies of them. */
function command(rng: Rng): Json {
  const id = `c${rng.int(0, 1e6)}`;
  switch (rng.int(0, 4)) {
    case 0: return { v: PROTOCOL_VERSION, id, op: 'ping' };
    case 1: return { v: PROTOCOL_VERSION, id, op: 'set-thresholds', thresholds: { eThJ: 20_000, eThUpJ: 40_000, criticalJ: 5_000 } };
    case 2: return {
      v: PROTOCOL_VERSION, id, op: 'set-mode-table',
      modes: [{ powerMode: 1, name: 'low', kappa: 3, costJ: 40 }], modeTable: [{ minFraction: 0, powerMode: 1 }],
    };
    case 3: return { v: PROTOCOL_VERSION, id, op: 're-profile', jobsPerMode: 2 };
    default: return { v: PROTOCOL_VERSION, id, op: 'shutdown', reason: 'fuzz' };
  }
}

function offer(rng: Rng): Json {
  return { v: PROTOCOL_VERSION, type: 'offer', jobId: rng.int(0, 1e6), sessionId: rng.int(0, 1e6) };
}

function control(rng: Rng): Json {
  return rng.next() < 0.5 ? offer(rng) : { v: PROTOCOL_VERSION, type: 'cancel', jobId: rng.int(0, 1e6), reason: 'fuzz' };
}

/** A well-formed frame of `dim` columns. */
function frame(rng: Rng, dim: number, jobId = rng.int(0, 1e6)): Buffer {
  const rows = rng.int(1, 4);
  const data = new Float32Array(rows * dim).map(() => rng.next() - 0.5);
  return encodeFrame({ jobId, sessionId: rng.int(0, 1e6), step: rng.int(0, 100), position: rng.int(0, 100), rows, dim, data, dtype: rng.pick(['f32', 'f16'] as const) });
}

const OUT_OF_RANGE_CMD: Array<(c: Json) => void> = [
  (c) => { c.v = 2; },
  (c) => { c.id = ''; },
  (c) => { c.id = 'x'.repeat(65); },
  (c) => { c.op = 'format-disk'; },
  (c) => { c.op = 'set-thresholds'; c.thresholds = { eThJ: -1, eThUpJ: 2, criticalJ: 0 }; },
  (c) => { c.op = 'set-mode-table'; c.modes = []; c.modeTable = [{ minFraction: 0, powerMode: 1 }]; },
  (c) => { c.op = 'set-mode-table'; c.modes = [{ powerMode: 1, name: 'low', kappa: 0, costJ: 1 }]; c.modeTable = [{ minFraction: 0, powerMode: 1 }]; },
  (c) => { c.op = 'set-mode-table'; c.modes = [{ powerMode: 1, name: 'low', kappa: 1, costJ: 1 }]; c.modeTable = [{ minFraction: 0.2, powerMode: 1 }]; },
  (c) => { c.op = 're-profile'; c.jobsPerMode = 0; },
  (c) => { c.op = 're-profile'; c.jobsPerMode = 101; },
  (c) => { c.op = 'shutdown'; c.reason = 'x'.repeat(201); },
];

const OUT_OF_RANGE_JOB: Array<(c: Json) => void> = [
  (c) => { c.v = 2; },
  (c) => { c.type = 'steal'; },
  (c) => { c.jobId = -1; },
  (c) => { c.jobId = 1.5; },
  (c) => { c.type = 'offer'; c.sessionId = -3; },
  (c) => { c.type = 'cancel'; c.reason = 'x'.repeat(201); },
];

function truncated(json: Json, rng: Rng): Buffer {
  const full = encodeJson(json);
  return full.subarray(0, rng.int(1, full.length - 1));
}

function notObject(rng: Rng): Buffer {
  const depth = rng.int(100, 5000);
  return Buffer.from(rng.pick(['null', '[]', '"ping"', '42', 'true', '['.repeat(depth) + ']'.repeat(depth), '{}']));
}

function missingKey(json: Json, rng: Rng): Buffer {
  delete json[rng.pick(Object.keys(json).filter((k) => k !== 'reason' && k !== 'jobsPerMode'))];
  return encodeJson(json);
}

function wrongType(json: Json, rng: Rng): Buffer {
  // jobsPerMode has a default, so a missing one is fine; every other key must keep its type.
  const key = rng.pick(Object.keys(json));
  json[key] = rng.pick(WRONG_TYPES.filter((v) => typeOf(v) !== typeOf(json[key]) && v !== undefined));
  return encodeJson(json);
}

function oversized(json: Json, rng: Rng): Buffer {
  // Unknown keys are stripped by the schemas: only the size makes this one bad.
  const size = rng.int(MAX_JSON_BYTES + 1, 2 * MAX_JSON_BYTES);
  json.pad = '';
  json.pad = 'x'.repeat(Math.max(0, size - encodeJson(json).length));
  return encodeJson(json);
}

function garbage(rng: Rng): Buffer {
  const b = rng.bytes(rng.int(1, 2048));
  // A leading '{' or '[' could still be JSON by chance; bytes from 0x80 up never start it.
  b[0] = 0x80 | b[0]!;
  return b;
}

/** The categories both topics share, broken out of the valid message `json`. */
type SharedCategory = 'truncated' | 'garbage' | 'not-object' | 'missing-key' | 'wrong-type' | 'out-of-range' | 'oversized';

function badJson(category: SharedCategory, json: Json, rng: Rng, outOfRange: ReadonlyArray<(c: Json) => void>): Buffer {
  switch (category) {
    case 'truncated': return truncated(json, rng);
    case 'garbage': return garbage(rng);
    case 'not-object': return notObject(rng);
    case 'missing-key': return missingKey(json, rng);
    case 'wrong-type': return wrongType(json, rng);
    case 'out-of-range':
      rng.pick(outOfRange)(json);
      return encodeJson(json);
    case 'oversized': return oversized(json, rng);
  }
}

export function badCommand(category: CmdCategory, rng: Rng, dim: number): Buffer {
  if (category === 'job-on-cmd') return encodeJson(control(rng));
  if (category === 'frame-on-cmd') return frame(rng, dim);
  return badJson(category, command(rng), rng, OUT_OF_RANGE_CMD);
}

/** A bad message for job/in, sent while the node holds no job (so any job id is not held). */
export function badJobMessage(category: JobCategory, rng: Rng, dim: number): Buffer {
  const c = control(rng);
  const notHeldId = (): number => rng.int(0, 1e6);
  switch (category) {
    case 'command-on-job': return encodeJson(command(rng));
    case 'frame-corrupted': {
      const f = frame(rng, dim);
      const at = rng.int(8, f.length - 1);
      f[at] = f[at]! ^ (1 << rng.int(0, 7));
      return f;
    }
    case 'frame-truncated': {
      const f = frame(rng, dim);
      return f.subarray(0, rng.int(4, f.length - 1));
    }
    case 'frame-padded': return Buffer.concat([frame(rng, dim), rng.bytes(rng.int(1, 64))]);
    case 'frame-bad-header': {
      const f = frame(rng, dim);
      // Version, dtype or flags the decoder does not know; the CRC no longer matters.
      rng.pick([() => f.writeUInt8(2, 4), () => f.writeUInt8(7, 5), () => f.writeUInt16LE(0x80, 6)])();
      return f;
    }
    case 'frame-not-held': return frame(rng, dim, notHeldId());
    case 'cancel-not-held': return encodeJson({ v: PROTOCOL_VERSION, type: 'cancel', jobId: notHeldId(), reason: 'fuzz' });
    default: return badJson(category, c, rng, OUT_OF_RANGE_JOB);
  }
}
