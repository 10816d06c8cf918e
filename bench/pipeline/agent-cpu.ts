// The agents' own CPU time, read with the protocol's `ping` command (its reply carries the
// agent process's cpuUsage and the worker's counters): taken before and after a job, it
// says how much of a hop's round trip the agent actually computed, how long its forwards
// took there (not assumed equal to the in-process ones) and how long it held each frame.
import { connectAsync, type MqttClient } from 'mqtt';
import { PROTOCOL_VERSION, encodeJson, fleetFilter, nodeTopic, parseCommandReply } from '../../protocol/index.js';

/** One agent's totals since it started. */
export interface AgentReading {
  /** Process CPU time, user + system, all threads, µs. */
  cpuUs: number;
  /** Decode-step frames (one row) its worker ran. */
  decodeFrames: number;
  /** Wall time inside their forwards, ms. */
  decodeForwardMs: number;
  /** Wall time from their arrival at the worker to the output handed to the link, ms. */
  decodeFrameMs: number;
}

interface PingResult {
  process?: { cpuUserUs?: number; cpuSystemUs?: number };
  jobs?: { decodeFrames?: number; decodeForwardMs?: number; decodeFrameMs?: number };
}

export class AgentCpu {
  private next = 1;
  private readonly waiting = new Map<string, (r: AgentReading) => void>();

  private constructor(private readonly client: MqttClient, private readonly fleet: string) {
    client.on('message', (_topic, payload) => {
      const r = parseCommandReply(payload);
      if (!r.ok || r.value.id === null) return;
      const done = this.waiting.get(r.value.id);
      const { process: proc, jobs } = (r.value.result ?? {}) as PingResult;
      if (!done || proc?.cpuUserUs === undefined || proc.cpuSystemUs === undefined) return;
      this.waiting.delete(r.value.id);
      done({ cpuUs: proc.cpuUserUs + proc.cpuSystemUs, decodeFrames: jobs?.decodeFrames ?? 0, decodeForwardMs: jobs?.decodeForwardMs ?? NaN, decodeFrameMs: jobs?.decodeFrameMs ?? NaN });
    });
  }

  /** Logs in as the gateway's own parts do (full access) and listens to every node's command replies. */
  static async connect(url: string, login: { username: string; password: string }, fleet: string): Promise<AgentCpu> {
    const client = await connectAsync(url, { clientId: `bench-cpu-${process.pid}`, ...login, reconnectPeriod: 0 });
    await client.subscribeAsync(fleetFilter(fleet, 'cmdReply'), { qos: 1 });
    return new AgentCpu(client, fleet);
  }

  /** The agent's totals so far. */
  read(nodeId: string, timeoutMs = 10_000): Promise<AgentReading> {
    const id = `bench-cpu-${this.next++}`;
    return new Promise<AgentReading>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`agent ${nodeId} did not answer a ping within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (reading) => {
        clearTimeout(timer);
        resolve(reading);
      });
      this.client.publish(nodeTopic(this.fleet, nodeId, 'cmd'), encodeJson({ v: PROTOCOL_VERSION, id, op: 'ping' }), { qos: 1 });
    });
  }

  readAll(nodeIds: string[]): Promise<AgentReading[]> {
    return Promise.all(nodeIds.map((n) => this.read(n)));
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
