// The synthetic token of `heliomesh bench handover`: a "head" and three "stages", each a
// fixed f32 matrix-vector product sized so that a token takes about what a stories15M token
// takes here (a stage 1.1–2.4 ms, the head about twice that), and an activation frame of
// stories15M's size (dim 288 as f32 plus the 36-byte frame header: 1188 bytes).
export const FRAME_BYTES = 1188;
export const COLS = 288;
export const STAGE_ROWS = 2000;
export const HEAD_ROWS = 4000;

/** Weights with a fixed seed (a small LCG): every process computes the same thing. */
export function weights(rows: number, seed: number): Float32Array {
  const w = new Float32Array(rows * COLS);
  let s = seed >>> 0;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = s / 2 ** 32 - 0.5;
  }
  return w;
}

const x = new Float32Array(COLS).fill(0.5);

/** One matvec over `w`: the compute of a stage (or the head). Returns the sum, so it is not optimized away. */
export function matvec(w: Float32Array): number {
  const rows = w.length / COLS;
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const o = r * COLS;
    for (let c = 0; c < COLS; c++) acc += w[o + c]! * x[c]!;
    sum += acc;
  }
  return sum;
}

/** What a node process answers when asked: its CPU time so far and the frames it has passed on. */
export interface NodeCount {
  cpuUs: number;
  frames: number;
}

/**
 * 'tcp': each node to the hub, which relays to the next (as the embedded broker relays a
 * chained hop); 'direct': each node straight to the next, the hub only sending the first
 * frame and taking the last (what a node-to-node data plane would hand over); 'mqtt': aedes
 * in the hub, MQTT.js in the nodes.
 */
export type Transport = 'tcp' | 'direct' | 'mqtt';
export const TRANSPORTS: readonly Transport[] = ['tcp', 'direct', 'mqtt'];

/** What the hub tells a 'direct' node: the port its output goes to (the next node's, or the hub's). */
export interface DirectLink {
  next: number;
}

/** MQTT topics of the chain: node i's input, and the way back to the hub. */
export const inputTopic = (i: number) => `handover/n${i}/in`;
export const OUT_TOPIC = 'handover/out';

/** Cuts a byte stream into FRAME_BYTES frames, each its own copy: TCP keeps no message edges. */
export function frameSplitter(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= FRAME_BYTES) {
      const frame = Buffer.from(pending.subarray(0, FRAME_BYTES));
      pending = pending.subarray(FRAME_BYTES);
      onFrame(frame);
    }
  };
}
