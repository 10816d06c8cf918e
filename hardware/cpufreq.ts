// CPU power modes through the kernel's cpufreq and CPU-hotplug sysfs files
// (Documentation/admin-guide/pm/cpufreq.rst, Documentation/core-api/cpu_hotplug.rst):
//   cpuN/cpufreq/scaling_governor, scaling_max_freq, scaling_available_governors,
//   cpuinfo_min_freq, cpuinfo_max_freq (kHz), and cpuN/online (cpu0 usually has none).
// On a Pi, a named power mode plays the role of the paper's Jetson 15/30/60 W modes.
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorText } from './i2c.js';

export interface PowerMode {
  name: string;
  governor: string;
  maxFreqKhz: number;
  onlineCores: number;
}

export interface CpuState {
  governor: string;
  maxFreqKhz: number;
  minFreqKhz: number;
  cpuinfoMinKhz: number;
  cpuinfoMaxKhz: number;
  availableGovernors: string[];
  onlineCores: number;
  totalCores: number;
}

export class CpuFreq {
  constructor(readonly sysfsRoot = '/sys/devices/system/cpu') {}

  async cpuIds(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.sysfsRoot);
    } catch (err) {
      throw new Error(`cannot list ${this.sysfsRoot}: ${errorText(err)}`);
    }
    return names.filter((n) => /^cpu\d+$/.test(n)).map((n) => Number(n.slice(3))).sort((a, b) => a - b);
  }

  async isOnline(cpu: number): Promise<boolean> {
    const file = join(this.sysfsRoot, `cpu${cpu}`, 'online');
    if (!(await exists(file))) return true; // not hot-pluggable: always online
    return (await this.read(file)) === '1';
  }

  async readState(): Promise<CpuState> {
    const ids = await this.cpuIds();
    if (!ids.length) throw new Error(`no cpuN folders under ${this.sysfsRoot}`);
    let onlineCores = 0;
    for (const id of ids) if (await this.isOnline(id)) onlineCores++;
    const policy = join(this.sysfsRoot, `cpu${ids[0]}`, 'cpufreq');
    const num = async (f: string) => Number(await this.read(join(policy, f)));
    return {
      governor: await this.read(join(policy, 'scaling_governor')),
      maxFreqKhz: await num('scaling_max_freq'),
      minFreqKhz: await num('scaling_min_freq'),
      cpuinfoMinKhz: await num('cpuinfo_min_freq'),
      cpuinfoMaxKhz: await num('cpuinfo_max_freq'),
      availableGovernors: (await this.read(join(policy, 'scaling_available_governors'))).split(/\s+/).filter(Boolean),
      onlineCores,
      totalCores: ids.length,
    };
  }

  /** Brings cores on/offline, then sets governor and frequency ceiling on every online core. */
  async applyMode(mode: PowerMode): Promise<void> {
    const ids = await this.cpuIds();
    const state = await this.readState();
    if (!Number.isInteger(mode.onlineCores) || mode.onlineCores < 1 || mode.onlineCores > ids.length) {
      throw new Error(`power mode "${mode.name}": onlineCores must be 1..${ids.length}, got ${mode.onlineCores}`);
    }
    if (!state.availableGovernors.includes(mode.governor)) {
      throw new Error(`power mode "${mode.name}": governor "${mode.governor}" is not available (scaling_available_governors: ${state.availableGovernors.join(' ')})`);
    }
    if (mode.maxFreqKhz < state.cpuinfoMinKhz || mode.maxFreqKhz > state.cpuinfoMaxKhz) {
      throw new Error(`power mode "${mode.name}": maxFreqKhz ${mode.maxFreqKhz} is outside the CPU's ${state.cpuinfoMinKhz}–${state.cpuinfoMaxKhz} kHz`);
    }
    for (const [i, id] of ids.entries()) {
      const file = join(this.sysfsRoot, `cpu${id}`, 'online');
      if (!(await exists(file))) {
        if (i >= mode.onlineCores) throw new Error(`power mode "${mode.name}": cpu${id} cannot be taken offline (no ${file})`);
        continue;
      }
      await this.write(file, i < mode.onlineCores ? '1' : '0');
    }
    for (const id of ids.slice(0, mode.onlineCores)) {
      const policy = join(this.sysfsRoot, `cpu${id}`, 'cpufreq');
      if (!(await exists(policy))) continue;
      await this.write(join(policy, 'scaling_governor'), mode.governor);
      await this.write(join(policy, 'scaling_max_freq'), String(mode.maxFreqKhz));
    }
  }

  /** The name of the mode the CPU is in now, or null if none matches. */
  async currentMode(modes: readonly PowerMode[]): Promise<string | null> {
    const s = await this.readState();
    const match = modes.find((m) => m.governor === s.governor && m.maxFreqKhz === s.maxFreqKhz && m.onlineCores === s.onlineCores);
    return match?.name ?? null;
  }

  private async read(file: string): Promise<string> {
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new Error(`cannot read ${file}: ${errorText(err)}`);
    }
  }

  private async write(file: string, value: string): Promise<void> {
    try {
      await writeFile(file, value);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EACCES' || code === 'EPERM') {
        throw new Error(`no permission to write ${file}: cpufreq and CPU hotplug files are root-only; run as root or install the tmpfiles.d rule from docs/hardware.md`);
      }
      throw new Error(`cannot write "${value}" to ${file}: ${errorText(err)}`);
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return false;
    throw new Error(`cannot access ${path}: ${errorText(err)}`);
  }
}
