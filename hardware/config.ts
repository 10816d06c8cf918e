// The hardware description of one node, validated at the edge. The agent's config embeds
// `hardwareConfigSchema`; `heliomesh hw` reads it from a file. Units are in the names.
// Every object is strict: a misspelled key is refused by name, not left at its default.
import { z } from 'zod';
import { parseConfig } from '../config-errors.js';
import { validateOcvCurve } from './battery.js';
import { MAX17048_ADDRESS } from './max17048.js';

const fraction = z.number().gt(0).max(1);
const i2cAddress = z.number().int().min(0x03).max(0x77);

export const sensorSchema = z.strictObject({
  /** Free text for messages and displays; defaults to the role. */
  name: z.string().min(1).optional(),
  /** solar: panel → charger input (harvest); battery: charger ↔ battery; load: charger system output → Pi. */
  role: z.enum(['solar', 'battery', 'load']),
  /** INA219 addresses are set by A0/A1 to 0x40–0x4F (SBOS448 §8.5.5.1, Table 1). */
  address: z.number().int().min(0x40).max(0x4f),
  shuntOhms: z.number().positive(),
  maxCurrentA: z.number().positive(),
  busRangeV: z.union([z.literal(16), z.literal(32)]).default(16),
  /** Conversions averaged per reading (12-bit ADC). */
  adcSamples: z.number().int().refine((n) => [1, 2, 4, 8, 16, 32, 64, 128].includes(n), 'adcSamples must be 1, 2, 4, …, 128').default(32),
});

const pinSchema = z.strictObject({
  /** BCM GPIO number (not the header pin, not the sysfs number). */
  bcm: z.number().int().min(0).max(53),
  activeLow: z.boolean().default(true),
});

export const chargerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('bq25895'),
    address: i2cAddress.default(0x6a),
    /** REG00 IINLIM, 0.1–3.25 A. */
    inputCurrentLimitA: z.number().min(0.1).max(3.25),
    /** REG0D absolute VINDPM, 3.9–15.3 V: set it at (or just above) the panel's Vmp. */
    inputVoltageLimitV: z.number().min(3.9).max(15.3),
  }),
  z.strictObject({ kind: z.literal('mcp73871'), pins: z.strictObject({ stat1: pinSchema, stat2: pinSchema, pg: pinSchema }) }),
  z.strictObject({ kind: z.literal('bq24074'), pins: z.strictObject({ pgood: pinSchema, chg: pinSchema }) }),
  z.strictObject({ kind: z.literal('none') }),
]);

export const powerModeSchema = z.strictObject({
  governor: z.string().min(1),
  maxFreqKhz: z.number().int().positive(),
  onlineCores: z.number().int().min(1),
});

/** A Pi 4's three operating points, standing in for the paper's 15/30/60 W Jetson modes. */
export const PI4_POWER_MODES = {
  low: { governor: 'powersave', maxFreqKhz: 600_000, onlineCores: 1 },
  medium: { governor: 'ondemand', maxFreqKhz: 1_000_000, onlineCores: 2 },
  high: { governor: 'performance', maxFreqKhz: 1_500_000, onlineCores: 4 },
} as const;

const cpuSchema = z.strictObject({
  sysfsRoot: z.string().default('/sys/devices/system/cpu'),
  modes: z.record(z.string(), powerModeSchema).default(PI4_POWER_MODES),
});

const gpioSchema = z.strictObject({
  sysfsRoot: z.string().default('/sys/class/gpio'),
  /** Label of the header's gpiochip when it is not one of the known Pi labels. */
  chipLabel: z.string().optional(),
});

/** The MAX17048 fuel gauge of a UPS HAT, when it is the battery source (docs/hardware.md "Fuel gauge"). */
export const gaugeSchema = z.strictObject({
  /** /dev/i2c-N the gauge answers on; default: the node's i2cBus. */
  i2cBus: z.number().int().min(0).optional(),
  /** Fixed at 0x36 by the part (19-6171, "Slave Address"); another only behind an address translator. */
  address: i2cAddress.default(MAX17048_ADDRESS),
  /** CONFIG.ATHD (19-6171): SOC below which the gauge raises ALRT, a whole 1–32 %; its power-on value is 4 %. */
  alertThresholdPct: z.number().int().min(1).max(32).default(4),
});

