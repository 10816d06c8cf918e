// The weight-matrix kernels: out[t][r] = x[t] · W[r] (+ bias[r]) for f32, f16, bf16, Q8_0 and
// Q4_0 rows (ggml block layouts, see models/weights.ts), on 128-bit WebAssembly SIMD, run by
// several threads over one shared memory.
//
// Toolchain: AssemblyScript (npm devDependency `assemblyscript`), compiled by build.mjs with
// `--runtime stub --enable simd --enable threads --importMemory --sharedMemory`. It has every
// v128 operation used here (load8x8_s, i32x4.dot_i16x8_s, i16x8/i8x16 shifts and shuffles,
// f32x4 arithmetic, trunc_sat, narrow), imports a shared memory, and comes from npm, so
// `npm ci && npm run build` works on a Raspberry Pi without a C toolchain from apt.
// The file has a .as extension so that tsc and eslint, which own every .ts file of the
// repository, leave it alone; build.mjs hands it to the AssemblyScript compiler.
//
// Nothing here allocates: all memory is laid out by the runtime (index.ts) with a bump
// allocator, and every function takes raw pointers. The layout of the control area and of
// the job descriptor is shared with layout.ts and must be kept in step with it.
//
// Exactness across thread counts: each output value is one call of a row kernel (one row,
// one token) by exactly one thread, with a fixed order of operations, whatever the chunking.
//
// One row at a time: on the machines measured, kernels that process 2 or 4 rows at once to
// share the activation loads were no faster for the quantized types and slower for the
// float ones (rows a power of two apart alias in the caches; TurboFan hoists every row's
// loads ahead of the arithmetic and spills), so each kernel streams one row.

/** Levels of the activations on each side of 0 (16-bit, see quantizeActivations). */
const ACT_LEVELS: f32 = 32767;

// Weight type codes (layout.ts TYPE_CODE).
const F32: u32 = 0;
const F16: u32 = 1;
const BF16: u32 = 2;
const Q8_0: u32 = 3;
const Q4_0: u32 = 4;

// Job descriptor, u32 words at the job pointer (layout.ts J_*).
const J_CMD = 0; // 0 matmul, 1 read-bandwidth sum
const J_NMAT = 1;
const J_T = 2;
const J_COLS = 3;
const J_X = 4; // f32 [T][cols]
const J_XQ = 5; // Q8 activations for Q8_0 rows: [T][cols/32] blocks of XBLOCK bytes (0: none)
const J_X4 = 6; // the same for Q4_0 rows, values in nibble order, with the correction (0: none)
const J_TOTAL = 9; // rows of all matrices together
const J_TB = 10; // tokens per token block
const J_TABLE = 11; // f32[65536]: the value of every f16 bit pattern
const J_BW_PTR = 12; // bandwidth: first byte
const J_BW_BYTES = 13; // bandwidth: bytes (a multiple of 64)
const J_RESULT = 64; // bandwidth: one word per thread
const J_MATS = 128; // 8 words per matrix:
const M_TYPE = 0;
const M_ROWS = 1;
const M_W = 2;
const M_OUT = 3; // f32 [T][rows]
const M_BIAS = 4; // f32 [rows] or 0
const M_START = 5; // index of its first row among all rows
const M_ROWBYTES = 6;

// One block of 32 quantized activations (layout.ts XBLOCK): i16 values at 0 (64 bytes);
// for Q8_0 rows the f32 scale d_x at 64; for Q4_0 rows the i32 correction -8·Σq at 64 and
// d_x at 68. Values, correction and scale of a block sit together: one pointer walks them.
const XBLOCK: usize = 80;

// Vector constants, written by initTable and read into locals at the top of the kernels:
// TurboFan rematerializes a v128.const inside a loop from an immediate (three instructions,
// each iteration), while a loaded value stays in a register.
const CONSTS: usize = 12800; // layout.ts CONSTS
const C_NIBBLE = 0; // i16x8 0x000f
const C_F16_MASK = 16; // i32x4 0x8fffffff
const C_TWO_112 = 32; // f32x4 2^112

@inline function word(job: usize, i: i32): u32 {
  return load<u32>(job + (<usize>i << 2));
}

/** The same horizontal order everywhere: (l0 + l1) + (l2 + l3). */
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

@inline function f16Scale(table: usize, p: usize): f32 {
  return load<f32>(table + ((<usize>load<u16>(p)) << 2));
}

