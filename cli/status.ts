// `heliomesh status [--gateway URL] [--json] [--api-key K]`: the fleet's nodes as a running
// gateway sees them, from its GET /api/nodes. The table is a few padded columns; a table
// library would add a dependency for what padEnd does. The answer's schema (zod) is in
// cli/status-fetch.ts, imported when the command runs.
import { Command } from 'commander';
import type { StatusNode } from './status-fetch.js';

export type { StatusNode } from './status-fetch.js';

export const DEFAULT_GATEWAY = 'http://127.0.0.1:8080';

export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 2 * 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

export function nodesTable(nodes: StatusNode[], nowMs: number): string {
  if (nodes.length === 0) return 'no nodes yet: none has sent its birth to this gateway';
  const header = ['node', 'group', 'online', 'battery', 'mode', 'γ', 'queue', 'q_lim', 'weight', 'last seen'];
  const rows = nodes.map((n) => [
    n.node,
    n.group,
    n.online ? 'yes' : 'no',
    `${n.batteryPct.toFixed(1)} %`,
    n.gamma === 0 ? 'saving' : n.mode ? `${n.mode} (PM ${n.powerMode})` : `PM ${n.powerMode}`,
    String(n.gamma),
    `${n.queue}/${n.queueCapacity}`,
    n.qLim === null ? '-' : n.qLim.toFixed(3),
    n.weight.toFixed(3),
    ago(nowMs - n.lastSeenMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('print the fleet\'s nodes as a running gateway sees them (battery, mode, γ, queue, q_lim, weight, last seen)')
    .option('--gateway <url>', 'the gateway\'s HTTP API', DEFAULT_GATEWAY)
    .option('--json', 'print the gateway\'s /api/nodes answer as JSON')
    .option('--api-key <key>', 'bearer key when the gateway sets http.apiKey (default: $HELIOMESH_API_KEY)')
    .action(async (opts: { gateway: string; json?: boolean; apiKey?: string }) => {
      const { fetchNodes } = await import('./status-fetch.js');
      const { raw, nodes, nowMs } = await fetchNodes(opts.gateway, opts.apiKey ?? process.env.HELIOMESH_API_KEY);
      console.log(opts.json ? JSON.stringify(raw, null, 2) : nodesTable(nodes, nowMs));
    });
}
