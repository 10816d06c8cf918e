// A folder laid out like /sys/devices/system/cpu, for the CpuFreq driver to write power
// modes into and the plant to read the resulting compute power from.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface VirtualCpuSpec {
  cores: number;
  minFreqKhz: number;
  maxFreqKhz: number;
  governors: readonly string[];
  governor: string;
}

/** A Raspberry Pi 4 (BCM2711, 4 × Cortex-A72, 600 MHz–1.5 GHz) with Raspberry Pi OS's governors. */
export const PI4_CPU: VirtualCpuSpec = {
  cores: 4,
  minFreqKhz: 600_000,
  maxFreqKhz: 1_500_000,
  governors: ['conservative', 'ondemand', 'userspace', 'powersave', 'performance', 'schedutil'],
  governor: 'ondemand',
};

export function createCpufreqTree(root: string, spec: VirtualCpuSpec = PI4_CPU): void {
  for (let cpu = 0; cpu < spec.cores; cpu++) {
    const dir = join(root, `cpu${cpu}`);
    const policy = join(dir, 'cpufreq');
    mkdirSync(policy, { recursive: true });
    // cpu0 cannot be unplugged on a Pi, so like the real tree it has no `online` file.
    if (cpu > 0) writeFileSync(join(dir, 'online'), '1\n');
    const files: Record<string, string> = {
      scaling_governor: spec.governor,
      scaling_available_governors: spec.governors.join(' '),
      scaling_min_freq: String(spec.minFreqKhz),
      scaling_max_freq: String(spec.maxFreqKhz),
      cpuinfo_min_freq: String(spec.minFreqKhz),
      cpuinfo_max_freq: String(spec.maxFreqKhz),
    };
    for (const [name, value] of Object.entries(files)) writeFileSync(join(policy, name), `${value}\n`);
  }
}

export interface CpuLoadState {
  governor: string;
  /** Frequency the cores run at under load, kHz. */
  busyFreqKhz: number;
  cpuinfoMaxKhz: number;
  onlineCores: number;
  totalCores: number;
}

/** What the tree says about how fast and how wide a job would run now. */
export function readCpuLoadState(root: string, totalCores: number): CpuLoadState {
  const read = (path: string) => readFileSync(join(root, path), 'utf8').trim();
  let onlineCores = 1;
  for (let cpu = 1; cpu < totalCores; cpu++) if (read(`cpu${cpu}/online`) === '1') onlineCores++;
  const governor = read('cpu0/cpufreq/scaling_governor');
  // powersave pins the minimum; the others reach scaling_max_freq when the CPU is busy.
  const busyFreqKhz = Number(read(governor === 'powersave' ? 'cpu0/cpufreq/scaling_min_freq' : 'cpu0/cpufreq/scaling_max_freq'));
  return { governor, busyFreqKhz, cpuinfoMaxKhz: Number(read('cpu0/cpufreq/cpuinfo_max_freq')), onlineCores, totalCores };
}
