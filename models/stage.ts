// A stage is one generation's hold on a contiguous block range, wherever the blocks run:
// in this process (a BlockStack and its session) or on a node of the fleet (the gateway's
// remote stage). The generation loop (generate.ts) only hands it hidden states and reads
// back the output, so the same loop drives `model generate`, the router and the bench.
import type { BlockSession, BlockStack, CacheUpdate } from './forward.js';

export interface Stage {
  /**
   * Runs the stage's blocks over hidden states [T][dim] at positions
   * [position, position + T) and returns the output rows. The stage has seen every earlier
   * position: the loop never skips one.
   */
  forward(hidden: Float32Array, position: number): Promise<Float32Array>;
  /**
   * Ends the generation's hold on the stage. `failure` says the generation did not finish
   * (the stage may then drop its state without the orderly goodbye).
   */
  close(failure?: Error): Promise<void>;
}

/** A block stack in this process, with one session sized to the generation's positions. */
export class LocalStage implements Stage {
  private readonly session: BlockSession;

  constructor(private readonly stack: BlockStack, positions: number, cacheUpdate?: CacheUpdate) {
    this.session = stack.openSession({ capacity: positions, cacheUpdate });
  }

  async forward(hidden: Float32Array, position: number): Promise<Float32Array> {
    // A cache written out of order would silently attend to the wrong positions.
    if (position !== this.session.length) {
      throw new Error(`stage [${this.stack.range.from}, ${this.stack.range.to}) holds ${this.session.length} positions; asked to forward at ${position}`);
    }
    return this.stack.forward(this.session, hidden);
  }

  async close(): Promise<void> {
    this.session.close();
  }
}