// ---------------------------------------------------------------------------------------
// f32, f16, bf16 rows × f32 activations. f16 and bf16 are decoded in registers: a lane's
// 16 bits are first moved to the top of a 32-bit lane (an interleave with zeros:
// punpcklwd / zip1). That is bf16's float already. For f16, an arithmetic shift right by 3
// puts exponent and mantissa at f32's positions (the sign is smeared over bits 31..28,
// three of which the mask clears): the result is the f16 value times 2^-112 with the right
// sign, also for subnormals, so one multiplication by 2^112 (exact) finishes it.
// On x86 a multiplication with a subnormal input takes a microcode assist (~100 cycles): a
// trained f16 matrix has ~0.25 % subnormal weights, which costs this kernel ~25 % there
// (ARM has no such penalty). Testing each 16 weights and decoding subnormals with integer
// steps instead measured slower than paying the assists, so the kernel does not.

const TWO_112: f32 = reinterpret<f32>(0x77800000);

@inline function top16Low(h: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), h, 0, 8, 1, 9, 2, 10, 3, 11);
}
@inline function top16High(h: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), h, 4, 12, 5, 13, 6, 14, 7, 15);
}
@inline function f16Top(u: v128, mask: v128, scale: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shr_s(u, 3), mask), scale);
}

// The float kernels are generic over a marker type K, which the compiler resolves when it
// instantiates each of them (one function per weight kind, no type test in any loop):
// K = f32 for f32 weights, i16 for bf16, u16 for f16.
@inline function isBf16<K>(): bool {
  return isInteger<K>() && isSigned<K>();
}

/** Weights 0..3 of the 8 that the 16 bytes h hold (16-bit types). */
@inline function low4<K>(h: v128, mask: v128, scale: v128): v128 {
  return isBf16<K>() ? top16Low(h) : f16Top(top16Low(h), mask, scale);
}
/** Weights 4..7 of the 8 that the 16 bytes h hold (16-bit types). */
@inline function high4<K>(h: v128, mask: v128, scale: v128): v128 {
  return isBf16<K>() ? top16High(h) : f16Top(top16High(h), mask, scale);
}
/** One weight, for the columns after the last multiple of 16. */
@inline function scalarWeight<K>(p: usize, table: usize): f32 {
  if (isFloat<K>()) return load<f32>(p);
  if (isBf16<K>()) return reinterpret<f32>((<u32>load<u16>(p)) << 16);
  return f16Scale(table, p);
}

/**
 * Σ w·x over one row: four f32x4 accumulators over steps of 16 columns, summed as
 * (a0 + a1) + (a2 + a3), then the remaining columns one by one in order.
 */
function floatRow<K>(w: usize, x: usize, cols: i32, table: usize): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const mask = v128.load(CONSTS, C_F16_MASK);
  const scale = v128.load(CONSTS, C_TWO_112);
  const n16 = cols >> 4;
  let p = w;
  let q = x;
  for (let i = 0; i < n16; i++) {
    if (isFloat<K>()) {
      a0 = f32x4.add(a0, f32x4.mul(v128.load(p), v128.load(q)));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(p, 16), v128.load(q, 16)));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(p, 32), v128.load(q, 32)));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(p, 48), v128.load(q, 48)));
    } else {
      const h0 = v128.load(p);
      const h1 = v128.load(p, 16);
      a0 = f32x4.add(a0, f32x4.mul(low4<K>(h0, mask, scale), v128.load(q)));
      a1 = f32x4.add(a1, f32x4.mul(high4<K>(h0, mask, scale), v128.load(q, 16)));
      a2 = f32x4.add(a2, f32x4.mul(low4<K>(h1, mask, scale), v128.load(q, 32)));
      a3 = f32x4.add(a3, f32x4.mul(high4<K>(h1, mask, scale), v128.load(q, 48)));
    }
    p += 16 * sizeof<K>();
    q += 64;
  }
  let sum = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (let c = n16 << 4; c < cols; c++) {
    sum += scalarWeight<K>(w + <usize>c * sizeof<K>(), table) * load<f32>(x + (<usize>c << 2));
  }
  return sum;
}

// ---------------------------------------------------------------------------------------
// Q8_0 and Q4_0 rows × Q8 activations (quantizeActivations). Activations are kept as i16
// (widened once per call). A block's integer dot product is exact; it is scaled by
// d_w · d_x in f32 and accumulated per lane; the lanes are summed at the end of the row.
// Variants that unrolled two blocks, or summed four blocks' lanes with one transpose and
// scaled them with one multiplication, measured no faster on x86 (the loop is bound by the
// multiply ports there), so the simplest form stays.
//
// Q8_0: the 32 int8 of a block are loaded widened (v128.load8x8_s: pmovsxbw / ld1+sxtl) and
// multiplied pairwise with i32x4.dot_i16x8_s.
//
// Q4_0: the 16 bytes of nibbles read as eight 16-bit lanes k hold values 2k (bits 0-3),
// 2k+16 (4-7), 2k+1 (8-11) and 2k+17 (12-15). Shifts and masks on the 16-bit lanes give
// four i16x8 vectors with no widening step, against activations stored in that order. The
// nibbles are used as 0..15: the -8 of every value is the block's correction -8·Σq_x,
// added to the integer sum.

