// A user's GGUF file served by a fleet, as the README shows: the bundled model written as a
// Q4_0 GGUF with its tokenizer and a chat template (`heliomesh model quantize`), split into
// GGUF shards that keep Q4_0 (`heliomesh model split`), served by three groups of agents,
// and asked over /v1/chat/completions: the file's own template renders the conversation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startField } from '../../demo/field.js';
import { defaultStartMs } from '../../demo/plan.js';
import { openCheckpoint } from '../../models/checkpoint.js';
import { readManifest } from '../../models/shards.js';
import { freePort } from '../support/ports.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cli = join(root, 'dist', 'cli', 'index.js');
const bundled = join(root, 'models', 'bundled');
const site = { latitudeDeg: 40.4, longitudeDeg: -3.7 };

function heliomesh(...args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `heliomesh ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('a Q4_0 GGUF with a chat template: split keeps Q4_0, three groups serve it, chat uses the file\'s template', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gguf-field-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const template = join(dir, 'template.jinja');
  writeFileSync(template, '{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}<assistant>');
  const file = join(dir, 'sotu.Q4_0.gguf');
  heliomesh('model', 'quantize', bundled, '--type', 'q4_0', '--out', file, '--tokenizer', join(bundled, 'charvocab.json'), '--chat-template', template);
  const shards = join(dir, 'sotu-q4');
  heliomesh('model', 'split', file, '--groups', '3', '--out', shards);
  const manifest = readManifest(shards);
  assert.deepEqual(manifest.blocks.map((b) => b.dtype), ['q4_0', 'q4_0', 'q4_0'], 'the split keeps the source\'s Q4_0');
  assert.equal(manifest.tokenizer?.kind, 'gguf');
  assert.deepEqual(openCheckpoint(shards).read({ range: { from: 0, to: 1 }, head: false }).layers[0]!.wq.type, 'q4_0');

  const httpPort = await freePort();
  const field = await startField({
    groups: 3, nodesPerGroup: 1, seed: 3, dayMinutes: 10, policy: 'foresight', mqttPort: 0, httpPort, model: shards, initialSocPct: 70,
    startMs: defaultStartMs(Date.UTC(2026, 5, 21, 12), site.longitudeDeg), ...site, log: pino({ level: 'silent' }),
  });
  t.after(() => field.stop());
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'The Union' }];
  const res = await fetch(`http://localhost:${httpPort}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'sotu-q4', messages, max_tokens: 16, temperature: 0 }),
  });
  const body = await res.json() as { choices: { message: { content: string } }[]; usage: { prompt_tokens: number; completion_tokens: number }; heliomesh: { served: unknown[] } };
  assert.equal(res.status, 200, JSON.stringify(body));
  // the template's text, one id per character, plus BOS: "<system> Be brief.\n<user> The Union\n<assistant>"
  const rendered = '<system> Be brief.\n<user> The Union\n<assistant>';
  assert.equal(body.usage.prompt_tokens, rendered.length + 1);
  assert.equal(body.usage.completion_tokens, 16);
  assert.equal(typeof body.choices[0]!.message.content, 'string');
  assert.equal(body.heliomesh.served.length, 3, 'every group served the job');
});
