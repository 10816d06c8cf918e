// Whether a process exists, for tests that check what a crash or a stop leaves running.

/** Signal 0 checks that `pid` exists without touching it. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