@inline function q8Block(w: usize, a: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(w, 2), v128.load(a)), i32x4.dot_i16x8_s(v128.load8x8_s(w, 10), v128.load(a, 16))),
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(w, 18), v128.load(a, 32)), i32x4.dot_i16x8_s(v128.load8x8_s(w, 26), v128.load(a, 48))));
}

@inline function q4Block(w: usize, a: usize, m: v128): v128 {
  const q = v128.load(w, 2);
  return i32x4.add(
    i32x4.add(
      i32x4.add(i32x4.dot_i16x8_s(v128.and(q, m), v128.load(a)), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(q, 4), m), v128.load(a, 16))),
      i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(q, 8), m), v128.load(a, 32)), i32x4.dot_i16x8_s(i16x8.shr_u(q, 12), v128.load(a, 48)))),
    v128.load32_zero(a, 64));
}

/** acc + f32(isum) · (d_w · d_x), d_w the f16 scale at w, d_x the f32 at a + offset. */
@inline function scaled(acc: v128, isum: v128, table: usize, w: usize, a: usize, dxOffset: usize): v128 {
  const d = f16Scale(table, w) * load<f32>(a + dxOffset);
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(d)));
}

function q8Row(w: usize, nb: i32, a: usize, table: usize): f32 {
  let acc = f32x4.splat(0);
  for (const end = w + <usize>nb * 34; w < end; w += 34, a += XBLOCK) {
    acc = scaled(acc, q8Block(w, a), table, w, a, 64);
  }
  return hsum(acc);
}

function q4Row(w: usize, nb: i32, a: usize, table: usize): f32 {
  let acc = f32x4.splat(0);
  const m = v128.load(CONSTS, C_NIBBLE);
  for (const end = w + <usize>nb * 18; w < end; w += 18, a += XBLOCK) {
    acc = scaled(acc, q4Block(w, a, m), table, w, a, 68);
  }
  return hsum(acc);
}

// ---------------------------------------------------------------------------------------
// Rows [r0, r1) of one matrix for tokens [t0, t1): rows outside, tokens inside, so that a
// row read from memory is reused from the cache by every token of the block.

@inline function emit(out: usize, bias: usize, v: f32): void {
  store<f32>(out, bias ? v + load<f32>(bias) : v);
}

function floatRange<K>(m: usize, job: usize, r0: u32, r1: u32, t0: i32, t1: i32): void {
  const rows = <usize>load<u32>(m, M_ROWS << 2);
  const w = <usize>load<u32>(m, M_W << 2);
  const out = <usize>load<u32>(m, M_OUT << 2);
  const bias = <usize>load<u32>(m, M_BIAS << 2);
  const rb = <usize>load<u32>(m, M_ROWBYTES << 2);
  const cols = <i32>word(job, J_COLS);
  const x = <usize>word(job, J_X);
  const table = <usize>word(job, J_TABLE);
  for (let r = <usize>r0; r < <usize>r1; r++) {
    const b = bias ? bias + (r << 2) : 0;
    for (let t = t0; t < t1; t++) {
      const v = floatRow<K>(w + r * rb, x + ((<usize>t * <usize>cols) << 2), cols, table);
      emit(out + ((<usize>t * rows + r) << 2), b, v);
    }
  }
}

function quantRange(kind: u32, m: usize, job: usize, r0: u32, r1: u32, t0: i32, t1: i32): void {
  const rows = <usize>load<u32>(m, M_ROWS << 2);
  const w = <usize>load<u32>(m, M_W << 2);
  const out = <usize>load<u32>(m, M_OUT << 2);
  const bias = <usize>load<u32>(m, M_BIAS << 2);
  const rb = <usize>load<u32>(m, M_ROWBYTES << 2);
  const nb = <i32>(word(job, J_COLS) >> 5);
  const xa = <usize>word(job, kind == Q8_0 ? J_XQ : J_X4);
  const table = <usize>word(job, J_TABLE);
  const tokenBytes = <usize>nb * XBLOCK;
  for (let r = <usize>r0; r < <usize>r1; r++) {
    const b = bias ? bias + (r << 2) : 0;
    for (let t = t0; t < t1; t++) {
      const a = xa + <usize>t * tokenBytes;
      const v = kind == Q8_0 ? q8Row(w + r * rb, nb, a, table) : q4Row(w + r * rb, nb, a, table);
      emit(out + ((<usize>t * rows + r) << 2), b, v);
    }
  }
}

