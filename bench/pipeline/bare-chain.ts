// The job's path with no compute, for `heliomesh bench pipeline`: as many node processes as
// the fleet has groups, each answering every frame at once (echo-node.ts), wired as the
// path under test is. Chained, the gateway publishes to the first node's job/in, each node
// to the next one's job/hop and the last to its job/out; on the star, every node answers on
// its job/out and the gateway sends the frame on to the next. A "token" is one frame of the
// model's width through all of them, the same crossings and hand-overs a decode step makes,
// so its time and CPU are what the MQTT libraries and this machine's process switches alone
// cost a token. What they leave out is the work itself: a node's forward, run just after
// it idled, can take longer than the same forward in process, which the hops report apart.
import { fork, type ChildProcess } from 'node:child_process';
import { MqttClient } from 'mqtt';
import type { Broker } from '../../gateway/broker/index.js';
import { encodeFrame, nodeTopic } from '../../protocol/index.js';
import { reapOnExit } from '../reap.js';

export interface BareTokens {
  samples: number;
  /** The idle time before each token, ms. */
  gapMs: number;
  medianMs: number;
  meanMs: number;
  p90Ms: number;
  /** CPU time of this process (the broker and the gateway's side of the client) per token, ms. */
  gatewayCpuMs: number;
  /** CPU time of all the chain's node processes per token, ms. */
  nodesCpuMs: number;
}

type Cpu = { user: number; system: number };

/** Node ids that no agent of the bench uses. */
const echoId = (i: number) => `echo-${i + 1}`;

export class BareChain {
  private answered: (topic: string) => void = () => undefined;
  /** Each node's job/in and job/out, built once: the probe's own work must cost next to nothing. */
  private readonly inTopics: string[];
  private readonly outTopics: string[];

  private constructor(
    private readonly client: MqttClient,
    private readonly echoes: ChildProcess[],
    fleet: string,
    private readonly star: boolean,
    private readonly payload: Buffer,
  ) {
    this.inTopics = echoes.map((_, i) => nodeTopic(fleet, echoId(i), 'jobIn'));
    this.outTopics = echoes.map((_, i) => nodeTopic(fleet, echoId(i), 'jobOut'));
    client.on('message', (topic) => this.answered(topic));
  }

  /** Starts `nodes` echo processes on the broker at `url`, wired as the chained path or the star. */
  static async start(o: { url: string; broker: Broker; fleet: string; nodes: number; star: boolean; dim: number }): Promise<BareChain> {
    const login = o.broker.internal;
    const topic = (i: number, kind: 'jobIn' | 'jobHop' | 'jobOut') => nodeTopic(o.fleet, echoId(i), kind);
    const echoes: ChildProcess[] = [];
    // As the gateway's own client (gateway/index.ts): in process, not over TCP.
    const client = new MqttClient(() => o.broker.connectInProcess(), { clientId: `bench-probe-${process.pid}`, ...login, reconnectPeriod: 0 });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      for (let i = 0; i < o.nodes; i++) {
        const chainedIn = !o.star && i > 0;
        const chainedOut = !o.star && i < o.nodes - 1;
        const args = {
          url: o.url, ...login, clientId: `bench-${echoId(i)}-${process.pid}`,
          inTopic: topic(i, chainedIn ? 'jobHop' : 'jobIn'),
          outTopic: chainedOut ? topic(i + 1, 'jobHop') : topic(i, 'jobOut'),
        };
        const echo = fork(new URL('./echo-node.js', import.meta.url), [JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
        reapOnExit(echo);
        echoes.push(echo);
      }
      await Promise.all(echoes.map((echo, i) => new Promise<void>((resolve, reject) => {
        echo.stdout?.once('data', () => resolve());
        echo.once('exit', (code) => reject(new Error(`echo node ${i + 1} exited (code ${code}) before it was ready`)));
      })));
      const outs = o.star ? echoes.map((_, i) => topic(i, 'jobOut')) : [topic(o.nodes - 1, 'jobOut')];
      await client.subscribeAsync(outs, { qos: 1 });
    } catch (err) {
      for (const e of echoes) e.kill();
      await client.endAsync(true);
      throw err;
    }
    const payload = encodeFrame({ jobId: 1, sessionId: 1, step: 1, position: 16, rows: 1, dim: o.dim, dtype: 'f32', data: new Float32Array(o.dim) });
    const chain = new BareChain(client, echoes, o.fleet, o.star, payload);
    for (let i = 0; i < 100; i++) await chain.token();
    return chain;
  }

  /** One frame through every node, as a decode step goes; resolves when the last node's answer arrives. */
  private token(): Promise<number> {
    const t0 = performance.now();
    const last = this.echoes.length - 1;
    return new Promise<number>((resolve) => {
      this.answered = (topic) => {
        const i = this.star ? this.outTopics.indexOf(topic) : last;
        if (i === last) resolve(performance.now() - t0);
        // The star's gateway hands the output to the next group's node.
        else this.client.publish(this.inTopics[i + 1]!, this.payload, { qos: 0 });
      };
      this.client.publish(this.inTopics[0]!, this.payload, { qos: 0 });
    });
  }

  private nodesCpu(): Promise<Cpu[]> {
    return Promise.all(this.echoes.map((echo) => new Promise<Cpu>((resolve) => {
      echo.once('message', (m) => resolve(m as Cpu));
      echo.send('cpu');
    })));
  }

  /** `n` tokens, each after `gapMs` of idling (a node idles between its hops while the others work). */
  async run(n: number, gapMs = 0): Promise<BareTokens> {
    const times: number[] = [];
    const nodes0 = await this.nodesCpu();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      times.push(await this.token());
    }
    const cpu = process.cpuUsage(cpu0);
    const nodes1 = await this.nodesCpu();
    const nodesUs = nodes1.reduce((a, c, i) => a + c.user + c.system - nodes0[i]!.user - nodes0[i]!.system, 0);
    times.sort((a, b) => a - b);
    return {
      samples: n, gapMs, medianMs: times[Math.floor(n / 2)]!, meanMs: times.reduce((a, b) => a + b, 0) / n, p90Ms: times[Math.floor(0.9 * n)]!,
      gatewayCpuMs: (cpu.user + cpu.system) / 1000 / n, nodesCpuMs: nodesUs / 1000 / n,
    };
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
    await Promise.all(this.echoes.map((echo) => new Promise<void>((resolve) => {
      if (echo.exitCode !== null || echo.signalCode !== null) return resolve();
      echo.once('exit', () => resolve());
      echo.disconnect();
    })));
  }
}
