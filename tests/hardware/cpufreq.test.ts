// CPU power modes written to a cpufreq tree in a temporary folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PI4_POWER_MODES } from '../../hardware/config.js';
import { CpuFreq, type PowerMode } from '../../hardware/cpufreq.js';
import { createCpufreqTree, PI4_CPU, readCpuLoadState } from '../../hardware/virtual/cpufreq.js';

function tree() {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-cpufreq-'));
  createCpufreqTree(root, PI4_CPU);
  const read = (p: string) => readFileSync(join(root, p), 'utf8').trim();
  return { root, read, cpu: new CpuFreq(root), done: () => rmSync(root, { recursive: true }) };
}

const modes: PowerMode[] = Object.entries(PI4_POWER_MODES).map(([name, m]) => ({ name, ...m }));

test('reads the state the way the kernel lays it out', async () => {
  const t = tree();
  try {
    const s = await t.cpu.readState();
    assert.deepEqual(
      { governor: s.governor, maxFreqKhz: s.maxFreqKhz, onlineCores: s.onlineCores, totalCores: s.totalCores, cpuinfoMaxKhz: s.cpuinfoMaxKhz },
      { governor: 'ondemand', maxFreqKhz: 1_500_000, onlineCores: 4, totalCores: 4, cpuinfoMaxKhz: 1_500_000 },
    );
    assert.ok(s.availableGovernors.includes('powersave'));
    assert.equal(existsSync(join(t.root, 'cpu0', 'online')), false, 'cpu0 is not hot-pluggable');
  } finally {
    t.done();
  }
});

test('a power mode writes online, scaling_governor and scaling_max_freq', async () => {
  const t = tree();
  try {
    await t.cpu.applyMode(modes.find((m) => m.name === 'medium')!);
    assert.deepEqual([1, 2, 3].map((c) => t.read(`cpu${c}/online`)), ['1', '0', '0']);
    assert.equal(t.read('cpu0/cpufreq/scaling_governor'), 'ondemand');
    assert.equal(t.read('cpu1/cpufreq/scaling_max_freq'), '1000000');
    assert.equal(await t.cpu.currentMode(modes), 'medium');
    assert.deepEqual(readCpuLoadState(t.root, 4), { governor: 'ondemand', busyFreqKhz: 1_000_000, cpuinfoMaxKhz: 1_500_000, onlineCores: 2, totalCores: 4 });
    await t.cpu.applyMode(modes.find((m) => m.name === 'low')!);
    assert.equal(await t.cpu.currentMode(modes), 'low');
    assert.equal(readCpuLoadState(t.root, 4).busyFreqKhz, 600_000, 'powersave runs at scaling_min_freq');
    await t.cpu.applyMode(modes.find((m) => m.name === 'high')!);
    assert.deepEqual([1, 2, 3].map((c) => t.read(`cpu${c}/online`)), ['1', '1', '1']);
    assert.equal(t.read('cpu3/cpufreq/scaling_governor'), 'performance');
  } finally {
    t.done();
  }
});

test('invalid modes are refused before anything is written', async () => {
  const t = tree();
  try {
    const base = { name: 'bad', governor: 'ondemand', maxFreqKhz: 1_000_000, onlineCores: 2 };
    await assert.rejects(t.cpu.applyMode({ ...base, governor: 'turbo' }), /governor "turbo" is not available/);
    await assert.rejects(t.cpu.applyMode({ ...base, maxFreqKhz: 2_000_000 }), /outside the CPU's 600000–1500000 kHz/);
    await assert.rejects(t.cpu.applyMode({ ...base, onlineCores: 0 }), /onlineCores must be 1\.\.4/);
    await assert.rejects(t.cpu.applyMode({ ...base, onlineCores: 5 }), /onlineCores must be 1\.\.4/);
    assert.equal(t.read('cpu0/cpufreq/scaling_governor'), 'ondemand');
    assert.equal(t.read('cpu3/online'), '1');
    assert.equal(await t.cpu.currentMode(modes), null);
  } finally {
    t.done();
  }
});

test('a missing tree is an error that names the path', async () => {
  await assert.rejects(new CpuFreq('/nonexistent/cpu').readState(), /cannot list \/nonexistent\/cpu/);
});
