// The systemd service protocol, sd_notify(3): READY=1 once started, WATCHDOG=1 while the
// main loop turns, STOPPING=1 when a stop begins. Each is a datagram to the AF_UNIX socket
// named in $NOTIFY_SOCKET. Node 20 cannot send one on its own (dgram is UDP only, net is
// stream only), and the npm packages that do (sd-notify) build native code against
// libsystemd, which a Pi would need a compiler and headers for. So each message is handed
// to systemd-notify(1), from the systemd that runs the unit. It is a child process, not the
// main PID, hence NotifyAccess=all in the units; and it waits until the manager has read
// the message (BARRIER=1, since systemd 246), so the manager still finds the sender in the
// unit's cgroup and does not drop the message as from an unknown process.
import { execFile } from 'node:child_process';
import type { Log } from '../ground/log.js';

export interface ServiceNotifier {
  ready(): void;
  /** Called as often as the loop turns; sends at most once per `periodMs`. */
  alive(): void;
  stopping(): void;
  /** Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; undefined without a watchdog. */
  readonly periodMs: number | undefined;
}


/** The notifier the environment asks for, or undefined when no service manager listens. */
export function serviceNotifier(env: Record<string, string | undefined>, pid: number, log: Pick<Log, 'warn'>): ServiceNotifier | undefined {
  if (!env.NOTIFY_SOCKET) return undefined;
  const usec = Number(env.WATCHDOG_USEC);
  // WATCHDOG_PID names the process the watchdog is meant for; another one must not feed it (sd_watchdog_enabled(3)).
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === pid;
  const periodMs = forUs && Number.isFinite(usec) && usec > 0 ? usec / 2000 : undefined;
  let lastAliveMs = -Infinity;
  let inFlight = false;
  let warned = false;
  const send = (state: string, done?: () => void): void => {
    execFile('systemd-notify', [state], { env, timeout: 10_000 }, (err) => {
      done?.();
      if (err && !warned) {
        warned = true;
        log.warn({ err: err.message, state }, 'systemd-notify failed: the unit will not see this process as ready or alive (is systemd-notify installed? NotifyAccess=all in the unit?)');
      }
    });
  };
  return {
    periodMs,
    ready: () => {
      lastAliveMs = performance.now();
      send('READY=1');
    },
    alive: () => {
      if (periodMs === undefined || inFlight) return;
      const now = performance.now();
      if (now - lastAliveMs < periodMs) return;
      lastAliveMs = now;
      inFlight = true;
      send('WATCHDOG=1', () => { inFlight = false; });
    },
    stopping: () => send('STOPPING=1'),
  };
}
