// What `heliomesh demo` runs (cli/demo.ts registers the command and loads this file only
// when the demo starts, so the CLI's help does not load TF.js and the whole field).
import { rmSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { startField, POLICIES, speedFor, type Field } from '../demo/field.js';
import { DemoInfluxd, findInfluxd } from '../demo/influxd.js';
import { LoadGenerator } from '../demo/load.js';
import { defaultStartMs, slotMsFor, summerSite } from '../demo/plan.js';
import { MAX_SLOT_MS } from '../protocol/index.js';
import { canListen, freePort } from '../demo/ports.js';
import { RateMeter, curlLine, takeSnapshot } from '../demo/snapshot.js';
import { RunRecorder, describeSummary } from '../demo/summary.js';
import { ANSI, PLAIN, SCREEN, frame, renderView } from '../demo/view.js';

const port = z.coerce.number().int().min(0).max(65535);
const optionsSchema = z.object({
  policy: z.enum(POLICIES),
  // A faster day needs longer slots (slotMsFor), and a birth with δ over MAX_SLOT_MS is refused.
  dayMinutes: z.coerce.number().positive().max(24 * 60)
    .refine((m) => slotMsFor(speedFor(m)) <= MAX_SLOT_MS, `is too short: a simulated day of under about 15 s of wall time would need slots longer than ${MAX_SLOT_MS / 3_600_000} h, which the gateway refuses`),
  load: z.coerce.number().min(0).max(600),
  nodes: z.string().regex(/^\d+x\d+$/, 'must look like GxN, e.g. 3x3').transform((s) => {
    const [g, n] = s.split('x').map(Number) as [number, number];
    return { groups: g, perGroup: n };
  }).refine((v) => v.groups >= 1 && v.perGroup >= 1 && v.groups * v.perGroup <= 64, 'needs at least 1×1 and at most 64 nodes'),
  ui: z.boolean(),
  duration: z.coerce.number().positive().optional(),
  httpPort: port,
  mqttPort: port,
  // false: --no-influx.
  influx: z.union([z.string().url(), z.literal(false)]).optional(),
  seed: z.coerce.number().int(),
  maxTokens: z.coerce.number().int().min(1).max(256),
  model: z.string().min(1).optional(),
  sleep: z.boolean(),
  batteryWh: z.coerce.number().positive().max(1000).optional(),
  start: z.string().refine((t) => Number.isFinite(Date.parse(t)), 'must be a time such as 2026-12-02T07:45:00Z').transform((t) => Date.parse(t)).optional(),
  hours: z.coerce.number().positive().optional(),
  summary: z.string().min(1).optional(),
  measureFromHours: z.coerce.number().min(0).optional(),
}).refine((o) => o.measureFromHours === undefined || o.summary !== undefined, { message: '--measure-from-hours goes with --summary FILE', path: ['measureFromHours'] });
type DemoOptions = z.infer<typeof optionsSchema>;

/** Keeps the last log lines for the view, where a log on stdout would tear the screen. */
class LogTail extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      try {
        const o = JSON.parse(line) as { msg?: string; node?: string; err?: string };
        this.lines.push(`${o.node ? `${o.node}: ` : ''}${o.msg ?? ''}${o.err ? ` (${o.err})` : ''}`);
        if (this.lines.length > 3) this.lines.shift();
      } catch {
        // a non-JSON line cannot come from pino; nothing to show
      }
    }
    done();
  }
}

async function chooseHttpPort(wanted: number, say: (msg: string) => void): Promise<number> {
  if (wanted === 0) return freePort();
  if (await canListen(wanted)) return wanted;
  const other = await freePort();
  say(`port ${wanted} is taken, so the HTTP API listens on ${other} instead (choose one with --http-port N)`);
  return other;
}

