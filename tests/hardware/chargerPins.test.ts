// Charger status pins: the MCP73871 and BQ24074 tables, polarity from config, power-good
// interrupts, flapping, and the BCM → sysfs translation on kernels ≥ 6.6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChargerPins, decodeBq24074, decodeMcp73871 } from '../../hardware/chargerPins.js';
import { VirtualClock } from '../../hardware/clock.js';
import { bcmToSysfs, findHeaderChip, listGpioChips } from '../../hardware/gpio.js';
import { VirtualGpio } from '../../hardware/virtual/gpio.js';

test('MCP73871 status table (DS20002090 Table 5-1), every combination', () => {
  const cases: Array<[boolean, boolean, boolean, string]> = [
    [false, false, false, 'no-input'],
    [false, false, true, 'standby'],
    [true, false, true, 'charging'],
    [false, true, true, 'done'],
    [true, true, true, 'fault'],
    [true, false, false, 'low-battery'],
    [false, true, false, 'invalid'],
    [true, true, false, 'invalid'],
  ];
  for (const [stat1, stat2, pg, state] of cases) assert.equal(decodeMcp73871({ stat1, stat2, pg }), state, `${+stat1}${+stat2}${+pg}`);
});

test('BQ24074 table: done is CHG released while PGOOD is asserted', () => {
  assert.equal(decodeBq24074({ pgood: true, chg: true }), 'charging');
  assert.equal(decodeBq24074({ pgood: true, chg: false }), 'done');
  assert.equal(decodeBq24074({ pgood: false, chg: false }), 'no-input');
  assert.equal(decodeBq24074({ pgood: false, chg: true }), 'invalid');
});

const MCP_PINS = { stat1: { bcm: 5, activeLow: true }, stat2: { bcm: 6, activeLow: true }, pg: { bcm: 13, activeLow: true } };

async function mcp(pins = MCP_PINS) {
  const clock = new VirtualClock(0);
  const gpio = new VirtualGpio();
  for (const p of Object.values(pins)) gpio.line(p.bcm, p.activeLow ? 1 : 0); // released
  const charger = await ChargerPins.open({ kind: 'mcp73871', pins, open: gpio.opener(), clock });
  const drive = (name: keyof typeof pins, asserted: boolean) => {
    const p = pins[name];
    gpio.line(p.bcm).drive(asserted === p.activeLow ? 0 : 1);
  };
  return { clock, gpio, charger, drive };
}

test('pins are read with their configured polarity and decoded', async () => {
  const { charger, drive } = await mcp();
  assert.equal((await charger.read()).state, 'no-input');
  drive('pg', true);
  drive('stat1', true);
  const r = await charger.read();
  assert.equal(r.state, 'charging');
  assert.equal(r.powerGood, true);
  const inverted = await mcp({ ...MCP_PINS, pg: { bcm: 13, activeLow: false } }); // e.g. through an inverting level shifter
  inverted.drive('pg', true);
  assert.equal((await inverted.charger.read()).powerGood, true);
  assert.equal(inverted.gpio.line(13).level(), 1);
  await assert.rejects(inverted.gpio.line(13).write(0), /EPERM/, 'an input line, as on the Pi');
});

test('a change of power-good arrives by interrupt, without a read', async () => {
  const { charger, drive, gpio } = await mcp();
  assert.equal(gpio.line(13).edge, 'both');
  const seen: boolean[] = [];
  charger.onPowerGoodChange((pg) => seen.push(pg));
  drive('pg', true);
  drive('stat1', true); // not power-good: no event
  drive('pg', false);
  await Promise.resolve();
  assert.deepEqual(seen, [true, false]);
});

