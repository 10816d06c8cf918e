// The agents' own CPU time, read with the protocol's `ping` command (its reply carries the
// agent process's cpuUsage): taken before and after a job, it says how much of a hop's
// round trip the agent actually computed, and so how much was waiting.
import { connectAsync, type MqttClient } from 'mqtt';
import { PROTOCOL_VERSION, encodeJson, fleetFilter, nodeTopic, parseCommandReply } from '../../protocol/index.js';

export class AgentCpu {
  private next = 1;
  private readonly waiting = new Map<string, (cpuUs: number) => void>();

  private constructor(private readonly client: MqttClient, private readonly fleet: string) {
    client.on('message', (_topic, payload) => {
      const r = parseCommandReply(payload);
      if (!r.ok || r.value.id === null) return;
      const done = this.waiting.get(r.value.id);
      const proc = r.value.result?.process as { cpuUserUs?: number; cpuSystemUs?: number } | undefined;
      if (!done || proc?.cpuUserUs === undefined || proc.cpuSystemUs === undefined) return;
      this.waiting.delete(r.value.id);
      done(proc.cpuUserUs + proc.cpuSystemUs);
    });
  }

  /** Logs in as the gateway's own parts do (full access) and listens to every node's command replies. */
  static async connect(url: string, login: { username: string; password: string }, fleet: string): Promise<AgentCpu> {
    const client = await connectAsync(url, { clientId: `bench-cpu-${process.pid}`, ...login, reconnectPeriod: 0 });
    await client.subscribeAsync(fleetFilter(fleet, 'cmdReply'), { qos: 1 });
    return new AgentCpu(client, fleet);
  }

  /** The agent process's user + system CPU time so far, µs. */
  read(nodeId: string, timeoutMs = 10_000): Promise<number> {
    const id = `bench-cpu-${this.next++}`;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`agent ${nodeId} did not answer a ping within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (us) => {
        clearTimeout(timer);
        resolve(us);
      });
      this.client.publish(nodeTopic(this.fleet, nodeId, 'cmd'), encodeJson({ v: PROTOCOL_VERSION, id, op: 'ping' }), { qos: 1 });
    });
  }

  readAll(nodeIds: string[]): Promise<number[]> {
    return Promise.all(nodeIds.map((n) => this.read(n)));
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
