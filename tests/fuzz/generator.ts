// Seeded generators of bad node messages for the fuzz tests. Every payload made here is
// invalid by construction, for a reason named by its category, so a test can say exactly
// how many refusals each side must count. The generator is a few lines of our own rather
// than a property-based library: the tests need exact per-category counts and a fixed,
// replayable stream, not shrinking.
import { Random } from '../../ground/random.js';
import { PROTOCOL_VERSION, MAX_JSON_BYTES, encodeJson, type EventMessage, type SlotRecord, type StateMessage } from '../../protocol/index.js';
import { birth, paperProfile, slotRecord, will } from '../support/protocol-messages.js';

/** The project's seeded Random, with the draws the fuzz cases are picked by. */
export class Rng extends Random {
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }

  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
}

/** The node topics the gateway reads into its registry. */
export type ReadKind = 'state' | 'slot' | 'event';

export const BAD_CATEGORIES = [
  'truncated', 'garbage', 'not-object', 'missing-key', 'wrong-type', 'out-of-range', 'foreign-node', 'oversized', 'cross-schema', 'bad-profile',
] as const;
export type BadCategory = (typeof BAD_CATEGORIES)[number];

export interface BadMessage {
  kind: ReadKind;
  category: BadCategory;
  payload: Buffer;
}

export function eventMessage(nodeId: string, over: Partial<EventMessage> = {}): EventMessage {
  return {
    v: PROTOCOL_VERSION, nodeId, atMs: 1_700_000_000_000, kind: 'mode-change', batteryJ: 50_000, batteryPct: 50, gamma: 1, powerMode: 2, detail: '', ...over,
  };
}

type Json = Record<string, unknown>;

/** Values outside each field's schema (protocol/messages.ts), per message kind. */
const OUT_OF_RANGE: Record<ReadKind, Array<[string, unknown]>> = {
  state: [['v', 2], ['v', 0], ['status', 'maybe'], ['atMs', -1], ['atMs', 1.5], ['nodeId', ''], ['nodeId', 'a/b'], ['nodeId', '+'], ['nodeId', '#'], ['nodeId', 'x'.repeat(64)], ['nodeId', '-lead']],
  slot: [
    ['v', 2], ['seq', -1], ['seq', 2.5], ['slotStartMs', -5], ['slotMs', 0], ['harvestJ', -0.001], ['consumedJ', -1], ['batteryJ', -1],
    ['batteryPct', 100.01], ['batteryPct', -1], ['powerMode', -1], ['powerMode', 1.5], ['gamma', 2], ['gamma', -1], ['queue', -1],
    ['charger', 'x'.repeat(41)], ['health', Array.from({ length: 33 }, () => 'i2c')], ['health', ['x'.repeat(121)]], ['samples', -1], ['nodeId', 'pi b'],
  ],
  event: [
    ['v', 2], ['kind', 'explode'], ['atMs', -1], ['batteryJ', -1], ['batteryPct', 101], ['gamma', 3], ['powerMode', -2], ['detail', 'x'.repeat(501)], ['nodeId', 'a.b'],
  ],
};

/** Profiles that break a rule of the birth's schema. */
const BAD_PROFILES: Array<(p: Json) => void> = [
  (p) => { p.thresholds = { eThJ: 10_000, eThUpJ: 10_000, criticalJ: 2_000 }; }, // no hysteresis
  (p) => { p.thresholds = { eThJ: 10_000, eThUpJ: 15_000, criticalJ: 10_000 }; }, // critical not below E_th
  (p) => { p.thresholds = { eThJ: 10_000, eThUpJ: 100_000, criticalJ: 2_000 }; }, // E'_th at capacity
  (p) => { p.modeTable = [{ minFraction: 0.1, powerMode: 1 }]; },
  (p) => { p.modeTable = [{ minFraction: 0, powerMode: 9 }]; },
  (p) => { p.modeTable = [{ minFraction: 0, powerMode: 1 }, { minFraction: 0, powerMode: 2 }]; },
  (p) => { p.modes = [{ powerMode: 1, name: 'a', kappa: 1, costJ: 1 }, { powerMode: 1, name: 'b', kappa: 2, costJ: 1 }]; },
  (p) => { p.modes = []; },
  (p) => { (p.modes as Json[])[0]!.kappa = 0; },
  (p) => { (p.modes as Json[])[0]!.costJ = -1; },
  (p) => { p.queueCapacity = 0; },
  (p) => { p.capacityJ = 0; },
  (p) => { p.slotMs = 0; },
  (p) => { p.group = 'g/1'; },
];

