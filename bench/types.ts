// The contract every benchmark keeps: one summary line for the terminal, and metrics that
// are written, with the machine they ran on, to a JSON file.
export interface BenchOptions {
  /** Folder the JSON result is written to. */
  outDir: string;
  /** Extra options a benchmark understands (e.g. `model`), passed through from the CLI. */
  args: Record<string, string | undefined>;
}

export interface BenchResult {
  /** One line: what was measured, against which goal. */
  summary: string;
  metrics: Record<string, unknown>;
}

export interface Bench {
  description: string;
  run(opts: BenchOptions): Promise<BenchResult>;
}
