// `heliomesh sim FIGURE`: the paper's figures from the network simulator. The simulator,
// the plotting (vega, resvg) and the paper's data are imported when the command runs.
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { POLICIES } from '../gateway/scheduler/index.js';
import { CALIBRATION } from '../sim/calibration.js';
import type { Deviation } from '../sim/compare.js';
import { FIGURES, type FigureName } from '../sim/figures.js';
import type { PaperData } from '../sim/paper-data.js';

const PAPER_POLICIES = ['uniform', 'long-term', 'adaptive'];
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const positiveInt = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer`);
  return n;
};

const probability = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('--arrival must be a probability in [0, 1]');
  return n;
};

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description("reproduce the paper's figures with the network simulator and the semi-Markov model")
    .argument('<figure>', `one of ${FIGURES.join(', ')}, or all; or solar-day (30 real days of harvest against a Pi's idle draw); or solar-fleet (every policy over those days, with Pi loads); or solar-sleep (that fleet with and without coordinated sleep); or sensitivity (each open reading of the paper, one at a time, then the best combined)`)
    .option('--iterations <n>', 'runs per point and policy (default: 1000; 200 for sensitivity)', positiveInt('--iterations'))
    .option('--policies <list>', `extra policies besides the paper's three (${Object.keys(POLICIES).join(', ')})`, 'foresight')
    .option('--out <dir>', 'folder for CSV, SVG and PNG files', 'results')
    .option('--seed <n>', 'base seed; the same seed gives the same numbers', positiveInt('--seed'), 1)
    .option('--threads <n>', 'worker threads (default: one per core)', positiveInt('--threads'))
    .option('--arrival <p>', 'solar-fleet: job arrival probability per slot of 100 s', probability, 0.3)
    .option('--check-in <minutes>', 'solar-sleep: nodes not halted before running flat nap at most this long, then boot and are planned again, as the gateway does', positiveInt('--check-in'))
    .option('--paper <file>', "the paper's digitized results", join(repoRoot, '..', 'shared', 'paper', 'figures.json'))
    .action(async (figure: string, opts: { iterations?: number; policies: string; out: string; seed: number; threads?: number; paper: string; arrival: number; checkIn?: number }) => {
      if (figure === 'solar-day') return solarDay(opts.seed);
      if (figure === 'solar-fleet') return solarFleet({ ...opts, arrival: opts.arrival });
      if (figure === 'solar-sleep') return solarSleep(opts);
      if (figure === 'sensitivity') return sensitivity({ ...opts, iterations: opts.iterations ?? 200 });
      const iterations = opts.iterations ?? 1000;
      const figures: FigureName[] = figure === 'all' ? FIGURES : FIGURES.includes(figure as FigureName) ? [figure as FigureName] : [];
      if (figures.length === 0) throw new Error(`unknown figure '${figure}'; choose one of ${FIGURES.join(', ')}, or all`);
      const extra = opts.policies.split(',').map((p) => p.trim()).filter(Boolean);
      for (const p of extra) if (!POLICIES[p]) throw new Error(`unknown policy '${p}'; choose from ${Object.keys(POLICIES).join(', ')}`);
      const policies = [...new Set([...PAPER_POLICIES, ...extra])];
      const [{ default: cliProgress }, { deviations }, { parsePaper }, { renderPng, renderSvg, toCsv }, { runFigures }] = await Promise.all([
        import('cli-progress'), import('../sim/compare.js'), import('../sim/paper-data.js'), import('../sim/plot.js'), import('../sim/run.js'),
      ]);

      let paper: PaperData | undefined;
      if (existsSync(opts.paper)) paper = parsePaper(JSON.parse(readFileSync(opts.paper, 'utf8')));
      else console.error(`note: ${opts.paper} not found; plots will show our curves only and no deviations are computed`);

      const started = performance.now();
      const bar = new cliProgress.SingleBar({ format: 'sim [{bar}] {percentage}% | {value}/{total} cells | {duration_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic);
      const results = await runFigures({
        figures,
        policies,
        iterations,
        seed: opts.seed,
        calibration: CALIBRATION,
        threads: opts.threads,
        onProgress: (done, total) => (done === 0 ? bar.start(total, 0) : bar.update(done)),
      });
      bar.stop();
      const seconds = (performance.now() - started) / 1000;

      mkdirSync(opts.out, { recursive: true });
      const allDeviations: Deviation[] = [];
      let pngSkipped = false;
      for (const result of results) {
        writeFileSync(join(opts.out, `${result.figure}.csv`), toCsv(result));
        const svg = await renderSvg(result, paper);
        writeFileSync(join(opts.out, `${result.figure}.svg`), svg);
        const png = await renderPng(svg);
        if (png) writeFileSync(join(opts.out, `${result.figure}.png`), png);
        else pngSkipped = true;
        if (paper) allDeviations.push(...deviations(result, paper));
      }
      if (pngSkipped) console.error('note: no PNG written: @resvg/resvg-js does not load on this platform (SVG files are complete)');
      writeFileSync(
        join(opts.out, 'summary.json'),
        JSON.stringify({ figures, policies, iterations, seed: opts.seed, seconds, calibration: CALIBRATION, deviations: allDeviations, also: results.flatMap((r) => (r.also ?? []).map((row) => ({ figure: r.figure, ...row }))) }, null, 2) + '\n',
      );
      for (const d of allDeviations) {
        console.log(`${d.figure.padEnd(6)} ${d.curve.padEnd(14)} ${d.metric.padEnd(16)} deviation ${d.mad.toPrecision(3)} over ${d.points} point(s)`);
      }
      console.log(`wrote ${results.length} figure(s) to ${opts.out} in ${seconds.toFixed(1)} s`);
    });
}

/** `sim solar-day`: the harvest of real days (sim/solar-eval.ts), 5 seeds from `--seed`. */
async function solarDay(seed: number): Promise<void> {
  const { evaluateSolarDay, solarDayCases, PI_IDLE_W } = await import('../sim/solar-eval.js');
  const seeds = [0, 1, 2, 3, 4].map((i) => seed + i);
  console.log(`30 days, ${seeds.length} seeds; downtime of a node drawing ${PI_IDLE_W} W whenever it is up (a floor for every policy)`);
  console.log('| case | harvest Wh/day (± sd) | downtime (± sd) |');
  console.log('|---|---|---|');
  for (const c of solarDayCases()) {
    const r = evaluateSolarDay(c, seeds);
    console.log(`| ${r.label} | ${r.harvestWh.mean.toFixed(1)} ± ${r.harvestWh.sd.toFixed(1)} | ${(100 * r.downtime.mean).toFixed(1)} % ± ${(100 * r.downtime.sd).toFixed(1)} |`);
  }
}

/**
 * `sim solar-fleet`: every policy over 30 real days (sim/solar-fleet.ts), 5 seeds from
 * `--seed`, with the virtual Pi 4's idle draw and the κ and C_E its load model gives each
 * power mode (demo/plan.ts, as `agent profile` measures them on the virtual node).
 */
async function solarFleet(opts: { seed: number; out: string; arrival: number; policies: string }): Promise<void> {
  const [{ default: cliProgress }, fleet, load] = await Promise.all([import('cli-progress'), import('../sim/solar-fleet.js'), pi4Load()]);
  const seeds = [0, 1, 2, 3, 4].map((i) => opts.seed + i);
  const policies = Object.keys(POLICIES);
  const cases = fleet.solarFleetCases();
  const started = performance.now();
  const bar = new cliProgress.SingleBar({ format: 'solar-fleet [{bar}] {value}/{total} fleet-months | {duration_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic);
  bar.start(cases.length * seeds.length, 0);
  const results = cases.map((c, i) => fleet.evaluateSolarFleet(c, i, { load, p: opts.arrival, seeds, days: 30, policies, onProgress: () => bar.increment() }));
  bar.stop();
  const seconds = (performance.now() - started) / 1000;
  const modes = load.modes.map((m) => `${m.name} κ ${m.kappa}, C_E ${m.costJ} J`).join('; ');
  const table = `30 days per case, seeds ${seeds.join(', ')}, p = ${opts.arrival} per slot of 100 s; 3 groups × 3 Pi 4 nodes, idle ${load.idleW} W; ${modes}\n\n` + fleet.formatFleetTables(results);
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(join(opts.out, 'solar-fleet.md'), table);
  writeFileSync(join(opts.out, 'solar-fleet.json'), JSON.stringify({ p: opts.arrival, seeds, load, seconds, results }, null, 2) + '\n');
  console.log(table);
  console.log(`${cases.length} cases × ${seeds.length} seeds in ${seconds.toFixed(1)} s; wrote solar-fleet.md and .json to ${opts.out}`);
}

/** The virtual Pi 4's idle draw and its per-mode κ and C_E (demo/plan.ts), as `agent profile` measures them on the virtual node. */
async function pi4Load() {
  const [fleet, plan, hw] = await Promise.all([import('../sim/solar-fleet.js'), import('../demo/plan.js'), import('../hardware/config.js')]);
  const base = hw.referenceHardwareConfig('virtual');
  const pi4 = hw.parseHardwareConfig({ ...base, cpu: { ...base.cpu, modes: hw.PI4_POWER_MODES } });
  return { idleW: pi4.virtual.load.idleW, modes: plan.powerModesFor(pi4, fleet.FLEET_SLOT_MS), modeTable: plan.MODE_TABLE };
}

/** `sim solar-sleep`: sim/solar-sleep.ts, the solar-fleet cases with foresight, with and without coordinated sleep, 5 seeds from `--seed`. */
async function solarSleep(opts: { seed: number; out: string; arrival: number; checkIn?: number }): Promise<void> {
  const [{ default: cliProgress }, fleet, sleep, load] = await Promise.all([import('cli-progress'), import('../sim/solar-fleet.js'), import('../sim/solar-sleep.js'), pi4Load()]);
  const seeds = [0, 1, 2, 3, 4].map((i) => opts.seed + i);
  const cases = fleet.solarFleetCases();
  const started = performance.now();
  const bar = new cliProgress.SingleBar({ format: 'solar-sleep [{bar}] {value}/{total} fleet-months | {duration_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic);
  bar.start(cases.length * seeds.length, 0);
  const sleepW = 0.05;
  const checkInMs = opts.checkIn === undefined ? undefined : opts.checkIn * 60_000;
  const results = cases.map((c, i) => sleep.evaluateSolarSleep(c, i, { load, p: opts.arrival, seeds, days: 30, policy: 'foresight', sleepW, checkInMs, onProgress: () => bar.increment() }));
  bar.stop();
  const seconds = (performance.now() - started) / 1000;
  const naps = opts.checkIn === undefined ? '' : `, naps of at most ${opts.checkIn} min`;
  const table = `30 days per case, seeds ${seeds.join(', ')}, p = ${opts.arrival} per slot of 100 s, foresight; 3 groups × 3 Pi 4 nodes, idle ${load.idleW} W, asleep ${sleepW} W${naps}\n\n` + sleep.formatSleepTables(results);
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(join(opts.out, 'solar-sleep.md'), table);
  writeFileSync(join(opts.out, 'solar-sleep.json'), JSON.stringify({ p: opts.arrival, seeds, load, sleepW, checkInMs, seconds, results }, null, 2) + '\n');
  console.log(table);
  console.log(`${cases.length} cases × ${seeds.length} seeds in ${seconds.toFixed(1)} s; wrote solar-sleep.md and .json to ${opts.out}`);
}

/** `sim sensitivity`: sim/sensitivity.ts over the paper's three policies; a table on stdout, JSON and CSV under --out. */
async function sensitivity(opts: { iterations: number; out: string; seed: number; threads?: number; paper: string }): Promise<void> {
  const [{ parsePaper }, { formatTable, runSensitivity, toCsv }] = await Promise.all([import('../sim/paper-data.js'), import('../sim/sensitivity.js')]);
  if (!existsSync(opts.paper)) throw new Error(`${opts.paper} not found: the study measures every variant against the paper's curves; pass --paper <figures.json>`);
  const paper = parsePaper(JSON.parse(readFileSync(opts.paper, 'utf8')));
  const started = performance.now();
  const report = await runSensitivity({
    iterations: opts.iterations, seed: opts.seed, threads: opts.threads, paper,
    onVariant: (i, label) => console.error(`sensitivity: variant ${i + 1}: ${label} (${((performance.now() - started) / 1000).toFixed(0)} s)`),
  });
  const seconds = (performance.now() - started) / 1000;
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(join(opts.out, 'sensitivity.json'), JSON.stringify({ ...report, seconds, calibration: CALIBRATION }, null, 2) + '\n');
  writeFileSync(join(opts.out, 'sensitivity.csv'), toCsv(report));
  const table = formatTable(report);
  writeFileSync(join(opts.out, 'sensitivity.md'), table);
  console.log(table);
  console.log(`${report.variants.length} variants at ${opts.iterations} iterations in ${seconds.toFixed(1)} s; wrote sensitivity.json, .csv and .md to ${opts.out}`);
}
