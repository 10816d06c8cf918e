// `heliomesh hw read|watch`: one reading, or a live table, of every power sensor, the
// charger and the battery estimate — on the Pi's hardware or on the virtual node.
// The drivers, the config schema and the YAML parser are imported when a reading is taken,
// so that the CLI's help loads none of them.
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { type Clock, RealClock } from '../ground/clock.js';
import { ScaledClock, VirtualClock } from '../hardware/clock.js';
import type { HardwareConfig } from '../hardware/config.js';
import type { NodeReading } from '../hardware/node.js';

export interface HwOptions {
  virtual?: boolean;
  config?: string;
  json?: boolean;
  at?: string;
}

export async function loadHardwareConfig(opts: HwOptions): Promise<HardwareConfig> {
  const { parseHardwareConfig, referenceHardwareConfig } = await import('../hardware/config.js');
  if (!opts.config) {
    if (opts.virtual) return referenceHardwareConfig('virtual');
    throw new Error('no hardware config: pass --config FILE (see docs/hardware.md), or --virtual for the simulated reference node');
  }
  let text: string;
  try {
    text = await readFile(opts.config, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config ${opts.config}: ${(err as Error).message}`);
  }
  let raw: unknown;
  const { parse: parseYaml } = await import('yaml');
  try {
    raw = parseYaml(text); // YAML is a superset of JSON, so .json files parse too
  } catch (err) {
    throw new Error(`${opts.config} is neither valid YAML nor JSON: ${(err as Error).message}`);
  }
  // A node's config file may embed the hardware section under `hardware`.
  const embedded = raw !== null && typeof raw === 'object' && 'hardware' in raw;
  const config = embedded ? parseHardwareConfig((raw as { hardware: unknown }).hardware, opts.config, ['hardware']) : parseHardwareConfig(raw, opts.config);
  return opts.virtual ? { ...config, kind: 'virtual' } : config;
}

function startMs(opts: HwOptions, config: HardwareConfig): number {
  const at = opts.at ?? config.virtual.startTime;
  if (at === undefined) return Date.now();
  const ms = Date.parse(at);
  if (Number.isNaN(ms)) throw new Error(`--at "${at}" is not a date/time (use ISO 8601, e.g. 2024-06-21T12:00:00Z)`);
  return ms;
}

/** One reading of the node `opts` describes. */
export async function readOnce(opts: HwOptions): Promise<NodeReading> {
  const config = await loadHardwareConfig(opts);
  const clock: Clock = config.kind === 'virtual' ? new VirtualClock(startMs(opts, config)) : new RealClock();
  const { buildNode } = await import('../hardware/node.js');
  const node = await buildNode(config, { clock });
  try {
    return await node.read();
  } finally {
    await node.close();
  }
}

const fmt = (x: number | undefined, digits: number, width: number) => (x === undefined ? '—' : x.toFixed(digits)).padStart(width);

export function formatReading(r: NodeReading, title: string): string {
  const lines = [`${title} — ${new Date(r.timeMs).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}`];
  lines.push(`${'INA219'.padEnd(10)} ${'addr'.padEnd(5)} ${'bus V'.padStart(7)} ${'shunt mV'.padStart(9)} ${'mA'.padStart(8)} ${'mW'.padStart(9)}`);
  for (const s of r.sensors) {
    const head = `${s.name.padEnd(10)} 0x${s.address.toString(16).padEnd(3)}`;
    lines.push(s.ok
      ? `${head} ${fmt(s.busVoltageV, 3, 7)} ${fmt(s.shuntVoltageMv, 2, 9)} ${fmt(s.currentMa, 1, 8)} ${fmt(s.powerMw, 1, 9)}`
      : `${head} error: ${s.error}`);
  }
  const c = r.charger;
  if (!c.ok) lines.push(`charger ${c.kind}: error: ${c.error}`);
  else if (c.status) {
    const a = c.adc!;
    lines.push(`charger ${c.kind}: ${c.status.chrgStat}, ${c.status.powerGood ? 'power good' : 'no power good'}, input ${c.status.vbusStat}${c.settingsReapplied ? ' (input limits re-applied)' : ''}`);
    lines.push(`  ADC: VBAT ${a.batteryVoltageV.toFixed(2)} V  VSYS ${a.systemVoltageV.toFixed(2)} V  VBUS ${a.busAttached ? `${a.busVoltageV.toFixed(1)} V` : 'none'}  ICHG ${a.chargeCurrentA.toFixed(2)} A`);
  } else if (c.pins) {
    lines.push(`charger ${c.kind}: ${c.pins.state}, power good ${c.powerGood === null ? 'unknown (line flapping)' : c.powerGood ? 'yes' : 'no'}`);
  } else lines.push(`charger: ${c.kind}`);
  const b = r.battery;
  const g = r.gauge;
  lines.push(b
    ? `battery: ${b.socPct.toFixed(1)} % (${(b.energyJ / 1000).toFixed(1)} of ${(b.capacityJ / 1000).toFixed(1)} kJ)${b.resting ? ', resting' : ''}${b.source === 'max17048' ? ', from the MAX17048' : ''}`
    : `battery: no estimate (${g ? 'fuel gauge' : 'battery sensor'} unavailable)`);
  if (g?.ok) {
    lines.push(`  gauge 0x${g.address.toString(16)}: VCELL ${g.cellVoltageV!.toFixed(3)} V  CRATE ${g.chargeRatePctPerHour!.toFixed(1)} %/h  alert below ${g.alertThresholdPct} %${g.socLowAlert ? '  SOC LOW ALERT' : ''}`);
  } else if (g) lines.push(`  gauge 0x${g.address.toString(16)}: error: ${g.error}`);
  lines.push(`harvest: ${r.harvest.totalJ.toFixed(1)} J since start${r.harvest.unmeasuredMs ? ` (${(r.harvest.unmeasuredMs / 1000).toFixed(0)} s unmeasured)` : ''}`);
  const cpu = r.cpu ? ` (${r.cpu.governor}, ${r.cpu.maxFreqKhz / 1000} MHz max, ${r.cpu.onlineCores}/${r.cpu.totalCores} cores)` : '';
  lines.push(`power mode: ${r.powerMode ?? 'none of the configured modes'}${cpu}`);
  lines.push(`health: ${r.health.length ? r.health.join(', ') : 'ok'}`);
  return lines.join('\n');
}

function positive(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!(n > 0)) throw new InvalidArgumentError(`${name} must be a number > 0`);
    return n;
  };
}

async function watch(opts: HwOptions & { periodMs: number; speed: number }): Promise<void> {
  const config = await loadHardwareConfig(opts);
  const virtual = config.kind === 'virtual';
  const clock: Clock = virtual ? new ScaledClock(opts.speed, startMs(opts, config)) : new RealClock();
  const { buildNode } = await import('../hardware/node.js');
  const node = await buildNode(config, { clock });
  node.virtual?.start();
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => { stop = resolve; });
  const onSigint = () => stop();
  process.once('SIGINT', onSigint);
  const title = `heliomesh hw watch (${virtual ? `virtual node ×${opts.speed}` : 'hardware'}, Ctrl-C to stop)`;
  try {
    for (;;) {
      const r = await node.read();
      if (opts.json) console.log(JSON.stringify(r));
      else process.stdout.write(`${process.stdout.isTTY ? '\x1b[H\x1b[2J' : '\n'}${formatReading(r, title)}\n`);
      let timer: NodeJS.Timeout | undefined;
      const ticked = new Promise<'tick'>((resolve) => { timer = setTimeout(() => resolve('tick'), opts.periodMs); });
      const why = await Promise.race([ticked, stopped.then(() => 'stop' as const)]);
      clearTimeout(timer);
      if (why === 'stop') break;
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    await node.close();
  }
}

export function registerHw(program: Command): void {
  const hw = program.command('hw').description('read the node\'s power hardware: INA219 sensors, charger, battery estimate');
  const common = (c: Command) => c
    .option('--virtual', 'use the simulated node (the reference build unless --config is given)')
    .option('--config <file>', 'hardware config, YAML or JSON (see docs/hardware.md)')
    .option('--json', 'print JSON instead of a table')
    .option('--at <iso-time>', 'virtual node: start time of the simulation (default: now)');
  common(hw.command('read').description('read every sensor once; exits with 1 if a sensor or the charger could not be read'))
    .action(async (opts: HwOptions) => {
      const reading = await readOnce(opts);
      console.log(opts.json ? JSON.stringify(reading, null, 2) : formatReading(reading, `heliomesh hw read (${opts.virtual ? 'virtual node' : 'hardware'})`));
      if (!reading.charger.ok || reading.sensors.some((s) => !s.ok)) process.exitCode = 1;
    });
  common(hw.command('watch').description('read continuously and show a live table (Ctrl-C exits)'))
    .option('--period-ms <ms>', 'time between readings, real milliseconds', positive('--period-ms'), 1000)
    .option('--speed <factor>', 'virtual node: how much faster than real time the simulation runs', positive('--speed'), 1)
    .action((opts: HwOptions & { periodMs: number; speed: number }) => watch(opts));
}