async function run(o: DemoOptions): Promise<void> {
  const tail = new LogTail();
  const log: Logger = o.ui ? pino({ level: 'warn' }, tail) : pino({ level: 'info' });
  const notes: string[] = [];
  // Said once: in plain mode as a log line, in the view as a note under the jobs.
  const say = (msg: string) => {
    notes.push(msg);
    if (o.ui) console.error(msg);
    else log.warn(msg);
  };
  let influxd: DemoInfluxd | undefined;
  let field: Field | undefined;
  // If the process ends any other way than through stop() below (an uncaught error, a
  // forced second Ctrl-C), no influxd may outlive it and no temporary folder stay behind.
  process.once('exit', () => {
    influxd?.killNow();
    if (field) rmSync(field.dir, { recursive: true, force: true });
  });
  // A Ctrl-C while the field is still starting is kept and acted on as soon as it is up
  // (the default action would kill the process and leave influxd and the folders behind).
  let early: string | undefined;
  const startingSignal = (signal: string) => {
    if (early) process.exit(130);
    early = signal;
    console.error(`heliomesh demo: ${signal} received; stopping as soon as the field is up (again to force)`);
  };
  process.on('SIGINT', startingSignal);
  process.on('SIGTERM', startingSignal);
  const httpPort = await chooseHttpPort(o.httpPort, say);
  let influxUrl = o.influx || undefined;
  if (o.influx === undefined) {
    const binary = findInfluxd();
    if (binary) {
      influxd = await DemoInfluxd.start(binary);
      influxUrl = influxd.url;
      notes.push(`logging to a private InfluxDB at ${influxUrl} (removed on exit; pass --influx URL to keep the data)`);
      log.info({ url: influxUrl, pid: influxd.pid }, 'private influxd started');
    } else {
      say('no influxd on this machine: running without InfluxDB (install influxdb, or pass --influx http://HOST:PORT/DB)');
    }
  }
  const now = Date.now();
  const site = summerSite(o.start ?? now);
  try {
    field = await startField({
      groups: o.nodes.groups, nodesPerGroup: o.nodes.perGroup, seed: o.seed, dayMinutes: o.dayMinutes, policy: o.policy, model: o.model,
      mqttPort: o.mqttPort, httpPort, influxUrl, startMs: o.start ?? defaultStartMs(now, site.longitudeDeg), ...site, log,
      coordinatedSleep: o.sleep, batteryWh: o.batteryWh,
    });
  } catch (err) {
    await influxd?.stop();
    throw err;
  }
  // Counted from here, with the field up: what its components did, not what its plan says.
  const recorder = o.summary ? new RunRecorder(field) : undefined;
  const atSimulatedHour = (h: number, fn: () => void) => field!.clock.setTimeout(fn, field!.options.startMs + h * 3_600_000 - field!.clock.now());
  if (recorder && o.measureFromHours !== undefined) atSimulatedHour(o.measureFromHours, () => recorder.mark());
  const load = new LoadGenerator({ jobs: field.jobs, perMinute: o.load, seed: o.seed, maxTokens: o.maxTokens, log: log.child({ part: 'load' }) });
  load.start();
  log.info({
    mqtt: field.ports.mqtt, http: field.ports.http, nodes: field.nodes.length, speed: speedFor(o.dayMinutes), load: o.load,
    // The same line the live view ends with, so plain logs say how to send a prompt too.
    ...(field.ports.http !== undefined ? { try: curlLine(field.ports.http, field.jobs.model.id) } : {}),
  }, 'demo running');

  const rate = new RateMeter();
  const style = process.env.NO_COLOR ? PLAIN : ANSI;
  let timer: NodeJS.Timeout | undefined;
  if (o.ui) {
    process.stdout.write(SCREEN.enter);
    const draw = () => {
      const s = takeSnapshot(field, { load: load.counters, rate, notes: [...notes, ...tail.lines.map((l) => `log: ${l}`)] });
      process.stdout.write(frame(renderView(s, style)));
    };
    draw();
    timer = setInterval(draw, 1000);
  } else {
    // Plain mode: one structured line with the fleet's state every 10 s of wall time.
    timer = setInterval(() => {
      const s = takeSnapshot(field, { load: load.counters, rate });
      log.info({
        solarHour: Number(s.solarHour.toFixed(2)), sunElevationDeg: Number(s.sunElevationDeg.toFixed(1)),
        nodes: Object.fromEntries(s.nodes.map((n) => [n.nodeId, { power: n.power, online: n.online, batteryPct: n.batteryPct === null ? null : Number(n.batteryPct.toFixed(1)), gamma: n.gamma, pm: n.powerMode, queue: n.queue, qLim: n.qLim, weight: n.weight }])),
        jobs: s.counters ?? null, tokensPerS: s.tokensPerS,
      }, 'field');
    }, 10_000);
  }

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) {
        // The second Ctrl-C: give up on a clean stop.
        if (o.ui) process.stdout.write(SCREEN.leave);
        console.error('heliomesh demo: forced exit');
        process.exit(130);
      }
      stopping = true;
      clearInterval(timer);
      if (o.ui) process.stdout.write(SCREEN.leave);
      console.error(`heliomesh demo: stopping (${why}); press Ctrl-C again to force`);
      log.info({ why }, 'demo stopping');
      // The figures end where the run does, before the stop's own seconds of simulated time.
      if (recorder && o.summary) {
        try {
          writeSummary(recorder, o.summary, o, why);
        } catch (err) {
          console.error(`heliomesh demo: could not write the summary to ${o.summary}: ${(err as Error).message}`);
        }
      }
      void (async () => {
        const t0 = Date.now();
        // Let the load's jobs in flight finish (a second or two) before their nodes go, so
        // a stop does not read as a burst of failovers; then agents, gateway, influxd.
        await Promise.race([load.stop(), new Promise((r) => setTimeout(r, 5000))]);
        await field.stop();
        await influxd?.stop();
        log.info({ stopMs: Date.now() - t0, jobs: field.jobs.counters(), load: load.counters }, 'demo stopped');
        resolve();
      })();
    };
    process.off('SIGINT', startingSignal);
    process.off('SIGTERM', startingSignal);
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    if (early) stop(early);
    else {
      if (o.duration) setTimeout(() => stop(`--duration ${o.duration}`), o.duration * 1000).unref();
      if (o.hours) atSimulatedHour(o.hours, () => stop(`--hours ${o.hours}`));
    }
  });
}

function writeSummary(recorder: RunRecorder, file: string, o: DemoOptions, why: string): void {
  const { ui: _ui, httpPort: _h, mqttPort: _m, ...run } = o;
  const summary = recorder.finish({
    ...run, nodes: `${o.nodes.groups}x${o.nodes.perGroup}`, start: o.start !== undefined ? new Date(o.start).toISOString() : null, stoppedBy: why,
    measureFromHours: o.measureFromHours ?? null,
  });
  if (o.measureFromHours !== undefined && !summary.window) console.error(`heliomesh demo: the run ended before hour ${o.measureFromHours}, so the summary has no measured window`);
  writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(`${describeSummary(summary)}\nsummary written to ${file}`);
}

/** The command's action: validates the options commander collected and runs the field. */
export async function demoCommand(raw: Record<string, unknown>): Promise<void> {
  const parsed = optionsSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`invalid demo options:\n${z.prettifyError(parsed.error)}\n(run heliomesh demo --help)`);
  await run({ ...parsed.data, ui: parsed.data.ui && process.stdout.isTTY === true });
  // Everything has been closed above; exit explicitly so a stray handle in a library
  // (a TF.js backend, a socket in TIME_WAIT) cannot keep a finished demo alive.
  process.exit(0);
}
