// Finds the objects of a zod schema that accept unknown keys, so a test can hold a config
// schema to "every object is strict" however it grows: a nested z.object added later shows
// up here by its path. Reads zod v4's schema definitions (`_zod.def`), which zod/v4/core
// exposes for code that walks schemas.
import type { z } from 'zod';

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  items?: z.ZodType[];
  rest?: z.ZodType | null;
  options?: z.ZodType[];
  left?: z.ZodType;
  right?: z.ZodType;
  getter?: () => z.ZodType;
};

const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Paths (a.b[].c, union options as |N) of every object schema that is not strict. */
export function looseObjects(schema: z.ZodType, path = '(top level)', seen = new Set<z.ZodType>()): string[] {
  if (seen.has(schema)) return [];
  seen.add(schema);
  const def = defOf(schema);
  const walk = (s: z.ZodType | undefined | null, p: string) => (s ? looseObjects(s, p, seen) : []);
  switch (def.type) {
    case 'object': {
      const here = def.catchall && defOf(def.catchall).type === 'never' ? [] : [path];
      const at = (k: string) => (path === '(top level)' ? k : `${path}.${k}`);
      return [...here, ...Object.entries(def.shape ?? {}).flatMap(([k, v]) => walk(v, at(k)))];
    }
    case 'optional': case 'nullable': case 'default': case 'prefault': case 'nonoptional': case 'readonly': case 'catch':
      return walk(def.innerType, path);
    case 'pipe':
      return [...walk(def.in, path), ...walk(def.out, path)];
    case 'array':
      return walk(def.element, `${path}[]`);
    case 'record':
      return walk(def.valueType, `${path}.*`);
    case 'tuple':
      return [...(def.items ?? []).flatMap((s, i) => walk(s, `${path}[${i}]`)), ...walk(def.rest, `${path}[]`)];
    case 'union':
      return (def.options ?? []).flatMap((s, i) => walk(s, `${path}|${i}`));
    case 'intersection':
      return [...walk(def.left, path), ...walk(def.right, path)];
    case 'lazy':
      return walk(def.getter?.(), path);
    default:
      return [];
  }
}
