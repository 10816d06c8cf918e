// One transaction rule for every driver on the bus: retry a failed transfer, then say
// whether the device is missing or the bus failed, in the driver's own error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transact, type I2cDevice } from '../../hardware/i2c.js';

class DeviceError extends Error {
  constructor(readonly kind: string, message: string, options: { cause: unknown }) {
    super(message, options);
  }
}

const device: I2cDevice = {
  where: 'test sensor at 0x40',
  absentHint: 'check its wiring',
  retries: 2,
  fail: (kind, message, cause) => new DeviceError(kind, message, { cause }),
};

/** A transfer that fails `failures` times with `code`, then answers 42. */
function flaky(failures: number, code: string, errno: number): { op: () => Promise<number>; attempts: () => number } {
  let attempts = 0;
  return {
    op: async () => {
      attempts++;
      if (attempts <= failures) throw Object.assign(new Error(`transfer ${attempts} failed`), { code, errno });
      return 42;
    },
    attempts: () => attempts,
  };
}

test('a transfer that fails fewer times than the retries allow answers', async () => {
  const t = flaky(2, 'EIO', -5);
  assert.equal(await transact(device, t.op), 42);
  assert.equal(t.attempts(), 3);
});

test('a transfer that keeps failing becomes the driver\'s bus error, naming the device, the attempts and the cause', async () => {
  const t = flaky(Infinity, 'EIO', -5);
  await assert.rejects(transact(device, t.op), (err: DeviceError) => {
    assert.ok(err instanceof DeviceError);
    assert.equal(err.kind, 'bus');
    assert.equal(err.message, 'test sensor at 0x40: I2C transfer failed after 3 attempts: EIO: transfer 3 failed');
    assert.equal((err.cause as Error).message, 'transfer 3 failed');
    return true;
  });
  assert.equal(t.attempts(), 3);
});

test('a device that does not ACK is absent, with what to check', async () => {
  const t = flaky(Infinity, 'EREMOTEIO', -121);
  await assert.rejects(transact({ ...device, retries: 0 }, t.op), (err: DeviceError) => {
    assert.equal(err.kind, 'absent');
    assert.equal(err.message, 'test sensor at 0x40 does not answer (no ACK): check its wiring');
    return true;
  });
  assert.equal(t.attempts(), 1);
});