const WRONG_TYPES: unknown[] = ['x', null, [], {}, true, 7, [1, 2]];

function sameJsonType(a: unknown, b: unknown): boolean {
  const t = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  return t(a) === t(b);
}

export interface GeneratorIds {
  /** The node the messages are published as (and on whose topics). */
  self: string;
  /** Other node ids, for messages that name another node. */
  others: readonly string[];
}

/** A valid message of `kind` from `nodeId`, as JSON. */
function valid(kind: ReadKind, nodeId: string, rng: Rng): Json {
  if (kind === 'state') return (rng.next() < 0.8 ? birth(nodeId, 1_700_000_000_000, paperProfile('g1')) : will(nodeId)) as unknown as Json;
  if (kind === 'slot') return slotRecord(nodeId, rng.int(0, 1_000_000)) as unknown as Json;
  return eventMessage(nodeId) as unknown as Json;
}

/** One bad message for `kind` in `category`. */
export function badMessage(kind: ReadKind, category: BadCategory, ids: GeneratorIds, rng: Rng): BadMessage {
  const make = (payload: Buffer): BadMessage => ({ kind, category, payload });
  const base = valid(kind, ids.self, rng);
  switch (category) {
    case 'truncated': {
      const full = encodeJson(base);
      // Every proper, non-empty prefix of a JSON object leaves it unclosed.
      return make(full.subarray(0, rng.int(1, full.length - 1)));
    }
    case 'garbage':
      return make(rng.bytes(rng.int(1, 2048)));
    case 'not-object': {
      const depth = rng.int(100, 5000);
      return make(Buffer.from(rng.pick(['null', '[]', '"online"', '42', 'true', '[' .repeat(depth) + ']'.repeat(depth), '{}'])));
    }
    case 'missing-key': {
      const keys = Object.keys(base).filter((k) => !(kind === 'state' && base.status === 'offline' && k === 'atMs'));
      delete base[rng.pick(keys)];
      return make(encodeJson(base));
    }
    case 'wrong-type': {
      const key = rng.pick(Object.keys(base));
      const original = base[key];
      // charger is a string or null: neither may be the replacement.
      const choices = WRONG_TYPES.filter((v) => !sameJsonType(v, original) && !(key === 'charger' && (v === null || typeof v === 'string')));
      base[key] = rng.pick(choices);
      return make(encodeJson(base));
    }
    case 'out-of-range': {
      const [key, value] = rng.pick(OUT_OF_RANGE[kind].filter(([k]) => k in base));
      base[key] = value;
      return make(encodeJson(base));
    }
    case 'foreign-node':
      base.nodeId = rng.pick(ids.others);
      return make(encodeJson(base));
    case 'oversized': {
      // Unknown keys are stripped by the schemas, so only the size makes this one bad.
      const size = rng.int(MAX_JSON_BYTES + 1, 4 * MAX_JSON_BYTES);
      base.pad = '';
      base.pad = 'x'.repeat(Math.max(0, size - encodeJson(base).length));
      return make(encodeJson(base));
    }
    case 'cross-schema': {
      const other = rng.pick((['state', 'slot', 'event'] as const).filter((k) => k !== kind));
      // A will carries no fields that a slot record or event lacks, so it is never valid elsewhere either.
      return make(encodeJson(valid(other, ids.self, rng)));
    }
    case 'bad-profile': {
      const b = birth(ids.self, 1_700_000_000_000, paperProfile('g1')) as unknown as Json;
      rng.pick(BAD_PROFILES)(b.profile as Json);
      return { kind: 'state', category, payload: encodeJson(b) };
    }
  }
}

/** `n` bad messages over the three kinds and every category, in a seeded order. */
export function badMessages(n: number, ids: GeneratorIds, rng: Rng): BadMessage[] {
  const out: BadMessage[] = [];
  for (let i = 0; i < n; i++) {
    const category = BAD_CATEGORIES[i % BAD_CATEGORIES.length]!;
    const kind: ReadKind = category === 'bad-profile' ? 'state' : rng.pick(['state', 'slot', 'event'] as const);
    out.push(badMessage(kind, category, ids, rng));
  }
  return rng.shuffle(out);
}

/** Valid slot records and events that a test mixes into the bad stream. */
export function validSlot(nodeId: string, seq: number): Buffer {
  return encodeJson(slotRecord(nodeId, seq, { batteryJ: 40_000 + seq }) satisfies SlotRecord);
}

export function validBirth(nodeId: string, group = 'g1'): Buffer {
  return encodeJson(birth(nodeId, 1_700_000_000_000, paperProfile(group)) satisfies StateMessage);
}
