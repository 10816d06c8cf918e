// GPIO input lines for charger status pins, and the BCM → sysfs number translation.
//
// Since Raspberry Pi OS moved to kernel 6.6, the sysfs GPIO numbers that `onoff` exports
// are no longer the BCM numbers: the header's gpiochip has a base (512 on a Pi 4, another
// on the Pi 5's RP1), and exporting a bare BCM number fails with EINVAL. The config takes
// BCM numbers; we add the base read from /sys/class/gpio/gpiochip*/{base,label,ngpio}.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorText } from './i2c.js';

export type Edge = 'none' | 'rising' | 'falling' | 'both';
export type BinaryValue = 0 | 1;
export type WatchCallback = (err: Error | null | undefined, value: BinaryValue) => void;

/** The part of onoff's Gpio the drivers use; hardware/virtual/gpio.ts implements it too. */
export interface GpioLine {
  read(): Promise<BinaryValue>;
  watch(callback: WatchCallback): void;
  unwatch(callback?: WatchCallback): void;
  unexport(): void;
}

/** Opens the input line with this BCM number. */
export type GpioOpener = (bcm: number, edge: Edge) => Promise<GpioLine>;

export interface GpioChip {
  name: string;
  base: number;
  ngpio: number;
  label: string;
}

/** Labels of the chip that drives the 40-pin header, most specific first. */
export const HEADER_CHIP_LABELS = ['pinctrl-rp1', 'pinctrl-bcm2711', 'pinctrl-bcm2835'] as const;

export async function listGpioChips(sysfsRoot: string): Promise<GpioChip[]> {
  let names: string[];
  try {
    names = (await readdir(sysfsRoot)).filter((n) => n.startsWith('gpiochip'));
  } catch (err) {
    throw new Error(`cannot list ${sysfsRoot}: ${errorText(err)} (is this a Raspberry Pi with the sysfs GPIO interface?)`);
  }
  const chips: GpioChip[] = [];
  for (const name of names) {
    const dir = join(sysfsRoot, name);
    const [base, ngpio, label] = await Promise.all(['base', 'ngpio', 'label'].map((f) => readFile(join(dir, f), 'utf8')));
    chips.push({ name, base: Number(base!.trim()), ngpio: Number(ngpio!.trim()), label: label!.trim() });
  }
  return chips;
}

/** The header's gpiochip: the one labelled `label` if given, else the first known Pi label. */
export async function findHeaderChip(sysfsRoot: string, label?: string): Promise<GpioChip> {
  const chips = await listGpioChips(sysfsRoot);
  const wanted = label ? [label] : HEADER_CHIP_LABELS;
  for (const l of wanted) {
    const chip = chips.find((c) => c.label === l);
    if (chip) return chip;
  }
  const seen = chips.map((c) => `${c.name} "${c.label}" base ${c.base}`).join(', ') || 'none';
  throw new Error(`no gpiochip labelled ${wanted.map((l) => `"${l}"`).join(' or ')} under ${sysfsRoot} (found: ${seen}); set gpio.chipLabel in the hardware config to the header's chip`);
}

/** sysfs number of BCM line `bcm` on `chip`. */
export function bcmToSysfs(bcm: number, chip: GpioChip): number {
  if (!Number.isInteger(bcm) || bcm < 0 || bcm >= chip.ngpio) {
    throw new Error(`BCM GPIO ${bcm} does not exist on ${chip.name} ("${chip.label}", ${chip.ngpio} lines)`);
  }
  return chip.base + bcm;
}

interface OnoffModule {
  Gpio: new (gpio: number, direction: 'in', edge?: Edge) => GpioLine;
}

/**
 * An opener over `onoff` (loaded on first use), translating BCM numbers with the
 * header chip's base found under `sysfsRoot`.
 */
export function onoffOpener(sysfsRoot = '/sys/class/gpio', chipLabel?: string): GpioOpener {
  let chip: Promise<GpioChip> | undefined;
  let mod: Promise<OnoffModule> | undefined;
  return async (bcm, edge) => {
    chip ??= findHeaderChip(sysfsRoot, chipLabel);
    mod ??= loadOnoff();
    const [c, { Gpio }] = await Promise.all([chip, mod]);
    const number = bcmToSysfs(bcm, c);
    try {
      return new Gpio(number, 'in', edge);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EINVAL') {
        throw new Error(`exporting GPIO ${number} (BCM ${bcm} + base ${c.base} of ${c.name}) failed with EINVAL: the line may be claimed by a kernel driver or overlay; check \`gpioinfo\``);
      }
      if (code === 'EACCES' || code === 'EPERM') {
        throw new Error(`no permission to export GPIO ${number}: add the service user to the gpio group (\`sudo usermod -aG gpio $USER\`)`);
      }
      throw new Error(`cannot open GPIO ${number} (BCM ${bcm}): ${errorText(err)}`);
    }
  };
}

async function loadOnoff(): Promise<OnoffModule> {
  const specifier = 'onoff';
  try {
    const loaded = (await import(specifier)) as Partial<OnoffModule> & { default?: OnoffModule };
    return loaded.Gpio ? (loaded as OnoffModule) : (loaded.default as OnoffModule);
  } catch (err) {
    throw new Error(`cannot load the onoff module (${errorText(err)}); on the Pi run \`npm install onoff\`, or use the virtual node (--virtual)`);
  }
}
