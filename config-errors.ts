// Validating a configuration file and saying what is wrong with it, the same way for every
// file a process reads (gateway, agent, hardware). Every object of a config schema is strict
// (z.strictObject), so a misspelled key is an error instead of a setting silently left at its
// default; this module turns zod's issues into one line per problem, each naming the key's
// path in the file, and for an unknown key the known key it was most likely meant to be.
import { z } from 'zod';

export class ConfigError extends Error {}

export interface ParseConfigOptions {
  /** Extra words after a key's path, e.g. that its value came from an environment variable. */
  annotate?: (path: string) => string | undefined;
  /** Where the input sits in its file (a section embedded in a larger file), prefixed to every path. */
  at?: readonly PropertyKey[];
  /** A last line pointing to the documentation of every setting. */
  seeAlso?: string;
  /** The error to throw (a subclass of ConfigError, so callers can tell config errors apart). */
  error?: new (message: string) => ConfigError;
}

/** Validates `input` against `schema`; on failure throws one error listing every problem. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, source: string, opts: ParseConfigOptions = {}): z.output<S> {
  // zod's unrecognized_keys issue carries the unknown keys but not the known ones; the raw
  // issue an error map sees still has the object schema (`inst`), so its keys are noted here.
  const knownAt = new Map<string, string[]>();
  const result = schema.safeParse(input, {
    error: (iss) => {
      if (iss.code !== 'unrecognized_keys') return undefined;
      const shape = (iss.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
      if (shape) knownAt.set(pathKey(iss.path ?? []), Object.keys(shape));
      return undefined;
    },
  });
  if (result.success) return result.data;
  const lines = result.error.issues.flatMap((issue) => issueLines(issue, knownAt, opts));
  const Err = opts.error ?? ConfigError;
  throw new Err(`${source} is invalid; fix these keys:\n${lines.join('\n')}${opts.seeAlso ? `\n(${opts.seeAlso})` : ''}`);
}

function issueLines(issue: z.core.$ZodIssue, knownAt: Map<string, string[]>, opts: ParseConfigOptions): string[] {
  const line = (path: readonly PropertyKey[], message: string) => {
    const shown = formatPath([...(opts.at ?? []), ...path]);
    const note = opts.annotate?.(shown);
    return `  ${shown}${note ? ` (${note})` : ''}: ${message}`;
  };
  if (issue.code !== 'unrecognized_keys') return [line(issue.path, issue.message)];
  const known = knownAt.get(pathKey(issue.path)) ?? [];
  return issue.keys.map((key) => {
    const meant = closestKey(key, known);
    const hint = meant !== undefined ? `did you mean ${formatPath([...(opts.at ?? []), ...issue.path, meant])}?`
      : known.length ? `the keys here are ${known.join(', ')}` : 'nothing may be set here';
    return line([...issue.path, key], `unknown key; ${hint}`);
  });
}

const pathKey = (path: readonly PropertyKey[]) => JSON.stringify(path.map(String));

/** `broker.tls.certPath`, `sensors[1].address`: the way one would point at the line in the file. */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}

/**
 * The known key `key` was most likely meant to be: the nearest by edit distance, if it is
 * near enough to be a slip (at most a third of the key's letters, and at least one, may be
 * wrong), else none. Case is ignored, so `SampleHz` finds `sampleHz`.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const budget = Math.max(1, Math.floor(key.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= budget ? best : undefined;
}

/**
 * Damerau–Levenshtein distance in its optimal-string-alignment form (insertions, deletions,
 * substitutions and transpositions of neighbours, each costing 1), so `maxPackteBytes` is one
 * slip from `maxPacketBytes`. A dozen lines over keys of a few dozen letters: no package
 * needed (none in package.json does it).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
