// The birth's idle draw: the meter's running idle baseline, the re-profile's baseline until
// the meter has one, nothing while neither was measured, and a new birth only on a drift.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnergyAccount } from '../../agent/energy.js';
import { IdleDraw } from '../../agent/idle.js';

/** One idle interval of `w` watts over a second. */
function idleSecond(account: EnergyAccount, atS: number, w: number): void {
  account.interval({ fromMs: atS * 1000, toMs: (atS + 1) * 1000, fromW: w, toW: w, energyJ: w, fromResolutionW: 0.001, toResolutionW: 0.001 }, 0);
}

test('nothing measured: no idle draw; the re-profile\'s baseline stands in until the meter has its own', () => {
  const account = new EnergyAccount();
  const idle = new IdleDraw(account);
  assert.equal(idle.estimateW(), undefined);
  assert.equal(idle.drifted(), false);
  idle.profiled(3.1234);
  assert.equal(idle.estimateW(), 3.123);
  idleSecond(account, 0, 2.7);
  assert.equal(idle.estimateW(), 2.7, 'the meter\'s own estimate wins');
});

test('a new birth when the estimate first appears and when it drifts by more than a tenth', () => {
  const account = new EnergyAccount();
  const idle = new IdleDraw(account);
  idleSecond(account, 0, 2.7);
  assert.equal(idle.drifted(), true, 'first estimate');
  assert.equal(idle.forBirth(), 2.7);
  assert.equal(idle.drifted(), false);
  idleSecond(account, 1, 3.0); // the average moves by a tenth of the step: 2.73
  assert.equal(idle.drifted(), false);
  for (let s = 2; s < 30; s++) idleSecond(account, s, 3.5);
  assert.equal(idle.drifted(), true);
  assert.ok(idle.forBirth()! > 3.2);
});
