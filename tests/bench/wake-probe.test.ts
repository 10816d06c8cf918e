// The pipeline bench's wake probe: a frame's bytes go to a process that echoes them and
// come back whole, even when TCP splits them, and the probe's echo process ends with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WakeProbe } from '../../bench/pipeline/wake-probe.js';

test('the wake probe times whole round trips, back to back and after an idle gap, and closes its echo process', async () => {
  const probe = await WakeProbe.start(1188);
  try {
    const b2b = await probe.run(20);
    assert.equal(b2b.samples, 20);
    assert.equal(b2b.gapMs, 0);
    assert.ok(b2b.medianMs > 0 && b2b.medianMs <= b2b.p90Ms, JSON.stringify(b2b));
    assert.equal(b2b.bytesBack, 20 * 1188);
    assert.ok(b2b.cpuUsPerTrip > 0, `a trip's write and read cost this process CPU: ${b2b.cpuUsPerTrip} µs`);
    const idle = await probe.run(5, 20);
    assert.equal(idle.gapMs, 20);
    // The gap is before the clock starts: a round trip on loopback takes far less than it.
    assert.ok(idle.medianMs > 0 && idle.medianMs < 20, JSON.stringify(idle));
  } finally {
    await probe.close();
  }
});

test('a payload larger than one TCP segment comes back whole before the round trip ends', async () => {
  // 4 MiB arrives in many chunks; counting only the first would end the trip early and
  // leave bytes that the next trip would count as its own.
  const probe = await WakeProbe.start(4 * 1024 * 1024);
  try {
    const r = await probe.run(3);
    assert.equal(r.samples, 3);
    assert.equal(r.bytesBack, 3 * 4 * 1024 * 1024, 'each trip ended on its last byte, none spilled into the next run');
    assert.ok(r.medianMs > 0, JSON.stringify(r));
  } finally {
    await probe.close();
  }
});
