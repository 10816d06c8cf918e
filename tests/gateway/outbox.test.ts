// The gateway's QoS 1 messages are counted from publish to PUBACK through MQTT.js's public
// publish callback, and the close's wait for them runs on the injected clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IClientPublishOptions, MqttClient } from 'mqtt';
import { Outbox, type OutboxClient } from '../../gateway/outbox.js';
import { VirtualClock } from '../../hardware/clock.js';

/** A client whose broker acknowledges only when told: the callbacks wait in `unacked`. */
function fakeClient(): { client: OutboxClient & EventEmitter; unacked: Array<{ topic: string; ack: (err?: Error) => void }> } {
  const unacked: Array<{ topic: string; ack: (err?: Error) => void }> = [];
  const client = Object.assign(new EventEmitter(), {
    connected: true,
    publish(topic: string, _payload: Buffer | string, opts: IClientPublishOptions, cb?: (err?: Error) => void) {
      // QoS 0 is done once written; QoS 1 once the PUBACK comes.
      if ((opts.qos ?? 0) === 0) cb?.();
      else unacked.push({ topic, ack: (err) => cb?.(err) });
      return client as unknown as MqttClient;
    },
  });
  return { client: client as unknown as OutboxClient & EventEmitter, unacked };
}

const settledWithin = async (p: Promise<boolean>): Promise<boolean | 'waiting'> => {
  const tick = new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 20));
  return Promise.race([p, tick]);
};

test('the wait for acknowledgements gives up when the clock passes the deadline, with no real time passing', async () => {
  const { client, unacked } = fakeClient();
  const clock = new VirtualClock(0);
  const outbox = new Outbox(client, clock);
  const errors: string[] = [];
  outbox.publish('cancel/a', 'x', { qos: 1 }, (err) => errors.push(err.message));
  outbox.publish('cancel/b', 'x', { qos: 1 }, (err) => errors.push(err.message));
  outbox.publish('frame', 'x', { qos: 0 }, (err) => errors.push(err.message));
  assert.equal(outbox.pending, 2, 'QoS 0 is not waited for');

  const realStart = performance.now();
  const waiting = outbox.acknowledged(2_000);
  unacked.shift()!.ack();
  await clock.advance(1_999);
  assert.equal(await settledWithin(waiting), 'waiting', 'one still unacknowledged 1 ms before the deadline');
  await clock.advance(1);
  assert.equal(await waiting, false, 'given up at the deadline');
  assert.ok(performance.now() - realStart < 1_000, 'the 2 s deadline passed on the clock, not in real time');
  assert.equal(outbox.pending, 1);
  assert.deepEqual(errors, []);
});

test('the wait ends as soon as the last PUBACK comes, and a refused message counts as settled', async () => {
  const { client, unacked } = fakeClient();
  const clock = new VirtualClock(0);
  const outbox = new Outbox(client, clock);
  const errors: string[] = [];
  for (const t of ['a', 'b']) outbox.publish(t, 'x', { qos: 1 }, (err) => errors.push(`${t}: ${err.message}`));
  const waiting = outbox.acknowledged(2_000);
  unacked.shift()!.ack(new Error('connection closed'));
  assert.equal(await settledWithin(waiting), 'waiting');
  unacked.shift()!.ack();
  assert.equal(await waiting, true);
  assert.equal(clock.now(), 0, 'no time had to pass');
  assert.deepEqual(errors, ['a: connection closed']);
  assert.equal(await outbox.acknowledged(2_000), true, 'nothing outstanding: at once');
});

test('a connection that closes while waiting ends the wait: nothing more can be acknowledged', async () => {
  const { client } = fakeClient();
  const outbox = new Outbox(client, new VirtualClock(0));
  outbox.publish('a', 'x', { qos: 1 }, () => {});
  const waiting = outbox.acknowledged(2_000);
  client.connected = false;
  client.emit('close');
  assert.equal(await waiting, false);
  assert.equal(await outbox.acknowledged(2_000), false, 'disconnected: no wait at all');
  assert.equal(client.listenerCount('close'), 0, 'the wait leaves no listener behind');
});
