// Connections that are not yet a node's session: from the TCP accept (before any TLS
// handshake or WebSocket upgrade) until their CONNECT has been authenticated. They have a
// budget of their own, apart from the sessions' maxClients, so that sockets that never log
// in cannot take the places of nodes that have: per address, where a flood from one
// address is refused at once, and in total, where the connection waiting longest makes
// room for a new one. Each must send its CONNECT within the deadline or be closed.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Clock } from '../../ground/clock.js';

export interface PendingLimits {
  connectTimeoutMs: number;
  perAddress: number;
  total: number;
}

/** Why a waiting connection was closed: its address was over its cap, it made room for a newer one, or no CONNECT came in time. */
export type PendingRefusal = 'address' | 'evicted' | 'timeout';

interface Entry {
  socket: Socket;
  remote: string;
  /** Cleared once the CONNECT has arrived. */
  deadline: NodeJS.Timeout | undefined;
}

/** The TCP 4-tuple: the same for a raw socket and for the TLS socket or WebSocket request over it. */
export function connectionKey(s: Pick<Socket, 'localAddress' | 'localPort' | 'remoteAddress' | 'remotePort'>): string {
  return `${s.localAddress}:${s.localPort}|${s.remoteAddress}:${s.remotePort}`;
}

export class PendingConnections {
  /** In accept order, so the first entry is the one waiting longest. */
  private readonly entries = new Map<string, Entry>();
  private readonly perAddress = new Map<string, number>();

  /** When each kind of refusal was last logged, and how many since. */
  private readonly logged = new Map<PendingRefusal, { atMs: number; since: number }>();

  constructor(
    private readonly limits: PendingLimits,
    private readonly deps: { clock: Clock; log: Logger },
    /** Counts each connection closed, by why. */
    private readonly count: (why: PendingRefusal) => void,
  ) {}

  /**
   * A connection just accepted. False when its address already has `perAddress` waiting
   * (the socket is then destroyed); when the total is reached, the connection waiting
   * longest is closed first.
   */
  accept(socket: Socket): boolean {
    const remote = socket.remoteAddress;
    // No peer address: the connection was reset before it was accepted.
    if (remote === undefined) {
      socket.destroy();
      return false;
    }
    const waiting = this.perAddress.get(remote) ?? 0;
    if (waiting >= this.limits.perAddress) {
      socket.destroy();
      this.refused('address', remote);
      return false;
    }
    if (this.entries.size >= this.limits.total) {
      const [key, oldest] = this.entries.entries().next().value as [string, Entry];
      this.forget(key);
      oldest.socket.destroy();
      this.refused('evicted', oldest.remote);
    }
    const key = connectionKey(socket);
    // Wall time, as aedes' own connect timer: the deadline bounds network round trips, which
    // an accelerated gateway clock does not make any shorter.
    const deadline = setTimeout(() => {
      this.forget(key);
      socket.destroy();
      this.refused('timeout', remote);
    }, this.limits.connectTimeoutMs);
    const entry: Entry = { socket, remote, deadline };
    this.entries.set(key, entry);
    this.perAddress.set(remote, waiting + 1);
    // A later connection may reuse the 4-tuple once this one is gone: forget this entry only.
    socket.once('close', () => {
      if (this.entries.get(key) === entry) this.forget(key);
    });
    return true;
  }

  /** Its CONNECT arrived: no more deadline, but it still waits (for the password check) within the budget. */
  connectArrived(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    clearTimeout(e.deadline);
    e.deadline = undefined;
  }

  /** Logged in: a session now, counted against maxClients instead. */
  settle(key: string): void {
    this.forget(key);
  }

  /** Closes every waiting connection (the broker is stopping). */
  closeAll(): void {
    for (const [key, e] of [...this.entries]) {
      this.forget(key);
      e.socket.destroy();
    }
  }

  /**
   * A flood makes thousands of these a second: each kind is logged at most once per
   * connectTimeoutMs, with the number closed since.
   */
  private refused(why: PendingRefusal, remote: string): void {
    this.count(why);
    const now = this.deps.clock.now();
    const last = this.logged.get(why);
    if (last && now - last.atMs < this.limits.connectTimeoutMs) {
      last.since++;
      return;
    }
    this.logged.set(why, { atMs: now, since: 0 });
    const { log } = this.deps;
    const closedSince = last?.since ?? 0;
    if (why === 'address') log.warn({ remote, limit: this.limits.perAddress, closedSince }, 'too many MQTT connections waiting to log in from one address; refused');
    else if (why === 'evicted') log.warn({ remote, limit: this.limits.total, closedSince }, 'maxPendingConnections reached: the longest-waiting connection is closed to make room');
    else log.info({ remote, connectTimeoutMs: this.limits.connectTimeoutMs, closedSince }, 'no MQTT CONNECT in time; connection closed');
  }

  private forget(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    clearTimeout(e.deadline);
    this.entries.delete(key);
    const left = (this.perAddress.get(e.remote) ?? 1) - 1;
    if (left > 0) this.perAddress.set(e.remote, left);
    else this.perAddress.delete(e.remote);
  }
}
