// What this machine charges for waking a process that sleeps, with nothing of the project
// in the way: a frame's bytes sent over plain TCP on loopback to a process that echoes them
// (wake-echo.ts), timed to their return, back to back and after idling a fleet token's
// time. Every link leg of a decode step hands the frame to a process that has slept for
// most of a token, so the difference between the two is paid once per leg, whatever the
// broker and the agents do. On a virtual machine it is the vCPU's halt and resume. The CPU
// this side spends per trip is timed too: waking a process that slept costs the waker CPU.
import { fork, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { reapOnExit } from '../reap.js';

export interface WakeRoundTrips {
  samples: number;
  /** The idle time before each round trip, ms. */
  gapMs: number;
  medianMs: number;
  p90Ms: number;
  /** This process's CPU time per round trip (its write, its wake and its read), µs. */
  cpuUsPerTrip: number;
  /** Bytes that came back during these round trips: each trip waits for all of its own. */
  bytesBack: number;
}

export class WakeProbe {
  private arrived: (bytes: number) => void = () => undefined;
  private bytesBack = 0;

  private constructor(private readonly echo: ChildProcess, private readonly socket: Socket, private readonly payload: Buffer) {
    socket.on('data', (chunk) => {
      this.bytesBack += chunk.length;
      this.arrived(chunk.length);
    });
  }

  /** Starts the echo process and connects to it; `bytes` is the size of one activation frame. */
  static async start(bytes: number): Promise<WakeProbe> {
    const echo = fork(new URL('./wake-echo.js', import.meta.url), [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    reapOnExit(echo);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        echo.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
        echo.once('exit', (code) => reject(new Error(`the wake probe's echo process exited (code ${code}) before it listened`)));
      });
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const probe = new WakeProbe(echo, socket, Buffer.alloc(bytes, 0x5a));
      await probe.run(100);
      return probe;
    } catch (err) {
      echo.kill();
      throw err;
    }
  }

  private roundTrip(): Promise<number> {
    const t0 = performance.now();
    let left = this.payload.length;
    return new Promise<number>((resolve) => {
      this.arrived = (n) => {
        left -= n;
        if (left <= 0) resolve(performance.now() - t0);
      };
      this.socket.write(this.payload);
    });
  }

  /** `n` round trips, each after `gapMs` of idling. */
  async run(n: number, gapMs = 0): Promise<WakeRoundTrips> {
    const times: number[] = [];
    const bytes0 = this.bytesBack;
    let cpuUs = 0;
    for (let i = 0; i < n; i++) {
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      // Counted from after the idle gap's timer: the trip's own CPU, not the wait's.
      const cpu0 = process.cpuUsage();
      times.push(await this.roundTrip());
      const cpu = process.cpuUsage(cpu0);
      cpuUs += cpu.user + cpu.system;
    }
    times.sort((a, b) => a - b);
    return { samples: n, gapMs, medianMs: times[Math.floor(n / 2)]!, p90Ms: times[Math.floor(0.9 * n)]!, cpuUsPerTrip: cpuUs / n, bytesBack: this.bytesBack - bytes0 };
  }

  async close(): Promise<void> {
    this.socket.destroy();
    await new Promise<void>((resolve) => {
      if (this.echo.exitCode !== null || this.echo.signalCode !== null) return resolve();
      this.echo.once('exit', () => resolve());
      this.echo.disconnect();
    });
  }
}
