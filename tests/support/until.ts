// Polls a condition until it holds or the time is up: how tests wait for what other
// processes, brokers and clocks do, without fixed sleeps.
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000, pollMs = 20): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