export const batterySchema = z.strictObject({
  /**
   * What the battery level E comes from: ina219, energy counted through the battery-side
   * INA219 (hardware/battery.ts); max17048, a fuel gauge's state of charge × capacity.
   */
  source: z.enum(['ina219', 'max17048']).default('ina219'),
  gauge: gaugeSchema.optional(),
  chemistry: z.enum(['li-ion', 'lifepo4']),
  capacityWh: z.number().positive(),
  chargeEfficiency: fraction.default(0.95),
  dischargeEfficiency: fraction.default(0.95),
  /** Pack series resistance, Ω (virtual node only). */
  internalOhms: z.number().positive().default(0.05),
  /** Start value of the estimate; without it the first voltage is read as the OCV. */
  initialSocPct: z.number().min(0).max(100).optional(),
  /** Measured rest curve, [SoC %, V] pairs from 0 % to 100 %; defaults to the chemistry's typical curve. */
  ocvCurve: z.array(z.tuple([z.number(), z.number()])).optional()
    .superRefine((curve, ctx) => {
      if (!curve) return;
      try {
        validateOcvCurve(curve);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
}).superRefine((b, ctx) => {
  if (b.source === 'max17048' && b.initialSocPct !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['initialSocPct'], message: 'starts the INA219 estimate; with source max17048 the gauge reports the state of charge itself: remove it' });
  }
  if (b.source !== 'max17048' && b.gauge) {
    ctx.addIssue({ code: 'custom', path: ['gauge'], message: `describes a MAX17048 the node does not use: set source: max17048 to take the battery level from it, or remove gauge (source is ${b.source})` });
  }
}).transform((b) => ({ ...b, gauge: b.source === 'max17048' ? gaugeSchema.parse(b.gauge ?? {}) : undefined }));

export const virtualSchema = z.strictObject({
  /** ISO time the simulation starts at; default: now. */
  startTime: z.iso.datetime({ offset: true }).optional(),
  latitudeDeg: z.number().min(-90).max(90).default(40.4),
  longitudeDeg: z.number().min(-180).max(180).default(-3.7),
  initialSocPct: z.number().min(0).max(100).default(60),
  /** Charger efficiency, input to system/battery. */
  chargerEfficiency: fraction.default(0.9),
  panel: z.strictObject({
    peakW: z.number().positive().default(15),
    vocV: z.number().positive().default(7.2),
    vmpV: z.number().positive().default(6.0),
    derate: fraction.default(0.8),
  }).prefault({}),
  clouds: z.strictObject({
    seed: z.number().int().default(1),
    meanCover: z.number().min(0).max(1).default(0.35),
    sdCover: z.number().min(0).max(1).default(0.3),
    correlationMinutes: z.number().positive().default(90),
  }).prefault({}),
  load: z.strictObject({
    idleW: z.number().nonnegative().default(2.7),
    computeW: z.number().nonnegative().default(3.6),
    freqExponent: z.number().min(1).max(3).default(2),
    /**
     * Draw of the halted node, W: an assumption, not a measurement. A halted Pi and its
     * power board's RTC draw a few mA from the 5 V rail, about 0.05 W.
     */
    sleepW: z.number().nonnegative().default(0.05),
  }).prefault({}),
  /** Longest interval the plant holds one operating point. */
  stepMs: z.number().int().positive().default(10_000),
  /** Fixed limits of a charger without registers (mcp73871, bq24074, none). */
  pinCharger: z.strictObject({
    inputCurrentLimitA: z.number().positive().default(1.5),
    inputVoltageLimitV: z.number().positive().default(4.5),
    chargeCurrentLimitA: z.number().positive().default(1.0),
    chargeVoltageV: z.number().positive().default(4.2),
  }).prefault({}),
});

export const hardwareConfigSchema = z.strictObject({
  /** real: the Pi's buses; virtual: the simulated node behind the same drivers. */
  kind: z.enum(['real', 'virtual']).default('real'),
  /** /dev/i2c-N; 1 is the header's SDA1/SCL1 (GPIO2/GPIO3). */
  i2cBus: z.number().int().min(0).default(1),
  sensors: z.array(sensorSchema).min(1),
  charger: chargerSchema,
  cpu: cpuSchema.prefault({}),
  gpio: gpioSchema.prefault({}),
  battery: batterySchema,
  virtual: virtualSchema.prefault({}),
}).superRefine((c, ctx) => {
  const seen = new Map<number, string>();
  for (const [i, s] of c.sensors.entries()) {
    const clash = seen.get(s.address);
    if (clash) ctx.addIssue({ code: 'custom', path: ['sensors', i, 'address'], message: `address 0x${s.address.toString(16)} is already used by ${clash}` });
    seen.set(s.address, s.name ?? s.role);
    if (c.charger.kind === 'bq25895' && s.address === c.charger.address) {
      ctx.addIssue({ code: 'custom', path: ['sensors', i, 'address'], message: 'address clashes with the charger' });
    }
  }
  if (!c.sensors.some((s) => s.role === 'solar')) ctx.addIssue({ code: 'custom', path: ['sensors'], message: 'a node needs an INA219 with role "solar" to measure harvest' });
  const has = (role: SensorConfig['role']) => c.sensors.some((s) => s.role === role);
  const gauge = c.battery.gauge;
  if (!gauge && !has('battery')) ctx.addIssue({ code: 'custom', path: ['sensors'], message: 'a node needs an INA219 with role "battery" for the battery estimate (or battery.source max17048)' });
  // The gauge gives the level, not the flow: the consumption is the load INA219, or harvest − battery power.
  if (gauge && !has('battery') && !has('load')) ctx.addIssue({ code: 'custom', path: ['sensors'], message: 'the node\'s consumption needs an INA219 with role "load" (or "battery"): the gauge reports the level, not the power drawn' });
  // The virtual node carries every device on its one bus.
  if (gauge && ((gauge.i2cBus ?? c.i2cBus) === c.i2cBus || c.kind === 'virtual')) {
    const clash = c.sensors.find((s) => s.address === gauge.address)?.role ?? (c.charger.kind === 'bq25895' && c.charger.address === gauge.address ? 'the charger' : undefined);
    if (clash) ctx.addIssue({ code: 'custom', path: ['battery', 'gauge', 'address'], message: `address 0x${gauge.address.toString(16)} is already used by ${clash}` });
  }
  // All three chargers terminate at 4.1 V or more; a LiFePO4 cell must stop at about 3.6 V.
  if (c.battery.chemistry === 'lifepo4' && c.charger.kind !== 'none') {
    ctx.addIssue({ code: 'custom', path: ['battery', 'chemistry'], message: `a ${c.charger.kind} charges Li-ion cells (≥ 4.1 V) and would overcharge LiFePO4; use a LiFePO4 charger and charger.kind "none"` });
  }
  if (c.virtual.panel.vmpV >= c.virtual.panel.vocV) ctx.addIssue({ code: 'custom', path: ['virtual', 'panel'], message: 'vmpV must be below vocV' });
});

export type HardwareConfig = z.output<typeof hardwareConfigSchema>;
export type HardwareConfigInput = z.input<typeof hardwareConfigSchema>;
export type SensorConfig = z.output<typeof sensorSchema>;
export type GaugeConfig = z.output<typeof gaugeSchema>;

/**
 * Parses and validates; the error lists every problem with its path (after `at`, where the
 * section sits in its file, e.g. ['hardware'] in a node's config).
 */
export function parseHardwareConfig(input: unknown, source = 'hardware config', at: readonly PropertyKey[] = []): HardwareConfig {
  return parseConfig(hardwareConfigSchema, input, source, { at, seeAlso: 'see docs/hardware.md for every setting' });
}

/**
 * The reference build (docs/hardware.md): Pi 4, 15 W 6 V panel, BQ25895, INA219s on the
 * panel (0x40), the battery (0x41) and the Pi's supply (0x44), a 1S Li-ion pack of 20 Ah.
 */
export function referenceHardwareConfig(kind: 'real' | 'virtual'): HardwareConfig {
  return parseHardwareConfig({
    kind,
    sensors: [
      // 0.1 Ω (the breakout boards' R100): 3 A is 300 mV, inside the /8 gain's ±320 mV.
      { role: 'solar', address: 0x40, shuntOhms: 0.1, maxCurrentA: 3.0 },
      { role: 'battery', address: 0x41, shuntOhms: 0.1, maxCurrentA: 3.0 },
      { role: 'load', address: 0x44, shuntOhms: 0.1, maxCurrentA: 3.0 },
    ],
    // A 6 V panel has Vmp ≈ 6.0 V; IINLIM above its ≈ 2.5 A short-circuit current.
    charger: { kind: 'bq25895', inputCurrentLimitA: 3.0, inputVoltageLimitV: 6.0 },
    battery: { chemistry: 'li-ion', capacityWh: 74 },
  });
}
