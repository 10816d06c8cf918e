// The bench's handle on the gateway process: starts it, asks it things over IPC, ends it.
import { fork, type ChildProcess } from 'node:child_process';
import type { FromGateway, ToGateway } from './ipc.js';

type Reply<T extends FromGateway['type']> = Extract<FromGateway, { type: T }>;

export class GatewayChild {
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;
  private waiting: { type: FromGateway['type']; resolve(m: FromGateway): void; reject(e: Error): void } | undefined;
  private stderr = '';

  constructor() {
    // Its own process: process.cpuUsage() there counts the gateway and nothing of the bench nodes.
    this.child = fork(new URL('./gateway-process.js', import.meta.url), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.child.on('message', (m: FromGateway) => {
      const w = this.waiting;
      if (m.type === 'error') {
        this.waiting = undefined;
        w?.reject(new Error(`the bench gateway failed: ${m.message}`));
      } else if (w && m.type === w.type) {
        this.waiting = undefined;
        w.resolve(m);
      }
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => {
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(new Error(`the bench gateway exited (code ${code}) while the bench waited for '${w.type}': ${this.stderr.trim() || 'no output'}`));
      resolve(code);
    }));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends `msg` and resolves with the reply of type `type` (one request at a time). */
  request<T extends FromGateway['type']>(msg: ToGateway, type: T): Promise<Reply<T>> {
    if (this.waiting) return Promise.reject(new Error(`bench gateway busy with '${this.waiting.type}'`));
    if (!this.child.connected) {
      return Promise.reject(new Error(`the bench gateway has ended (exit code ${this.child.exitCode}, signal ${this.child.signalCode}): ${this.stderr.trim() || 'no output'}`));
    }
    return new Promise<Reply<T>>((resolve, reject) => {
      this.waiting = { type, resolve: resolve as (m: FromGateway) => void, reject };
      this.child.send(msg);
    });
  }

  /** Closes the gateway cleanly; kills the process if it has not ended within `timeoutMs`. */
  async close(timeoutMs = 15_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.send({ type: 'close' } satisfies ToGateway);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}