test('a flapping power-good line is reported as such, not as a state', async () => {
  const { charger, gpio, clock } = await mcp();
  const seen: boolean[] = [];
  charger.onPowerGoodChange((pg) => seen.push(pg));
  gpio.line(13).flap(clock, 200);
  await clock.advance(2000); // 10 edges in 2 s
  const r = await charger.read();
  assert.equal(r.flapping, true);
  assert.equal(r.powerGood, null);
  assert.equal(r.state, 'unknown');
  assert.ok(seen.length < 10, 'events are suppressed once the line is known to flap');
  gpio.line(13).stopFlapping();
  await clock.advance(11_000);
  assert.equal((await charger.read()).flapping, false, 'recovers once the line is quiet for the window');
});

test('missing pins in the config are named', async () => {
  const gpio = new VirtualGpio();
  await assert.rejects(
    ChargerPins.open({ kind: 'bq24074', pins: { pgood: { bcm: 5, activeLow: true } }, open: gpio.opener(), clock: new VirtualClock(0) }),
    /needs pins pgood, chg; missing chg/,
  );
});

test('an error from an edge interrupt is reported with the next reading', async () => {
  const clock = new VirtualClock(0);
  let watcher: ((err: Error | null | undefined, v: 0 | 1) => void) | undefined;
  const line = { read: async () => 1 as const, watch: (cb: typeof watcher) => { watcher ??= cb; }, unwatch() {}, unexport() {} };
  const charger = await ChargerPins.open({
    kind: 'bq24074', pins: { pgood: { bcm: 5, activeLow: true }, chg: { bcm: 6, activeLow: true } }, open: async () => line, clock,
  });
  watcher!(new Error('epoll failed'), 0);
  assert.match((await charger.read()).interruptError ?? '', /pgood: epoll failed/);
  assert.equal((await charger.read()).interruptError, undefined);
});

function sysfs(chips: Array<{ name: string; base: number; ngpio: number; label: string }>) {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-gpio-'));
  for (const c of chips) {
    mkdirSync(join(root, c.name));
    writeFileSync(join(root, c.name, 'base'), `${c.base}\n`);
    writeFileSync(join(root, c.name, 'ngpio'), `${c.ngpio}\n`);
    writeFileSync(join(root, c.name, 'label'), `${c.label}\n`);
  }
  writeFileSync(join(root, 'export'), '');
  return root;
}

test('BCM numbers are translated with the header chip base: Pi 4 on kernel 6.6 (base 512)', async () => {
  const root = sysfs([{ name: 'gpiochip512', base: 512, ngpio: 58, label: 'pinctrl-bcm2711' }, { name: 'gpiochip570', base: 570, ngpio: 8, label: 'raspberrypi-exp-gpio' }]);
  try {
    const chip = await findHeaderChip(root);
    assert.equal(bcmToSysfs(17, chip), 529);
    assert.throws(() => bcmToSysfs(58, chip), /does not exist/);
    assert.equal((await listGpioChips(root)).length, 2);
  } finally {
    rmSync(root, { recursive: true });
  }
});

test('Pi 5: the header is on RP1, not on the SoC chips; old kernels keep base 0', async () => {
  const pi5 = sysfs([
    { name: 'gpiochip512', base: 512, ngpio: 32, label: 'gpio-brcmstb@107d508500' },
    { name: 'gpiochip571', base: 571, ngpio: 54, label: 'pinctrl-rp1' },
  ]);
  const old = sysfs([{ name: 'gpiochip0', base: 0, ngpio: 54, label: 'pinctrl-bcm2835' }]);
  try {
    assert.equal(bcmToSysfs(17, await findHeaderChip(pi5)), 588);
    assert.equal(bcmToSysfs(17, await findHeaderChip(old)), 17);
    assert.equal(bcmToSysfs(4, await findHeaderChip(pi5, 'gpio-brcmstb@107d508500')), 516, 'an explicit label wins');
    await assert.rejects(findHeaderChip(pi5, 'nope'), /no gpiochip labelled "nope".*gpiochip571 "pinctrl-rp1" base 571/);
  } finally {
    rmSync(pi5, { recursive: true });
    rmSync(old, { recursive: true });
  }
});
