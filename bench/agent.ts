// `heliomesh bench agent`: what one agent costs its node. The agent runs as its own process
// (`heliomesh agent --config`, on the virtual node, in real time) against a local aedes,
// holding in turn no shard, the bundled model's largest block group and the largest group
// of a stories15M-shaped model split in 3. For each, after a settling pause, the agent's
// own `ping` reports its RSS and CPU time (process.memoryUsage, process.cpuUsage) at the
// start and the end of an idle window; the kernel's peak RSS (VmHWM) is read beside it.
// From the largest RSS it says whether a Pi Zero 2 W (512 MB) can serve a block.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { stringify } from 'yaml';
import { virtualAgentConfig } from '../agent/virtual.js';
import { until } from '../ground/until.js';
import { readManifest } from '../models/shards.js';
import { encodeJson, nodeTopics, parseCommandReply, parseState } from '../protocol/index.js';
import { prepareModel } from './pipeline/model.js';
import type { Bench } from './types.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'index.js');
/** Start-up transients (module loading, TF.js initialisation, the first GCs) settle first. */
const SETTLE_MS = 5_000;
const IDLE_MS = 30_000;
const MIB = 2 ** 20;
/**
 * A Pi Zero 2 W has 512 MB. Assumed, not measured here: 64 MB reserved for the GPU/CMA and
 * about 100 MB for Raspberry Pi OS Lite's own userland (systemd, journald, sshd, networking).
 */
const PI_ZERO_2W_MB = 512;
const PI_ZERO_2W_RESERVED_MB = 64 + 100;

interface Shard { label: string; shardDir?: string; firstBlock?: number; lastBlock?: number; bytes: number }

interface Measured {
  label: string;
  blocks: string | null;
  shardBytes: number;
  backend: string | null;
  rssMiB: number;
  peakRssMiB: number | null;
  idleCpuPct: number;
  idleWindowMs: number;
}

interface PingResult { process: { rssBytes: number; cpuUserUs: number; cpuSystemUs: number } }

/** The block group with the most bytes in a shard folder. */
function largestGroup(label: string, dir: string): Shard {
  const blocks = readManifest(dir).blocks;
  const b = blocks.reduce((a, x) => (x.bytes > a.bytes ? x : a));
  return { label: `${label}, blocks ${b.from}-${b.to - 1} of ${blocks.at(-1)!.to} (${b.dtype})`, shardDir: dir, firstBlock: b.from, lastBlock: b.to - 1, bytes: b.bytes };
}

async function startBroker(): Promise<{ port: number; close(): Promise<void> }> {
  const aedes = new Aedes();
  await aedes.listen();
  const server = createServer((socket) => aedes.handle(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => aedes.close(() => r()));
      await closed;
    },
  };
}

