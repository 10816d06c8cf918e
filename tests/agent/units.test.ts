// The systemd units and the agent's stop deadlines agree: both processes are watched
// (Type=notify with a watchdog, the notifications from a child process accepted), and the
// agent's unit waits longer for a stop than the agent's own flush deadline plus its forced
// end, so a bounded stop is never cut short and a hung one is killed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAgentConfig } from '../../agent/config.js';
import { REPO } from '../faults/support.js';
import { exampleDoc } from './fixtures.js';

const unit = (name: string) => readFileSync(join(REPO, 'deploy', 'systemd', name), 'utf8');
const key = (text: string, k: string) => [...text.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
/** systemd.time(7) for the plain forms the units use: 30, 30s, 2min, 1min 30s. */
function seconds(span: string): number {
  let total = 0;
  for (const m of span.matchAll(/(\d+)\s*(min|s)?/g)) total += Number(m[1]) * (m[2] === 'min' ? 60 : 1);
  return total;
}

test('both units are Type=notify with a watchdog, and accept notifications from the process\'s children', () => {
  for (const name of ['heliomesh-agent.service', 'heliomesh-gateway.service']) {
    const text = unit(name);
    assert.deepEqual(key(text, 'Type'), ['notify'], name);
    assert.deepEqual(key(text, 'NotifyAccess'), ['all'], `${name}: systemd-notify is a child of the main process`);
    const [watchdog] = key(text, 'WatchdogSec');
    assert.ok(watchdog && seconds(watchdog) >= 10, `${name}: WatchdogSec=${String(watchdog)}`);
  }
});

test('the agent unit waits longer for a stop than the default flush deadline and the forced end', () => {
  const config = parseAgentConfig({ ...exampleDoc(), spool: { dir: '/tmp/x' } });
  const text = unit('heliomesh-agent.service');
  const stopS = seconds(key(text, 'TimeoutStopSec')[0] ?? '0');
  // 1 s: the forced end Link.close allows itself after the deadline.
  assert.ok(stopS * 1000 > config.stopFlushMs + 1000, `TimeoutStopSec=${stopS}s, stopFlushMs ${config.stopFlushMs}`);
  // Each watchdog half-period holds many sample-loop turns at the default rate.
  assert.ok(seconds(key(text, 'WatchdogSec')[0]!) * 1000 / 2 > 10 * (1000 / config.sampleHz));
});
