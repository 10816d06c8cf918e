// Polls a condition until it holds or the time is up: how tests and benchmarks wait for
// what other processes, brokers and clocks do, without fixed sleeps. It waits on real time
// because what it waits for (a child process, a socket) runs on real time too.

/**
 * Resolves once `cond` holds; throws, naming `what`, once `timeoutMs` have passed. `cond`
 * may throw to give up early (a child process that exited will never answer).
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, pollMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
