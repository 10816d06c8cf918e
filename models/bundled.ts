// Where the bundled default model lives: `models/bundled/` at the package root, shipped in
// the npm package next to `dist/` (see package.json "files"). This only computes the path;
// whoever loads the model checks that it is there.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The folder of the bundled model, resolved from this compiled file (dist/models/bundled.js). */
export function bundledModelDir(): string {
  return fileURLToPath(new URL('../../models/bundled/', import.meta.url));
}

export function bundledManifestPath(): string {
  return join(bundledModelDir(), 'manifest.json');
}
