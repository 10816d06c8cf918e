// Child processes a benchmark starts end with it, also when it dies of an uncaught error.
import type { ChildProcess } from 'node:child_process';

/** Children started by this process and not yet exited. */
const live = new Set<ChildProcess>();

/**
 * Ends `child` when this process exits, by its end or by an uncaught error: the bench's own cleanup stops its
 * children, but an uncaught error skips that, and an agent that lost its broker only
 * reconnects, forever, loading the machine for every later benchmark. 'exit' runs on an
 * uncaught error too, and kill() is synchronous, as the handler must be.
 */
export function reapOnExit(child: ChildProcess): void {
  if (live.size === 0) process.once('exit', reapAll);
  live.add(child);
  child.once('exit', () => {
    live.delete(child);
    if (live.size === 0) process.removeListener('exit', reapAll);
  });
}

function reapAll(): void {
  for (const c of live) c.kill('SIGTERM');
}
