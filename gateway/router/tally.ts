// What one job's stages count together (hops, failovers, the broker crossings of its
// frames, the nodes' energy reports), and what a stage knows of the job it serves.

/** Activation frames through the broker between processes, and hops chained node to node. */
export interface PathCounts {
  crossings: number;
  handed: number;
}

/** What a job's stages add up together: hops, failovers, the frames' path and the nodes' energy reports. */
export class JobTally {
  failovers = 0;
  hops = 0;
  /**
   * Activation frames through the broker from one process to another: each the gateway
   * sends and each output it waits for (docs/gateway.md "Chained hops"). The gateway's own
   * copy of a node-to-node frame is delivered inside the broker's process and not counted.
   */
  crossings = 0;
  /** Hops whose rows a node sent straight to the next group's node. */
  handed = 0;
  energyJ = 0;
  /** Sum of the reports' uncertainties; undefined until a report carries one. */
  energyUncertaintyJ: number | undefined;

  /** `totals`: the router's counts over every job, kept as the frames go. */
  constructor(private readonly totals?: PathCounts) {}

  crossed(): void {
    this.crossings++;
    if (this.totals) this.totals.crossings++;
  }

  handedOn(): void {
    this.handed++;
    if (this.totals) this.totals.handed++;
  }

  addReport(r: { energyJ: number; energyUncertaintyJ?: number }): void {
    this.energyJ += r.energyJ;
    if (r.energyUncertaintyJ !== undefined) this.energyUncertaintyJ = (this.energyUncertaintyJ ?? 0) + r.energyUncertaintyJ;
  }
}

/** The job a remote stage serves: its number on the wire, its id in logs, and its tallies. */
export interface StageJob {
  readonly num: number;
  readonly id: string;
  readonly tally: JobTally;
  /** A node accepted the job for some group: it is running. */
  onAccepted(): void;
}