/** VmHWM of a Linux process, in MiB; null where /proc does not have it. */
function peakRssMiB(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

class AgentProcess {
  private backend: string | null = null;
  private stderr = '';
  private constructor(readonly child: ChildProcess) {
    let line = '';
    child.stdout!.on('data', (b: Buffer) => {
      line += b.toString();
      for (let i = line.indexOf('\n'); i >= 0; i = line.indexOf('\n')) {
        const rec = line.slice(0, i);
        line = line.slice(i + 1);
        if (rec.includes('TF.js backend selected')) this.backend = (JSON.parse(rec) as { backend?: string }).backend ?? null;
      }
    });
    child.stderr!.on('data', (b: Buffer) => { this.stderr = (this.stderr + b.toString()).slice(-2000); });
  }

  static spawn(configPath: string): AgentProcess {
    return new AgentProcess(spawn(process.execPath, [CLI, 'agent', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get selectedBackend(): string | null {
    return this.backend;
  }

  failure(): Error {
    return new Error(`the agent process exited with ${this.child.exitCode ?? this.child.signalCode}: ${this.stderr}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    await once(this.child, 'exit');
  }
}

/** `cond`, unless the agent has exited: then it never will hold, and the wait ends with the agent's output. */
function whileRunning(agent: AgentProcess, cond: () => boolean): () => boolean {
  return () => {
    if (agent.child.exitCode !== null) throw agent.failure();
    return cond();
  };
}

async function measure(shard: Shard, port: number, work: string, client: MqttClient): Promise<Measured> {
  const nodeId = `bench-${Math.random().toString(36).slice(2, 8)}`;
  const base = virtualAgentConfig({ gateway: `mqtt://127.0.0.1:${port}`, nodeId, spool: join(work, nodeId) }, {});
  const config = { ...base, logLevel: 'info', model: shard.shardDir ? { shardDir: shard.shardDir, firstBlock: shard.firstBlock, lastBlock: shard.lastBlock } : undefined };
  const path = join(work, `${nodeId}.yaml`);
  writeFileSync(path, stringify(config));
  const topics = nodeTopics(base.fleet, nodeId);
  let online = false;
  const replies = new Map<string, PingResult>();
  const onMessage = (topic: string, payload: Buffer): void => {
    if (topic === topics.state) {
      const s = parseState(payload);
      online ||= s.ok && s.value.status === 'online';
    } else if (topic === topics.cmdReply) {
      const r = parseCommandReply(payload);
      if (r.ok && r.value.ok && r.value.id) replies.set(r.value.id, r.value.result as unknown as PingResult);
    }
  };
  client.on('message', onMessage);
  await client.subscribeAsync([topics.state, topics.cmdReply], { qos: 1 });
  const agent = AgentProcess.spawn(path);
  try {
    await until('the agent\'s birth (shard loaded, connected)', whileRunning(agent, () => online), 120_000, 50);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const ping = async (id: string): Promise<{ at: number; r: PingResult }> => {
      await client.publishAsync(topics.cmd, encodeJson({ v: 1, id, op: 'ping' }), { qos: 1 });
      await until(`the reply to ${id}`, whileRunning(agent, () => replies.has(id)), 10_000, 50);
      return { at: performance.now(), r: replies.get(id)! };
    };
    const a = await ping('idle-start');
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const b = await ping('idle-end');
    const cpuUs = (b.r.process.cpuUserUs + b.r.process.cpuSystemUs) - (a.r.process.cpuUserUs + a.r.process.cpuSystemUs);
    const windowMs = b.at - a.at;
    return {
      label: shard.label,
      blocks: shard.shardDir ? `${shard.firstBlock}-${shard.lastBlock}` : null,
      shardBytes: shard.bytes,
      backend: agent.selectedBackend,
      rssMiB: Math.max(a.r.process.rssBytes, b.r.process.rssBytes) / MIB,
      peakRssMiB: peakRssMiB(agent.child.pid!),
      idleCpuPct: (100 * cpuUs) / 1000 / windowMs,
      idleWindowMs: windowMs,
    };
  } finally {
    client.off('message', onMessage);
    await agent.stop();
  }
}

export const agentBench: Bench = {
  description: 'one agent process on the virtual node: RSS with no shard, the bundled model\'s largest group and a stories15M-shaped group loaded, and its CPU % idle over 30 s; whether a Pi Zero 2 W can serve a block',
  async run() {
    const loadAtStart = loadavg()[0]!;
    const work = mkdtempSync(join(tmpdir(), 'heliomesh-bench-agent-'));
    const broker = await startBroker();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'bench-agent' });
    try {
      const stories = prepareModel('stories15M', work);
      const shards: Shard[] = [
        { label: 'no shard (ledger, policy, link only)', bytes: 0 },
        largestGroup('bundled model', prepareModel('bundled', work).dir),
        largestGroup(stories.description, stories.dir),
      ];
      const runs: Measured[] = [];
      for (const s of shards) runs.push(await measure(s, broker.port, work, client));
      const worst = runs.reduce((a, r) => Math.max(a, r.peakRssMiB ?? r.rssMiB), 0);
      const budgetMiB = ((PI_ZERO_2W_MB - PI_ZERO_2W_RESERVED_MB) * 1e6) / MIB;
      const fits = worst <= budgetMiB;
      const f = (x: number, d = 0) => x.toFixed(d);
      const parts = runs.map((r) => `${r.label}: RSS ${f(r.rssMiB)} MiB (peak ${r.peakRssMiB === null ? '?' : f(r.peakRssMiB)}), idle CPU ${f(r.idleCpuPct, 1)} % of a core`);
      return {
        summary: `agent: ${parts.join('; ')}; backend ${runs.at(-1)!.backend ?? '?'}; ` +
          `Pi Zero 2 W: ${fits ? 'fits' : 'does NOT fit'} — largest peak ${f(worst)} MiB against ~${f(budgetMiB)} MiB left of 512 MB after an assumed ${PI_ZERO_2W_RESERVED_MB} MB for GPU and OS ` +
          `(measured on this machine, ${process.arch}; load average ${f(loadAtStart, 1)})`,
        metrics: {
          runs,
          piZero2W: { memoryMB: PI_ZERO_2W_MB, assumedReservedMB: PI_ZERO_2W_RESERVED_MB, budgetMiB, largestPeakMiB: worst, fits },
          settleMs: SETTLE_MS,
          idleMs: IDLE_MS,
          loadAverageAtStart: loadAtStart,
        },
      };
    } finally {
      await client.endAsync();
      await broker.close();
      rmSync(work, { recursive: true, force: true });
    }
  },
};
