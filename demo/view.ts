// The live terminal view: a snapshot rendered as plain lines with ANSI colour, redrawn
// in place about once a second on the terminal's alternate screen. A handful of fixed
// tables does not need a TUI library; escape codes keep it dependency-free on a Pi.
import type { JobSummary } from '../gateway/jobs.js';
import type { NodeRow, Snapshot } from './snapshot.js';

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

const code = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
export const ANSI: Style = { bold: code(1, 22), dim: code(2, 22), red: code(31, 39), green: code(32, 39), yellow: code(33, 39), cyan: code(36, 39) };
const same = (s: string) => s;
export const PLAIN: Style = { bold: same, dim: same, red: same, green: same, yellow: same, cyan: same };

function pad(s: string, n: number): string {
  return s.length >= n ? s.slice(0, n) : s + ' '.repeat(n - s.length);
}

function rpad(s: string, n: number): string {
  return s.length >= n ? s.slice(0, n) : ' '.repeat(n - s.length) + s;
}

function num(x: number | null, digits: number): string {
  return x === null || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

function clock(hours: number): string {
  const h = Math.floor(hours);
  const m = Math.floor((hours - h) * 60);
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}

/** A ten-cell bar; colour by the paper's thresholds region (E_th 10 %, table steps 40/60 %). */
function batteryBar(pct: number | null, st: Style): string {
  if (pct === null) return pad('', 10) + '     ';
  const cells = Math.max(0, Math.min(10, Math.round(pct / 10)));
  const bar = '█'.repeat(cells) + '░'.repeat(10 - cells);
  const colour = pct < 10 ? st.red : pct < 40 ? st.yellow : st.green;
  return `${colour(bar)} ${rpad(pct.toFixed(0), 3)}%`;
}

/** The wake time as the field's UTC clock shows it, hh:mm. */
function clockTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

function state(n: NodeRow, st: Style): string {
  if (n.power === 'off' && n.wakeAtMs !== undefined) return st.cyan(pad('asleep', 8));
  if (n.power === 'off') return st.red(pad('off', 8));
  if (n.online === null) return st.dim(pad('joining', 8));
  if (!n.online) return st.red(pad('offline', 8));
  if (n.gamma === 0) return st.yellow(pad('saving', 8));
  return st.green(pad('active', 8));
}

/** The node's q_lim was solved with no harvest at all: the gateway's prior, or a re-solve with its own estimate not in yet. */
function onPrior(n: NodeRow): boolean {
  return n.noHarvest === true;
}

function nodeLine(n: NodeRow, st: Style): string {
  const mode = n.powerMode === null ? '-' : n.powerMode === 0 ? 'PM0' : `PM${n.powerMode}`;
  return [
    pad(n.nodeId, 7), state(n, st), batteryBar(n.batteryPct, st), rpad(mode, 4), rpad(n.gamma === null ? '-' : String(n.gamma), 2),
    rpad(n.queue === null ? '-' : String(n.queue), 3), rpad(num(n.qLim, 3), 6) + (onPrior(n) ? '*' : ' '), rpad(num(n.weight, 2), 5),
    rpad(n.harvestW === null ? '-' : `${n.harvestW.toFixed(1)}W`, 6), n.restarts ? st.dim(` ↻${n.restarts}`) : '',
    n.wakeAtMs !== undefined ? st.cyan(`wakes ${clockTime(n.wakeAtMs)} UTC`) : '',
  ].join(' ');
}

function served(j: JobSummary): string {
  return j.served.map((s) => s.nodes.join('→')).join(' | ');
}

/**
 * Latency in simulated seconds, the clock the API's latency_ms and every timestamp of the
 * field run on (the header says so); the energy with its uncertainty (docs/agent.md).
 */
function jobLine(j: JobSummary, st: Style): string {
  const status = j.status === 'done' ? st.green('ok  ') : j.status === 'failed' ? st.red('fail') : st.yellow(j.status === 'running' ? 'run ' : pad(j.status, 4));
  const latency = j.latencyMs === undefined ? '-' : `${(j.latencyMs / 1000).toFixed(1)}s`;
  const failovers = j.failovers ? st.yellow(` failovers ${j.failovers}`) : '';
  const text = JSON.stringify(j.text.length > 28 ? j.text.slice(0, 27) + '…' : j.text);
  const energy = `${j.energyJ.toFixed(0)}${j.energyUncertaintyJ === undefined ? '' : ` ± ${j.energyUncertaintyJ.toFixed(0)}`} J`;
  return `${pad(j.id, 9)} ${status} ${rpad(latency, 8)} ${rpad(String(j.completionTokens), 4)} tok ${rpad(energy, 13)}  ${pad(served(j), 26)}${failovers} ${st.dim(text)}`;
}

export function renderView(s: Snapshot, st: Style): string[] {
  const lines: string[] = [];
  const sun = s.sunElevationDeg > 0 ? st.yellow(`sun ${s.sunElevationDeg.toFixed(0)}° up, clear sky ${s.clearSkyWm2.toFixed(0)} W/m²`) : st.dim(`night (sun ${s.sunElevationDeg.toFixed(0)}°)`);
  lines.push(`${st.bold('Heliomesh virtual solar field')}   day ${s.day}  ${st.bold(clock(s.solarHour))} solar time   ${sun}   ×${s.speed.toFixed(0)}   policy ${st.cyan(s.policy)}`);
  lines.push('');
  lines.push(st.dim(`${pad('node', 7)} ${pad('state', 8)} ${pad('battery', 15)} ${rpad('mode', 4)} ${rpad('γ', 2)} ${rpad('q', 3)} ${rpad('q_lim', 6)}  ${rpad('wgt', 5)} ${rpad('panel', 6)}`));
  let group = '';
  for (const n of s.nodes) {
    if (n.group !== group && group !== '') lines.push('');
    group = n.group;
    lines.push(nodeLine(n, st));
  }
  const learning = s.nodes.filter(onPrior);
  if (learning.length) {
    // The gateway trusts a node's own harvest only after minSlots slot records; before, it
    // solves the chain with the prior of no harvest, under which any job rate drains the
    // battery. After, the re-solve with the node's estimate takes a while to land.
    const need = learning.find((n) => n.harvestMinSlots !== null)?.harvestMinSlots ?? null;
    const counts = [...new Set(learning.map((n) => n.harvestSlots).filter((c): c is number => c !== null))].sort((a, b) => a - b);
    const solving = need !== null && learning.some((n) => n.harvestSlots !== null && n.harvestSlots >= need);
    lines.push(st.dim(`* q_lim solved with no harvest at all (so 0, whatever the battery): the gateway's cautious prior until a node has ${need ?? '?'} slot records of its own (now ${counts.join(', ')}/${need ?? '?'}; a slot is ${(s.slotMs / 1000).toFixed(0)} s of simulated time)${solving ? ', then until the re-solve with its own estimate lands' : ''}; meanwhile the group's nodes are weighted evenly`));
  }
  lines.push('');
  const c = s.counters;
  const rate = s.tokensPerS === null ? '-' : s.tokensPerS.toFixed(1);
  lines.push(`${st.bold('jobs')} ${c.completed} done, ${c.failed} failed, ${c.active} running   ${c.completionTokens} tokens (${rate} tok/s)   ${(c.energyJ / 1000).toFixed(1)} kJ   failovers ${c.failovers}`);
  if (s.load) {
    const refused = Object.entries(s.load.byKind).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(st.dim(`load: ${s.load.sent} sent, ${s.load.ok} ok, ${s.load.failed} failed${refused ? ` (${refused})` : ''}`));
  }
  if (s.jobs.length) lines.push(st.dim(`${pad('job', 9)} ${pad('', 4)} ${rpad('latency', 8)} ${rpad('', 8)} ${rpad('energy', 13)}  (latency in simulated time, as the API's latency_ms; ×${s.speed.toFixed(0)} the wall clock)`));
  for (const j of s.jobs) lines.push(jobLine(j, st));
  lines.push('');
  for (const note of s.notes) lines.push(st.dim(note));
  if (s.curl) {
    lines.push(`${st.bold('Send your own prompt:')}`);
    lines.push(st.cyan(s.curl));
  }
  return lines;
}

/** Escape sequences for a full-screen redraw. */
export const SCREEN = {
  enter: '\x1b[?1049h\x1b[?25l',
  leave: '\x1b[?25h\x1b[?1049l',
  home: '\x1b[H',
  clearLine: '\x1b[K',
  clearBelow: '\x1b[J',
};

/** One frame: home, each line cleared to its end, and the rest of the screen cleared. */
export function frame(lines: string[]): string {
  return SCREEN.home + lines.map((l) => l + SCREEN.clearLine).join('\n') + '\n' + SCREEN.clearBelow;
}