/** Thread `index` of `n`: its contiguous share of all rows, every matrix and token. */
function matmulShare(job: usize, index: u32, n: u32): void {
  const total = <u64>word(job, J_TOTAL);
  const from = <u32>((total * <u64>index) / <u64>n);
  const to = <u32>((total * <u64>(index + 1)) / <u64>n);
  if (from >= to) return;
  const nMat = <i32>word(job, J_NMAT);
  const T = <i32>word(job, J_T);
  const tb = <i32>word(job, J_TB);
  for (let t0 = 0; t0 < T; t0 += tb) {
    const t1 = min(T, t0 + tb);
    for (let i = 0; i < nMat; i++) {
      const m = job + (<usize>(J_MATS + i * 8) << 2);
      const start = load<u32>(m, M_START << 2);
      const rows = load<u32>(m, M_ROWS << 2);
      const lo = max(from, start);
      const hi = min(to, start + rows);
      if (lo >= hi) continue;
      const kind = load<u32>(m, M_TYPE << 2);
      if (kind == Q8_0 || kind == Q4_0) quantRange(kind, m, job, lo - start, hi - start, t0, t1);
      else if (kind == F32) floatRange<f32>(m, job, lo - start, hi - start, t0, t1);
      else if (kind == F16) floatRange<u16>(m, job, lo - start, hi - start, t0, t1);
      else floatRange<i16>(m, job, lo - start, hi - start, t0, t1);
    }
  }
}

/** Sum of the 32-bit lanes of [p, end), 64 bytes per step. */
function sumBytes(p: usize, end: usize): i32 {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  for (; p < end; p += 64) {
    a0 = i32x4.add(a0, v128.load(p));
    a1 = i32x4.add(a1, v128.load(p, 16));
    a2 = i32x4.add(a2, v128.load(p, 32));
    a3 = i32x4.add(a3, v128.load(p, 48));
  }
  const s = i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}

// ---------------------------------------------------------------------------------------
// Exports.

/** Entry point of every thread (the main thread is index 0). */
export function run(job: usize, index: u32, n: u32): void {
  if (word(job, J_CMD) == 0) {
    matmulShare(job, index, n);
  } else {
    const blocks = <u64>(word(job, J_BW_BYTES) >> 6);
    const p = <usize>word(job, J_BW_PTR);
    const from = p + (<usize>((blocks * <u64>index) / <u64>n) << 6);
    const to = p + (<usize>((blocks * <u64>(index + 1)) / <u64>n) << 6);
    store<i32>(job + (<usize>(J_RESULT + index) << 2), sumBytes(from, to));
  }
}

/**
 * Quantizes x[T][cols] to 16-bit blocks once per call (main thread, before the threads
 * start): per 32 values d = amax / ACT_LEVELS, q = round(x / d) (ties to even), d in f32.
 * ggml's CPU path quantizes activations to 8 bits (quantize_row_q8_0, amax / 127); the dot
 * products here run on 16-bit lanes (i32x4.dot_i16x8_s) anyway, so 16-bit activations cost
 * nothing and cut the activation rounding 258-fold (a relative step of 1/32767 of the block's
 * largest value): the logits then follow the reference on the dequantized weights closely.
 * No sum overflows i32: a Q8_0 block is at most 32·127·32767 < 2^28, a Q4_0 block
 * 32·15·32767 plus its correction 8·32·32767.
 * Writes the blocks for Q8_0 rows (xq) and/or for Q4_0 rows (x4), XBLOCK bytes each.
 */
