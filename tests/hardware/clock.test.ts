// The clocks: virtual time fires timers in order at their instants; scaled time runs fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RealClock } from '../../ground/clock.js';
import { ScaledClock, VirtualClock } from '../../hardware/clock.js';

test('VirtualClock: timers fire in due order at their own instants', async () => {
  const clock = new VirtualClock(1000);
  const log: string[] = [];
  clock.setTimeout(() => log.push(`b@${clock.now()}`), 200);
  clock.setTimeout(() => log.push(`a@${clock.now()}`), 100);
  const every = clock.setInterval(() => log.push(`i@${clock.now()}`), 150);
  const cancelled = clock.setTimeout(() => log.push('never'), 50);
  cancelled.cancel();
  await clock.advance(320);
  every.cancel();
  await clock.advance(1000);
  assert.deepEqual(log, ['a@1100', 'i@1150', 'b@1200', 'i@1300']);
  assert.equal(clock.now(), 2320);
});

test('VirtualClock: sleep moves time itself, and concurrent sleepers share it', async () => {
  const clock = new VirtualClock(0);
  await clock.sleep(500);
  assert.equal(clock.now(), 500);
  const order: number[] = [];
  await Promise.all([
    clock.sleep(100).then(() => order.push(clock.now())),
    clock.sleep(300).then(() => order.push(clock.now())),
    (async () => { await clock.sleep(50); await clock.sleep(100); order.push(clock.now()); })(),
  ]);
  assert.deepEqual(order, [600, 650, 800]);
  assert.equal(clock.now(), 800);
});

test('ScaledClock runs `speed` times faster than the wall', async () => {
  const clock = new ScaledClock(1000, 0);
  const wall = performance.now();
  await clock.sleep(50_000); // 50 virtual seconds
  const realMs = performance.now() - wall;
  assert.ok(clock.now() >= 50_000, `virtual time ${clock.now()}`);
  assert.ok(realMs < 1000, `took ${realMs} ms of wall time`);
  assert.throws(() => new ScaledClock(0), /speed must be > 0/);
});

test('RealClock is wall time', async () => {
  const clock = new RealClock();
  assert.ok(Math.abs(clock.now() - Date.now()) < 50);
  let fired = false;
  const t = clock.setTimeout(() => { fired = true; }, 1);
  await clock.sleep(20);
  t.cancel();
  assert.equal(fired, true);
});
