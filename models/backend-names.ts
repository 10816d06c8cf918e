// The TF.js backends by name, apart from their selection (backend.ts), so that a command
// line can list and check them without loading TF.js.
export const BACKEND_NAMES = ['tensorflow', 'wasm', 'cpu'] as const;
/** The environment variable through which users override the choice (read by the entry points). */
export const BACKEND_ENV = 'HELIOMESH_BACKEND';
export type BackendName = (typeof BACKEND_NAMES)[number];

export function parseBackendName(value: string): BackendName | 'auto' {
  if (value === 'auto' || (BACKEND_NAMES as readonly string[]).includes(value)) return value as BackendName | 'auto';
  throw new Error(`unknown TF.js backend '${value}'; choose one of: auto, ${BACKEND_NAMES.join(', ')}`);
}
