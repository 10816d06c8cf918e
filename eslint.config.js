// Lint rules, including the layering of shared/DESIGN.md: each folder may import only
// the folders its row of the layout table names, and the ground floor, which none forbids.
// Import cycles are checked by tests/architecture.test.ts, which sees the whole graph at once.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ours = ['protocol', 'hardware', 'models', 'agent', 'gateway', 'sim', 'demo', 'bench', 'cli'];

/** Forbid relative imports that reach into any of `forbidden` from files under `folder`. */
function layer(folder, forbidden) {
  return {
    files: [`${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: forbidden.map((f) => ({
          group: [`**/${f}/**`, `**/${f}`],
          message: `${folder}/ may not import ${f}/ (see shared/DESIGN.md, Layout).`,
        })),
      }],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'results/**', 'eslint.config.js', '**/*.py'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  // The ground floor (clock, random, log, polling) is what every folder may import, so it
  // imports none of them.
  layer('ground', ours),
  layer('protocol', ours.filter((f) => f !== 'protocol')),
  layer('hardware', ours.filter((f) => f !== 'hardware')),
  layer('models', ours.filter((f) => f !== 'models')),
  layer('agent', ['gateway', 'sim', 'demo', 'bench', 'cli']),
  layer('gateway', ['hardware', 'agent', 'sim', 'demo', 'bench', 'cli']),
  layer('sim', ['protocol', 'hardware', 'models', 'agent', 'demo', 'bench', 'cli']),
  // The demo composes both sides in one process (its field is a composition root), so it
  // may import agent/ and gateway/ alike; nothing but cli/, bench/ and tests/ imports it.
  layer('demo', ['sim', 'bench', 'cli']),
  // `heliomesh bench` runs the benchmarks; they must not reach back up into the command line.
  layer('bench', ['cli']),
);