export function quantizeActivations(job: usize): void {
  const T = <usize>word(job, J_T);
  const cols = <usize>word(job, J_COLS);
  const nb = cols >> 5;
  let x = <usize>word(job, J_X);
  let xq = <usize>word(job, J_XQ);
  let x4 = <usize>word(job, J_X4);
  const n = T * nb;
  for (let b: usize = 0; b < n; b++) {
    const v0 = v128.load(x), v1 = v128.load(x, 16), v2 = v128.load(x, 32), v3 = v128.load(x, 48);
    const v4 = v128.load(x, 64), v5 = v128.load(x, 80), v6 = v128.load(x, 96), v7 = v128.load(x, 112);
    const m = f32x4.max(
      f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const d: f32 = amax / ACT_LEVELS;
    const id = f32x4.splat(d != 0 ? <f32>1 / d : 0);
    const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, id)));
    const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, id)));
    const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, id)));
    const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, id)));
    const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, id)));
    const q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, id)));
    const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, id)));
    const q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, id)));
    const n0 = i16x8.narrow_i32x4_s(q0, q1); // values 0..7
    const n1 = i16x8.narrow_i32x4_s(q2, q3); // 8..15
    const n2 = i16x8.narrow_i32x4_s(q4, q5); // 16..23
    const n3 = i16x8.narrow_i32x4_s(q6, q7); // 24..31
    if (xq) {
      v128.store(xq, n0);
      v128.store(xq, n1, 16);
      v128.store(xq, n2, 32);
      v128.store(xq, n3, 48);
      store<f32>(xq, d, 64);
      xq += XBLOCK;
    }
    if (x4) {
      v128.store(x4, i16x8.shuffle(n0, n1, 0, 2, 4, 6, 8, 10, 12, 14)); // 0, 2, …, 14
      v128.store(x4, i16x8.shuffle(n2, n3, 0, 2, 4, 6, 8, 10, 12, 14), 16); // 16, 18, …, 30
      v128.store(x4, i16x8.shuffle(n0, n1, 1, 3, 5, 7, 9, 11, 13, 15), 32); // 1, 3, …, 15
      v128.store(x4, i16x8.shuffle(n2, n3, 1, 3, 5, 7, 9, 11, 13, 15), 48); // 17, 19, …, 31
      const s = i32x4.add(i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3)), i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7)));
      const sum = i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
      store<i32>(x4, -8 * sum, 64);
      store<f32>(x4, d, 68);
      x4 += XBLOCK;
    }
    x += 128;
  }
}

/** Fills the f16 table: the f32 value of every bit pattern (Inf and NaN included). */
export function initTable(table: usize): void {
  v128.store(CONSTS, i16x8.splat(0x0f), C_NIBBLE);
  v128.store(CONSTS, i32x4.splat(0x8fffffff), C_F16_MASK);
  v128.store(CONSTS, f32x4.splat(TWO_112), C_TWO_112);
  for (let h: u32 = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const em = h & 0x7fff;
    let bits: u32;
    if (em >= 0x7c00) bits = sign | 0x7f800000 | ((em & 0x3ff) << 13); // Inf, NaN
    else bits = reinterpret<u32>(reinterpret<f32>(em << 13) * TWO_112) | sign;
    store<u32>(table + (<usize>h << 2), bits);
  }
}

/** f32 values of one row of `cols` values of type `kind` at w, into out. */
export function decodeRow(kind: u32, w: usize, cols: i32, table: usize, out: usize): void {
  if (kind == Q8_0 || kind == Q4_0) {
    const nb = cols >> 5;
    for (let b = 0; b < nb; b++) {
      const d = f16Scale(table, w);
      for (let i = 0; i < 32; i++) {
        let q: i32;
        if (kind == Q8_0) q = <i32>load<i8>(w + 2 + <usize>i);
        else {
          const byte = <i32>load<u8>(w + 2 + <usize>(i & 15));
          q = (i < 16 ? byte & 15 : byte >> 4) - 8;
        }
        store<f32>(out + (<usize>i << 2), d * <f32>q);
      }
      w += kind == Q8_0 ? 34 : 18;
      out += 128;
    }
    return;
  }
  for (let c = 0; c < cols; c++) {
    let v: f32;
    if (kind == F32) v = load<f32>(w + (<usize>c << 2));
    else if (kind == F16) v = f16Scale(table, w + (<usize>c << 1));
    else v = reinterpret<f32>((<u32>load<u16>(w + (<usize>c << 1))) << 16);
    store<f32>(out + (<usize>c << 2), v);
  }
}

/** Fills [p, p + bytes) (a multiple of 4) with xorshift32 noise: pages that no memory deduplication can share. */
export function fillNoise(p: usize, bytes: usize, seed: u32): void {
  let s = seed | 1;
  for (const end = p + bytes; p < end; p += 4) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    store<u32>(p, s);
  }
}

/** Layout constants the runtime checks against its own (layout.ts) at start-up. */
export function layoutCheck(): u32 {
  return <u32>XBLOCK | (<u32>J_MATS << 8) | (<u32>J_TB << 16) | (<u32>J_RESULT << 24);
}

/** End of this module's static data: the runtime's control area must start above it. */
export function dataEnd(): usize {
  return __heap_base;
}
